"""Policy files: reading, schema validation and layering of policy documents.

A document is validated into its canonical form (:func:`_validate`), then layered onto the
ones before it (:func:`_merge`): *restrictions accumulate, everything else is replaced* (see
:mod:`policies.engine`). Turning the merged document into :class:`~policies.engine.Rules` and
judging commands against them is the engine's part.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.errors import IncidentBotError

Level = Literal["low", "medium", "high"]
LEVELS: tuple[Level, ...] = ("low", "medium", "high")
DEFAULT_POLICY = Path(__file__).parent / "default.yaml"
MAX_REPLICAS = 500  # the action catalogue's own ceiling (bot.rca.actions)

# The built-in risk table; a policy's ``risk`` mapping overrides entries.
DEFAULT_RISK: dict[str, Level] = {
    "delete_pod": "low",
    "rollout_restart": "low",
    "scale": "medium",
    "rollout_undo": "medium",
    "set_resources": "medium",
    "set_image": "high",
    "cordon": "medium",
    "uncordon": "low",
    "suspend_cronjob": "medium",
    "resume_cronjob": "low",
    "helm_rollback": "high",
}
_DEFAULTS: dict[str, Any] = {
    "replicas": {"min": 0, "max": MAX_REPLICAS},
    "risk": DEFAULT_RISK,
    "approvers": {},
    "approvals_required": {"low": 1, "medium": 1, "high": 2},
    "auto_execute": {"low": False},
    "approval_expiry": "30m",
}
_ACCUMULATE = ("forbidden_keywords", "restricted_namespaces", "critical_namespaces", "freeze")
_FRAGMENT_KEYS = (
    "allowed_commands",
    *_ACCUMULATE,
    "replicas",
    "risk",
    "approvers",
    "approvals_required",
    "auto_execute",
    "approval_expiry",
)
_TOP_KEYS = (*_FRAGMENT_KEYS, "namespaces", "labels", "description")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_APPROVER = re.compile(r"^(U[A-Z0-9]{2,}|W[A-Z0-9]{2,}|S[A-Z0-9]{2,}|@[a-z0-9][a-z0-9._-]*)$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9_./-]+$")


class PolicyError(IncidentBotError):
    """A policy file cannot be read or breaks the schema (one line: file, field, problem)."""

    def __init__(self, source: str, field: str | None, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: {field}: {problem}" if field else f"{source}: {problem}")


# --- loading, validation, merging ------------------------------------------------------------


def _resolve(path: Path) -> Path:
    return DEFAULT_POLICY if str(path) == "default" else path


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(
            str(path), None, f"cannot read: {getattr(exc, 'strerror', exc)}"
        ) from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(
            str(path), None, f"invalid JSON at line {exc.lineno}: {exc.msg}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise PolicyError(str(path), None, f"invalid YAML{where}: {problem}") from None


def _merge(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """Restrictions accumulate; mappings merge entry by entry; everything else is replaced."""
    out = dict(base)
    for key, value in layer.items():
        if key in _ACCUMULATE:
            out[key] = [*base.get(key, []), *(v for v in value if v not in base.get(key, []))]
        elif key in ("namespaces", "labels"):
            merged = dict(base.get(key, {}))
            for name, fragment in value.items():
                merged[name] = _merge(merged.get(name, {}), fragment)
            out[key] = merged
        elif isinstance(value, Mapping):
            out[key] = {**base.get(key, {}), **value}
        else:
            out[key] = value
    return out


class _Bad(Exception):
    """A schema problem inside one document: (field, problem)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem


def _validate(document: Any, source: str) -> dict[str, Any]:
    if document is None:
        return {}
    try:
        return _fragment(document, "", top=True)
    except _Bad as exc:
        raise PolicyError(source, exc.field, exc.problem) from None


def _fragment(doc: Any, prefix: str, *, top: bool = False) -> dict[str, Any]:
    if not isinstance(doc, Mapping):
        raise _Bad(prefix.rstrip(".") or "(document)", "must be a mapping")
    out: dict[str, Any] = {}
    allowed_keys = _TOP_KEYS if top else _FRAGMENT_KEYS
    for key, value in doc.items():
        where = f"{prefix}{key}"
        if key not in allowed_keys:
            raise _Bad(where, f"unknown key (expected one of: {', '.join(allowed_keys)})")
        if key in ("allowed_commands", "forbidden_keywords"):
            out[key] = [" ".join(s.split()) for s in _strings(value, where)]
            if key == "forbidden_keywords":
                out[key] = [s.lower() for s in out[key]]
        elif key in ("restricted_namespaces", "critical_namespaces"):
            out[key] = _strings(value, where)
        elif key == "namespaces":
            names = _mapping(value, where)
            out[key] = {str(n): _fragment(f, f"{where}.{n}.") for n, f in names.items()}
        elif key == "labels":
            selectors = _mapping(value, where)
            for selector in selectors:
                _selector(str(selector), f"{where}.{selector}")
            out[key] = {str(s): _fragment(f, f"{where}.{s}.") for s, f in selectors.items()}
        elif key == "replicas":
            out[key] = _replicas(value, where)
        elif key == "freeze":
            if not isinstance(value, list):
                raise _Bad(where, "must be a list of windows")
            out[key] = [_freeze_doc(item, f"{where}[{i}]") for i, item in enumerate(value)]
        elif key == "risk":
            out[key] = _risk_table(value, where)
        elif key == "approvers":
            out[key] = _approvers(value, where)
        elif key == "approvals_required":
            out[key] = _per_level(value, where, lambda v: _int(v, 1, 10))
        elif key == "auto_execute":
            out[key] = _per_level(value, where, _auto)
        elif key == "approval_expiry":
            _duration(value, where)
            out[key] = value
        elif key == "description":
            out[key] = str(value)
    return out


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _Bad(where, "must be a list of non-empty strings")
    return [v.strip() for v in value]


