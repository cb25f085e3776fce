"""The background worker: inbox → incidents → outbox, then evidence for new incidents.

On start it resumes whatever a previous process left: pending inbox rows are applied (each
in one transaction, so a half-applied notification cannot exist) and incidents whose first
analysis reply was never queued get their evidence collected again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.chart_post import post_charts
from bot.errors import PayloadError
from bot.inbox import Inbox
from bot.incidents import IncidentEngine
from bot.investigate import Investigation, Investigator
from bot.metrics import Metrics
from bot.remediate.service import Remediation, cluster_summary
from bot.remember import remember_incident

if TYPE_CHECKING:
    from rag.memory import IncidentMemory
from bot.store import InboxItem, Store
from bot.targets import ObjectRef, WorkloadResolver
from bot.webhook import alert_fingerprint, parse_webhook

log = logging.getLogger(__name__)


class Pipeline:
    """Drains the inbox and queues Slack messages. Run with :meth:`run`."""

    def __init__(
        self,
        *,
        store: Store,
        inbox: Inbox,
        engine: IncidentEngine,
        resolver: WorkloadResolver,
        investigator: Investigator,
        metrics: Metrics,
        on_queued: Callable[[], None],
    ) -> None:
        self._store = store
        self._inbox = inbox
        self._engine = engine
        self._resolver = resolver
        self.investigator = investigator
        self._metrics = metrics
        self._on_queued = on_queued
        self._tasks: set[asyncio.Task[None]] = set()
        self.heartbeat = time.monotonic()
        # Set by the runtime: proposes the RCA's actions for approval.
        self.remediation: Remediation | None = None
        # Set by the runtime: similar past incidents for each RCA; resolved incidents feed it.
        self.memory: IncidentMemory | None = None
        # Set by the runtime: metric charts go into the thread (files upload v2).
        self.slack: AsyncWebClient | None = None
        self.prometheus_url = ""

    def alive(self, within: float = 30.0) -> bool:
        """True when the worker loop ran recently (for /readyz)."""
        return time.monotonic() - self.heartbeat < within

    async def run(self) -> None:
        """Resume unfinished work, then process new webhooks until cancelled."""
        for incident_id in await self._store.call(self._store.evidence_pending):
            self._spawn_evidence(incident_id)
        try:
            while True:
                self.heartbeat = time.monotonic()
                self._inbox.arrived.clear()
                drained = await self.drain()
                if not drained:
                    # asyncio.timeout, not wait_for (see SlackOutbox.run: gh-86296).
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(2.0):
                            await self._inbox.arrived.wait()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.investigator.close()

    async def drain(self) -> int:
        """Apply every pending inbox row once; return how many were handled."""
        items = await self._store.call(self._store.inbox_pending, 200)
        for item in items:
            await self._process(item)
        return len(items)

    async def _process(self, item: InboxItem) -> None:
        try:
            payload = parse_webhook(item.body)
        except PayloadError as exc:  # validated at intake; only a corrupted row gets here
            await self._store.call(self._fail, item.id, str(exc))
            return
        objects: dict[str, ObjectRef | None] = {}
        for alert in payload.alerts:
            if alert.status == "firing":
                objects[alert_fingerprint(alert)] = await self._resolver.resolve(alert.labels)
        try:
            applied = await self._store.call(
                self._engine.apply, item.id, payload, objects, item.received_at
            )
        except Exception as exc:  # a bug must not wedge the queue: park the row, keep going
            log.exception("applying inbox row %s failed", item.id)
            await self._store.call(self._fail, item.id, f"{type(exc).__name__}: {exc}")
            return
        self._metrics.alerts_duplicate.inc(applied.duplicates)
        self._metrics.alerts_processed.inc(applied.processed)
        self._metrics.incidents_opened.inc(len(applied.new_incidents))
        self._metrics.pipeline_latency.observe(max(0.0, time.time() - item.received_at))
        if applied.queued_messages:
            self._on_queued()
        for incident_id in applied.resolved_incidents:
            if self.remediation is not None:  # undecided proposals die with the incident
                self._spawn(self.remediation.incident_resolved(incident_id))
            self._spawn(self._remember(incident_id))
        for incident_id in applied.new_incidents:
            self._spawn_evidence(incident_id)

    def _fail(self, inbox_id: int, error: str) -> None:
        with self._store.transaction():
            self._store.inbox_finish(inbox_id, "failed", error, time.time())

    def _spawn_evidence(self, incident_id: str) -> None:
        self._spawn(self._first_look(incident_id))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _charts(
        self, incident_id: str, report: dict[str, Any], labels: dict[str, str], started: datetime
    ) -> None:
        assert self.slack is not None
        await post_charts(
            store=self._store,
            slack_client=self.slack,
            prometheus_url=self.prometheus_url,
            incident_id=incident_id,
            report=report,
            labels=labels,
            started=started,
        )

    async def _remember(self, incident_id: str) -> None:
        """A resolved incident becomes a document of the incident memory."""
        if self.memory is None:
            return
        book = self.remediation.book if self.remediation is not None else None
        try:
            await remember_incident(self._store, self.memory, book, incident_id)
        except Exception:
            log.exception("writing %s to the incident memory failed", incident_id)

    async def _first_look(self, incident_id: str) -> None:
        """Investigate and queue the RCA reply (exactly once); then let Claude deepen it."""
        store = self._store
        incident = await store.call(store.get_incident, incident_id)
        first = await store.call(store.first_alert, incident_id)
        if incident is None or first is None:
            return
        labels: dict[str, str] = json.loads(first["labels"])
        annotations: dict[str, str] = json.loads(first["annotations"])
        obj = ObjectRef.parse(incident["object"]) if incident["object"] else None
        # "Recent" is judged against the alert's start, not the wall clock, so a backlog
        # replayed after an outage reads the same evidence.
        started = datetime.fromisoformat(first["starts_at"])
        investigation: Investigation | None = None
        try:
            investigation = await self.investigator.rules(
                labels, annotations, now=started, target=obj, exclude=(incident_id,)
            )
            payload = messages.rca_message(
                investigation.report,
                pending_claude=self.investigator.claude is not None,
                incident_id=incident_id,
            )
        except Exception as exc:  # degrade: the thread still hears what went wrong
            log.exception("investigation of %s failed", incident_id)
            summary = annotations.get("summary") or annotations.get("description") or ""
            payload = messages.reply(
                f":warning: The investigation failed ({type(exc).__name__}: {exc}).",
                context=summary or None,
            )
        report = investigation.report if investigation else None
        reply_id = await store.call(
            self._queue_first_look, incident_id, incident["channel"], payload, report
        )
        if reply_id is None:
            return
        self._on_queued()
        if self.slack is not None and report is not None and self.prometheus_url:
            # Off the critical path: charts land after the RCA reply, never hold it up.
            self._spawn(
                self._charts(incident_id, report, labels, started),
            )
        if investigation is None:
            return
        if self.investigator.claude is None:
            await self._propose(incident_id, investigation, labels)
            return
        # With Claude, actions are proposed once its answer is in (it may suggest better ones,
        # and the second opinion must not compete with the analysis for the same API).
        deeper = await self.investigator.deepen(investigation)
        if deeper is None:
            await self._propose(incident_id, investigation, labels)
            return
        edit = messages.rca_message(deeper.report, incident_id=incident_id)
        await store.call(
            self._queue_edit, incident_id, incident["channel"], reply_id, edit, deeper.report
        )
        self._on_queued()
        source = "claude" if deeper.analysis.analyzer == "claude" else "rules"
        await self._propose(incident_id, deeper, labels, proposed_by=source)

    async def _propose(
        self,
        incident_id: str,
        investigation: Investigation,
        labels: dict[str, str],
        *,
        proposed_by: str = "rules",
    ) -> None:
        """Hand the suggested actions to the approval flow (never fatal to the thread)."""
        actions = investigation.analysis.primary.actions
        if self.remediation is None or not actions:
            return
        try:
            await self.remediation.propose(
                incident_id,
                actions,
                labels=labels,
                cluster=cluster_summary(investigation.report),
                proposed_by=proposed_by,
            )
        except Exception:
            log.exception("proposing actions for %s failed", incident_id)

    def _queue_edit(
        self,
        incident_id: str,
        channel: str,
        reply_id: int,
        payload: messages.Payload,
        report: dict[str, object],
    ) -> None:
        with self._store.transaction():
            self._store.enqueue(
                incident_id, channel, "edit", {**payload, "edit_of": reply_id}, time.time()
            )
            self._store.update_incident(incident_id, {"rca": json.dumps(report)})

    def _queue_first_look(
        self,
        incident_id: str,
        channel: str,
        payload: messages.Payload,
        report: dict[str, object] | None,
    ) -> int | None:
        """Queue the RCA reply once; its outbox id (for a later in-place edit) or None."""
        with self._store.transaction():
            incident = self._store.get_incident(incident_id)
            if incident is None or incident["evidence_state"] != "pending":
                return None
            reply_id = self._store.enqueue(incident_id, channel, "reply", payload, time.time())
            changes: dict[str, object] = {"evidence_state": "done"}
            if report is not None:
                changes["rca"] = json.dumps(report)
            self._store.update_incident(incident_id, changes)
        return reply_id
