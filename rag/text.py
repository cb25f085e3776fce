"""Incident documents (CONTRACTS §5) and the text that is embedded for them.

An :class:`IncidentDoc` is one incident → action → result record. :func:`parse_doc` turns a
decoded JSON object into one, strictly: a bad document is refused with ``ValueError("field:
problem")`` rather than stored half-right, because a wrong category or timestamp would skew
retrieval and the learning metrics for as long as it stays in the memory.

:func:`doc_from_incident` builds one from an incident the bot resolved (lenient: the bot's
own data is cut to size rather than refused).

:func:`embed_text` builds the text a document is embedded (and full-text indexed) as, only
from masked fields (``bot.masking.mask``): an imported history may carry credentials in its
evidence, and nothing unmasked may reach the index. :func:`query_text_for_alert` builds the
matching text for a fresh alert, in the same shape, so a query and a document that describe
the same failure share their wording.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.masking import mask
from bot.rca.model import CATEGORIES

log = logging.getLogger(__name__)

RESULTS = ("success", "failed", "partial", "unknown")
SOURCES = ("import", "bot")

# Longest accepted value per field (characters). A history line is untrusted input: a
# 10 MB "root_cause" is a broken export, not an incident worth remembering.
MAX_CHARS: dict[str, int] = {
    "incident_id": 200,
    "title": 500,
    "alertname": 200,
    "namespace": 253,
    "object": 600,
    "root_cause": 10_000,
    "evidence": 50_000,
    "action": 5_000,
    "channel": 200,
    "thread_ts": 64,
}
EVIDENCE_EMBED_CHARS = 600  # evidence beyond this adds noise, not meaning, to the vector

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Label names that name the object an alert is about, in the order they are preferred.
_OBJECT_LABELS = (
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("cronjob", "CronJob"),
    ("job_name", "Job"),
    ("job", "Job"),
    ("horizontalpodautoscaler", "HorizontalPodAutoscaler"),
    ("persistentvolumeclaim", "PersistentVolumeClaim"),
    ("service", "Service"),
    ("node", "Node"),
    ("pod", "Pod"),
)
_ANNOTATIONS = ("summary", "description", "message")


@dataclass(frozen=True)
class IncidentDoc:
    """One remembered incident (CONTRACTS §5), plus where it was discussed.

    Attributes:
        incident_id: Unique id; re-importing the same id updates the document.
        root_cause: What was wrong, in words.
        title: Short human title.
        alertname: The alert that opened the incident.
        namespace: Its namespace ("" for cluster-scoped objects).
        object: The object at fault, ``ns/Kind/name`` or ``Kind/name``; None when nothing was.
        category: One of :data:`bot.rca.model.CATEGORIES`.
        evidence: Free-text evidence.
        action: What was done (usually a kubectl command); "" when nothing was.
        result: success | failed | partial | unknown.
        timestamp: When it started (RFC 3339), if known.
        resolved_at: When it was resolved (RFC 3339), if known.
        channel: Slack channel of the incident thread, when the bot handled it.
        thread_ts: Slack ts of that thread's parent message.
        source: ``import`` (history file) or ``bot`` (closed by the bot).
    """

    incident_id: str
    root_cause: str
    title: str = ""
    alertname: str = ""
    namespace: str = ""
    object: str | None = None
    category: str = "unknown"
    evidence: str = ""
    action: str = ""
    result: str = "unknown"
    timestamp: str | None = None
    resolved_at: str | None = None
    channel: str = ""
    thread_ts: str = ""
    source: str = "import"

    def to_dict(self) -> dict[str, Any]:
        """The §5 document; ``channel``/``thread_ts``/``source`` only when they say something."""
        out: dict[str, Any] = {
            "incident_id": self.incident_id,
            "title": self.title,
            "alertname": self.alertname,
            "namespace": self.namespace,
            "object": self.object,
            "category": self.category,
            "root_cause": self.root_cause,
            "evidence": self.evidence,
            "action": self.action,
            "result": self.result,
            "timestamp": self.timestamp,
            "resolved_at": self.resolved_at,
        }
        if self.channel:
            out["channel"] = self.channel
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.source != "import":
            out["source"] = self.source
        return out

    def masked(self) -> IncidentDoc:
        """This document with every free-text field passed through ``bot.masking.mask``."""
        return dataclasses.replace(
            self,
            title=mask(self.title),
            root_cause=mask(self.root_cause),
            evidence=mask(self.evidence),
            action=mask(self.action),
            object=mask(self.object) if self.object else self.object,
        )


def parse_doc(obj: Any) -> IncidentDoc:
    """Validate one decoded JSON object as an incident document.

    Unknown keys are ignored; ``null`` counts as absent. ``result`` "" means ``unknown``.

    Raises:
        ValueError: ``"field: problem"`` for the first invalid field.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"document: want a JSON object, got {type(obj).__name__}")
    incident_id = _string(obj, "incident_id").strip()
    if not incident_id:
        raise ValueError("incident_id: required (a non-empty string)")
    if _CONTROL.search(incident_id):
        raise ValueError("incident_id: contains control characters")
    root_cause = _string(obj, "root_cause").strip()
    if not root_cause:
        raise ValueError("root_cause: required (a non-empty string)")
    category = _string(obj, "category").strip() or "unknown"
    if category not in CATEGORIES:
        raise ValueError(f"category: unknown category {category!r} (see CONTRACTS §2)")
    result = _string(obj, "result").strip().lower() or "unknown"
    if result not in RESULTS:
        raise ValueError(f"result: must be one of {', '.join(RESULTS)}; got {result!r}")
    source = _string(obj, "source").strip() or "import"
    if source not in SOURCES:
        raise ValueError(f"source: must be one of {', '.join(SOURCES)}; got {source!r}")
    timestamp = _time(obj, "timestamp")
    resolved_at = _time(obj, "resolved_at")
    if timestamp and resolved_at and _parse_time(resolved_at) < _parse_time(timestamp):
        raise ValueError(f"resolved_at: {resolved_at} is before timestamp {timestamp}")
    return IncidentDoc(
        incident_id=incident_id,
        root_cause=root_cause,
        title=_string(obj, "title").strip(),
        alertname=_string(obj, "alertname").strip(),
        namespace=_string(obj, "namespace").strip(),
        object=_string(obj, "object").strip() or None,
        category=category,
        evidence=_evidence(obj),
        action=_string(obj, "action").strip(),
        result=result,
        timestamp=timestamp,
        resolved_at=resolved_at,
        channel=_string(obj, "channel").strip(),
        thread_ts=_string(obj, "thread_ts").strip(),
        source=source,
    )


