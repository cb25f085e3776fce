"""On-demand investigations: ``/rca ns/Kind/name``, or a mention that names an object.

An on-demand RCA becomes an incident like one an alert opens (alertname ``OnDemandRCA``,
severity ``info``, a group key unique per request), so it gets the same thread, the same
outbox delivery guarantees, the same feedback buttons and the same approval flow:

1. one transaction inserts the incident and queues its first message — a parent message in
   the channel (``/rca``), or, for a mention, a reply under the mention, which is recorded
   as the thread's parent;
2. the rule analyzer investigates the live object (:meth:`Investigator.rules` with the
   object as target, at the current time);
3. one transaction queues the RCA reply and stores the report on the incident;
4. the suggested actions go to :meth:`Remediation.propose`. When none is left to decide the
   incident is resolved at once, so finished on-demand RCAs do not pile up as "open".

A mention's group key is derived from the mention's channel and ``ts``: an event Slack
delivers twice starts one investigation. Questions without an object (``/rca why is cart
slow``) are answered by :func:`related` from open incidents and the incident memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from bot import messages
from bot.investigate import OBJECT_LABELS, Investigation, Investigator
from bot.kube import RESOURCES
from bot.overview import ONDEMAND_ALERTNAME, search_incidents, thread_refs, words
from bot.remediate.approvals import ActionRecord
from bot.remediate.service import Remediation, cluster_summary
from bot.store import Store
from bot.targets import ObjectRef

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from rag.memory import IncidentMemory, Similar

log = logging.getLogger(__name__)

ONDEMAND_ALERT_LABEL = "OnDemandInvestigation"
"""The ``alertname`` label the analyzer sees for an on-demand investigation."""

# Kinds worth investigating (events are evidence, not subjects) and the names people type.
KINDS = {kind: res for kind, res in RESOURCES.items() if kind != "Event"}
_SHORT_NAMES = {
    "po": "Pod",
    "deploy": "Deployment",
    "sts": "StatefulSet",
    "ds": "DaemonSet",
    "rs": "ReplicaSet",
    "cj": "CronJob",
    "hpa": "HorizontalPodAutoscaler",
    "pvc": "PersistentVolumeClaim",
    "pv": "PersistentVolume",
    "svc": "Service",
    "cm": "ConfigMap",
    "ep": "Endpoints",
    "no": "Node",
    "ns": "Namespace",
    "quota": "ResourceQuota",
    "sc": "StorageClass",
}
_KIND_NAMES: dict[str, str] = {
    **{kind.lower(): kind for kind in KINDS},
    **{res.plural: kind for kind, res in KINDS.items()},
    **_SHORT_NAMES,
}
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CANDIDATE = re.compile(r"[A-Za-z0-9][\w.-]*(?:/[\w.-]+){1,2}")
_LIVE = ("pending", "approved", "executing")


class TargetError(ValueError):
    """An object reference that cannot be investigated; the message says why."""


def kind_of(text: str) -> str | None:
    """The canonical kind for what someone typed (``deploy``, ``deployments``, ``Deployment``)."""
    return _KIND_NAMES.get(text.lower())


def is_ref_shaped(text: str) -> bool:
    """True when ``text`` is one token with a ``/``: meant as an object reference."""
    stripped = text.strip()
    return bool(stripped) and "/" in stripped and not any(c.isspace() for c in stripped)


def parse_target(text: str) -> ObjectRef:
    """``namespace/Kind/name`` (or ``Node/name`` for cluster-scoped kinds) → an object.

    Raises:
        TargetError: the text is not such a reference, or names a kind the bot cannot read.
    """
    parts = text.strip().strip("`").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise TargetError(f"{text.strip()[:80]!r} is not <namespace>/<kind>/<name>")
    kind = kind_of(parts[-2])
    if kind is None:
        raise TargetError(f"unknown kind {parts[-2][:40]!r}; one of {', '.join(sorted(KINDS))}")
    name = parts[-1]
    if not _DNS_NAME.match(name):
        raise TargetError(f"{name[:80]!r} is not a Kubernetes object name")
    if not KINDS[kind].namespaced:
        if len(parts) == 3:
            raise TargetError(f"{kind} is cluster-scoped: write {kind}/{name}")
        return ObjectRef(kind, name)
    if len(parts) == 2:
        raise TargetError(f"{kind} needs a namespace: <namespace>/{kind}/{name}")
    if not _NAMESPACE.match(parts[0]):
        raise TargetError(f"{parts[0][:63]!r} is not a namespace name")
    return ObjectRef(kind, name, parts[0])


def find_target(text: str) -> ObjectRef | None:
    """The first valid object reference in free text (a mention), if any."""
    for candidate in _CANDIDATE.findall(text):
        try:
            return parse_target(candidate)
        except TargetError:
            continue
    return None


def target_labels(target: ObjectRef) -> dict[str, str]:
    """Labels for the analyzer, as an alert about this object would carry them."""
    labels = {"alertname": ONDEMAND_ALERT_LABEL}
    if target.namespace:
        labels["namespace"] = target.namespace
    label = OBJECT_LABELS.get(target.kind)
    if label:
        labels[label] = target.name
    return labels


def mention(user: str) -> str:
    """``<@U…>`` for a user ID; anything else as escaped text."""
    return f"<@{user}>" if _USER_ID.match(user) else messages.escape(user)


def request_message(incident_id: str, target: ObjectRef, user: str) -> messages.Payload:
    """The first message of an on-demand RCA thread."""
    head = f":mag_right: On-demand RCA requested by {mention(user)}: `{target}`"
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=head)),
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*Incident*\n`{incident_id}`"),
                MarkdownTextObject(text="*Severity*\ninfo"),
                MarkdownTextObject(text=f"*Namespace*\n{target.namespace or '—'}"),
                MarkdownTextObject(text=f"*Object*\n`{target}`"),
            ]
        ),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="The rule analyzer reads the live object now; "
                    "its findings follow in this thread."
                )
            ]
        ),
    ]
    return {
        "text": f"On-demand RCA requested by {mention(user)}: {target}",
        "blocks": [b.to_dict() for b in blocks],
    }


@dataclass(frozen=True)
class Request:
    """Who asked for which object, and where the thread goes.

    Attributes:
        target: The object to investigate.
        user: The Slack user who asked.
        channel: The channel ID the request came from.
        thread_ts: For a mention: the ts its thread hangs off (the mention itself, or the
            thread it was posted in). None for ``/rca``: a new parent message is posted.
        key: What makes the request unique (a mention's ts; a command's trigger id).
    """

    target: ObjectRef
    user: str
    channel: str
    thread_ts: str | None = None
    key: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def group_key(self) -> str:
        """The incident's group key: unique per request, stable for a re-delivered event."""
        return f"ondemand|{self.channel}|{self.key}"


