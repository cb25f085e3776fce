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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate

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


# A detail refiner: sees the neighbouring lines, may fill ``detail`` or veto the match.
_Context = Callable[[Sequence[str], int, dict[str, str]], bool]


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    keywords: tuple[str, ...]  # lower-case; one of them occurs in every line the pattern matches
    fixed: tuple[tuple[str, str], ...] = ()  # constant details, e.g. ("what", "deadlock")
    unless: re.Pattern[str] | None = None  # the line is not this rule's when this matches
    context: _Context | None = None
    fallback: bool = True  # may the kind's fallback extractor fill missing details?


@dataclass(frozen=True)
class _Kind:
    name: str
    rules: tuple[_Rule, ...]  # tried in order; the first match wins
    key: tuple[str, ...]  # detail fields that identify a signal for de-duplication
    fallback: Callable[[str], dict[str, str]] | None = None  # fills missing key fields
    suppressed_by: tuple[str, ...] = ()  # kinds that explain the same line better


def _rx(pattern: str, *, ci: bool = True) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if ci else 0)


def _r(
    pattern: str,
    keywords: str,
    *,
    ci: bool = True,
    unless: str | None = None,
    context: _Context | None = None,
    fallback: bool = True,
    **fixed: str,
) -> _Rule:
    return _Rule(
        _rx(pattern, ci=ci),
        _kw(keywords),
        tuple(fixed.items()),
        _rx(unless) if unless else None,
        context,
        fallback,
    )


def _kw(spec: str) -> tuple[str, ...]:
    """Keywords written as one "a|b|c" string (keeps the tables compact)."""
    return tuple(spec.split("|"))


# Quoted things appear raw ("x") or inside JSON log lines (\"x\"): Q matches either quote.
_Q = r"\\?[\"']"
_QV = r"[^\"'\\\n]"  # a character of a quoted value

# ---------------------------------------------------------------------------------------------
# Address and path extraction
# ---------------------------------------------------------------------------------------------

_SOURCE_EXT = re.compile(
    r"\.(?:go|py|pyc|java|kt|scala|js|mjs|cjs|ts|rs|rb|c|cc|cpp|h|php|cs|ex|exs|yaml|yml"
    r"|json|toml|conf|properties|sql|class|jar|so)$",
    re.IGNORECASE,
)
_ADDR_FINDERS = (
    # Go "read tcp 10.1.1.1:4321->10.0.0.5:5432": the remote side is after the arrow.
    re.compile(r"->(?P<host>\[[0-9a-fA-F:.]+\]|[\w.-]+):(?P<port>\d{1,5})\b"),
    # A URL: scheme://[user@]host[:port]
    re.compile(
        r"(?<![\w+.-])[a-z][a-z0-9+.-]{0,30}://(?:[^@/\s\"']{0,256}@)?"
        r"(?P<host>\[[0-9a-fA-F:.]+\]|[\w.-]+)"
        r"(?::(?P<port>\d{1,5}))?",
        re.IGNORECASE,
    ),
    # urllib3 / requests: HTTPConnectionPool(host='api', port=8080)
    re.compile(r"host='(?P<host>[^']+)', port=(?P<port>\d+)"),
    # libpq and friends: host "db" ... port 5432
    re.compile(r"\bhost[= ]\\?\"?(?P<host>[\w.-]+)\\?\"?(?:.{0,60}?\bport[= ](?P<port>\d+))?"),
    # host:port / ipv4:port / [ipv6]:port tokens (not times, not source-file:line).
    re.compile(
        r"(?<![\w.:/-])(?P<host>(?:\d{1,3}\.){3}\d{1,3}|\[[0-9a-fA-F:]+\]"
        r"|[A-Za-z][\w-]*(?:\.[\w-]+)*):(?P<port>\d{1,5})\b(?![.:]\d)"
    ),
)


