"""Log kinds: the building blocks of the log-pattern tables in :mod:`bot.rca.logpatterns`.

``_Kind`` (a signal kind with its rules, key fields and fallback extractor) and ``_Rule`` (one
phrasing: a regex, the literal keywords it cannot match without, fixed details and an optional
context refiner), the helpers that build them compactly, the address/host/path finders kinds
use as fallbacks, and the context refiners for multi-line phrasings.

The tables themselves live in :mod:`bot.rca.logkinds_infra` and :mod:`bot.rca.logkinds_app`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
