"""The policy engine: policy files → :class:`Policy`; one parsed command → :class:`Judgement`.

The engine is the authority over remediation (DESIGN.md, principle 2). It is pure and
deterministic: the only I/O is reading policy files in :func:`load_policy`; :func:`judge`
takes the clock as an argument.

Layering (files in order, then namespace overrides, then label overrides), one rule:
*restrictions accumulate, everything else is replaced*. ``forbidden_keywords``,
``restricted_namespaces``, ``critical_namespaces`` and ``freeze`` are lists that a later layer
extends (duplicates dropped) and can never shrink; mappings (``replicas``, ``risk``,
``approvers``, ``approvals_required``, ``auto_execute``, ``namespaces``, ``labels``) are merged
entry by entry, each entry replaced; every other value (``allowed_commands`` as a whole,
``approval_expiry``) is replaced by the later layer.

Order of judgement for a mutating command: forbidden keyword, restricted namespace, the
allow-list and the replica bounds each *deny* (all reasons are collected); a change freeze
turns an otherwise allowed action into *needs_review*; the rest is *allowed*, with a risk level
from the ``risk`` table raised by the scale rule and by production/critical namespaces.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from bot.rca.model import Action
from policies.schema import (
    _DAYS,
    _DEFAULTS,
    _FRAGMENT_KEYS,
    DEFAULT_POLICY,
    DEFAULT_RISK,
    LEVELS,
    MAX_REPLICAS,
    Level,
    PolicyError,
    _clock,
    _duration,
    _merge,
    _read,
    _resolve,
    _selector,
    _timestamp,
    _validate,
)

if TYPE_CHECKING:
    from policies.kubectl import Parsed

Verdict = Literal["allowed", "denied", "needs_review"]
_WORD_SPLIT = re.compile(r"[/=,:._-]+")
_PROD_WORDS = frozenset({"prod", "production", "prd"})
_ENV_LABELS = ("env", "environment", "stage", "tier")


@dataclass(frozen=True)
class Freeze:
    """A change freeze: a dated window (``start``/``end``) or a weekly one (``days``)."""

    name: str
    reason: str = ""
    namespaces: tuple[str, ...] = ()  # globs; empty = every namespace and the cluster scope
    start: datetime | None = None
    end: datetime | None = None
    days: tuple[int, ...] = ()  # 0 = Monday
    from_minute: int = 0  # minutes since local midnight, inclusive
    to_minute: int = 0  # the last minute of the window, inclusive
    tz: str = "UTC"

    def applies_to(self, namespace: str | None) -> bool:
        """Whether the freeze covers this namespace (``None``: cluster-scoped)."""
        if not self.namespaces:
            return True
        return namespace is not None and _matches(namespace, self.namespaces)

    def active_until(self, now: datetime) -> datetime | None:
        """The end of the window containing ``now`` (UTC), or ``None`` when outside it."""
        if self.start is not None and self.end is not None:
            return self.end.astimezone(UTC) if self.start <= now < self.end else None
        local = now.astimezone(ZoneInfo(self.tz))
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        end = midnight + timedelta(minutes=self.to_minute + 1)
        if self.from_minute <= self.to_minute:
            inside = day in self.days and self.from_minute <= minute <= self.to_minute
            return end.astimezone(UTC) if inside else None
        # A window across midnight: tonight's part belongs to today, the early part to yesterday.
        if day in self.days and minute >= self.from_minute:
            return (end + timedelta(days=1)).astimezone(UTC)
        if (day - 1) % 7 in self.days and minute <= self.to_minute:
            return end.astimezone(UTC)
        return None


@dataclass(frozen=True)
class Rules:
    """The effective rules for one namespace and set of labels (all layers applied)."""

    allowed_commands: tuple[str, ...] | None
    forbidden_keywords: tuple[str, ...]
    restricted_namespaces: tuple[str, ...]
    critical_namespaces: tuple[str, ...]
    replicas_min: int
    replicas_max: int
    freezes: tuple[Freeze, ...]
    risk: Mapping[str, Level]
    approvers: Mapping[Level, tuple[str, ...]]
    approvals_required: Mapping[Level, int]
    auto_execute: Mapping[Level, bool]
    approval_expiry: timedelta
    document: Mapping[str, Any] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The effective rules in the policy file format (``policy show``, ``/policy``)."""
        doc = {key: self.document[key] for key in _FRAGMENT_KEYS if key in self.document}
        return {**doc, **{k: v for k, v in _DEFAULTS.items() if k not in doc}}