def embed_text(doc: IncidentDoc) -> str:
    """The text embedded and full-text indexed for ``doc``, built only from masked fields.

    Title, alert name, category in words, the object's kind and name (not its namespace:
    the same failure in another namespace is the same lesson), root cause, the start of the
    evidence and the action.
    """
    lines = [
        mask(doc.title),
        f"alert {doc.alertname}" if doc.alertname else "",
        f"category: {category_words(doc.category)}",
        f"object: {object_words(mask(doc.object))}" if doc.object else "",
        f"root cause: {mask(doc.root_cause)}",
        f"evidence: {_clip(mask(doc.evidence), EVIDENCE_EMBED_CHARS)}" if doc.evidence else "",
        f"action: {mask(doc.action)}" if doc.action else "",
    ]
    return "\n".join(line for line in lines if line)


def query_text_for_alert(
    alertname: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    summary: str = "",
) -> str:
    """The query text for a fresh alert, shaped like :func:`embed_text`'s documents.

    Args:
        alertname: The alert's name.
        labels: Its labels (the object is taken from deployment/statefulset/…/pod labels).
        annotations: Its annotations (summary, description, message are used).
        summary: An analysis summary, when one exists already (it leads the text).
    """
    lines = [mask(summary.strip())] if summary.strip() else []
    lines.append(f"alert {alertname}")
    for label, kind in _OBJECT_LABELS:
        if labels.get(label):
            lines.append(f"object: {kind} {labels[label]}")
            break
    seen: set[str] = set()
    for key in _ANNOTATIONS:
        value = (annotations.get(key) or "").strip()
        if value and value not in seen:
            seen.add(value)
            lines.append(mask(_clip(value, EVIDENCE_EMBED_CHARS)))
    if labels.get("reason"):
        lines.append(f"reason: {labels['reason']}")
    return "\n".join(line for line in lines if line)