def utcnow() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


class OnDemand:
    """Runs on-demand investigations into incident threads.

    Args:
        store: The bot's store.
        investigator: The rule analyzer (and evidence collectors).
        remediation: Receives the suggested actions; None leaves them in the RCA reply only.
        on_queued: Wakes the outbox after a commit.
        clock: The current time (tests pass a fixed one).
        max_concurrent: Investigations running at once; more requests wait their turn.
    """

    def __init__(
        self,
        *,
        store: Store,
        investigator: Investigator,
        remediation: Remediation | None,
        on_queued: Callable[[], None],
        clock: Callable[[], datetime] = utcnow,
        max_concurrent: int = 4,
    ) -> None:
        self.store = store
        self.investigator = investigator
        self.remediation = remediation
        self._on_queued = on_queued
        self._clock = clock
        self._slots = asyncio.Semaphore(max_concurrent)

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> OnDemand:
        """The on-demand runner of a running bot."""
        return cls(
            store=runtime.store,
            investigator=runtime.pipeline.investigator,
            remediation=runtime.remediation,
            on_queued=runtime.outbox.wake,
        )

    async def run(self, request: Request) -> str | None:
        """Open the incident, investigate, queue the RCA, propose the actions.

        Returns:
            The incident id, or None when this request was handled before.
        """
        incident_id = await self.open(request)
        if incident_id is None:
            return None
        async with self._slots:
            await self.investigate(incident_id, request)
        return incident_id

    async def open(self, request: Request) -> str | None:
        """Insert the incident and queue its first message (None: already opened)."""
        now = self._clock()
        incident_id = await self.store.call(self._open, request, now)
        if incident_id is not None:
            self._on_queued()
        return incident_id

    def _open(self, request: Request, now: datetime) -> str | None:
        store = self.store
        target = request.target
        with store.transaction():
            if store.latest_incident(request.group_key) is not None:
                return None
            incident_id = store.next_incident_id(now.strftime("%Y%m%d"))
            store.insert_incident(
                {
                    "id": incident_id,
                    "group_key": request.group_key,
                    "alertname": ONDEMAND_ALERTNAME,
                    "namespace": target.namespace,
                    "object": str(target),
                    "severity": "info",
                    "status": "firing",
                    "channel": request.channel,
                    "summary": f"On-demand RCA of {target} requested by {request.user}",
                    "external_url": "",
                    "opened_at": now.isoformat(),
                    "resolved_at": None,
                    "reopen_times": json.dumps([now.isoformat()]),
                    "flapping": 0,
                    "evidence_state": "pending",
                    "received_at": now.timestamp(),
                }
            )
            payload = request_message(incident_id, target, request.user)
            kind = "parent"
            if request.thread_ts is not None:
                # The mention is the thread's parent: every message goes under it.
                store.record_thread(incident_id, request.channel, request.thread_ts)
                kind = "reply"
            store.enqueue(incident_id, request.channel, kind, payload, time.time())
        return incident_id

    async def investigate(self, incident_id: str, request: Request) -> Investigation | None:
        """Run the rule analyzer on the object and queue the RCA reply; propose its actions."""
        labels = target_labels(request.target)
        investigation: Investigation | None = None
        try:
            investigation = await self.investigator.rules(
                labels, {}, now=self._clock(), target=request.target
            )
            payload = messages.rca_message(investigation.report, incident_id=incident_id)
        except Exception as exc:  # degrade: the thread still hears what went wrong
            log.exception("on-demand investigation of %s failed", request.target)
            payload = messages.reply(
                f":warning: The investigation failed ({type(exc).__name__}: {exc})."
            )
        report = investigation.report if investigation else None
        await self.store.call(self._queue_rca, incident_id, request.channel, payload, report)
        self._on_queued()
        records = await self._propose(incident_id, investigation, labels)
        if not any(r.state in _LIVE for r in records):
            # Nothing left to decide: the on-demand incident is done.
            await self.store.call(self._resolve, incident_id, self._clock())
        return investigation

    async def _propose(
        self, incident_id: str, investigation: Investigation | None, labels: dict[str, str]
    ) -> list[ActionRecord]:
        if self.remediation is None or investigation is None:
            return []
        actions = investigation.analysis.primary.actions
        if not actions:
            return []
        try:
            return await self.remediation.propose(
                incident_id,
                actions,
                labels=labels,
                cluster=cluster_summary(investigation.report),
            )
        except Exception:
            log.exception("proposing actions for %s failed", incident_id)
            return []

    def _queue_rca(
        self,
        incident_id: str,
        channel: str,
        payload: messages.Payload,
        report: dict[str, Any] | None,
    ) -> None:
        store = self.store
        with store.transaction():
            store.enqueue(incident_id, channel, "reply", payload, time.time())
            changes: dict[str, Any] = {"evidence_state": "done"}
            if report is not None:
                changes["rca"] = json.dumps(report)
            store.update_incident(incident_id, changes)

    def _resolve(self, incident_id: str, now: datetime) -> None:
        with self.store.transaction():
            self.store.update_incident(
                incident_id, {"status": "resolved", "resolved_at": now.isoformat()}
            )


