"""The remediation flow: propose → (second opinion) → approve → execute → report.

:class:`Remediation` ties the policy engine, the action book (server-side state and its
compare-and-set), the audit log, the executor and the Slack thread together:

* :meth:`propose` stores each suggested action with the policy's judgement (denied ones as
  Needs Review), asks the second opinion, and queues one thread message per action;
* :meth:`approve_click` / :meth:`reject` are what the buttons do, with every check made
  here from the stored action — never from the click payload — and the action judged again
  by the policy in force at the click (a freeze that began since the proposal holds it);
* an approved action runs once (the book's ``start_execution`` CAS), only while its stored
  row still matches the hash the approvers saw and the policy still allows it; its steps
  are audited, and its message is edited to the outcome with a result reply in the thread;
* :meth:`run` expires undecided actions, cancels those of resolved incidents and, at start,
  settles what a crashed process left (an action caught mid-execution is marked failed,
  never run twice; an approved one not yet started runs once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.kube import KubeReader
from bot.rca.model import Action
from bot.remediate import views
from bot.remediate.approvals import ActionBook, ActionRecord, hash_action
from bot.remediate.audit import AuditLog
from bot.remediate.authz import GroupResolver
from bot.remediate.impact import impact_of
from bot.remediate.second_opinion import SecondOpinion
from bot.store import Store
from bot.targets import ObjectRef
from policies.engine import Policy, judge
from policies.kubectl import parse_kubectl

if TYPE_CHECKING:
    from bot.remediate.executor import Executor

log = logging.getLogger(__name__)

MAX_PROPOSALS = 3  # action messages per incident: the best few, not a wall of buttons

_SCHEMA = """
CREATE TABLE IF NOT EXISTS action_messages (
    action_id TEXT PRIMARY KEY,
    outbox_id INTEGER NOT NULL,
    impact TEXT NOT NULL DEFAULT ''
);
"""


def utcnow() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


class Remediation:
    """Proposals, approvals and execution for a running bot."""

    def __init__(
        self,
        *,
        store: Store,
        policy: Policy,
        groups: GroupResolver,
        kube: KubeReader | None = None,
        executor: Executor | None = None,
        reviewer: SecondOpinion | None = None,
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
        sweep_interval: float = 15.0,
    ) -> None:
        self.store = store
        self.book = ActionBook(store, clock=clock)
        self.audit = AuditLog(store)
        self.policy = policy
        self.groups = groups
        self.kube = kube
        self.executor = executor
        self.reviewer = reviewer
        self._on_queued = on_queued
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._tasks: set[asyncio.Task[None]] = set()
        store.conn.executescript(_SCHEMA)

    @property
    def executable(self) -> bool:
        """True when a remediation identity is configured (buttons are offered)."""
        return self.executor is not None

    # -- proposing -------------------------------------------------------------------------

    async def propose(
        self,
        incident_id: str,
        actions: Sequence[Action],
        *,
        labels: dict[str, str],
        cluster: str,
        proposed_by: str = "rules",
    ) -> list[ActionRecord]:
        """Store, review and announce the incident's suggested actions (at most 3).

        Args:
            incident_id: The incident the actions belong to.
            actions: Suggestions, best first.
            labels: The incident's labels (policy overrides, production detection).
            cluster: A short cluster-state summary for the second opinion.
            proposed_by: ``rules``, ``claude`` or a Slack user ID.
        """
        records: list[ActionRecord] = []
        incident = await self.store.call(self.store.get_incident, incident_id)
        if incident is None or incident["status"] == "resolved":
            return records  # nothing to fix any more
        for action in actions[:MAX_PROPOSALS]:
            now = self._clock()
            judgement = judge(parse_kubectl(action.kubectl), self.policy, labels=labels, now=now)
            existing = {r.command_hash for r in await self.book.for_incident(incident_id)}
            record = await self.book.propose(
                incident_id, action, judgement, proposed_by=proposed_by, now=now
            )
            if record.command_hash in existing:
                continue  # already announced (a deeper analysis suggested it again)
            impact = await impact_of(action, self.kube)
            if self.reviewer is not None and record.state in ("pending", "approved"):
                record = await self._second_opinion(
                    record, action, labels, impact.summary(), cluster
                )
            outbox_id = await self.store.call(self._queue_message, record, impact.summary())
            log.info(
                "proposed %s for %s as %s (outbox %s)",
                record.id,
                incident_id,
                record.state,
                outbox_id,
            )
            records.append(record)
            if record.state == "approved":  # the policy auto-executes it
                self._spawn(self._execute(record.id, actor="policy:auto_execute"))
        self._on_queued()
        return records

    async def _second_opinion(
        self,
        record: ActionRecord,
        action: Action,
        labels: dict[str, str],
        impact: str,
        cluster: str,
    ) -> ActionRecord:
        assert self.reviewer is not None
        opinion = await self.reviewer.review(
            action,
            policy_risk=record.risk,
            verdict=record.verdict,
            policy_reasons=list(record.reasons),
            impact=impact,
            cluster=cluster,
        )
        rules = self.policy.rules_for(_namespace(record.target), labels)
        return await self.book.set_second_opinion(
            record.id,
            opinion.to_dict(),
            opinion.risk if opinion.raised else None,
            opinion.reasons,
            veto=opinion.veto,
            approvals_required={str(k): v for k, v in rules.approvals_required.items()},
            approvers={k: list(v) for k, v in rules.approvers.items()},
        )

    # -- clicks ----------------------------------------------------------------------------

    async def approve_click(self, action_id: str, user_id: str) -> str | None:
        """The Approve button. Returns the ephemeral answer for the clicker, if any."""
        record = await self.book.get(action_id)
        if record is None:
            return "This action is unknown (it may belong to another bot instance)."
        if not self.executable:
            return "Execution is off here (INCIDENT_BOT_REMEDIATION_MODE=none)."
        authz = await self.groups.authorize(user_id, record.approvers)
        if authz.allowed and record.state == "pending":
            # The policy in force now is the authority, not the one at proposal time: a
            # freeze may have begun, a restart may have brought stricter rules.
            refusal = await self._policy_refusal(record)
            if refusal is not None:
                log.info("approve %s by %s refused by the policy: %s", action_id, user_id, refusal)
                await self.audit.append(
                    "refused",
                    action_id=action_id,
                    incident_id=record.incident_id,
                    actor=user_id,
                    command_hash=record.command_hash,
                    details={"why": "policy", "text": refusal},
                    at=self._clock(),
                )
                return refusal
        incident = await self.store.call(self.store.get_incident, record.incident_id)
        decision = await self.book.approve(
            action_id,
            user_id,
            now=self._clock(),
            incident_open=incident is not None and incident["status"] != "resolved",
            command_hash=hash_action(record.action),
            authorized=authz.allowed,
        )
        log.info("approve %s by %s: %s", action_id, user_id, decision.outcome)
        if decision.outcome == "unauthorized":
            return f"{decision.message} ({authz.reason})"
        if decision.record is not None and decision.outcome in (
            "approved",
            "recorded",
            "expired",
            "cancelled",
        ):
            await self.refresh(decision.record)
        if decision.execute:
            self._spawn(self._execute(action_id, actor=user_id))
            return None
        return decision.message

    async def check_reject(self, action_id: str, user_id: str) -> str | None:
        """Before opening the reason modal: a refusal text, or None when the user may reject."""
        record = await self.book.get(action_id)
        if record is None:
            return "This action is unknown."
        if record.state not in ("pending", "needs_review", "approved"):
            return f"This action is already {record.state.replace('_', ' ')}."
        authz = await self.groups.authorize(user_id, record.approvers)
        if not authz.allowed:
            await self.book.reject(action_id, user_id, "", now=self._clock(), authorized=False)
            return f"Only an authorized approver may reject this action ({authz.reason})."
        return None

    async def reject(self, action_id: str, user_id: str, reason: str) -> str | None:
        """The rejection modal was submitted."""
        record = await self.book.get(action_id)
        if record is None:
            return "This action is unknown."
        authz = await self.groups.authorize(user_id, record.approvers)
        decision = await self.book.reject(
            action_id, user_id, reason, now=self._clock(), authorized=authz.allowed
        )
        if decision.record is not None and decision.outcome == "rejected":
            await self.refresh(decision.record)
            return None
        return decision.message

    # -- execution -------------------------------------------------------------------------

    async def _execute(self, action_id: str, *, actor: str) -> None:
        if self.executor is None or not await self.book.start_execution(action_id):
            return  # someone else runs it (or nobody may)
        record = await self.book.get(action_id)
        assert record is not None
        await self.refresh(record)
        started = time.monotonic()
        # Checked again here, not only at the click: an approved row can wait in the database
        # (a restart runs it) and must still be what the approvers saw and the policy allows.
        if hash_action(record.action) != record.command_hash:
            problem: str | None = (
                "the stored command no longer matches the hash the approvers saw "
                f"({record.short_hash}); nothing was run"
            )
        else:
            problem = await self._policy_refusal(record)
        if problem is not None:
            log.warning("not executing %s: %s", action_id, problem)
            await self._report(action_id, "failed", {"error": problem}, started)
            return

        async def on_snapshot(snapshot: dict[str, Any]) -> None:
            await self.book.store_snapshot(action_id, snapshot)

        async def on_step(step: str, ok: bool, text: str) -> None:
            event = {"dry-run": "dry_run", "apply": "applied", "verify": "verified"}.get(step)
            if event is None:
                return
            if not ok:  # a failed step is never audited as if it had succeeded
                event = "failed"
            await self.audit.append(
                event,
                action_id=action_id,
                incident_id=record.incident_id,
                actor=actor,
                command_hash=record.command_hash,
                details={"step": step, "ok": ok, "text": text[:4000]},
                at=self._clock(),
            )

        try:
            result = await self.executor.execute(
                record.action, on_step=on_step, on_snapshot=on_snapshot
            )
            state = result.status
            details = result.to_dict()
        except Exception as exc:  # a bug must not leave the action "executing" forever
            log.exception("executing %s failed", action_id)
            state = "failed"
            details = {"error": f"{type(exc).__name__}: {exc}"}
        details.pop("snapshot", None)  # stored on its own (store_snapshot), not in every reply
        await self._report(action_id, state, details, started)

    async def _report(
        self, action_id: str, state: str, details: dict[str, Any], started: float
    ) -> None:
        """Finish an execution: final state (audited), message edit, result reply."""
        details["duration_s"] = round(time.monotonic() - started, 3)
        final = await self.book.finish(action_id, state, details)
        await self.refresh(final)
        await self.store.call(self._queue_result, final, details)
        self._on_queued()

    async def _policy_refusal(self, record: ActionRecord) -> str | None:
        """Why the policy in force now does not allow the action, or None when it does."""
        first = await self.store.call(self.store.first_alert, record.incident_id)
        labels: dict[str, str] = json.loads(first["labels"]) if first else {}
        judgement = judge(
            parse_kubectl(record.kubectl), self.policy, labels=labels, now=self._clock()
        )
        if judgement.allowed:
            return None
        why = "; ".join(judgement.reasons[:2]) or judgement.verdict
        verdict = judgement.verdict.replace("_", " ")
        return f"The policy now says {verdict} ({why}); nothing was run."

    # -- background ------------------------------------------------------------------------

    async def run(self) -> None:
        """Settle a crashed process's leftovers, then expire/cancel periodically."""
        approved = await self.store.call(self._approved_ids)
        recovered = await self.book.recover(self._clock())
        for record in recovered:
            if record.state == "approved":
                self._spawn(self._execute(record.id, actor="recovery"))
            else:
                await self.refresh(record)
                await self.store.call(self._queue_result, record, record.result or {})
        # recover() also expires approvals that outlived their deadline while the bot was
        # down; their messages still say "executing shortly" until edited.
        for action_id in sorted(set(approved) - {r.id for r in recovered}):
            stale = await self.book.get(action_id)
            if stale is not None and stale.state == "expired":
                await self.refresh(stale)
        try:
            while True:
                await self.sweep()
                await asyncio.sleep(self._sweep_interval)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def incident_resolved(self, incident_id: str) -> None:
        """Cancel the incident's undecided actions (a read first: most incidents have none,
        and a write would compete with the inbox for SQLite's lock)."""
        try:
            live = await self.store.call(self._live_actions, incident_id)
            if not live:
                return
            cancelled = await self.book.cancel_for_incident(
                incident_id, "the incident resolved before a decision", now=self._clock()
            )
            for record in cancelled:
                await self.refresh(record)
        except Exception:
            log.exception("cancelling the actions of resolved %s failed", incident_id)

    def _live_actions(self, incident_id: str) -> int:
        try:
            row = self.store.conn.execute(
                "SELECT COUNT(*) FROM actions WHERE incident_id = ? "
                "AND state IN ('pending', 'needs_review', 'approved')",
                (incident_id,),
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0])

    async def sweep(self) -> None:
        """Expire undecided actions; cancel those whose incident was resolved."""
        changed = list(await self.book.expire_due(self._clock()))
        resolved = await self.store.call(self._resolved_with_live_actions)
        for incident_id in resolved:
            changed += await self.book.cancel_for_incident(
                incident_id, "the incident resolved before a decision", now=self._clock()
            )
        for record in changed:
            await self.refresh(record)

    async def close(self) -> None:
        """Release the second opinion's client."""
        if self.reviewer is not None:
            await self.reviewer.close()

    async def wait_idle(self) -> None:
        """Wait for running executions (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- Slack messages --------------------------------------------------------------------

    async def refresh(self, record: ActionRecord) -> None:
        """Edit the action's message to its current state."""
        await self.store.call(self._queue_edit, record)
        self._on_queued()

    def _queue_message(self, record: ActionRecord, impact: str) -> int:
        payload = views.action_message(
            record, impact=impact, executable=self.executable, approvals=record.approvals
        )
        with self.store.transaction():
            outbox_id = self.store.enqueue(
                record.incident_id,
                _channel_of(self.store, record.incident_id),
                "reply",
                payload,
                time.time(),
            )
            self.store.conn.execute(
                "INSERT OR REPLACE INTO action_messages (action_id, outbox_id, impact) "
                "VALUES (?, ?, ?)",
                (record.id, outbox_id, impact),
            )
        return outbox_id

    def _queue_edit(self, record: ActionRecord) -> None:
        row = self.store.conn.execute(
            "SELECT outbox_id, impact FROM action_messages WHERE action_id = ?", (record.id,)
        ).fetchone()
        if row is None:
            return
        outbox_id, impact = int(row[0]), str(row[1])
        payload = views.action_message(
            record, impact=impact, executable=self.executable, approvals=record.approvals
        )
        with self.store.transaction():
            self.store.enqueue(
                record.incident_id,
                _channel_of(self.store, record.incident_id),
                "edit",
                {**payload, "edit_of": outbox_id},
                time.time(),
            )

    def _queue_result(self, record: ActionRecord, result: dict[str, Any]) -> None:
        payload = views.result_reply(record, result)
        with self.store.transaction():
            self.store.enqueue(
                record.incident_id,
                _channel_of(self.store, record.incident_id),
                "reply",
                payload,
                time.time(),
            )

    def _approved_ids(self) -> list[str]:
        rows = self.store.conn.execute("SELECT id FROM actions WHERE state = 'approved'")
        return [str(r[0]) for r in rows.fetchall()]

    def _resolved_with_live_actions(self) -> list[str]:
        rows = self.store.conn.execute(
            "SELECT DISTINCT a.incident_id FROM actions a JOIN incidents i ON i.id = a.incident_id "
            "WHERE i.status = 'resolved' AND a.state IN ('pending', 'needs_review', 'approved')"
        ).fetchall()
        return [str(r[0]) for r in rows]


def _channel_of(store: Store, incident_id: str) -> str:
    incident = store.get_incident(incident_id)
    return str(incident["channel"]) if incident else ""


def _namespace(target: str) -> str | None:
    return ObjectRef.parse(target).namespace  # targets were validated when proposed


def cluster_summary(report: dict[str, Any]) -> str:
    """What the second opinion sees of the cluster: the RCA's summary and evidence."""
    lines = [f"{report.get('category')}: {report.get('summary')}"]
    lines += [f"- {e.get('ref')}: {e.get('text')}" for e in report.get("evidence", [])[:12]]
    if report.get("missing_data"):
        lines.append("missing: " + "; ".join(str(m) for m in report["missing_data"]))
    return "\n".join(lines)
