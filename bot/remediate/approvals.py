"""Server-side state of proposed remediations: proposal, approvals, execution, expiry.

:class:`ActionBook` makes every transition of the state machine drawn in
:mod:`bot.remediate.action_records` (which holds the tables and the records). Every
transition is a compare-and-set inside one ``BEGIN IMMEDIATE`` transaction, so two clicks
(or two processes on the same file) can never both approve or both start an execution, and
each transition appends its audit record (:mod:`bot.remediate.audit`) in that same
transaction.

The record types and helpers are re-exported here, so ``from bot.remediate.approvals import
ActionRecord`` keeps working.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from bot.errors import IncidentBotError
from bot.rca.model import Action
from bot.remediate.action_records import (
    FINAL_STATES,
    JSON_COLUMNS,
    LIVE_STATES,
    SCHEMA,
    STATES,
    ActionRecord,
    Decision,
    Outcome,
    ensure_schema,
    hash_action,
    new_action_id,
    record_from_row,
    short_hash,
)
from bot.remediate.audit import append_record, canonical_json, rfc3339
from bot.remediate.authz import may_approve
from bot.store import Store
from policies.engine import LEVELS, Judgement

__all__ = [
    "FINAL_STATES",
    "LIVE_STATES",
    "RESTART_ERROR",
    "SCHEMA",
    "STATES",
    "ActionBook",
    "ActionRecord",
    "ActionStateError",
    "Decision",
    "Outcome",
    "ensure_schema",
    "hash_action",
    "new_action_id",
    "short_hash",
]

RESTART_ERROR = "bot restarted during execution; state of the change unknown — check the object"
_FINISH_EVENTS = {
    "succeeded": "executed",
    "rolled_back": "rolled_back",
    "failed": "failed",
    "rollback_failed": "failed",
}
T = TypeVar("T")


class ActionStateError(IncidentBotError):
    """An action is missing or not in the state an operation needs."""

    def __init__(self, action_id: str, problem: str) -> None:
        self.action_id = action_id
        self.problem = problem
        super().__init__(f"{action_id}: {problem}")


class ActionBook:
    """Proposed actions of every incident, in the store's database, on the store's thread.

    Construct it at start-up (the constructor creates the tables, like :class:`Store`).

    Args:
        store: the bot's store.
        clock: the time for operations that take no ``now`` (audit timestamps).
    """

    def __init__(self, store: Store, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))
        ensure_schema(store.conn)

    async def _tx(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in one write transaction on the store's thread."""

        def run() -> T:
            with self.store.transaction():
                return fn(*args)

        return await self.store.call(run)

    # -- reading -------------------------------------------------------------------------

    async def get(self, action_id: str) -> ActionRecord | None:
        """One action, or ``None``."""
        return await self.store.call(self._load, action_id)

    async def for_incident(self, incident_id: str) -> list[ActionRecord]:
        """Every action of an incident, oldest first."""
        return await self.store.call(
            self._select, "incident_id = ? ORDER BY created_at, id", incident_id
        )

    async def pending_for(
        self, user_id: str, groups: set[str], *, now: datetime | None = None
    ) -> list[ActionRecord]:
        """Pending, unexpired actions this user may approve and has not approved yet."""
        moment = rfc3339(now or self._clock())
        rows = await self.store.call(
            self._select, "state = 'pending' AND expires_at > ? ORDER BY created_at", moment
        )
        return [
            r
            for r in rows
            if user_id not in r.approvals and may_approve(user_id, groups, r.approvers)
        ]

    # -- proposing -----------------------------------------------------------------------

    async def propose(
        self,
        incident_id: str,
        action: Action,
        judgement: Judgement,
        *,
        proposed_by: str,
        now: datetime,
    ) -> ActionRecord:
        """Store a proposed action; the same command for the same incident is stored once.

        The state is ``pending`` for an ``allowed`` verdict, ``needs_review`` otherwise, and
        ``approved`` straight away when the policy auto-executes it (``auto_execute`` with no
        approvals required). While an action with the same command hash is live (pending,
        needs_review, approved, executing) for the incident, that record is returned.
        """
        return await self._tx(self._propose, incident_id, action, judgement, proposed_by, now)

    def _propose(
        self,
        incident_id: str,
        action: Action,
        judgement: Judgement,
        proposed_by: str,
        now: datetime,
    ) -> ActionRecord:
        digest = hash_action(action)
        live = ", ".join("?" for _ in LIVE_STATES)
        where = f"incident_id = ? AND command_hash = ? AND state IN ({live}) ORDER BY created_at"
        for existing in self._select(where, incident_id, digest, *LIVE_STATES):
            if existing.state != "pending" or not existing.expired_at(now):
                return existing
            self._expire(existing, now)
        j = judgement
        auto = j.allowed and j.auto_execute and j.approvals_required == 0
        row: dict[str, Any] = {
            "id": new_action_id(),
            "incident_id": incident_id,
            "kind": action.kind,
            "target": action.target,
            "kubectl": action.kubectl,
            "params": json.dumps(action.params, sort_keys=True),
            "rollback": action.rollback,
            "risk": j.risk,
            "verdict": j.verdict,
            "reasons": json.dumps(list(j.reasons)),
            # Only auto-execution may need no approver; a policy saying 0 otherwise means 1.
            "approvals_required": 0 if auto else max(1, j.approvals_required),
            "approvers": json.dumps(list(j.approvers)),
            "command_hash": digest,
            "state": "approved" if auto else "pending" if j.allowed else "needs_review",
            "proposed_by": proposed_by,
            "created_at": rfc3339(now),
            "expires_at": rfc3339(now + j.approval_expiry),
            "decided_by": "policy" if auto else None,
            "decided_at": rfc3339(now) if auto else None,
            "reason": "auto_execute" if auto else None,
        }
        # Plain SQL: sqlite-utils' insert manages its own transaction.
        self.store.conn.execute(
            f"INSERT INTO actions ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
            tuple(row.values()),
        )
        record = self._load_strict(row["id"])
        keep = ("kubectl", "target", "params", "risk", "verdict", "reasons", "approvers")
        details = {k: getattr(record, k) for k in keep}
        details.update(
            required=record.approvals_required, state=record.state, expires=row["expires_at"]
        )
        self._audit(record, "proposed", proposed_by, now, details)
        return record

    async def set_message(self, action_id: str, channel: str, ts: str) -> None:
        """Remember the Slack message that shows this action (for later edits)."""
        await self._tx(
            lambda: self._update(self._load_strict(action_id), channel=channel, message_ts=ts)
        )

    async def set_second_opinion(
        self,
        action_id: str,
        opinion: Mapping[str, Any],
        new_risk: str | None,
        reasons: Sequence[str],
        *,
        veto: bool = False,
        approvals_required: Mapping[str, int] | None = None,
        approvers: Mapping[str, Sequence[str]] | None = None,
    ) -> ActionRecord:
        """Attach the LLM second opinion. It can only make the action harder to run.

        A higher ``new_risk`` replaces the risk and takes the approvals and approvers of that
        level from ``approvals_required``/``approvers`` (the policy's mappings; required then).
        A lower or equal one is ignored. ``veto`` (or ``opinion["veto"]``) turns a pending or
        approved-but-not-started action into ``needs_review``; a raised requirement sends an
        approved action back to ``pending``. On executing or finished actions the opinion is
        only stored.

        Raises:
            ValueError: unknown ``new_risk``, or a raise without the mappings.
            ActionStateError: no such action.
        """
        if new_risk is not None and new_risk not in LEVELS:
            raise ValueError(f"unknown risk level {new_risk!r}")
        vetoed = veto or bool(opinion.get("veto"))
        return await self._tx(
            self._second_opinion,
            action_id,
            dict(opinion),
            new_risk,
            reasons,
            vetoed,
            approvals_required,
            approvers,
        )

    def _second_opinion(
        self,
        action_id: str,
        opinion: dict[str, Any],
        new_risk: str | None,
        reasons: Sequence[str],
        veto: bool,
        required_by_level: Mapping[str, int] | None,
        approvers_by_level: Mapping[str, Sequence[str]] | None,
    ) -> ActionRecord:
        rec = self._load_strict(action_id)
        changes: dict[str, Any] = {"second_opinion": opinion}
        undecided = rec.state in ("pending", "needs_review", "approved")
        raised = new_risk is not None and LEVELS.index(new_risk) > LEVELS.index(rec.risk)
        if undecided and new_risk is not None and raised:
            if required_by_level is None or approvers_by_level is None:
                raise ValueError("raising the risk needs approvals_required and approvers")
            required = max(rec.approvals_required, required_by_level.get(new_risk, 1), 1)
            approvers = list(approvers_by_level.get(new_risk, ()))
            changes.update(risk=new_risk, approvals_required=required, approvers=approvers)
            if rec.state == "approved" and len(rec.approvals) < required:
                changes["state"] = "pending"
        if undecided and (raised or veto):
            changes["reasons"] = [*rec.reasons, *(f"second opinion: {r}" for r in reasons)]
        if veto and rec.state in ("pending", "approved"):
            changes["state"] = "needs_review"
        updated = self._update(rec, **changes)
        details = {"opinion": opinion, "before": _summary(rec), "after": _summary(updated)}
        self._audit(updated, "second_opinion", "llm", self._clock(), details)
        return updated

    # -- deciding ------------------------------------------------------------------------

    async def approve(
        self,
        action_id: str,
        user_id: str,
        *,
        now: datetime,
        incident_open: bool,
        command_hash: str,
        authorized: bool,
    ) -> Decision:
        """Record one approval: the compare-and-set behind the Approve button.

        Checked in one transaction, in order: the action is pending (``needs_review`` and
        decided actions are refused), not expired (else it is marked expired), its incident
        is open (else it is cancelled), the user is ``authorized`` (see
        :mod:`bot.remediate.authz`; else ``unauthorized`` and nothing changes),
        ``command_hash`` is the stored hash (what the approver saw) and the user has not
        approved it before. With enough distinct approvals the action becomes ``approved``
        and so is the outcome: the caller executes it.
        """
        args = (action_id, user_id, now, incident_open, command_hash, authorized)
        return await self._tx(self._approve, *args)

    def _approve(
        self,
        action_id: str,
        user_id: str,
        now: datetime,
        incident_open: bool,
        digest: str,
        authorized: bool,
    ) -> Decision:
        rec, refusal = self._decidable(action_id, user_id, now, incident_open, authorized)
        if refusal is not None:
            return refusal
        assert rec is not None
        count, needed = len(rec.approvals), rec.approvals_required
        if digest != rec.command_hash:
            text = (
                f"The command changed since this message was shown (hash {short_hash(digest)}"
                f" ≠ {rec.short_hash}); nothing was run. Review the current message."
            )
            self._audit(rec, "refused", user_id, now, {"why": "hash_mismatch", "got": digest})
            return Decision("hash_mismatch", rec, text)
        if user_id in rec.approvals:
            text = f"You already approved this ({count} of {needed}); another approver is needed."
            return Decision("already_approved", rec, text)
        self.store.conn.execute(
            "INSERT INTO approvals (action_id, user_id, at) VALUES (?, ?, ?)",
            (action_id, user_id, rfc3339(now)),
        )
        count += 1
        if count >= needed:
            updated = self._update(
                rec, state="approved", decided_by=user_id, decided_at=rfc3339(now)
            )
            outcome: Outcome = "approved"
            text = f"Approved ({count} of {needed}): running it now."
        else:
            updated = self._update(rec)  # bump the version: the approval set changed
            outcome = "recorded"
            text = f"Approval recorded ({count} of {needed}); waiting for another approver."
        details = {"approvals": count, "required": needed, "final": count >= needed}
        self._audit(updated, "approval", user_id, now, details)
        return Decision(outcome, updated, text)

    async def reject(
        self, action_id: str, user_id: str, reason: str, *, now: datetime, authorized: bool
    ) -> Decision:
        """Reject a pending, needs-review or approved-but-not-started action.

        Expiry and the authorization are checked as for :meth:`approve`; one authorized
        rejection is enough.
        """
        return await self._tx(self._reject, action_id, user_id, reason, now, authorized)

    def _reject(
        self, action_id: str, user_id: str, reason: str, now: datetime, authorized: bool
    ) -> Decision:
        undecided = ("pending", "needs_review", "approved")
        rec, refusal = self._decidable(action_id, user_id, now, True, authorized, undecided)
        if refusal is not None:
            return refusal
        assert rec is not None
        changes = {"decided_by": user_id, "decided_at": rfc3339(now), "reason": reason}
        updated = self._update(rec, state="rejected", **changes)
        self._audit(updated, "rejected", user_id, now, {"reason": reason})
        return Decision("rejected", updated, "Rejected: nothing will run.")

    def _decidable(
        self,
        action_id: str,
        user_id: str,
        now: datetime,
        incident_open: bool,
        authorized: bool,
        allowed: tuple[str, ...] = ("pending",),
    ) -> tuple[ActionRecord | None, Decision | None]:
        """The checks approve and reject share; a Decision when the click is refused."""
        rec = self._load(action_id)
        if rec is None:
            return None, Decision("not_found", None, "This action does not exist.")
        if rec.state not in allowed:
            if rec.state == "needs_review":
                why = rec.reasons[0] if rec.reasons else rec.verdict
                text = f"This action needs review ({why}); it cannot be approved from Slack."
                return rec, Decision("needs_review", rec, text)
            by = f" by {rec.decided_by}" if rec.decided_by else ""
            return rec, Decision("not_pending", rec, f"This action is already {rec.state}{by}.")
        if rec.state != "approved" and rec.expired_at(now):
            rec = self._expire(rec, now)
            text = f"This action expired at {rfc3339(rec.expires_at)}; propose it again if needed."
            return rec, Decision("expired", rec, text)
        if not incident_open:
            rec = self._cancel(rec, "incident resolved", now)
            text = "The incident is resolved: this action was cancelled."
            return rec, Decision("cancelled", rec, text)
        if not authorized:
            self._audit(rec, "unauthorized_click", user_id, now, {"risk": rec.risk})
            who = ", ".join(rec.approvers) or "no approvers configured"
            text = f"You may not decide on this {rec.risk}-risk action (approvers: {who})."
            return rec, Decision("unauthorized", rec, text)
        return rec, None

    # -- executing -----------------------------------------------------------------------

    async def start_execution(self, action_id: str) -> bool:
        """``approved`` → ``executing``; True for exactly one caller, across processes."""
        cur = await self._tx(
            self.store.conn.execute,
            "UPDATE actions SET state = 'executing', version = version + 1 "
            "WHERE id = ? AND state = 'approved'",
            (action_id,),
        )
        return cur.rowcount == 1

    async def finish(self, action_id: str, state: str, result: dict[str, Any]) -> ActionRecord:
        """``executing`` → ``state`` (succeeded, rolled_back, failed, rollback_failed).

        Appends the matching audit record (``executed``, ``rolled_back`` or ``failed``) with
        ``{"state": state, **result}`` as its details.

        Raises:
            ValueError: ``state`` is not a final state.
            ActionStateError: the action is not executing.
        """
        if state not in FINAL_STATES:
            raise ValueError(f"not a final state: {state!r} (one of {', '.join(FINAL_STATES)})")
        return await self._tx(self._finish, action_id, state, result, self._clock())

    def _finish(
        self, action_id: str, state: str, result: dict[str, Any], now: datetime
    ) -> ActionRecord:
        rec = self._load_strict(action_id)
        if rec.state != "executing":
            raise ActionStateError(action_id, f"is {rec.state}, not executing")
        updated = self._update(rec, state=state, result=result)
        self._audit(updated, _FINISH_EVENTS[state], "bot", now, {"state": state, **result})
        return updated

    async def store_snapshot(self, action_id: str, snapshot: Any) -> None:
        """Keep the target's state from before the change (what a rollback restores).

        The audit record (``snapshot``) holds its sha256 and size, not the object itself.
        """
        data = canonical_json(snapshot).encode()
        details = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

        def run() -> None:
            rec = self._update(self._load_strict(action_id), snapshot=snapshot)
            self._audit(rec, "snapshot", "bot", self._clock(), details)

        await self._tx(run)

    # -- sweeping ------------------------------------------------------------------------

    async def expire_due(self, now: datetime) -> list[ActionRecord]:
        """Mark pending actions past their deadline ``expired``; returns them."""
        where = "state = 'pending' AND expires_at <= ?"
        if not await self.store.call(self._select, where, rfc3339(now)):
            return []  # the usual case: no write transaction (the inbox needs the lock)

        def run() -> list[ActionRecord]:
            due = self._select("state = 'pending' AND expires_at <= ?", rfc3339(now))
            return [self._expire(rec, now) for rec in due]

        return await self._tx(run)

    async def cancel_for_incident(
        self, incident_id: str, reason: str, *, now: datetime | None = None
    ) -> list[ActionRecord]:
        """The incident is resolved: pending, needs-review and approved actions → cancelled."""
        moment = now or self._clock()
        where = "incident_id = ? AND state IN ('pending', 'needs_review', 'approved')"

        def run() -> list[ActionRecord]:
            return [self._cancel(r, reason, moment) for r in self._select(where, incident_id)]

        return await self._tx(run)

    async def recover(self, now: datetime) -> list[ActionRecord]:
        """Start-up after a crash: settle what a dead process left behind.

        ``executing`` actions are marked ``failed`` (the change may or may not have been
        applied: it is never run twice). ``approved`` actions past their deadline are marked
        ``expired``. Returns the actions it marked failed (state ``failed``) followed by the
        approved ones the caller should execute (state ``approved``; run each through
        :meth:`start_execution`, which lets exactly one runner through).
        """
        return await self._tx(self._recover, now)

    def _recover(self, now: datetime) -> list[ActionRecord]:
        failed = []
        for rec in self._select("state = 'executing' ORDER BY created_at"):
            result = {"error": RESTART_ERROR, "previous_state": rec.state}
            result["recovered_at"] = rfc3339(now)
            updated = self._update(rec, state="failed", result=result)
            self._audit(updated, "failed", "bot", now, {"state": "failed", **result})
            failed.append(updated)
        waiting = []
        for rec in self._select("state = 'approved' ORDER BY created_at"):
            if rec.expired_at(now):
                self._expire(rec, now)
            else:
                waiting.append(rec)
        return failed + waiting

    # -- helpers (store thread, inside a transaction) ------------------------------------

    def _expire(self, rec: ActionRecord, now: datetime) -> ActionRecord:
        updated = self._update(rec, state="expired", decided_at=rfc3339(now), reason="expired")
        details = {"expires_at": rfc3339(rec.expires_at), "state_before": rec.state}
        self._audit(updated, "expired", "bot", now, details)
        return updated

    def _cancel(self, rec: ActionRecord, reason: str, now: datetime) -> ActionRecord:
        updated = self._update(rec, state="cancelled", decided_at=rfc3339(now), reason=reason)
        self._audit(updated, "cancelled", "bot", now, {"reason": reason, "state_before": rec.state})
        return updated

    def _audit(
        self, rec: ActionRecord, event: str, actor: str, at: datetime, details: Mapping[str, Any]
    ) -> None:
        append_record(
            self.store.conn,
            event,
            at=at,
            action_id=rec.id,
            incident_id=rec.incident_id,
            actor=actor,
            command_hash=rec.command_hash,
            details=details,
        )

    def _update(self, rec: ActionRecord, **changes: Any) -> ActionRecord:
        """Compare-and-set on ``version``."""
        values = [json.dumps(v) if k in JSON_COLUMNS else v for k, v in changes.items()]
        sets = "".join(f"{k} = ?, " for k in changes)
        cur = self.store.conn.execute(
            f"UPDATE actions SET {sets}version = version + 1 WHERE id = ? AND version = ?",
            (*values, rec.id, rec.version),
        )
        if cur.rowcount != 1:
            raise ActionStateError(rec.id, "changed concurrently (version mismatch)")
        return self._load_strict(rec.id)

    def _load(self, action_id: str) -> ActionRecord | None:
        rows = self._select("id = ?", action_id)
        return rows[0] if rows else None

    def _load_strict(self, action_id: str) -> ActionRecord:
        rec = self._load(action_id)
        if rec is None:
            raise ActionStateError(action_id, "no such action")
        return rec

    def _select(self, where: str, *args: Any) -> list[ActionRecord]:
        cur = self.store.conn.execute(f"SELECT * FROM actions WHERE {where}", args)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        if not rows:
            return []
        marks = ", ".join("?" for _ in rows)
        approvals: dict[str, list[str]] = {}
        for action_id, user_id in self.store.conn.execute(
            f"SELECT action_id, user_id FROM approvals WHERE action_id IN ({marks}) "
            "ORDER BY at, rowid",
            [r["id"] for r in rows],
        ):
            approvals.setdefault(action_id, []).append(user_id)
        return [record_from_row(r, tuple(approvals.get(r["id"], ()))) for r in rows]


def _summary(rec: ActionRecord) -> dict[str, Any]:
    return {"risk": rec.risk, "state": rec.state, "required": rec.approvals_required}