def doc_from_incident(
    incident_id: str,
    *,
    alertname: str,
    namespace: str = "",
    object: str | None = None,
    report: Mapping[str, Any] | None = None,
    action: str = "",
    result: str = "unknown",
    opened_at: str | datetime | None = None,
    resolved_at: str | datetime | None = None,
    channel: str = "",
    thread_ts: str = "",
    title: str = "",
) -> IncidentDoc:
    """Build the document of a resolved bot incident.

    Args:
        incident_id: The bot's incident id.
        alertname: The alert that opened it.
        namespace: Its namespace.
        object: The object at fault; defaults to the report's ``incident.object``.
        report: The CONTRACTS §3 RCA report (category, summary, root_cause, evidence list).
        action: The executed action's kubectl ("" when nothing was executed).
        result: success | failed | partial | unknown (anything else counts as unknown).
        opened_at: When it opened (RFC 3339 or an aware datetime).
        resolved_at: When it was resolved.
        channel: Slack channel id of its thread.
        thread_ts: Slack ts of the thread's parent message.
        title: A title; defaults to the report's summary.

    Never raises for odd input from the bot: over-long text is cut, an unknown category or
    result becomes ``unknown`` and an unparseable time is dropped.
    """
    report = report or {}
    summary = str(report.get("summary") or "")
    category = str(report.get("category") or "unknown")
    root_cause = str(report.get("root_cause") or summary or "").strip()
    evidence = [
        str(e.get("text", "")) if isinstance(e, Mapping) else str(e)
        for e in report.get("evidence") or []
    ]
    reported = report.get("incident")
    if object is None and isinstance(reported, Mapping) and reported.get("object"):
        object = str(reported["object"])
    started, ended = _rfc3339(opened_at), _rfc3339(resolved_at)
    if started and ended and parse_time(ended) < parse_time(started):
        ended = None
    raw = {
        "incident_id": incident_id,
        "title": title or summary,
        "alertname": alertname,
        "namespace": namespace,
        "object": object,
        "category": category if category in CATEGORIES else "unknown",
        "root_cause": root_cause or f"{alertname}: no root cause was established",
        "evidence": "; ".join(e.strip() for e in evidence if e.strip()),
        "action": action,
        "result": result if result in RESULTS else "unknown",
        "timestamp": started,
        "resolved_at": ended,
        "channel": channel,
        "thread_ts": thread_ts,
        "source": "bot",
    }
    clipped = {
        k: v[: MAX_CHARS[k]] if isinstance(v, str) and k in MAX_CHARS else v for k, v in raw.items()
    }
    return parse_doc(clipped)


def _rfc3339(value: str | datetime | None) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat()
    try:
        parse_time(value)
    except ValueError:
        log.warning("incident time %r is not RFC 3339: left out of the memory", value)
        return None
    return value


def category_words(category: str) -> str:
    """``oom_killed`` → ``oom killed``."""
    return category.replace("_", " ")


def object_words(ref: str | None) -> str:
    """``shop/Deployment/cart`` → ``Deployment cart`` (kind and name, no namespace)."""
    if not ref:
        return ""
    parts = ref.split("/")
    return " ".join(parts[-2:]) if len(parts) >= 2 else ref


def mttr_seconds(doc: IncidentDoc) -> float | None:
    """Seconds from ``timestamp`` to ``resolved_at``; None unless both are known."""
    if not doc.timestamp or not doc.resolved_at:
        return None
    return (_parse_time(doc.resolved_at) - _parse_time(doc.timestamp)).total_seconds()


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 time (``Z`` or an offset) into an aware datetime.

    Raises:
        ValueError: when ``value`` is not RFC 3339 with an offset.
    """
    if not _RFC3339.match(value):
        raise ValueError(f"not an RFC 3339 time with Z or an offset: {value!r}")
    return _parse_time(value)


def _parse_time(value: str) -> datetime:
    # fromisoformat takes at most 6 fractional digits; RFC 3339 allows any number.
    head, dot, rest = value.partition(".")
    if dot:
        digits = re.match(r"\d+", rest)
        frac = digits.group(0) if digits else ""
        value = f"{head}.{frac[:6].ljust(6, '0')}{rest[len(frac) :]}"
    return datetime.fromisoformat(value.replace("z", "+00:00").replace("Z", "+00:00"))


def _string(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key}: want a string, got {type(value).__name__}")
    return _checked(key, value)


def _checked(key: str, value: str) -> str:
    limit = MAX_CHARS.get(key)
    if limit is not None and len(value) > limit:
        raise ValueError(f"{key}: too long ({len(value)} characters, at most {limit})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{key}: not valid Unicode (a lone surrogate escape)") from None
    return value


def _evidence(obj: Mapping[str, Any]) -> str:
    """``evidence`` as text: a string, or a list of strings / §3 evidence items."""
    value = obj.get("evidence")
    if isinstance(value, list):
        parts: list[str] = []
        for item in value:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, Mapping) and isinstance(item.get("text"), str):
                parts.append(item["text"])
            else:
                raise ValueError("evidence: list items must be strings or {text: …} objects")
        return _checked("evidence", "; ".join(p.strip() for p in parts if p.strip()))
    return _string(obj, "evidence").strip()


def _time(obj: Mapping[str, Any], key: str) -> str | None:
    value = _string(obj, key).strip()
    if not value:
        return None
    try:
        parse_time(value)
    except ValueError:
        raise ValueError(f"{key}: not an RFC 3339 time with Z or an offset: {value!r}") from None
    return value


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