def _clean_host(host: str) -> str:
    host = host.strip().strip("\"'\\`").rstrip(".:,;)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def _split_addr(addr: str) -> tuple[str, str]:
    """Split "host:port", "[v6]:port", "::1:5432", "name/10.0.0.1:9092" or a URL."""
    addr = addr.strip().strip("\"'\\`").rstrip(".,;)")
    if "://" in addr:
        m = _ADDR_FINDERS[1].search(addr)
        if m:
            return _clean_host(m["host"]), m["port"] or ""
    if addr.startswith("/"):  # a unix socket path
        return addr, ""
    if "/" in addr:  # Java/Kafka "name/10.0.0.1:9092": the name, the port after the IP
        name, _, rest = addr.partition("/")
        host, port = _split_addr(rest)
        return (_clean_host(name) or host), port
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        return host, rest.lstrip(":")
    host, sep, port = addr.rpartition(":")
    if sep and port.isdigit() and host:
        return _clean_host(host), port
    return _clean_host(addr), ""


def _find_addr(line: str) -> dict[str, str]:
    for finder in _ADDR_FINDERS:
        for m in finder.finditer(line):
            host = _clean_host(m["host"])
            if not host or _SOURCE_EXT.search(host) or host.isdigit():
                continue
            out = {"host": host}
            if m["port"]:
                out["port"] = m["port"]
            return out
    return {}


_PATH_FINDERS = (
    re.compile(r"\\?[\"'](?P<path>/[^\"'\\\n]+)\\?[\"']"),  # a quoted absolute path
    re.compile(r"(?<![\w.:/~-])(?P<path>/[\w.@+~-][\w.@+~/-]*)"),  # a bare one
)


def _find_path(line: str) -> dict[str, str]:
    for finder in _PATH_FINDERS:
        m = finder.search(line)
        if m:
            return {"path": m["path"].rstrip(".,;:")}
    return {}


def _find_host(line: str) -> dict[str, str]:
    addr = _find_addr(line)
    return {"host": addr["host"]} if addr else {}


def _find_url_host(line: str) -> dict[str, str]:
    """Only a URL's host: for TLS, a bare host:port on the line is as often the peer."""
    m = _ADDR_FINDERS[1].search(line)
    return {"host": _clean_host(m["host"])} if m else {}


# ---------------------------------------------------------------------------------------------
# Context refiners (multi-line phrasings)
# ---------------------------------------------------------------------------------------------

_NOT_ENV_NAMES = frozenset(
    "HTTP HTTPS TLS SSL URL URI API JSON YAML XML SQL DNS TCP UDP GRPC AWS GCP CPU GPU RAM UTF"
    " NULL NONE TRUE FALSE ERROR WARN INFO DEBUG FATAL PANIC THE THIS".split()
)


def _env_name_ok(lines: Sequence[str], i: int, detail: dict[str, str]) -> bool:
    """Generic "X is not set" phrasings: X must look like an env var, not an acronym."""
    return detail.get("variable", "") not in _NOT_ENV_NAMES


def _pydantic_field(lines: Sequence[str], i: int, detail: dict[str, str]) -> bool:
    """pydantic-settings prints the field name on the line above "Field required"."""
    for j in range(i - 1, max(-1, i - 3), -1):
        name = lines[j].strip()
        if name:
            if re.fullmatch(r"[\w.]+", name):
                detail["variable"] = name
            return True
    return True


def _envalid_block(lines: Sequence[str], i: int, detail: dict[str, str]) -> bool:
    """envalid lists "    NAME: undefined" under "Missing environment variables:"."""
    return any(
        "missing environment variables" in lines[j].lower() for j in range(max(0, i - 12), i)
    )


def _libpq_host(lines: Sequence[str], i: int, detail: dict[str, str]) -> bool:
    """Old libpq: 'Is the server running on host "db" (10.0.0.5) and accepting / TCP/IP
    connections on port 5432?' on the two lines after "could not connect to server"."""
    if "host" not in detail:
        tail = " ".join(lines[i + 1 : i + 3])
        host = re.search(r'on host \\?"([^"\\]+)\\?"', tail)
        port = re.search(r"on port (\d+)", tail)
        if host:
            detail["host"] = host.group(1)
        if port:
            detail["port"] = port.group(1)
    return True


_QUOTED_IP_PORT = re.compile(r"\"(?P<addr>(?:\d{1,3}\.){3}\d{1,3}:\d+)\"")
_INGRESS_UPSTREAM = re.compile(
    r"\[(?P<upstream>[a-z0-9][a-z0-9.-]*-\d+)\] \[[^\]]*\] (?P<addr>(?:\d{1,3}\.){3}\d{1,3}:\d+)?"
)


def _access_upstream(lines: Sequence[str], i: int, detail: dict[str, str]) -> bool:
    """Access logs: ingress-nginx "[ns-svc-port] [] 10.0.0.9:8080", or envoy/istio's
    quoted "%UPSTREAM_HOST%" (the first quoted ip:port; the client IP has no port)."""
    m = _INGRESS_UPSTREAM.search(lines[i]) or _QUOTED_IP_PORT.search(lines[i])
    if m is not None:
        groups = m.groupdict()
        if groups.get("upstream"):
            detail["upstream"] = groups["upstream"]
        if m["addr"]:
            detail["host"], detail["port"] = _split_addr(m["addr"])
    return True


def _rust_panic_message(lines: Sequence[str], i: int, detail: dict[str, str]) -> bool:
    """Rust >= 1.73 prints the panic message on the line after "panicked at file:l:c:"."""
    if not detail.get("message") and i + 1 < len(lines):
        detail["message"] = lines[i + 1].strip()
    return True


def _not_go_signal_line(lines: Sequence[str], i: int, detail: dict[str, str]) -> bool:
    """Go prints "[signal SIGSEGV: …]" right under its "panic:" line: one crash, not two."""
    return not any(lines[j].startswith("panic: ") for j in range(max(0, i - 2), i))


# ---------------------------------------------------------------------------------------------
# The pattern library
# ---------------------------------------------------------------------------------------------

_ENV_WORDS = r"\b(?:environment variable|env(?:ironment)?[ _-]?var(?:iable)?|env)"
_IS_MISSING = (
    r"(?:is |was |has )?(?:not set|not defined|undefined|unset|missing|empty|required"
    r"|must be set|not found|not provided|not present)"
)
_UPPER_VAR = r"(?-i:(?P<variable>\b[A-Z][A-Z0-9_]{2,}))"

_MISSING_ENV = _Kind(
    "missing_env",
    (
        # kelseyhightower/envconfig: "required key DATABASE_URL missing value";
        # caarlos0/env: 'env: required environment variable "DATABASE_URL" is not set'
        _r(
            rf"required (?:key|{_ENV_WORDS})s? {_Q}?(?P<variable>[A-Za-z_][\w.]*){_Q}?:? "
            rf"{_IS_MISSING}",
            "required ",
        ),
        # environs / Go / shell: 'environment variable "X" not set', "env var X is required"
        _r(
            rf"{_ENV_WORDS}s?:?\s+{_Q}?\$?\{{?(?P<variable>[A-Za-z_]\w*)\}}?{_Q}?\s+{_IS_MISSING}",
            "env",
        ),
        # "missing required env var X", "Missing required environment variable: X"
        _r(
            rf"missing (?:required |mandatory )?{_ENV_WORDS}s?(?: named)?:?\s+{_Q}?\$?"
            r"(?P<variable>[A-Za-z_][\w.]*)",
            "missing ",
        ),
        # "DATABASE_URL environment variable is not set" (hand-written checks, any language)
        _r(rf"{_UPPER_VAR}{_Q}? {_ENV_WORDS}\s+{_IS_MISSING}", "env"),
        # Django ImproperlyConfigured: "Set the SECRET_KEY environment variable"
        _r(rf"Set the {_UPPER_VAR} environment variable", "set the "),
        # Python os.environ["X"]: "KeyError: 'DATABASE_URL'" (upper case: env var names)
        _r(r"KeyError: \\?['\"](?P<variable>[A-Z][A-Z0-9_]{2,})\\?['\"]", "keyerror: ", ci=False),
        # python-decouple: "UndefinedValueError: X not found. Declare it as envvar or ..."
        _r(r"(?<!\w)(?P<variable>\w+) not found\. Declare it as envvar", "declare it as envvar"),
        # Spring: "Could not resolve placeholder 'DB_URL' in value "${DB_URL}"";
        # Micronaut: "Could not resolve placeholder ${DB_URL}"
        _r(
            rf"Could not resolve placeholder (?:{_Q}(?P<variable>[^'\"\\]+){_Q}"
            r"|\$\{(?P<variable_2>[^}:]+))",
            "could not resolve placeholder",
        ),
        # Quarkus / SmallRye: "The config property quarkus.datasource.password is required
        # but it could not be found in any config source"
        _r(
            r"config property (?P<variable>[\w.\-\[\]\"]+) is required but it could not be found",
            "is required but it could not be found",
        ),
        # env-var (Node): 'env-var: "DATABASE_URL" is a required variable, but it was not set'
        _r(rf"{_Q}(?P<variable>\w+){_Q} is a required variable", "is a required variable"),
        # kubelet (events): "couldn't find key DB_URL in ConfigMap shop/cart-config";
        # 'configmap "cart-config" not found', 'secret "db-creds" not found'
        _r(
            r"couldn't find key (?P<variable>\S+) in (?P<source>(?:ConfigMap|Secret) \S+)",
            "couldn't find key",
        ),
        _r(rf"(?P<source>(?:configmap|secret) {_Q}[\w.-]+{_Q}) not found", "not found"),
        # bash set -u: "DATABASE_URL: unbound variable"; dash: "X: parameter not set"
        _r(
            r"(?<!\w)(?P<variable>[A-Za-z_]\w*): "
            r"(?:unbound variable|parameter (?:null or )?not set)",
            "unbound variable|parameter not set|parameter null",
        ),
        # Rust std::env::var: "environment variable not found" / VarError::NotPresent
        _r(
            r"environment variable not found|\bNotPresent\b",
            "environment variable not found|notpresent",
        ),
        # pydantic-settings: "<field>" then "  Field required [type=missing, ...]"
        _r(
            r"Field required \[type=missing",
            "field required [type=missing",
            context=_pydantic_field,
        ),
        # envalid: "Missing environment variables:" then "    API_KEY: undefined"
        _r(
            r"^\s+(?P<variable>[A-Z][A-Z0-9_]*): (?:undefined|\(required\)|required)",
            ": undefined|: (required)|: required",
            ci=False,
            context=_envalid_block,
        ),
        # Generic hand-written checks: "DATABASE_URL is not set", "JWT_SECRET must be set"
        # (Rust .expect("X must be set")), "PORT is required", "API_KEY is not defined"
        _r(
            rf"{_UPPER_VAR}{_Q}?\s+(?:is\s+)?(?:not set|not defined|undefined|unset|required"
            r"|missing|must be set)\b",
            "not set|not defined|undefined|unset|required|missing|must be set",
            context=_env_name_ok,
        ),
    ),
    ("variable", "source"),
)

_MISSING_FILE = _Kind(
    "missing_file",
    (
        # Node: "ENOENT: no such file or directory, open '/app/config/prod.json'"
        _r(rf"ENOENT: no such file or directory, \w+ {_Q}(?P<path>{_QV}+)", "enoent: no such file"),
        # Python: "FileNotFoundError: [Errno 2] No such file or directory: '/etc/app.yaml'"
        _r(rf"No such file or directory: {_Q}(?P<path>{_QV}+)", "no such file or directory: "),
        # Python: "python: can't open file '/app/main.py': [Errno 2] No such file or directory"
        _r(rf"can't open file {_Q}(?P<path>{_QV}+)", "can't open file"),
        # Go: "open /etc/app/config.yaml: no such file or directory", "exec /app/server: ..."
        _r(
            r"\b(?:open|stat|lstat|readlink|exec|mkdir|chdir|remove|rename|read|mount|chmod"
            r"|chown|chroot)\s+\\?\"?(?P<path>[^\s:\"\\]+)\\?\"?:\s*no such file or directory",
            "no such file or directory",
        ),
        # nginx: 'open() "/etc/nginx/conf.d/x.conf" failed (2: No such file or directory)'
        _r(
            rf"open\(\) {_Q}(?P<path>{_QV}+){_Q} failed \(2: No such file or directory",
            "failed (2: no such file",
        ),
        # Spring Boot: "class path resource [application.yml] cannot be opened because it
        # does not exist"; "Config data resource 'file [/config/x.yaml]' via location ..."
        _r(
            r"class path resource \[(?P<path>[^\]]+)\] cannot be opened because it does not exist",
            "cannot be opened because it does not exist",
        ),
        _r(
            r"Config data (?:resource|location) '(?:file \[|class path resource \[)?"
            r"(?P<path>[^\]']+)\]?'.*?(?:does not exist|cannot be found)",
            "config data ",
        ),
        # Java: "java.io.FileNotFoundException: /config/app.properties (No such file or
        # directory)", "java.nio.file.NoSuchFileException: /config/x"
        _r(
            r"(?:FileNotFoundException|NoSuchFileException): (?P<path>[^\s(]+)",
            "filenotfoundexception: |nosuchfileexception: ",
            unless=r"permission denied",
        ),
        # runc / Go os/exec: 'exec: "python": executable file not found in $PATH'
        _r(
            rf"exec: {_Q}(?P<path>{_QV}+){_Q}: executable file not found",
            "executable file not found",
        ),
        # viper: 'Config File "config" Not Found in "[/etc/app]"'
        _r(rf"Config File {_Q}(?P<path>{_QV}+){_Q} Not Found in", "not found in"),
        # Postgres / generic quoted: 'could not open file "x": No such file or directory'
        _r(
            rf"{_Q}(?P<path>{_QV}+){_Q}:? (?:\(\d+: )?No such file or directory",
            "no such file or directory",
        ),
        # shell: "/docker-entrypoint.sh: line 3: /config/run.sh: No such file or directory";
        # dash: "/bin/sh: 1: /app/start.sh: not found"
        _r(
            r"(?<![^\s:'\"])(?P<path>/[^\s:'\"]+): (?:No such file or directory|not found)",
            "no such file or directory|: not found",
        ),
        # Rust "No such file or directory (os error 2)"; anything else: path from the line
        _r(
            r"No such file or directory|\bENOENT\b|FileNotFoundError|NoSuchFileException",
            "no such file or directory|enoent|filenotfounderror|nosuchfileexception",
        ),
    ),
    ("path",),
    fallback=_find_path,
)

_CONFIG_PARSE = _Kind(
    "config_parse",
    (
        # Spring Boot: "Failed to bind properties under 'spring.kafka.listener.poll-timeout'"
        _r(r"Failed to bind properties under '(?P<what>[^']+)'", "failed to bind properties"),
        # Spring: "Failed to convert property value of type 'x' ... for property 'y'"
        _r(
            r"Failed to convert property value of type .*? for property '(?P<what>[^']+)'",
            "failed to convert property value",
        ),
        # Go time.ParseDuration: 'time: invalid duration "5 seconds"'
        _r(r"(?P<what>invalid duration \\?\"[^\"\\]*\\?\")", "invalid duration"),
        # Spring / java.time: "'5 seconds' is not a valid duration"
        _r(r"(?P<what>'[^']*' is not a valid duration)", "is not a valid duration"),
        # Go flag: "flag provided but not defined: -foo"; pflag/cobra: "unknown flag: --foo",
        # "unknown shorthand flag: 'x' in -x", 'invalid argument "abc" for "--port" flag',
        # 'required flag(s) "config" not set', "bad flag syntax: ---x"
        _r(r"(?P<what>flag provided but not defined: \S+)", "flag provided but not defined"),
        _r(
            r"(?P<what>unknown (?:shorthand )?flag:? \S+(?: in \S+)?)",
            "unknown flag|unknown shorthand flag",
        ),
        _r(
            r"(?P<what>invalid argument \\?\"[^\"\\]*\\?\" for \\?\"[^\"\\]+\\?\" flag)",
            "invalid argument",
        ),
        _r(r"(?P<what>required flag\(s\) [^\n]*? not set)", "required flag(s)"),
        _r(r"(?P<what>bad flag syntax: \S+)", "bad flag syntax"),
        # argparse: "error: unrecognized arguments: --foo", "error: argument --port: invalid
        # int value: 'abc'"; clap: "error: unexpected argument '--foo' found", "error:
        # Found argument '--x' which wasn't expected"
        _r(r"(?P<what>unrecognized arguments?: .+)", "unrecognized argument"),
        _r(r"(?P<what>argument \S+: invalid \w+ value: '[^']*')", "argument "),
        _r(r"(?P<what>unexpected argument '[^']+' found)", "unexpected argument"),
        _r(r"(?P<what>Found argument '[^']+' which wasn't expected)", "found argument"),
        # Go flag 'invalid value "abc" for flag -port: parse error', clap "invalid value 'x'
        # for '--port <PORT>'", hand-written "invalid value for LOG_LEVEL"
        _r(
            r"(?P<what>invalid value (?:\\?[\"'`][^\"'`\\]*\\?[\"'`] |\S+ )?for (?:flag |key "
            r"|field |option |setting |parameter |argument |property )?\\?[\"'`]?[\w.<> -]+?"
            r"\\?[\"'`]?)(?=[:;,.)]|\s|$)",
            "invalid value",
        ),
        # JVM: "Unrecognized VM option 'UseFoo'", "Invalid maximum heap size: -Xmx4gb"
        _r(
            r"(?P<what>Unrecognized VM option '[^']+'|Invalid (?:initial|maximum) heap size: \S+)",
            "unrecognized vm option|heap size",
        ),
        # YAML: PyYAML "yaml.scanner.ScannerError: mapping values are not allowed here",
        # SnakeYAML "org.yaml.snakeyaml.scanner.ScannerException: ..."; Go yaml.v2/v3
        # "yaml: line 12: did not find expected key", "yaml: unmarshal errors:"
        _r(
            r"(?P<what>(?:org\.yaml\.snakeyaml\.|yaml\.)[\w.]*(?:Error|Exception): [^\"\\\n]+)",
            "yaml.",
        ),
        _r(r"(?P<what>\byaml: [^\"\\\n]+)", "yaml: "),
        # JSON: Go "json: cannot unmarshal string into Go struct field Config.port of type
        # int", 'json: unknown field "x"', "invalid character '}' looking for beginning of
        # object key string", "unexpected end of JSON input"
        _r(
            r"(?P<what>\b(?:json|toml): (?:cannot unmarshal|unknown field)[^\"\\\n]*"
            r"(?:\\?\"[^\"\\\n]*\\?\")?[^\"\\\n]*)",
            "json: |toml: ",
        ),
        _r(
            r"(?P<what>invalid character '.{1,4}' (?:looking for beginning of|after|in) [\w ]+)",
            "invalid character '",
        ),
        _r(r"(?P<what>unexpected end of JSON input)", "unexpected end of json input"),
        # Python json: "json.decoder.JSONDecodeError: Expecting value: line 1 column 1"
        _r(r"(?P<what>JSONDecodeError: [^\"\\\n]+)", "jsondecodeerror"),
        # Node: "SyntaxError: Unexpected token } in JSON at position 42", "... is not valid
        # JSON", "Expected property name or '}' in JSON at position 2"
        _r(
            r"SyntaxError: (?P<what>[^\n]*?(?:in JSON at position \d+|is not valid JSON"
            r"|Unexpected end of JSON input))",
            "syntaxerror: ",
        ),
        # Jackson: "com.fasterxml.jackson.core.JsonParseException: Unexpected character"
        _r(
            r"(?P<what>Json(?:Parse|Mapping)Exception: [^\"\\\n]+)",
            "jsonparseexception|jsonmappingexception",
        ),
        # TOML: BurntSushi "toml: line 3 (last key ...): ...", Python tomllib
        # "TOMLDecodeError: Invalid value (at line 3, column 8)", Rust "TOML parse error at
        # line 1, column 10"
        _r(
            r"(?P<what>\btoml: line \d+[^\"\\\n]*|TOMLDecodeError: [^\"\\\n]+"
            r"|TOML parse error at line \d+, column \d+)",
            "toml: line|tomldecodeerror|toml parse error",
        ),
        # Go strconv while reading config: 'strconv.Atoi: parsing "abc": invalid syntax'
        _r(
            r"(?P<what>strconv\.\w+: parsing \\?\"[^\"\\]*\\?\": "
            r"(?:invalid syntax|value out of range))",
            "strconv.",
        ),
        # pydantic v2: "Input should be a valid integer"; v1: "value is not a valid integer"
        _r(
            r"(?P<what>Input should be a valid \w+|value is not a valid \w+)",
            "input should be a valid|is not a valid",
        ),
        # nginx: '[emerg] 1#1: unknown directive "foo" in /etc/nginx/conf.d/default.conf:3'
        _r(
            r"\[emerg\] (?:\d+#\d+: )?(?P<what>(?:unknown directive|invalid|unexpected"
            r"|\"[^\"]+\" directive is (?:not allowed|duplicate))[^\n]*)",
            "[emerg]",
        ),
        # Envoy: "error initializing configuration '/etc/envoy/envoy.yaml': ..."
        _r(
            r"(?P<what>error initializing configuration '[^']+')",
            "error initializing configuration",
        ),
        # Generic Go/Java/Python: "failed to parse config: ...", "error loading config file
        # /etc/app.yaml: ...", "could not load configuration: ..."
        _r(
            r"(?P<what>(?:failed to|cannot|could not|unable to|error) (?:parse|parsing|load"
            r"|loading|read|reading|decode|decoding|unmarshal|unmarshaling) (?:the )?"
            r"config(?:uration)?(?: file)?[^\"\\\n]{0,120})",
            "config",
            unless=r"no such file|permission denied|not found",
        ),
    ),
    ("what",),
)

_CONNECTION_REFUSED = _Kind(
    "connection_refused",
    (
        # Go net: "dial tcp 10.0.0.5:5432: connect: connection refused" (also inside gRPC
        # 'transport: Error while dialing: dial tcp ...'), unix sockets too
        _r(
            r"dial (?:tcp[46]?|udp[46]?|unix) (?P<addr>\S+?): connect: connection refused",
            "connect: connection refused",
        ),
        # Node: "connect ECONNREFUSED 10.96.0.12:6379" (ioredis, pg, mongodb, axios)
        _r(r"ECONNREFUSED (?P<addr>[^\s\"',)]+)", "econnrefused "),
        # libpq >= 14: 'connection to server at "postgres.payments" (10.0.0.5), port 5432
        # failed: Connection refused'; the unix socket variant
        _r(
            rf"connection to server (?:at {_Q}(?P<host>[^\"'\\]+){_Q} \([^)]*\), port "
            rf"(?P<port>\d+)|on socket {_Q}(?P<host_2>[^\"'\\]+){_Q}) failed: Connection refused",
            "connection to server ",
        ),
        # pgjdbc: "Connection to localhost:5432 refused. Check that the hostname and port..."
        _r(r"Connection to (?P<addr>\S+) refused", " refused"),
        # redis-py: "Error 111 connecting to redis:6379. Connection refused."
        _r(r"Error 111 connecting to (?P<addr>[\w.-]+:\d+)", "error 111 connecting to"),
        # urllib3/requests: "HTTPConnectionPool(host='api', port=8080): Max retries exceeded
        # ... [Errno 111] Connection refused"
        _r(
            r"host='(?P<host>[^']+)', port=(?P<port>\d+)\).*Connection refused",
            "connection refused",
        ),
        # Netty / Lettuce / Reactor: "AnnotatedConnectException: Connection refused:
        # redis/10.0.0.7:6379"; Java "Connection refused: localhost/127.0.0.1:9092"
        _r(
            r"Connection refused(?: \(Connection refused\))?: "
            r"(?P<addr>[\w.-]*/?[\w.:-]+:\d+)",
            "connection refused",
        ),
        # MySQL: "Can't connect to MySQL server on 'mysql:3306' (111)"
        _r(
            r"Can't connect to MySQL server on '(?P<addr>[^']+)' \((?:111|10061)",
            "can't connect to mysql server on",
        ),
        # nginx: 'connect() failed (111: Connection refused) while connecting to upstream,
        # ..., upstream: "http://10.0.0.9:8080/api"'
        _r(
            r"\(111: Connection refused\) while connecting to upstream.*?upstream: "
            r"\\?\"(?P<addr>[^\"\\]+)",
            "(111: connection refused) while connecting to upstream",
        ),
        # Kafka clients: "Connection to node -1 (kafka-0.kafka/10.1.2.3:9092) could not be
        # established. Broker may not be available."
        _r(
            r"Connection to node -?\d+ \((?P<addr>[^)]+)\) could not be established",
            "could not be established",
        ),
        # old libpq: "could not connect to server: Connection refused" + host on next lines
        _r(
            r"could not connect to server",
            "could not connect to server",
            context=_libpq_host,
            unless=r"timed out|timeout|name resolution|translate host|No such file",
        ),
        # Envoy: "upstream connect error ... reset reason: connection failure, transport
        # failure reason: delayed connect error: 111"
        _r(r"delayed connect error: 111", "delayed connect error: 111"),
        # Python "ConnectionRefusedError: [Errno 111] Connection refused", Java
        # "java.net.ConnectException: Connection refused", Rust "Connection refused (os
        # error 111)"; anything else: the address from the line
        _r(r"connection refused|\bECONNREFUSED\b", "connection refused|econnrefused"),
    ),
    ("host", "port"),
    fallback=_find_addr,
)

_POOL_UNLESS = (
    r"HikariPool|Connection is not available|QueuePool limit|pool timeout|pool exhausted"
    r"|acquiring a connection|ResourceRequest timed out|Lock wait timeout|lock timeout"
)

_TIMEOUT = _Kind(
    "timeout",
    (
        # Go: "dial tcp 10.0.0.5:5432: i/o timeout", "read tcp 10.1.1.1:4321->10.0.0.5:5432:
        # i/o timeout" (the remote side is the one after ->)
        _r(
            r"(?:dial|read|write) (?:tcp[46]?|udp[46]?) (?:\S+->)?(?P<addr>\S+?): i/o timeout",
            "i/o timeout",
            unless=r"lookup \S+",
        ),
        # Node: "connect ETIMEDOUT 10.0.0.5:443"
        _r(r"connect ETIMEDOUT (?P<addr>[^\s\"',)]+)", "connect etimedout"),
        # urllib3/requests: "HTTPSConnectionPool(host='api', port=443): Read timed out."
        _r(
            r"host='(?P<host>[^']+)', port=(?P<port>\d+)\).*(?:timed out|Timeout)",
            "timed out|timeout",
        ),
        # fluent-bit: "connection #51 to fluentd.logging.svc:24224 timed out after 10 seconds"
        _r(r"connection #?\d* ?to (?P<addr>[\w.\[\]:-]+:\d+) timed out", "timed out"),
        # nginx: "upstream timed out (110: Connection timed out) while reading response
        # header from upstream, ... upstream: "http://10.0.0.9:8080/""
        _r(r"upstream timed out .*?upstream: \\?\"(?P<addr>[^\"\\]+)", "upstream timed out"),
        # Go net/http: 'Get "http://api:8080/x": context deadline exceeded (Client.Timeout
        # exceeded while awaiting headers)'
        _r(
            r"(?:Get|Post|Put|Patch|Delete|Head) \\?\"(?P<addr>[^\"\\]+)\\?\": "
            r".*(?:deadline exceeded|Timeout exceeded|timeout)",
            "deadline exceeded|timeout",
        ),
        # Go "i/o timeout" / "context deadline exceeded" / "TLS handshake timeout"; gRPC
        # "DeadlineExceeded"/"DEADLINE_EXCEEDED"; Node "ETIMEDOUT"/"ESOCKETTIMEDOUT";
        # Java "SocketTimeoutException: Read timed out", "connect timed out", Kafka
        # "TimeoutException: Timeout expired"; Python "ReadTimeout", "socket.timeout: timed
        # out", "[Errno 110] Connection timed out"; Rust "operation timed out", "deadline
        # has elapsed"; generic "timed out after 30s"
        _r(
            r"i/o timeout|context deadline exceeded|deadline ?exceeded|TLS handshake timeout"
            r"|\bE(?:SOCKET)?TIMEDOUT\b|socket\.timeout"
            # exception names are case-sensitive: "connectTimeout=10" is a setting
            r"|(?-i:\b\w*Timeout(?:Error|Exception)\b|\b(?:Connect|Read|Write|Pool)Timeout\b)"
            r"(?!\s*[=:]\s*\d)"
            r"|\b(?:read|connect|connection|request|operation|handshake) timed out"
            r"|timed out after|deadline has elapsed|Timeout expired|Client\.Timeout exceeded"
            r"|gateway time-?out|statement timeout",
            "timeout|timed out|deadline|etimedout|time-out",
            unless=_POOL_UNLESS,
        ),
    ),
    ("host", "port"),
    fallback=_find_addr,
    suppressed_by=("pool_exhausted", "db_locked", "dns"),
)

_DNS = _Kind(
    "dns",
    (
        # Go: "dial tcp: lookup postgres.payments on 10.96.0.10:53: no such host",
        # "lookup redis: server misbehaving", "lookup x on y:53: read udp ...: i/o timeout"
        _r(
            r"lookup (?P<host>[^\s:]+)(?: on \S+)?: (?:no such host|server misbehaving"
            r"|i/o timeout|read udp|Temporary failure|dial udp)",
            "lookup ",
        ),
        # Node: "getaddrinfo ENOTFOUND redis.cache", "getaddrinfo EAI_AGAIN api.example.com",
        # "querySrv ENOTFOUND _mongodb._tcp.cluster0"
        _r(
            r"(?:getaddrinfo|querySrv|queryA{1,4}) (?:ENOTFOUND|EAI_AGAIN|EAI_NONAME|EAI_FAIL"
            r"|ESERVFAIL|ETIMEOUT) (?P<host>[^\s\"',)]+)",
            "getaddrinfo|querysrv|querya",
        ),
        # Java: "java.net.UnknownHostException: kafka-0.kafka-headless: Name or service not
        # known" / "UnknownHostException: redis"
        _r(r"UnknownHostException: (?P<host>[^\s:]+)", "unknownhostexception: "),
        # libpq: 'could not translate host name "db" to address: Name or service not known'
        _r(
            rf"could not translate host name {_Q}(?P<host>[^\"'\\]+){_Q}",
            "could not translate host name",
        ),
        # MySQL: "Unknown MySQL server host 'mysql' (-2)"
        _r(r"Unknown MySQL server host '(?P<host>[^']+)'", "unknown mysql server host"),
        # nginx: 'host not found in upstream "backend:8080" in /etc/nginx/conf.d/x.conf:12',
        # resolver: "backend.svc could not be resolved (3: Host not found)"
        _r(rf"host not found in upstream {_Q}(?P<addr>[^\"'\\]+)", "host not found in upstream"),
        _r(r"(?<![\w.-])(?P<host>[\w.-]+) could not be resolved \(\d+", "could not be resolved ("),
        # urllib3 2.x: "NameResolutionError: <...>: Failed to resolve 'api.example.com'"
        _r(r"Failed to resolve '(?P<host>[^']+)'", "failed to resolve '"),
        # curl: "Could not resolve host: api.example.com"
        _r(
            r"Couldn'?t resolve host:? '?(?P<host>[^\s';]+)"
            r"|Could not resolve host:? (?P<host_2>[^\s;]+)",
            "resolve host",
        ),
        # Kafka: "Couldn't resolve server kafka:9092 from bootstrap.servers as DNS
        # resolution failed for kafka"
        _r(
            r"Couldn't resolve server (?P<addr>\S+) from bootstrap\.servers",
            "couldn't resolve server",
        ),
        # .NET: "No such host is known. (api.example.com:443)"
        _r(r"No such host is known\.? \((?P<addr>[^)]+)\)", "no such host is known"),
        # Python socket.gaierror "[Errno -2] Name or service not known", "[Errno -3]
        # Temporary failure in name resolution", macOS "nodename nor servname provided",
        # Rust "failed to lookup address information", Go "no such host", "dns error"
        _r(
            r"no such host|Name or service not known|Temporary failure in name resolution"
            r"|nodename nor servname provided|No address associated with hostname"
            r"|failed to lookup address information|\bdns error\b|DNS resolution failed"
            r"|NXDOMAIN|SERVFAIL|\bENOTFOUND\b|\bEAI_AGAIN\b|server misbehaving",
            "no such host|name or service not known|temporary failure in name resolution"
            "|nodename nor servname provided|no address associated with hostname"
            "|failed to lookup address information|dns error|dns resolution failed"
            "|nxdomain|servfail|enotfound|eai_again|server misbehaving",
        ),
    ),
    ("host",),
    fallback=_find_host,
)

_TLS_EXPIRED = _Kind(
    "tls_expired",
    (
        # Go crypto/x509: "x509: certificate has expired or is not yet valid: current time
        # 2026-11-20T10:15:00Z is after 2026-11-19T23:59:59Z"; OpenSSL/Python "certificate
        # verify failed: certificate has expired (_ssl.c:1006)"; Node "CERT_HAS_EXPIRED";
        # Java "CertificateExpiredException: NotAfter: ...", "PKIX path validation failed:
        # ... validity check failed", "Received fatal alert: certificate_expired"; TLS
        # alerts "tls: expired certificate", "sslv3 alert certificate expired"; rustls
        # "invalid peer certificate: Expired"
        _r(
            r"certificate (?:has |is )?expired|expired certificate|CERT_HAS_EXPIRED"
            r"|CertificateExpiredException|invalid peer certificate: Expired"
            r"|certificate[ _]expired|PKIX path validation failed.*(?:expired|validity check)",
            "expired|validity check",
        ),
    ),
    ("host",),
    fallback=_find_url_host,
)

_TLS_INVALID = _Kind(
    "tls_invalid",
    (
        # Go: "x509: certificate is valid for a.example, b.example, not c.example"
        _r(
            r"x509: certificate is valid for .*?, not (?P<host>[^\s\"\\,]+)",
            "x509: certificate is valid for",
        ),
        _r(
            r"x509: certificate is not valid for any names, but wanted to match "
            r"(?P<host>[^\s\"\\,]+)",
            "x509: certificate is not valid for any names",
        ),
        _r(
            r"x509: cannot validate certificate for (?P<host>\S+) because",
            "x509: cannot validate certificate for",
        ),
        # Python: "Hostname mismatch, certificate is not valid for 'api.example.com'"
        _r(r"certificate is not valid for '(?P<host>[^']+)'", "certificate is not valid for '"),
        # Node: "Hostname/IP does not match certificate's altnames: Host: api.x. is not in
        # the cert's altnames: DNS:*.y"
        _r(
            r"does not match certificate's altnames: (?:Host|IP): (?P<host>[^\s]+?)\.? is not",
            "does not match certificate's altnames",
        ),
        # Java: "No subject alternative DNS name matching api.x found", "Hostname api.x not
        # verified"
        _r(
            r"No subject alternative (?:DNS )?names? matching (?:IP address )?(?P<host>\S+) found",
            "no subject alternative",
        ),
        _r(r"Hostname (?P<host>\S+) not verified", "not verified"),
        # Go "x509: certificate signed by unknown authority"; OpenSSL "unable to get local
        # issuer certificate", "self signed certificate in certificate chain"; Node
        # "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "SELF_SIGNED_CERT_IN_CHAIN",
        # "DEPTH_ZERO_SELF_SIGNED_CERT", "ERR_TLS_CERT_ALTNAME_INVALID"; Java "PKIX path
        # building failed ... unable to find valid certification path", "Received fatal
        # alert: bad_certificate"; rustls "invalid peer certificate: UnknownIssuer"; TLS
        # alerts "bad certificate", "unknown ca"
        _r(
            r"x509: certificate signed by unknown authority|x509: certificate relies on legacy"
            r"|unable to get local issuer certificate|self[- ]signed certificate"
            r"|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED"
            r"|UNABLE_TO_GET_ISSUER_CERT|ERR_TLS_CERT_ALTNAME_INVALID|PKIX path building failed"
            r"|unable to find valid certification path|invalid peer certificate: \w+"
            r"|SSLPeerUnverifiedException|Hostname mismatch|tls: bad certificate"
            r"|alert unknown ca|certificate verify failed|tls: failed to verify certificate"
            r"|fatal alert: (?:bad_certificate|unknown_ca|certificate_unknown)",
            "x509: certificate signed by unknown authority|x509: certificate relies on legacy"
            "|unable to get local issuer certificate|self signed certificate"
            "|self-signed certificate|unable_to_verify_leaf_signature|self_signed_cert_in_chain"
            "|depth_zero_self_signed|unable_to_get_issuer_cert|err_tls_cert_altname_invalid"
            "|pkix path building failed|unable to find valid certification path"
            "|invalid peer certificate: |sslpeerunverifiedexception|hostname mismatch"
            "|tls: bad certificate|alert unknown ca|certificate verify failed"
            "|tls: failed to verify certificate|fatal alert: ",
        ),
    ),
    ("host",),
    fallback=_find_url_host,
    suppressed_by=("tls_expired",),
)

_DENIED = "permission denied|operation not permitted"

_PERMISSION_DENIED = _Kind(
    "permission_denied",
    (
        # Node: "EACCES: permission denied, mkdir '/app/cache'", "EPERM: operation not
        # permitted, chmod '/x'", "listen EACCES: permission denied 0.0.0.0:80"
        _r(
            rf"(?:EACCES|EPERM): (?:permission denied|operation not permitted), \w+ "
            rf"{_Q}(?P<path>{_QV}+)",
            "eacces: |eperm: ",
        ),
        _r(r"listen EACCES: permission denied (?P<path>\S+)", "listen eacces"),
        # Python: "PermissionError: [Errno 13] Permission denied: '/var/lib/app'"
        _r(
            rf"(?:Permission denied|Operation not permitted): {_Q}(?P<path>{_QV}+)",
            "permission denied: |operation not permitted: ",
        ),
        # Go: "open /var/lib/app/data.db: permission denied", "mkdir /data: operation not
        # permitted", "listen tcp :80: bind: permission denied"
        _r(
            r"\b(?:open|mkdir|mkdirall|stat|remove|unlinkat|rename|chmod|chown|create|write"
            r"|read|exec|symlink|lchown|chtimes)\s+(?P<path>[^\s:]+):\s*"
            r"(?:permission denied|operation not permitted)",
            _DENIED,
        ),
        _r(r"listen tcp (?P<path>\S*?): bind: permission denied", "bind: permission denied"),
        # Java: "java.nio.file.AccessDeniedException: /data/x", "FileNotFoundException:
        # /data/x (Permission denied)"
        _r(
            r"java\.nio\.file\.AccessDeniedException: (?P<path>\S+)",
            "java.nio.file.accessdeniedexception",
        ),
        _r(r"FileNotFoundException: (?P<path>\S+) \(Permission denied\)", "(permission denied)"),
        # nginx: 'mkdir() "/var/cache/nginx/client_temp" failed (13: Permission denied)'
        _r(
            rf"{_Q}(?P<path>{_QV}+){_Q} failed "
            r"\((?:13: Permission denied|1: Operation not permitted)",
            "failed (13: permission denied|failed (1: operation not permitted",
        ),
        # coreutils: "mkdir: cannot create directory '/data': Permission denied",
        # "chown: changing ownership of '/data': Operation not permitted"
        _r(
            rf"(?:cannot \w+(?: \w+)? |changing (?:permissions|ownership) of ){_Q}(?P<path>{_QV}+)"
            rf"{_Q}: (?:Permission denied|Operation not permitted)",
            _DENIED,
        ),
        # Postgres: 'could not open file "base/1/2": Permission denied'; SQL: "permission
        # denied for table orders"
        _r(
            rf"could not \w+(?: to)? (?:file|directory) {_Q}(?P<path>{_QV}+){_Q}: "
            r"Permission denied",
            "permission denied",
        ),
        _r(
            r"permission denied for (?P<object>(?:table|schema|relation|database|sequence"
            r"|function|view) \S+)",
            "permission denied for ",
        ),
        # Docker: "permission denied while trying to connect to the Docker daemon socket at
        # unix:///var/run/docker.sock"
        _r(
            r"permission denied while trying to connect to the Docker daemon socket at "
            r"(?P<path>\S+)",
            "permission denied while trying to connect",
        ),
        # shell: "/bin/sh: /entrypoint.sh: Permission denied"
        _r(
            r"(?<![^\s:'\"])(?P<path>/[^\s:'\"]+): (?:Permission denied|Operation not permitted)",
            _DENIED,
        ),
        # Rust "Permission denied (os error 13)", anything else
        _r(
            r"permission denied|\bEACCES\b|operation not permitted|\bEPERM\b",
            "permission denied|eacces|operation not permitted|eperm",
        ),
    ),
    ("path", "object"),
    fallback=_find_path,
    suppressed_by=("rbac_forbidden",),
)

_RBAC_FORBIDDEN = _Kind(
    "rbac_forbidden",
    (
        # Kubernetes API: 'pods is forbidden: User "system:serviceaccount:ops:reporter"
        # cannot list resource "pods" in API group "" in the namespace "shop"'
        _r(
            rf"forbidden: User {_Q}(?P<user>[^\"'\\]+){_Q} cannot (?P<verb>\w+) resource "
            rf"{_Q}(?P<resource>[^\"'\\]+){_Q}(?: in API group {_Q}(?P<group>[^\"'\\]*){_Q})?"
            rf"(?: in the namespace {_Q}(?P<namespace>[^\"'\\]+){_Q})?",
            "forbidden: user",
        ),
        # pre-1.11 wording: 'User "x" cannot list pods in the namespace "shop"'
        _r(
            rf"forbidden: User {_Q}(?P<user>[^\"'\\]+){_Q} cannot (?P<verb>\w+) "
            rf"(?P<resource>[\w./-]+)(?: in the namespace {_Q}(?P<namespace>[^\"'\\]+){_Q})?",
            "forbidden: user",
        ),
        # AWS IAM: "User: arn:aws:sts::1:assumed-role/app/i-0 is not authorized to perform:
        # s3:GetObject on resource: arn:aws:s3:::bucket/key"; STS "Not authorized to perform
        # sts:AssumeRoleWithWebIdentity"
        _r(
            r"(?:User: (?P<user>\S+) )?is not authorized to perform:? "
            r"(?P<action>(?P<service>[a-z0-9-]+):[\w*]+)",
            "is not authorized to perform",
        ),
        _r(
            r"not authorized to perform (?P<action>(?P<service>[a-z0-9-]+):[\w*]+)",
            "not authorized to perform ",
        ),
        # AWS SDK for Go v2: "operation error S3: GetObject, https response error
        # StatusCode: 403, RequestID: X, HostID: Y, api error AccessDenied: Access Denied"
        _r(
            r"operation error (?P<service>[\w ]+?): (?P<action>\w+), https response error "
            r"StatusCode: 403",
            "operation error ",
        ),
        # AWS SDK for Java v2: "S3Exception: Access Denied (Service: S3, Status Code: 403, ..."
        _r(
            r"Access ?Denied.*?\(Service: (?P<service>[^,]+), Status Code: 403",
            "status code: 403",
        ),
        # boto3: "ClientError: An error occurred (AccessDenied) when calling the GetObject
        # operation: Access Denied"
        _r(
            r"\((?:AccessDenied(?:Exception)?|UnauthorizedOperation|AuthorizationError)\) "
            r"when calling the (?P<action>\w+) operation",
            ") when calling the ",
        ),
        # GCP: "googleapi: Error 403: Permission 'storage.objects.get' denied on resource",
        # gRPC "code = PermissionDenied desc = Permission 'secretmanager.versions.access'
        # denied for resource ..."
        _r(r"Permission '(?P<action>(?P<service>\w+)\.[\w.]+)' denied", "permission '"),
        # GCS: "sa@p.iam.gserviceaccount.com does not have storage.objects.get access to ..."
        _r(
            r"(?<!\S)(?P<user>\S+) does not have (?P<action>(?P<service>[a-z]+)\.\w+\.\w+) access",
            " does not have ",
        ),
        # Azure: "AuthorizationFailed: The client 'x' with object id 'y' does not have
        # authorization to perform action 'Microsoft.Storage/storageAccounts/read' ..."
        _r(
            r"does not have authorization to perform action "
            r"'(?P<action>(?P<service>Microsoft\.\w+)/[^']+)'",
            "does not have authorization to perform action",
        ),
        _r(
            r"AuthorizationPermissionMismatch",
            "authorizationpermissionmismatch",
            service="storage",
        ),
        # GCP "PERMISSION_DENIED", gRPC "code = PermissionDenied", AWS "AccessDenied",
        # "UnauthorizedOperation"; the service from "<service>.googleapis.com" when present
        _r(
            r"(?:(?<![a-z])(?P<service>[a-z]+)\.googleapis\.com.*?)?(?:\bPERMISSION_DENIED\b"
            r"|code = PermissionDenied|\bAccessDenied(?:Exception)?\b|UnauthorizedOperation"
            r"|AuthorizationFailed|caller does not have permission)",
            "permission_denied|code = permissiondenied|accessdenied|unauthorizedoperation"
            "|authorizationfailed|caller does not have permission",
            ci=False,
            unless=r"java\.nio\.file\.AccessDenied",
        ),
    ),
    ("user", "verb", "resource", "service"),
)

_DISK_FULL = _Kind(
    "disk_full",
    (
        # Go: "write /data/wal/000123.log: no space left on device"
        _r(
            r"\b(?:write|open|create|mkdir|sync|close|copy|rename)\s+(?P<path>[^\s:]+):\s*"
            r"(?:no space left on device|disk quota exceeded)",
            "no space left on device|disk quota exceeded",
        ),
        # Node: "ENOSPC: no space left on device, write '/tmp/x'"
        _r(rf"ENOSPC: no space left on device, \w+ {_Q}(?P<path>{_QV}+)", "enospc: "),
        # Python: "OSError: [Errno 28] No space left on device: '/data/x'"
        _r(rf"No space left on device: {_Q}(?P<path>{_QV}+)", "no space left on device: "),
        # Postgres: 'could not extend file "base/16384/2619": No space left on device',
        # 'PANIC: could not write to file "pg_wal/xlogtemp.32": No space left on device'
        _r(
            rf"could not (?:extend|write to|create) file {_Q}(?P<path>{_QV}+){_Q}"
            r"(?:: No space left|: wrote only|.*?No space left)",
            "no space left|wrote only",
        ),
        _r(rf"could not extend file {_Q}(?P<path>{_QV}+){_Q}", "could not extend file"),
        # MySQL: "Disk is full writing './binlog.000012' (OS errno 28 - No space left on
        # device)", "The table 'orders' is full"
        _r(r"Disk is full writing '(?P<path>[^']+)'", "disk is full writing"),
        _r(r"The table '(?P<path>[^']+)' is full", "' is full"),
        # Elasticsearch: "flood stage disk watermark [95%] exceeded on [node][path]"
        _r(r"flood[ -]stage disk watermark \[[^\]]+\] exceeded", "disk watermark"),
        # Java "IOException: No space left on device", Rust "(os error 28)", generic
        _r(
            r"no space left on device|\bENOSPC\b|disk quota exceeded|\[Errno 28\]",
            "no space left on device|enospc|disk quota exceeded|[errno 28]",
        ),
    ),
    ("path",),
    fallback=_find_path,
)

_DB_LOCKED = _Kind(
    "db_locked",
    (
        # SQLite: "database is locked" (sqlite3.OperationalError), SQLITE_BUSY/SQLITE_LOCKED
        _r(
            r"database (?:table )?is locked|SQLITE_BUSY|SQLITE_LOCKED",
            "database is locked|database table is locked|sqlite_busy|sqlite_locked",
            what="database is locked",
        ),
        # MySQL ER_LOCK_WAIT_TIMEOUT (1205)
        _r(
            r"Lock wait timeout exceeded",
            "lock wait timeout exceeded",
            what="lock wait timeout exceeded",
        ),
        # MySQL 1213 "Deadlock found when trying to get lock"; Postgres / Oracle
        # "deadlock detected"
        _r(
            r"Deadlock found when trying to get lock|deadlock detected",
            "deadlock found when trying to get lock|deadlock detected",
            what="deadlock",
        ),
        # Postgres: "canceling statement due to lock timeout", 'could not obtain lock on
        # relation "orders"'
        _r(
            r"canceling statement due to lock timeout|could not obtain lock on",
            "canceling statement due to lock timeout|could not obtain lock on",
            what="lock timeout",
        ),
        # Liquibase: "Could not acquire change log lock. Currently locked by pod-x"
        _r(
            r"Could not acquire change ?log lock|Waiting for change ?log lock",
            "change log lock|changelog lock",
            what="changelog lock",
        ),
        # Hibernate / Spring: PessimisticLockException, CannotAcquireLockException,
        # LockAcquisitionException
        _r(
            r"PessimisticLockException|CannotAcquireLockException|LockAcquisitionException",
            "pessimisticlockexception|cannotacquirelockexception|lockacquisitionexception",
            what="lock acquisition failed",
        ),
    ),
    ("what",),
)

_POOL_EXHAUSTED = _Kind(
    "pool_exhausted",
    (
        # HikariCP: "HikariPool-1 - Connection is not available, request timed out after
        # 30000ms (total=10, active=10, idle=0, waiting=12)"
        _r(
            r"(?<![\w-])(?P<pool>[\w-]+) - Connection is not available, request timed out",
            "connection is not available, request timed out",
            what="connection pool timeout",
        ),
        # Postgres: "FATAL: sorry, too many clients already", "remaining connection slots
        # are reserved for non-replication superuser connections"
        _r(
            r"sorry, too many clients already|remaining connection slots are reserved",
            "sorry, too many clients already|remaining connection slots are reserved",
            what="too many connections",
        ),
        # MySQL 1040 "Too many connections", Postgres 'too many connections for role "app"'
        _r(
            r"too many connections|ER_CON_COUNT_ERROR",
            "too many connections|er_con_count_error",
            what="too many connections",
        ),
        # Redis: "ERR max number of clients reached"; pgbouncer: "no more connections
        # allowed (max_client_conn)"
        _r(
            r"max number of clients reached|no more connections allowed \(max_client_conn\)",
            "max number of clients reached|no more connections allowed",
            what="too many connections",
        ),
        # SQLAlchemy: "QueuePool limit of size 5 overflow 10 reached, connection timed out"
        _r(
            r"(?P<pool>QueuePool) limit of size \d+ overflow \d+ reached",
            "queuepool limit of size",
            what="connection pool timeout",
        ),
        # Knex / generic-pool / Sequelize / go-redis / Apache DBCP
        _r(
            r"Timeout acquiring a connection\. The pool is probably full"
            r"|ResourceRequest timed out|ConnectionAcquireTimeoutError"
            r"|redis: connection pool timeout|Cannot get a connection, pool error",
            "timeout acquiring a connection|resourcerequest timed out"
            "|connectionacquiretimeouterror|redis: connection pool timeout"
            "|cannot get a connection, pool error",
            what="connection pool timeout",
        ),
        # psycopg2 "PoolError: connection pool exhausted", generic "pool exhausted"
        _r(
            r"(?:connection )?pool (?:is )?exhausted",
            "pool exhausted|pool is exhausted",
            what="connection pool exhausted",
        ),
    ),
    ("what",),
)

_OOM_HINT = _Kind(
    "oom_hint",
    (
        # Java: "java.lang.OutOfMemoryError: Java heap space" (also "GC overhead limit
        # exceeded", "Metaspace"); .NET OutOfMemoryException. Not the JVM flag
        # "-XX:+ExitOnOutOfMemoryError".
        _r(
            r"(?<![A-Za-z])(?:java\.lang\.)?OutOfMemory(?:Error|Exception)"
            r"(?::\s*(?P<message>[^\"\\\n]+))?",
            "outofmemoryerror|outofmemoryexception",
            ci=False,
        ),
        # Go: "fatal error: runtime: out of memory"
        _r(r"runtime: out of memory", "runtime: out of memory", message="runtime: out of memory"),
        # Node/V8: "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out
        # of memory"
        _r(
            r"JavaScript heap out of memory",
            "javascript heap out of memory",
            message="JavaScript heap out of memory",
        ),
        # Python MemoryError (\b: not the tail of OutOfMemoryError)
        _r(r"\bMemoryError\b(?::\s*(?P<message>[^\"\\\n]+))?", "memoryerror", ci=False),
        # Kernel OOM killer as seen from inside the container / dmesg
        _r(
            r"Out of memory: Kill(?:ed)? process \d+|invoked oom-killer|oom-kill:",
            "out of memory: kill|invoked oom-killer|oom-kill:",
            message="kernel OOM killer",
        ),
        # Rust "memory allocation of 1048576 bytes failed"; C++ std::bad_alloc; PHP "Allowed
        # memory size of 134217728 bytes exhausted"; ENOMEM "Cannot allocate memory"
        _r(
            r"(?P<message>memory allocation of \d+ bytes failed|std::bad_alloc"
            r"|Allowed memory size of \d+ bytes exhausted|Cannot allocate memory)",
            "memory allocation of|std::bad_alloc|allowed memory size of|cannot allocate memory",
        ),
        # A shell reporting that its child was SIGKILLed: a line that is just "Killed"
        _r(r"^\s*Killed\s*$", "killed", ci=False),
    ),
    ("message",),
)

_PANIC = _Kind(
    "panic",
    (
        # Go: "panic: runtime error: invalid memory address or nil pointer dereference"
        _r(r"^panic: (?P<message>.+?)(?: \[recovered\])?$", "panic: ", ci=False),
        # Go runtime: "fatal error: concurrent map writes", "fatal error: all goroutines are
        # asleep - deadlock!"
        _r(r"^fatal error: (?P<message>.+)", "fatal error: ", ci=False),
        # Rust: "thread 'main' panicked at 'msg', src/main.rs:10:5" (< 1.73) or
        # "thread 'main' panicked at src/main.rs:10:5:" + the message on the next line
        _r(
            r"thread '[^']*' panicked at (?:'(?P<message>.*)', \S+|[^\s']+:\d+:\d+:?\s*$)",
            "' panicked at ",
            ci=False,
            context=_rust_panic_message,
        ),
        # zap / logrus / klog fatal and panic levels (the process exits right after)
        _r(
            r"\"level\":\"(?:fatal|panic|dpanic)\".*?\"msg\":\"(?P<message>(?:[^\"\\]|\\.)*)\"",
            '"level":"fatal|"level":"panic|"level":"dpanic',
        ),
        _r(
            r"\blevel=(?:fatal|panic)\b.*?\bmsg=(?:\"(?P<message>(?:[^\"\\]|\\.)*)\""
            r"|(?P<message_2>\S+))",
            "level=fatal|level=panic",
        ),
        _r(r"^F\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] (?P<message>.+)$", "\nf0|\nf1", ci=False),
        # CPython "Fatal Python error: Segmentation fault"; JVM hs_err "# A fatal error has
        # been detected by the Java Runtime Environment"; C++ "terminate called after
        # throwing an instance of 'std::runtime_error'"
        _r(r"Fatal Python error: (?P<message>.+)", "fatal python error: ", ci=False),
        _r(
            r"A fatal error has been detected by the Java Runtime Environment",
            "a fatal error has been detected by the java runtime environment",
            message="JVM fatal error",
        ),
        _r(
            r"terminate called after throwing an instance of '(?P<message>[^']+)'",
            "terminate called after throwing an instance of",
        ),
        # Segfaults / aborts: shell "Segmentation fault (core dumped)", kernel "segfault at",
        # "Aborted (core dumped)", SIGSEGV/SIGABRT (not Go's "[signal SIGSEGV" line under its
        # own panic)
        _r(
            r"Segmentation fault|segfault at [0-9a-f]+|\bSIGSEGV\b",
            "segmentation fault|segfault at|sigsegv",
            message="segmentation fault",
            context=_not_go_signal_line,
        ),
        _r(
            r"Aborted \(core dumped\)|\bSIGABRT\b",
            "aborted (core dumped)|sigabrt",
            message="aborted",
            context=_not_go_signal_line,
        ),
    ),
    ("message",),
)

_HTTP_5XX = _Kind(
    "http_5xx",
    (
        # nginx / envoy / uvicorn / Apache access logs: '"GET /api HTTP/1.1" 502 157 ...';
        # the upstream comes from the ingress-nginx / envoy fields (see _access_upstream)
        _r(
            r"\"(?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS|CONNECT|TRACE) [^\"]*\" "
            r"(?P<status>50[234]) ",
            '" 502 |" 503 |" 504 ',
            context=_access_upstream,
            fallback=False,
        ),
        # nginx error log: "no live upstreams while connecting to upstream", "upstream
        # prematurely closed connection while reading response header from upstream"
        _r(
            r"(?:no live upstreams|upstream prematurely closed connection).*?upstream: "
            r"\\?\"(?P<addr>[^\"\\]+)",
            "no live upstreams|upstream prematurely closed connection",
            status="502",
        ),
        _r(
            r"no live upstreams|upstream prematurely closed connection",
            "no live upstreams|upstream prematurely closed connection",
            status="502",
        ),
        # Envoy: "upstream connect error or disconnect/reset before headers", "no healthy
        # upstream"
        _r(
            r"upstream connect error or disconnect/reset before headers|no healthy upstream",
            "upstream connect error|no healthy upstream",
            status="503",
        ),
        # JSON access logs: "status":503, "response_code":502, "upstream_status":"504"
        _r(
            r"\"(?:status|status_code|statusCode|response_code|upstream_status|code)\"\s*:\s*"
            r"\"?(?P<status>50[234])\b",
            "502|503|504",
        ),
        # HTTP clients: "unexpected status 503 Service Unavailable", "HTTP/1.1 502 Bad Gateway"
        _r(
            r"(?P<status>50[234]) (?:Bad Gateway|Service (?:Temporarily )?Unavailable"
            r"|Gateway Time-?out)",
            "502 bad gateway|503 service|504 gateway time",
        ),
    ),
    ("host", "status"),
    fallback=_find_host,
)

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