# -- free questions ----------------------------------------------------------------------

QUESTION_TOP = 5
QUESTION_MIN_SCORE = 0.3  # free questions are short: a lower bar than an alert's


@dataclass
class Related:
    """What a free question matched: open incidents and similar past incidents.

    Attributes:
        incidents: Open incidents whose alertname, object or namespace match its words.
        threads: ``incident id → (channel, ts)`` for those with a thread.
        similar: Past incidents from the incident memory.
        memory_note: Why the memory said nothing ("" when it was searched).
    """

    incidents: list[dict[str, Any]] = field(default_factory=list)
    threads: dict[str, tuple[str, str]] = field(default_factory=dict)
    similar: list[Similar] = field(default_factory=list)
    memory_note: str = ""


async def related(
    store: Store,
    memory: IncidentMemory | None,
    question: str,
    *,
    limit: int = 10,
    top: int = QUESTION_TOP,
    min_score: float = QUESTION_MIN_SCORE,
) -> Related:
    """Open incidents and similar past incidents for a free question."""
    terms = words(question)
    incidents = await store.call(search_incidents, store, terms, status="firing", limit=limit)
    threads = await store.call(thread_refs, store, [i["id"] for i in incidents])
    found = Related(incidents=incidents, threads=threads)
    if memory is None:
        found.memory_note = "the incident memory is not available"
        return found
    try:
        found.similar = await memory.asearch(question, top=top, min_score=min_score)
    except Exception as exc:  # the answer still lists the open incidents
        log.warning("incident memory search failed: %s", exc)
        found.memory_note = f"the incident memory failed ({type(exc).__name__})"
        return found
    if not found.similar:
        found.memory_note = "no similar past incident in the incident memory"
    return found