@dataclass(frozen=True)
class Policy:
    """A merged, validated policy; :meth:`rules_for` applies the overrides."""

    document: Mapping[str, Any]
    sources: tuple[str, ...] = ()

    @classmethod
    def from_documents(cls, documents: Sequence[tuple[str, Any]]) -> Policy:
        """Validate and layer ``(source, document)`` pairs, in order.

        Raises:
            PolicyError: a document breaks the schema.
        """
        merged: dict[str, Any] = {}
        for source, document in documents:
            merged = _merge(merged, _validate(document, source))
        policy = cls(merged, tuple(source for source, _ in documents))
        policy.rules_for()  # every override was validated; the base must build too
        return policy

    def rules_for(
        self, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> Rules:
        """The effective rules: base, then matching namespace overrides, then label overrides.

        Namespace patterns apply globs first, exact names last (the most specific wins);
        label selectors (``"team=payments,env=prod"``: all must match) in file order.
        """
        doc: dict[str, Any] = {k: v for k, v in self.document.items() if k in _FRAGMENT_KEYS}
        if namespace is not None:
            patterns = sorted(self.document.get("namespaces", {}), key=_is_exact)
            for pattern in patterns:
                if fnmatchcase(namespace, pattern):
                    doc = _merge(doc, self.document["namespaces"][pattern])
        for selector, fragment in self.document.get("labels", {}).items():
            if all((labels or {}).get(k) == v for k, v in _selector(selector, "labels").items()):
                doc = _merge(doc, fragment)
        return _build(doc)


@dataclass(frozen=True)
class Judgement:
    """The engine's answer for one command (CONTRACTS §4 via :meth:`to_dict`)."""

    verdict: Verdict
    risk: Level
    reasons: list[str]
    action: Action | None
    approvals_required: int
    auto_execute: bool
    approvers: tuple[str, ...] = ()
    approval_expiry: timedelta = timedelta(minutes=30)

    @property
    def allowed(self) -> bool:
        """True only for the ``allowed`` verdict."""
        return self.verdict == "allowed"

    def to_dict(self) -> dict[str, Any]:
        """``{"verdict", "risk", "reasons", "action"}`` exactly as CONTRACTS §4 prints it."""
        action = None
        if self.action is not None:
            a = self.action
            action = {
                "kind": a.kind,
                "target": a.target,
                "kubectl": a.kubectl,
                "params": dict(a.params),
                "rollback": a.rollback,
            }
        return {
            "verdict": self.verdict,
            "risk": self.risk,
            "reasons": list(self.reasons),
            "action": action,
        }


def load_policy(paths: Sequence[Path] | None = None) -> Policy:
    """Load and layer policy files; none given → ``policies/default.yaml``.

    ``.json`` files are read as JSON, anything else as YAML. The path ``default`` names the
    packaged default, so ``[Path("default"), Path("team.yaml")]`` layers a file on top of it.

    Raises:
        PolicyError: a file is unreadable or invalid.
    """
    files = [DEFAULT_POLICY] if not paths else [_resolve(p) for p in paths]
    return Policy.from_documents([(str(p), _read(p)) for p in files])


def judge(
    parsed: Parsed,
    policy: Policy,
    *,
    labels: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Judgement:
    """Judge one parsed kubectl command against a policy.

    Args:
        parsed: the parser's result (:func:`policies.kubectl.parse_kubectl`).
        policy: the loaded policy.
        labels: the incident's labels, for ``labels`` overrides and production detection.
        now: the time to judge at (change freezes); defaults to the current UTC time.

    Returns:
        The verdict, risk, reasons and what approval needs. A refused or unknown command is
        never ``allowed``.
    """
    labels = labels or {}
    now = now if now is not None else datetime.now(UTC)
    action = parsed.action
    if parsed.refusal is not None or not parsed.accepted:
        reason = parsed.refusal or f"not a known action: {parsed.command!r}"
        rules = policy.rules_for(parsed.namespace, labels)
        return _judgement("denied", "high", [reason], None, rules)
    if action is None:  # accepted without an action: the parser classified it read-only
        rules = policy.rules_for(parsed.namespace, labels)
        return Judgement("allowed", "low", ["read-only"], None, 0, False, (), rules.approval_expiry)

    reasons: list[str] = []
    namespaces, cluster_scoped = _namespaces(parsed, action)
    if not cluster_scoped and parsed.namespace is None:
        reasons.append(f"no namespace given: judged as namespace '{namespaces[0]}'")
    namespace = None if cluster_scoped else namespaces[-1]
    rules = policy.rules_for(namespace, labels)
    denials: list[str] = []
    allowed_by: str | None = None

    tokens = _tokens(parsed.command) + _tokens(action.kubectl)
    for keyword in rules.forbidden_keywords:
        if _has_keyword(tokens, keyword):
            denials.append(f"keyword '{keyword}' is forbidden")
    for ns in namespaces:
        if _matches(ns, rules.restricted_namespaces):
            denials.append(f"namespace {ns} is restricted")
    if rules.allowed_commands is not None:
        forms = [_command_form(parsed.command), _command_form(action.kubectl)]
        allowing = next((p for p in rules.allowed_commands if _prefix_of(p, forms)), None)
        if allowing is None:
            shown = " ".join(forms[-1][:3])
            listed = ", ".join(rules.allowed_commands) or "nothing"
            denials.append(f"'{shown}' is not in allowed_commands ({listed})")
        else:
            allowed_by = f"allowed by '{allowing}'"
    denials.extend(_replica_bounds(action, rules))

    risk, risk_reasons = _risk(action, rules, namespace, labels)
    reasons.extend(risk_reasons)
    freezes = [_freeze_reason(f, until) for f, until in _active_freezes(rules, namespace, now)]
    if denials:
        return _judgement("denied", risk, [*denials, *reasons, *freezes], action, rules)
    if allowed_by is not None:
        reasons.insert(0, allowed_by)
    if freezes:
        return _judgement("needs_review", risk, [*freezes, *reasons], action, rules)
    return _judgement("allowed", risk, reasons, action, rules)


# --- judging helpers -------------------------------------------------------------------------


def _judgement(
    verdict: Verdict, risk: Level, reasons: list[str], action: Action | None, rules: Rules
) -> Judgement:
    auto = verdict == "allowed" and risk == "low" and rules.auto_execute.get("low", False)
    return Judgement(
        verdict=verdict,
        risk=risk,
        reasons=reasons,
        action=action,
        approvals_required=0 if auto else rules.approvals_required[risk],
        auto_execute=auto,
        approvers=rules.approvers.get(risk, ()),
        approval_expiry=rules.approval_expiry,
    )


def _namespaces(parsed: Parsed, action: Action) -> tuple[list[str], bool]:
    """Every namespace the command names (flag and target); cluster-scoped targets have none."""
    parts = action.target.split("/")
    if len(parts) != 3:
        return ([parsed.namespace] if parsed.namespace else []), True
    found = [ns for ns in (parsed.namespace, parts[0]) if ns]
    return (list(dict.fromkeys(found)) or ["default"]), False


def _tokens(command: str) -> list[str]:
    try:
        return [t.lower() for t in shlex.split(command)]
    except ValueError:  # unbalanced quotes: the parser refuses these; be safe anyway
        return command.lower().split()


def _words(token: str) -> set[str]:
    return {token, *token.split("="), *(w for w in _WORD_SPLIT.split(token) if w)}


def _has_keyword(tokens: list[str], keyword: str) -> bool:
    """Whole-word match: ``rm`` matches ``rm`` and ``pod/rm-x``, not ``--from-literal``."""
    wanted = keyword.lower().split()
    for i in range(len(tokens) - len(wanted) + 1):
        if all(w in _words(tokens[i + j]) for j, w in enumerate(wanted)):
            return True
    return False


def _command_form(command: str) -> list[str]:
    """The command's tokens without namespace flags, for allow-list prefixes."""
    out: list[str] = []
    skip = False
    for token in _tokens(command):
        if skip:
            skip = False
        elif token in ("-n", "--namespace"):
            skip = True
        elif not token.startswith(("--namespace=", "-n=")):
            out.append(token)
    return out


def _prefix_of(prefix: str, forms: list[list[str]]) -> bool:
    want = prefix.lower().split()
    return any(
        len(form) >= len(want)
        and all(t == p or t.startswith(p + "/") for t, p in zip(form, want, strict=False))
        for form in forms
    )


def _replica_bounds(action: Action, rules: Rules) -> list[str]:
    if action.kind != "scale":
        return []
    key = "max_replicas" if "max_replicas" in action.params else "replicas"
    value = action.params.get(key)
    if not isinstance(value, int):
        return []
    if value < rules.replicas_min:
        return [f"{key} {value} below the minimum {rules.replicas_min}"]
    if value > rules.replicas_max:
        return [f"{key} {value} above the maximum {rules.replicas_max}"]
    return []


def _risk(
    action: Action, rules: Rules, namespace: str | None, labels: Mapping[str, str]
) -> tuple[Level, list[str]]:
    level = LEVELS.index(rules.risk.get(action.kind, "high"))
    reasons = [f"risk {LEVELS[level]} for {action.kind}"]
    if action.kind == "scale":
        new = action.params.get("replicas", action.params.get("max_replicas"))
        old = action.params.get("from_replicas", action.params.get("from_max_replicas"))
        if new == 0 and level < 2:
            level = 2
            reasons.append("risk raised to high: scaling to 0 replicas")
        elif isinstance(new, int) and isinstance(old, int) and old > 0 and level < 2:
            if new > 2 * old or 2 * new < old:
                level = 2
                reasons.append(f"risk raised to high: scaling from {old} to {new} (over 2x)")
    critical = _critical(namespace, rules, labels)
    if critical and level < 2:
        level += 1
        reasons.append(f"risk raised to {LEVELS[level]}: {critical}")
    return LEVELS[level], reasons


def _critical(namespace: str | None, rules: Rules, labels: Mapping[str, str]) -> str | None:
    if namespace is not None:
        if _matches(namespace, rules.critical_namespaces):
            return f"namespace {namespace} is critical"
        if _PROD_WORDS & set(_WORD_SPLIT.split(namespace.lower())):
            return f"namespace {namespace} looks like production"
    for key in _ENV_LABELS:
        if labels.get(key, "").lower() in _PROD_WORDS:
            return f"the incident is in production ({key}={labels[key]})"
    return None


def _active_freezes(
    rules: Rules, namespace: str | None, now: datetime
) -> list[tuple[Freeze, datetime]]:
    found = []
    for freeze in rules.freezes:
        until = freeze.active_until(now) if freeze.applies_to(namespace) else None
        if until is not None:
            found.append((freeze, until))
    return found


def _freeze_reason(freeze: Freeze, until: datetime) -> str:
    text = f"change freeze '{freeze.name}' until {until.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return f"{text}: {freeze.reason}" if freeze.reason else text


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def _is_exact(pattern: str) -> bool:
    return not any(c in pattern for c in "*?[")


# --- building rules from a validated document --------------------------------------------


def _build(doc: Mapping[str, Any]) -> Rules:
    full = {**_DEFAULTS, **doc}
    replicas = {**_DEFAULTS["replicas"], **full["replicas"]}
    allowed = doc.get("allowed_commands")
    return Rules(
        allowed_commands=tuple(allowed) if allowed is not None else None,
        forbidden_keywords=tuple(full.get("forbidden_keywords", ())),
        restricted_namespaces=tuple(full.get("restricted_namespaces", ())),
        critical_namespaces=tuple(full.get("critical_namespaces", ())),
        replicas_min=replicas["min"],
        replicas_max=replicas["max"],
        freezes=tuple(_freeze(f, "freeze") for f in full.get("freeze", ())),
        risk={**DEFAULT_RISK, **full["risk"]},
        approvers={lv: tuple(full["approvers"].get(lv, ())) for lv in LEVELS},
        approvals_required={**_DEFAULTS["approvals_required"], **full["approvals_required"]},
        auto_execute={lv: bool(full["auto_execute"].get(lv, False)) for lv in LEVELS},
        approval_expiry=_duration(full["approval_expiry"], "approval_expiry"),
        document=dict(doc),
    )


def _freeze(doc: Mapping[str, Any], where: str) -> Freeze:
    # Without a name the reason names the freeze (and is not repeated after it).
    fallback = (
        f"{','.join(doc['days'])} {doc['from']}-{doc['to']} {doc.get('tz', 'UTC')}"
        if "days" in doc
        else "change freeze"
    )
    name = str(doc.get("name") or doc.get("reason") or fallback)
    reason = str(doc.get("reason", "")) if "name" in doc else ""
    namespaces = tuple(doc.get("namespaces", ()))
    if "start" in doc:
        return Freeze(
            name,
            reason,
            namespaces,
            start=_timestamp(doc["start"], where),
            end=_timestamp(doc["end"], where),
        )
    return Freeze(
        name,
        reason,
        namespaces,
        days=tuple(_DAYS.index(d) for d in doc["days"]),
        from_minute=_clock(doc["from"], where),
        to_minute=_clock(doc["to"], where),
        tz=str(doc.get("tz", "UTC")),
    )


__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_RISK",
    "LEVELS",
    "MAX_REPLICAS",
    "Freeze",
    "Judgement",
    "Level",
    "Policy",
    "PolicyError",
    "Rules",
    "Verdict",
    "judge",
    "load_policy",
]
