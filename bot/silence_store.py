"""Which Alertmanager silence, if any, currently covers an incident.

Alertmanager owns the silence itself; this table remembers the ones the bot created for an
incident, so the parent message can show "Silenced until 14:05 UTC by @alice" with an
"Expire silence" button, and so the button can only expire a silence of that incident.

Like :class:`bot.store.Store`, every function here runs on the store's thread (inside
:meth:`Store.call`, usually within the caller's transaction): the parent message of an
incident is built on that thread by :mod:`bot.incidents` and the silence buttons record their
change in the same transaction that queues the message update.

Times are fixed-width RFC 3339 UTC strings (:func:`bot.remediate.audit.rfc3339`), so text
order is time order.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bot.remediate.audit import parse_time, rfc3339
from bot.store import Store

__all__ = ["IncidentSilence", "active_silence", "ensure_schema", "get_silence", "mark_expired"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS incident_silences (
    incident_id TEXT NOT NULL,
    silence_id TEXT NOT NULL,                  -- Alertmanager's silence ID (a UUID)
    until TEXT NOT NULL,                       -- the silence's endsAt
    created_by TEXT NOT NULL,                  -- Slack user ID of who silenced
    reason TEXT NOT NULL DEFAULT '',           -- what they said (may be empty)
    at TEXT NOT NULL,                          -- when it was created
    expired_at TEXT,                           -- when it was expired from Slack
    PRIMARY KEY (incident_id, silence_id)
);
CREATE INDEX IF NOT EXISTS incident_silences_until ON incident_silences(incident_id, until);
"""


@dataclass(frozen=True)
class IncidentSilence:
    """A silence the bot created for an incident.

    Attributes:
        incident_id: The incident it covers.
        silence_id: Alertmanager's ID.
        until: When it ends by itself (its ``endsAt``).
        created_by: The Slack user ID of who silenced.
        reason: What they gave as the reason (empty when none).
        at: When it was created.
        expired_at: When it was expired from Slack, else ``None``.
    """

    incident_id: str
    silence_id: str
    until: datetime
    created_by: str
    reason: str
    at: datetime
    expired_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        """True while not expired and ``now`` is before :attr:`until`."""
        return self.expired_at is None and now < self.until


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the ``incident_silences`` table when missing (outside any transaction)."""
    conn.executescript(SCHEMA)


def record_silence(store: Store, silence: IncidentSilence) -> None:
    """Remember a silence just created in Alertmanager (store thread; no commit of its own)."""
    store.conn.execute(
        "INSERT OR REPLACE INTO incident_silences "
        "(incident_id, silence_id, until, created_by, reason, at, expired_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            silence.incident_id,
            silence.silence_id,
            rfc3339(silence.until),
            silence.created_by,
            silence.reason,
            rfc3339(silence.at),
            rfc3339(silence.expired_at) if silence.expired_at else None,
        ),
    )


def active_silence(store: Store, incident_id: str, now: datetime) -> IncidentSilence | None:
    """The incident's silence in force at ``now`` (the one ending last), or ``None``."""
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM incident_silences "
        "WHERE incident_id = ? AND expired_at IS NULL AND until > ? "
        "ORDER BY until DESC LIMIT 1",
        (incident_id, rfc3339(now)),
    ).fetchall()
    return _silence(rows[0]) if rows else None


def get_silence(store: Store, incident_id: str, silence_id: str) -> IncidentSilence | None:
    """One silence of the incident, active or not (``None`` when it is not the incident's)."""
    rows = store.conn.execute(
        f"SELECT {_COLUMNS} FROM incident_silences WHERE incident_id = ? AND silence_id = ?",
        (incident_id, silence_id),
    ).fetchall()
    return _silence(rows[0]) if rows else None


def mark_expired(store: Store, incident_id: str, silence_id: str, now: datetime) -> bool:
    """Record that a silence was expired; False when it was already (or is unknown)."""
    cursor = store.conn.execute(
        "UPDATE incident_silences SET expired_at = ? "
        "WHERE incident_id = ? AND silence_id = ? AND expired_at IS NULL",
        (rfc3339(now), incident_id, silence_id),
    )
    return cursor.rowcount == 1


_COLUMNS = "incident_id, silence_id, until, created_by, reason, at, expired_at"


def _silence(row: tuple[str, ...]) -> IncidentSilence:
    incident_id, silence_id, until, created_by, reason, at, expired_at = row
    return IncidentSilence(
        incident_id=incident_id,
        silence_id=silence_id,
        until=parse_time(until),
        created_by=created_by,
        reason=reason,
        at=parse_time(at),
        expired_at=parse_time(expired_at) if expired_at else None,
    )
