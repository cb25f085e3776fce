"""Log patterns: turn container log text into structured signals for the analyzers.

``scan`` reads a log tail and returns :class:`LogSignal` objects in order of first occurrence,
one per (kind, key detail): "connection refused by postgres.payments:5432", "environment
variable DATABASE_URL missing", "panic: nil pointer dereference". ``first_error_line`` picks
the line a person would quote for a crash.

Kinds and their key details (the fields that make two signals different):

========================  ==============================================================
kind                      detail
========================  ==============================================================
missing_env               variable, source (ConfigMap/Secret when named)
missing_file              path
config_parse              what
connection_refused        host, port
timeout                   host, port
dns                       host
tls_expired / tls_invalid host
permission_denied         path, object (a database object such as "table orders")
rbac_forbidden            user, verb, resource, namespace (Kubernetes); service, action
disk_full                 path
db_locked                 what
pool_exhausted            what, pool
oom_hint                  message
panic                     message
exception                 type, message (the root cause: last "Caused by", final line
                          of a Python traceback, a Node ``[cause]``)
http_5xx                  host, status
========================  ==============================================================

Order and de-duplication: signals come in line order (on one line, the kinds in the order of
:data:`KINDS`, the exception last); a line may show several kinds ("KeyError: 'DATABASE_URL'"
is both ``missing_env`` and ``exception``). Once a kind has a signal with its key detail, a
signal of that kind without one (a bare "Connection refused") is dropped.

How it stays fast: every rule names the literal words (keywords) its pattern cannot match
without. One regex pass over the lower-cased text (the keywords compiled into a trie) finds
the lines holding keywords; a rule's regex only ever runs on such a line. No pattern nests
repetitions or scans a token from every position, so time stays linear in the input.

How it avoids false positives: phrasings are the exact ones real software prints (each
regex names its source), never single words; INFO lines are *not* skipped by ``scan``
(uvicorn logs 503s at INFO, Kafka clients log refused connections at WARN) but "retrying
connection", "permission check passed" or "0 errors" match no phrasing; settings such as
"connectTimeout=10" or "-XX:+ExitOnOutOfMemoryError" are not errors. Where two kinds
describe one line, the more specific wins (a HikariCP "request timed out" is
``pool_exhausted``, not ``timeout``; "lookup db: i/o timeout" is ``dns``; an expired
certificate is ``tls_expired``, not also ``tls_invalid``; a GCP "PERMISSION_DENIED" is
``rbac_forbidden``, not ``permission_denied``). Known trade-offs: an upper-case name before
"is not set"/"is required"/"must be set" counts as an env var (``PORT is required``), even
on an INFO line; access-log 5xx lines count only for 502/503/504 (an app's own 500 is its
exception); TLS signals take a host only from a URL on the line, never from a bare
host:port (in server logs that is the peer).

Lines are *not* masked here: callers mask (``bot.masking``) before text leaves the process.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from bot.rca.logkinds import _clean_host, _Kind, _kw, _Rule, _split_addr
from bot.rca.logkinds_app import (
    _DB_LOCKED,
    _DISK_FULL,
    _HTTP_5XX,
    _OOM_HINT,
    _PANIC,
    _PERMISSION_DENIED,
    _POOL_EXHAUSTED,
    _RBAC_FORBIDDEN,
)
from bot.rca.logkinds_infra import (
    _CONFIG_PARSE,
    _CONNECTION_REFUSED,
    _DNS,
    _MISSING_ENV,
    _MISSING_FILE,
    _TIMEOUT,
    _TLS_EXPIRED,
    _TLS_INVALID,
)

__all__ = ["KINDS", "LogSignal", "first_error_line", "scan"]

_MAX_LINE = 8192  # longer lines are only examined up to here (regex cost stays bounded)
_MAX_QUOTE = 300  # LogSignal.line and first_error_line() are at most this long
_MAX_DETAIL = 200


@dataclass(frozen=True)
class LogSignal:
    """One structured observation drawn from a log.

    Attributes:
        kind: One of :data:`KINDS`.
        line: The first matching line, stripped, at most 300 characters (not masked).
        detail: Kind-specific fields, e.g. ``{"host": "postgres.payments", "port": "5432"}``.
        line_no: 1-based line number of ``line`` in the scanned text.
    """

    kind: str
    line: str
    detail: dict[str, str]
    line_no: int


# Order matters only for the order of kinds on one line: more specific kinds first.
_KINDS: tuple[_Kind, ...] = (
    _MISSING_ENV,
    _MISSING_FILE,
    _CONFIG_PARSE,
    _DNS,
    _CONNECTION_REFUSED,
    _POOL_EXHAUSTED,
    _DB_LOCKED,
    _TIMEOUT,
    _TLS_EXPIRED,
    _TLS_INVALID,
    _RBAC_FORBIDDEN,
    _PERMISSION_DENIED,
    _DISK_FULL,
    _OOM_HINT,
    _PANIC,
    _HTTP_5XX,
)

KINDS: tuple[str, ...] = (*(k.name for k in _KINDS), "exception")
_KEY_FIELDS = {k.name: k.key for k in _KINDS} | {"exception": ("type", "message")}
_BY_NAME = {k.name: k for k in _KINDS}

# ---------------------------------------------------------------------------------------------
# Exceptions: multi-line blocks (Python tracebacks, Java "Caused by" chains, Node causes)
# ---------------------------------------------------------------------------------------------

# Where an exception block can start: at the start of a line (the common case, found by one
# multi-line regex pass) or, for these phrasings and for stacks inside JSON strings, anywhere.
_EXC_START = re.compile(
    r"^(?:[ \t]*Traceback \(most recent call last\)|Exception in thread |Caused by: "
    r"|\[UnhandledPromiseRejection|(?:Uncaught )?(?:[a-z_$][\w$]*\.)*(?:[A-Z][\w$]*)?"
    r"(?:Error|Exception|Throwable)\b)",
    re.MULTILINE,
)
_EXC_KEYWORDS = _kw(
    "uncaught|unhandledpromiserejection|traceback (most recent call last):\\n|\\n\\tat "
    "|\\ncaused by: "
)
_PY_TRACEBACK = re.compile(r"^\s*Traceback \(most recent call last\):")
_PY_CHAIN = re.compile(
    r"^(?:During handling of the above exception|The above exception was the direct cause)"
)
_PY_EXC_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::[ ]?(?P<message>.*))?$")
# Java/Kotlin "Exception in thread "main" java.lang.IllegalStateException: msg"
_JAVA_THREAD = re.compile(
    r"^Exception in thread \"[^\"]*\" (?P<type>[\w.$]+)(?::\s*(?P<message>.*))?$"
)
# A typed exception line at column 0: Java "org.x.FooException: msg", Python "KeyError: 'X'",
# "psycopg2.OperationalError: ...", Node "TypeError [ERR_X]: msg", "Error: msg"
_EXC_HEAD = re.compile(
    r"^(?:Uncaught )?(?P<type>(?:[a-z_$][\w$]*\.)*(?:[A-Z][\w$]*)?"
    r"(?:Error|Exception|Throwable))(?: \[[A-Z0-9_]+\])?(?::\s*(?P<message>.*))?$"
)
_CAUSED_BY = re.compile(r"^Caused by: (?P<type>[\w.$]+)(?::\s*(?P<message>.*))?$")
_NODE_CAUSE = re.compile(
    r"^\s+\[cause\]: (?P<type>[\w$]+)(?: \[[A-Z0-9_]+\])?(?::\s*(?P<message>.*))?$"
)
# Lines inside a stack: Java/Node frames, "... 12 more", suppressed/nested causes, and the
# property dump Node prints after an error ("  errno: -111,", "  code: 'ECONNREFUSED'", "}")
_STACK_LINE = re.compile(
    r"^\s+(?:at |\.\.\. \d+ (?:more|common frames omitted)|Suppressed: |Caused by: "
    r"|[\w$]+: |\[[\w$]+\]: |\d+: )|^\s*[}\]],?\s*$|^\s*\.\.\. \d+ more"
)
# Node "[UnhandledPromiseRejection: This error originated ... reason "x".]", the Node <= 14
# "UnhandledPromiseRejectionWarning: Error: x", "uncaughtException: x" from loggers
_UNHANDLED = re.compile(
    r"^\[UnhandledPromiseRejection: (?P<message>.*?)\]?\s*\{?\s*$"
    r"|UnhandledPromiseRejectionWarning: (?P<type>[\w$.]+): (?P<message_2>.+)"
    r"|\b[Uu]ncaught ?[Ee]xception:?\s+(?:(?P<type_2>[\w$.]*(?:Error|Exception)): )?"
    r"(?P<message_3>.+)"
)
_REJECTION_REASON = re.compile(r'rejected with the reason "(?P<reason>.*)"')

# (root line index, type, message, last line index of the block)
_Block = tuple[int, str, str, int]


def _python_block(lines: Sequence[str], i: int) -> _Block | None:
    """A Python traceback starting at ``i``: the last exception line of the (chained) block."""
    root: _Block | None = None
    j = i + 1
    while j < len(lines):
        s = lines[j]
        if not s.strip() or s[0] in " \t" or _PY_TRACEBACK.match(s) or _PY_CHAIN.match(s):
            j += 1
            continue
        m = _PY_EXC_LINE.match(s.rstrip())
        if m is None:
            break
        root = (j, m["type"], m["message"] or "", j)
        k = j + 1
        while k < len(lines) and not lines[k].strip():
            k += 1
        if k < len(lines) and _PY_CHAIN.match(lines[k]):  # "During handling of ...": go on
            j = k
            continue
        break
    return root


def _stack_block(lines: Sequence[str], i: int, head: re.Match[str]) -> _Block:
    """A Java/Node stack starting at ``i``: its root cause is the last "Caused by"/[cause]."""
    root: _Block = (i, head["type"], head["message"] or "", i)
    j = i + 1
    while j < len(lines):
        s = lines[j]
        m = _CAUSED_BY.match(s) or _NODE_CAUSE.match(s)
        if m is not None:
            root = (j, m["type"], m["message"] or "", j)
        elif not _STACK_LINE.match(s):
            break
        j += 1
    return (root[0], root[1], root[2], j - 1)


def _exception_at(lines: Sequence[str], i: int) -> _Block | None:
    line = lines[i].rstrip()
    if _PY_TRACEBACK.match(line):
        return _python_block(lines, i)
    head = _JAVA_THREAD.match(line) or _CAUSED_BY.match(line) or _EXC_HEAD.match(line)
    if head is not None:
        return _stack_block(lines, i, head)
    m = _UNHANDLED.search(line)
    if m is None:
        return None
    message = m["message"] or m["message_2"] or m["message_3"] or ""
    reason = _REJECTION_REASON.search(message)
    if reason:
        message = reason["reason"]
    kind = m["type"] or m["type_2"]
    if not kind:
        kind = "UnhandledPromiseRejection" if m["message"] is not None else "UncaughtException"
    return (i, kind, message, i)


_ESCAPED_STACK = re.compile(r"Traceback \(most recent call last\):\\n|\\n\\tat |\\nCaused by: ")
_JSON_STRING_END = re.compile(r'(?<!\\)"')


def _embedded_lines(line: str) -> list[str] | None:
    """A stack trace inside one JSON log line ("stack_trace":"x\\n\\tat ..."), split up."""
    if "\\n" not in line or not _ESCAPED_STACK.search(line):
        return None
    parts = line.split("\\n")
    parts[0] = re.split(r"\"\s*:\s*\"", parts[0])[-1]  # from the start of the JSON value
    out = []
    for part in parts:
        end = _JSON_STRING_END.search(part)
        if end is not None:  # the JSON string ends here: the rest is other fields
            out.append(part[: end.start()].replace("\\t", "\t").replace('\\"', '"'))
            break
        out.append(part.replace("\\t", "\t").replace('\\"', '"'))
    return out


def _exceptions(lines: Sequence[str], candidates: Sequence[int]) -> list[tuple[int, LogSignal]]:
    out: list[tuple[int, LogSignal]] = []
    consumed = -1
    for i in candidates:
        if i <= consumed:
            continue
        block = _exception_at(lines, i)
        sub: Sequence[str] = lines
        at = i
        if block is None:
            embedded = _embedded_lines(lines[i])
            if embedded is None:
                continue
            blocks = (_exception_at(embedded, k) for k in range(len(embedded)))
            block = next((b for b in blocks if b is not None), None)
            if block is None:
                continue
            sub = embedded
        else:
            consumed = block[3]
            at = block[0]
        root, kind, message, _ = block
        detail = {"type": kind, "message": _clip(message)}
        text = sub[root].strip()
        out.append((at, LogSignal("exception", text[:_MAX_QUOTE], _nonempty(detail), at + 1)))
    return out


# ---------------------------------------------------------------------------------------------
# Matching one line
# ---------------------------------------------------------------------------------------------

_SUFFIX = re.compile(r"_\d+$")


def _clip(value: str) -> str:
    """Trim a captured text: JSON residue at the end ("}, \\), unbalanced closing quotes."""
    value = value.strip().rstrip("},\\").strip()
    for quote in "\"'":
        if value.endswith(quote) and value.count(quote) % 2:
            value = value[:-1].rstrip()
    return value if len(value) <= _MAX_DETAIL else value[: _MAX_DETAIL - 1] + "…"


def _nonempty(detail: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in detail.items() if v}


def _detail(m: re.Match[str], rule: _Rule) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in m.groupdict().items():
        if value is None:
            continue
        key = _SUFFIX.sub("", name)
        if key in out:
            continue
        if key == "addr":
            host, port = _split_addr(value)
            if host:
                out.setdefault("host", host)
            if port:
                out.setdefault("port", port)
        elif key == "host":
            out[key] = _clean_host(value)
        elif key == "service":
            out[key] = value.strip().lower().replace(" ", "")
        elif key == "source":  # 'configmap "cart-config"' -> "configmap cart-config"
            out[key] = re.sub(r"\\?[\"']", "", value).strip()
        elif key == "path":
            out[key] = value.strip().strip("\"'`\\").rstrip(".,;:")
        else:
            out[key] = _clip(value)
    for key, value in rule.fixed:
        out.setdefault(key, value)
    return out


def _quote(line: str, at: int) -> str:
    """The stripped line, or a window of it around ``at`` when it is too long."""
    text = line.strip()
    if len(text) <= _MAX_QUOTE:
        return text
    at = max(0, at - (len(line) - len(line.lstrip())))
    start = max(0, min(at - 100, len(text) - _MAX_QUOTE))
    piece = text[start : start + _MAX_QUOTE]
    if start > 0:
        piece = "…" + piece[1:]
    if start + _MAX_QUOTE < len(text):
        piece = piece[:-1] + "…"
    return piece


def _match_line(
    lines: Sequence[str], i: int, rule_ids: Sequence[int]
) -> list[tuple[str, re.Match[str], dict[str, str]]]:
    """Every kind line ``i`` shows (trying only ``rule_ids``, sorted), after suppression."""
    line = lines[i][:_MAX_LINE]
    found: dict[str, tuple[re.Match[str], dict[str, str]]] = {}
    for rule_id in rule_ids:
        kind, rule = _ALL_RULES[rule_id]
        if kind.name in found:
            continue
        m = rule.pattern.search(line)
        if m is None or (rule.unless is not None and rule.unless.search(line)):
            continue
        detail = _detail(m, rule)
        if rule.context is not None and not rule.context(lines, i, detail):
            continue
        if rule.fallback and kind.fallback is not None and not detail.get(kind.key[0]):
            for key, value in kind.fallback(line).items():
                detail.setdefault(key, value)
        found[kind.name] = (m, _nonempty(detail))
    return [
        (name, m, detail)
        for name, (m, detail) in found.items()
        if not any(other in found for other in _BY_NAME[name].suppressed_by)
    ]


# ---------------------------------------------------------------------------------------------
# Candidate lines: keywords found by str.find in the lower-cased text
# ---------------------------------------------------------------------------------------------

# Every rule gets an id; ids follow kind order, then rule order, so sorting a line's candidate
# ids gives the order in which they must be tried. Id -1 is the exception pass.
_ALL_RULES: tuple[tuple[_Kind, _Rule], ...] = tuple(
    (kind, rule) for kind in _KINDS for rule in kind.rules
)
_EXC = -1


_Trie = dict[str, "_Trie"]


def _trie(words: Sequence[str]) -> str:
    """A regex matching any of ``words``, factored as a trie (one pass, longest first)."""
    root: _Trie = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: _Trie) -> str:
        alts = [re.escape(ch) + emit(sub) for ch, sub in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if "" in node:  # a word ends here: the longer continuations are optional
            return "(?:" + body + ")?"
        return body

    return emit(root)


def _keyword_tables() -> tuple[re.Pattern[str], dict[str, frozenset[int]]]:
    ids: dict[str, set[int]] = {}
    for n, (_, rule) in enumerate(_ALL_RULES):
        for keyword in rule.keywords:
            ids.setdefault(keyword, set()).add(n)
    for keyword in _EXC_KEYWORDS:
        ids.setdefault(keyword, set()).add(_EXC)
    # The scan reports the longest keyword starting at each position; the shorter ones
    # starting there are its prefixes, so each keyword carries its prefixes' rule ids.
    closure = {
        word: frozenset().union(*(v for k, v in ids.items() if word.startswith(k))) for word in ids
    }
    # A look-ahead makes the matches overlap: every start position is reported.
    return re.compile("(?=(" + _trie(sorted(ids)) + "))"), closure


_KEYWORDS, _KEYWORD_RULES = _keyword_tables()


def _split(text: str) -> list[str]:
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _line_numbers(starts: list[int], positions: list[int]) -> list[int]:
    """Line index of each (non-decreasing) position, given the lines' start offsets."""
    out = []
    n = 0
    last = len(starts) - 1
    for pos in positions:
        while n < last and starts[n + 1] <= pos:
            n += 1
        out.append(n)
    return out


def _candidates(text: str) -> dict[int, set[int]]:
    """Line index -> ids of the rules (and _EXC) whose keywords occur on that line."""
    lowered = text.lower()
    hay = "\n" + lowered  # "\n" lets keywords such as "\nf1" anchor at a line start
    # Offsets in ``hay`` are one more than in ``lowered``; a "\n…" keyword belongs to the line
    # after its newline.
    hits = [(m.start(), m.group(1)) for m in _KEYWORDS.finditer(hay)]
    positions = [pos if word[0] == "\n" else pos - 1 for pos, word in hits]
    out: dict[int, set[int]] = {}
    for n, (_, word) in zip(_line_numbers(_starts(lowered), positions), hits, strict=True):
        if n in out:
            out[n] |= _KEYWORD_RULES[word]
        else:
            out[n] = set(_KEYWORD_RULES[word])
    # Exception blocks start at a line start (found in the original text: lower-casing
    # changes the length of a few non-ASCII letters, but never the line numbers).
    exc_positions = [m.start() for m in _EXC_START.finditer(text)]
    for n in _line_numbers(_starts(text), exc_positions):
        out.setdefault(n, set()).add(_EXC)
    return out


def _starts(text: str) -> list[int]:
    return list(accumulate((len(line) + 1 for line in text.split("\n")), initial=0))[:-1]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def scan(text: str, *, limit: int = 50) -> list[LogSignal]:
    """Find the structured signals in a log.

    Args:
        text: Log text (any mix of plain, logfmt and JSON lines; ``\\r\\n`` is fine).
        limit: At most this many signals are returned.

    Returns:
        Signals in order of first occurrence, one per (kind, key detail). A signal without
        its key detail (e.g. a bare "connection refused") is dropped when the same kind also
        occurs with one. Lines are returned as written: the caller masks them.
    """
    if not text or limit <= 0:
        return []
    lines = _split(text)
    candidates = _candidates(text)
    found: list[tuple[int, int, LogSignal]] = []
    exception_lines: list[int] = []
    for i in sorted(candidates):
        kinds = sorted(candidates[i])
        if kinds[0] == _EXC:
            exception_lines.append(i)
            kinds = kinds[1:]
        for order, (name, m, detail) in enumerate(_match_line(lines, i, kinds)):
            found.append((i, order, LogSignal(name, _quote(lines[i], m.start()), detail, i + 1)))
    for i, signal in _exceptions(lines, exception_lines):
        found.append((i, len(_KINDS), signal))
    found.sort(key=lambda item: (item[0], item[1]))

    seen: set[tuple[str, ...]] = set()
    keyed_kinds: set[str] = set()
    unique: list[LogSignal] = []
    for _, _, signal in found:
        key = tuple(signal.detail.get(field, "") for field in _KEY_FIELDS[signal.kind])
        if (signal.kind, *key) in seen:
            continue
        seen.add((signal.kind, *key))
        if any(key):
            keyed_kinds.add(signal.kind)
        unique.append(signal)
    result = [
        s
        for s in unique
        if s.kind not in keyed_kinds or any(s.detail.get(f) for f in _KEY_FIELDS[s.kind])
    ]
    return result[:limit]


_LEVEL = re.compile(
    r"(?i:\"(?:level|severity|lvl|log\.level|levelname)\"\s*:\s*\"?(?P<json>[a-z]+|\d{2})\b)"
    r"|(?i:\b(?:level|lvl|severity)=\"?(?P<kv>[a-z]+))"
    r"|(?i:\[\s*(?P<bracket>info|debug|trace|notice|warn|warning|error|err|crit|critical"
    r"|alert|emerg|fatal)\s*\])"
    r"|(?<![\w-])(?P<word>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|FATAL|CRITICAL|SEVERE"
    r"|PANIC|LOG|DETAIL|HINT|STATEMENT)(?![\w-])"
    r"|^(?P<klog>[IWEF])\d{4} "
)
_QUIET = frozenset(
    "trace debug info information notice log detail hint statement 10 20 30 i".split()
)
_LOUD = frozenset("error err fatal critical crit alert emerg severe panic 50 60 e f".split())
_FRAME = re.compile(
    r"^\s+(?:at |File \"|\.\.\. \d+ )|^\s*\.\.\. \d+ more|^goroutine \d+ \[|^created by "
    # Go: "github.com/x/y.(*Engine).Score(0xc000…)" (linear: no nested repetition)
    r"|^\t/|^[\w./-]+(?:\.\(\*?\w+\)\.\w+)?\(|^\s*\^+\s*$"
)


def _level(line: str) -> str | None:
    m = _LEVEL.search(line)
    if m is None:
        return None
    value = m["json"] or m["kv"] or m["bracket"] or m["word"] or m["klog"] or ""
    return value.lower()


_RUST_PANIC_HEAD = re.compile(r"^thread '[^']*' panicked at [^\s']+:\d+:\d+:$")


def first_error_line(text: str) -> str | None:
    """The first meaningful error line of a log, as a person would quote it for a crash.

    Error-level lines, exception heads and crash lines (panic, OOM) win; without one, the
    first line that yields a signal (a WARN line naming a refused connection, a bad
    setting...) is used. Blank lines, stack frames ("at …", '  File "…"', Go frames),
    decorations, INFO/DEBUG lines and error lines that only introduce what follows (ending
    in ":") are skipped. A Python traceback is quoted by its final exception line, a Rust
    panic by its header and message.

    Args:
        text: Log text.

    Returns:
        The line, stripped and at most 300 characters, or None when nothing looks like an
        error.
    """
    if not text:
        return None
    lines = _split(text)
    candidates = _candidates(text)
    first_signal: str | None = None
    for i, raw in enumerate(lines):
        stripped = raw.strip()
        if not stripped or _FRAME.match(raw):
            continue
        if _PY_TRACEBACK.match(raw):
            block = _python_block(lines, i)
            return _quote(lines[block[0]], 0) if block else stripped[:_MAX_QUOTE]
        if _RUST_PANIC_HEAD.match(stripped) and i + 1 < len(lines):
            return _quote(stripped + " " + lines[i + 1].strip(), 0)
        level = _level(raw)
        if level in _QUIET:
            continue
        if level in _LOUD and not stripped.endswith(":") and raw[:1] not in " \t":
            return _quote(raw, 0)
        kinds = sorted(candidates.get(i, ()))
        if kinds and kinds[0] == _EXC and _exception_at(lines, i) is not None:
            return _quote(raw, 0)
        matched = _match_line(lines, i, [k for k in kinds if k != _EXC])
        if any(name in ("panic", "oom_hint") for name, _, _ in matched):
            return _quote(raw, 0)
        if matched and first_signal is None:
            first_signal = _quote(raw, 0)
    return first_signal
