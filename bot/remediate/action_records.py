"""Stored remediation actions: the ``actions``/``approvals`` tables and their typed records.

A Slack button carries only an action ID (``act_…``); everything else — the command, its
hash, the risk, who may approve, how many approvals it needs and how far it got — lives in
the ``actions`` and ``approvals`` tables of the bot's SQLite database. This module holds
their schema, the :class:`ActionRecord` a row reads as, the :class:`Decision` a click gets
back, and the command hash the approver's click is checked against.
:class:`bot.remediate.approvals.ActionBook` makes the transitions.

States::

    pending ──approvals ≥ required──▶ approved ──start_execution──▶ executing ──finish──▶
       │  │                              │                                 succeeded
       │  └─reject──▶ rejected           └─(restart: run once)             rolled_back
       ├─expiry──▶ expired                                                 failed
       └─incident resolved──▶ cancelled        executing ──restart──▶ failed  rollback_failed
    needs_review: denied by policy or vetoed; stored and shown, never executable.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bot.rca.model import Action
from bot.remediate.audit import canonical_json, parse_time
from bot.remediate.audit import ensure_schema as ensure_audit_schema

__all__ = [
    "FINAL_STATES",
    "JSON_COLUMNS",
    "LIVE_STATES",
    "SCHEMA",
    "STATES",
    "ActionRecord",
    "Decision",
    "Outcome",
    "ensure_schema",
    "hash_action",
    "new_action_id",
    "record_from_row",
    "short_hash",
]

LIVE_STATES = ("pending", "needs_review", "approved", "executing")
FINAL_STATES = ("succeeded", "rolled_back", "failed", "rollback_failed")
STATES = (*LIVE_STATES, *FINAL_STATES, "rejected", "expired", "cancelled")
# Columns stored as JSON text; the others hold plain SQLite values.
JSON_COLUMNS = ("params", "reasons", "approvers", "result", "second_opinion", "snapshot")
_TIME_COLUMNS = ("created_at", "expires_at", "decided_at")

Outcome = Literal[
    "approved",  # enough approvals: the caller executes now
    "recorded",  # k of n approvals recorded
    "already_approved",  # this user approved before; a different approver is needed
    "unauthorized",  # the user may not approve this risk level; nothing changed
    "hash_mismatch",  # the command changed since the message was shown; nothing changed
    "needs_review",  # denied or vetoed: never approvable
    "not_pending",  # already decided (approved, rejected, running, done …)
    "expired",  # too late: marked expired now
    "cancelled",  # the incident is resolved: marked cancelled now
    "rejected",  # reject() succeeded
    "not_found",  # no such action ID
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
    id TEXT PRIMARY KEY,                 -- act_ + 12 url-safe chars: all a Slack button carries
    incident_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    kubectl TEXT NOT NULL,
    params TEXT NOT NULL,                -- JSON
    rollback TEXT,
    risk TEXT NOT NULL,                  -- low | medium | high
    verdict TEXT NOT NULL,               -- allowed | denied | needs_review
    reasons TEXT NOT NULL,               -- JSON list
    approvals_required INTEGER NOT NULL,
    approvers TEXT NOT NULL,             -- JSON list of policy approver entries for the risk
    command_hash TEXT NOT NULL,          -- sha256 of canonical {kind, target, params, kubectl}
    state TEXT NOT NULL,
    proposed_by TEXT NOT NULL,           -- rules | claude | a Slack user ID
    created_at TEXT NOT NULL,            -- RFC 3339, fixed width (text order = time order)
    expires_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    reason TEXT,
    result TEXT,                         -- JSON
    channel TEXT,
    message_ts TEXT,
    second_opinion TEXT,                 -- JSON
    snapshot TEXT,                       -- JSON
    version INTEGER NOT NULL DEFAULT 0   -- bumped by every change (compare-and-set)
);
CREATE INDEX IF NOT EXISTS actions_incident ON actions(incident_id, command_hash, state);
CREATE INDEX IF NOT EXISTS actions_state ON actions(state, expires_at);
CREATE TABLE IF NOT EXISTS approvals (
    action_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (action_id, user_id)     -- distinct approvers
);
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the ``actions``, ``approvals`` and ``audit`` tables when missing."""
    conn.executescript(SCHEMA)
    ensure_audit_schema(conn)


def hash_action(action: Action) -> str:
    """sha256 hex of the canonical JSON of ``{kind, target, params, kubectl}``."""
    body = {
        "kind": action.kind,
        "target": action.target,
        "params": action.params,
        "kubectl": action.kubectl,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def short_hash(digest: str) -> str:
    """The first 10 hex characters, for display next to the command."""
    return digest[:10]


def new_action_id() -> str:
    """``act_`` + 12 url-safe random characters (72 bits)."""
    return "act_" + secrets.token_urlsafe(9)


@dataclass(frozen=True)
class ActionRecord:
    """One proposed action as stored (see the module docstring for the states)."""

    id: str
    incident_id: str
    kind: str
    target: str
    kubectl: str
    params: dict[str, Any]
    rollback: str | None
    risk: str
    verdict: str
    reasons: tuple[str, ...]
    approvals_required: int
    approvers: tuple[str, ...]
    command_hash: str
    state: str
    proposed_by: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    result: dict[str, Any] | None = None
    channel: str | None = None
    message_ts: str | None = None
    second_opinion: dict[str, Any] | None = None
    snapshot: Any = None
    version: int = 0
    approvals: tuple[str, ...] = ()  # user IDs that approved, in order

    @property
    def short_hash(self) -> str:
        """The first 10 hex characters of :attr:`command_hash`."""
        return short_hash(self.command_hash)

    @property
    def action(self) -> Action:
        """The structured action, as the executor takes it."""
        return Action(self.kind, self.target, self.kubectl, dict(self.params), self.rollback)

    def expired_at(self, now: datetime) -> bool:
        """True when ``now`` is at or past the approval deadline."""
        return now >= self.expires_at


@dataclass(frozen=True)
class Decision:
    """The answer to a click: what happened, the record after it, text for the clicker."""

    outcome: Outcome
    record: ActionRecord | None
    message: str

    @property
    def execute(self) -> bool:
        """True when the caller should run the action now."""
        return self.outcome == "approved"


def record_from_row(row: Mapping[str, Any], approvals: tuple[str, ...]) -> ActionRecord:
    """Build an :class:`ActionRecord` from an ``actions`` row (column name → stored value).

    Args:
        row: The row as stored: JSON columns as text, times as RFC 3339 text.
        approvals: User IDs that approved the action, in order.
    """
    values = dict(row)
    for name in JSON_COLUMNS:
        values[name] = json.loads(row[name]) if row[name] is not None else None
    for name in _TIME_COLUMNS:
        values[name] = parse_time(row[name]) if row[name] else None
    values["params"] = values["params"] or {}
    values["reasons"] = tuple(values["reasons"] or ())
    values["approvers"] = tuple(values["approvers"] or ())
    return ActionRecord(**values, approvals=approvals)