def _mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(where, "must be a mapping")
    return value


def _int(value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"must be an integer from {low} to {high}")
    return value


def _auto(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _per_level(value: Any, where: str, check: Any) -> dict[str, Any]:
    out = {}
    for level, item in _mapping(value, where).items():
        if level not in LEVELS:
            raise _Bad(f"{where}.{level}", "unknown risk level (low, medium, high)")
        try:
            out[str(level)] = check(item)
        except ValueError as exc:
            raise _Bad(f"{where}.{level}", str(exc)) from None
    if where.endswith("auto_execute") and (out.get("medium") or out.get("high")):
        raise _Bad(where, "only low risk may auto-execute")
    return out


def _replicas(value: Any, where: str) -> dict[str, int]:
    out = {}
    for key, item in _mapping(value, where).items():
        if key not in ("min", "max"):
            raise _Bad(f"{where}.{key}", "unknown key (min, max)")
        try:
            out[str(key)] = _int(item, 0, MAX_REPLICAS)
        except ValueError as exc:
            raise _Bad(f"{where}.{key}", str(exc)) from None
    if out.get("min", 0) > out.get("max", MAX_REPLICAS):
        raise _Bad(where, f"min {out['min']} is above max {out.get('max', MAX_REPLICAS)}")
    return out


def _risk_table(value: Any, where: str) -> dict[str, str]:
    out = {}
    for kind, level in _mapping(value, where).items():
        if kind not in DEFAULT_RISK:
            raise _Bad(f"{where}.{kind}", f"unknown action kind ({', '.join(DEFAULT_RISK)})")
        if level not in LEVELS:
            raise _Bad(f"{where}.{kind}", f"{level!r} is not a risk level (low, medium, high)")
        out[str(kind)] = str(level)
    return out


def _approvers(value: Any, where: str) -> dict[str, list[str]]:
    out = {}
    for level, ids in _mapping(value, where).items():
        if level not in LEVELS:
            raise _Bad(f"{where}.{level}", "unknown risk level (low, medium, high)")
        for item in _strings(ids, f"{where}.{level}"):
            if not _APPROVER.match(item):
                raise _Bad(
                    f"{where}.{level}",
                    f"{item!r} is not a Slack user ID (U…/W…), user-group ID (S…) or @handle",
                )
        out[str(level)] = [str(i) for i in ids]
    return out


def _selector(text: str, where: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not _LABEL_KEY.match(key) or not value:
            raise _Bad(where, "a label selector is key=value[,key=value…]")
        out[key] = value
    return out


def _duration(value: Any, where: str) -> timedelta:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    match = _DURATION.match(str(value).strip())
    if not match or not any(match.groups()):
        raise _Bad(where, f"{value!r} is not a duration like 30m, 2h or 1h30m")
    d, h, m, s = (int(g or 0) for g in match.groups())
    total = timedelta(days=d, hours=h, minutes=m, seconds=s)
    if total <= timedelta(0):
        raise _Bad(where, "must be longer than 0")
    return total


def _timestamp(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise _Bad(where, f"{value!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise _Bad(where, f"{value!r} needs a UTC offset (e.g. 2026-11-27T00:00:00Z)")
    return moment


def _clock(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1440:
        return value  # YAML 1.1 reads an unquoted 16:00 as sexagesimal 960 = minutes
    match = _CLOCK.match(str(value).strip())
    if not match:
        raise _Bad(where, f"{value!r} is not a time of day like 16:00")
    return int(match.group(1)) * 60 + int(match.group(2))


def _freeze_doc(item: Any, where: str) -> dict[str, Any]:
    """Validate one freeze window and return it in its canonical (JSON-friendly) form."""
    doc = _mapping(item, where)
    dated = {"name", "reason", "namespaces", "start", "end"}
    weekly = {"name", "reason", "namespaces", "days", "from", "to", "tz"}
    keys = set(doc)
    if not (keys <= dated and {"start", "end"} <= keys) and not (
        keys <= weekly and {"days", "from", "to"} <= keys
    ):
        raise _Bad(
            where, "a window is {start, end} or {days, from, to[, tz]} (+ name, reason, namespaces)"
        )
    out: dict[str, Any] = {k: str(doc[k]) for k in ("name", "reason") if k in doc}
    if "namespaces" in doc:
        out["namespaces"] = _strings(doc["namespaces"], f"{where}.namespaces")
    if "start" in doc:
        start, end = (
            _timestamp(doc["start"], f"{where}.start"),
            _timestamp(doc["end"], f"{where}.end"),
        )
        if end <= start:
            raise _Bad(f"{where}.end", "must be after start")
        out.update(start=start.isoformat(), end=end.isoformat())
    else:
        days = doc["days"] if isinstance(doc["days"], list) else [doc["days"]]
        short = [str(d).strip().lower()[:3] for d in days]
        if not short or any(d not in _DAYS for d in short):
            raise _Bad(f"{where}.days", f"must list days from {', '.join(_DAYS)}")
        frm, to = _clock(doc["from"], f"{where}.from"), _clock(doc["to"], f"{where}.to")
        tz = str(doc.get("tz", "UTC"))
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise _Bad(f"{where}.tz", f"unknown time zone {tz!r}") from None
        out.update(days=short, **{"from": f"{frm // 60:02d}:{frm % 60:02d}"})
        out.update(to=f"{to // 60:02d}:{to % 60:02d}", tz=tz)
    return out
