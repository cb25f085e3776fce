"""The SQLite store: inbox, alerts, incidents, Slack outbox and thread references.

One SQLite file under the data dir, opened in WAL mode with ``synchronous=FULL``: every
commit fsyncs the WAL, so a webhook acknowledged with 2xx survives a crash *and* a power
loss. (``NORMAL`` would survive a process crash but may lose the last commits on power loss,
which breaks "durable before acknowledged".) The cost of that fsync is paid once per batch:
:class:`bot.inbox.Inbox` group-commits concurrent webhooks into one transaction.

All access goes through one dedicated thread (:meth:`Store.call`), so the connection is
never shared between threads and the event loop never waits on disk. The methods below are
the storage interface the rest of the bot uses; a shared store for several replicas would
implement the same methods.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sqlite import ThreadedSQLite, connect_memory, open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    received_at REAL NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',   -- pending | done | failed
    error TEXT,
    processed_at REAL
);
CREATE INDEX IF NOT EXISTS inbox_status ON inbox(status, id);
CREATE TABLE IF NOT EXISTS alert_events (
    event_key TEXT PRIMARY KEY,                -- fingerprint|startsAt|status
    fingerprint TEXT NOT NULL,
    inbox_id INTEGER,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    alertname TEXT NOT NULL,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT,
    generator_url TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_incident ON alerts(incident_id, status);
CREATE INDEX IF NOT EXISTS alerts_incident_start ON alerts(incident_id, starts_at, fingerprint);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    group_key TEXT NOT NULL,
    alertname TEXT NOT NULL,
    namespace TEXT NOT NULL DEFAULT '',
    object TEXT,
    severity TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,                      -- firing | resolved
    channel TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    external_url TEXT NOT NULL DEFAULT '',
    opened_at TEXT NOT NULL,
    resolved_at TEXT,
    reopen_times TEXT NOT NULL DEFAULT '[]',
    flapping INTEGER NOT NULL DEFAULT 0,
    evidence_state TEXT NOT NULL DEFAULT 'pending',  -- pending | done
    received_at REAL NOT NULL,
    rca TEXT                                   -- the latest CONTRACTS §3 report (JSON)
);
CREATE INDEX IF NOT EXISTS incidents_group ON incidents(group_key, status);
CREATE TABLE IF NOT EXISTS slack_threads (
    incident_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,                        -- parent | reply | update | edit
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',     -- pending | sending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    ts TEXT,
    created_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, channel, id);
"""


@dataclass(frozen=True)
class InboxItem:
    """A stored webhook body waiting to be processed."""

    id: int
    body: str
    received_at: float


@dataclass(frozen=True)
class OutboxItem:
    """A Slack operation decided but not yet confirmed as done."""

    id: int
    incident_id: str
    channel: str
    kind: str
    payload: dict[str, Any]
    state: str
    attempts: int
    created_at: float


class Store(ThreadedSQLite):
    """The bot's SQLite database. Use :meth:`open` (file) or :meth:`memory` (tests).

    :meth:`call`, :meth:`close` and :meth:`transaction` come from
    :class:`bot.sqlite.ThreadedSQLite`.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn, thread_name="store")
        self.conn.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add columns that newer versions introduced to an existing database."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(incidents)")}
        if "rca" not in columns:
            self.conn.execute("ALTER TABLE incidents ADD COLUMN rca TEXT")

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating if needed) the database at ``path`` in WAL mode.

        Raises:
            StoreError: when the file cannot be created or opened.
        """
        return open_wal(path, cls)

    @classmethod
    def memory(cls) -> Store:
        """An in-memory store for tests."""
        return cls(connect_memory())

    def writable(self) -> bool:
        """True when a write transaction can be started (for /readyz)."""
        try:
            with self.transaction():
                self.conn.execute("CREATE TABLE IF NOT EXISTS _probe (x)")
            return True
        except sqlite3.Error:
            return False

    # -- inbox ---------------------------------------------------------------------------

    def inbox_add_many(self, items: list[tuple[str, str, float]]) -> list[bool]:
        """Store ``(digest, body, received_at)`` items in one transaction.

        Returns:
            For each item, True when it was new and False when its digest was already
            stored (a re-delivery).
        """
        fresh: list[bool] = []
        with self.transaction():
            for digest, body, received_at in items:
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO inbox (digest, body, received_at) VALUES (?, ?, ?)",
                    (digest, body, received_at),
                )
                fresh.append(cur.rowcount == 1)
        return fresh

    def inbox_pending(self, limit: int = 100) -> list[InboxItem]:
        """The oldest unprocessed webhooks."""
        rows = self.conn.execute(
            "SELECT id, body, received_at FROM inbox WHERE status = 'pending' ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [InboxItem(r[0], r[1], r[2]) for r in rows]

    def inbox_finish(self, inbox_id: int, status: str, error: str | None, now: float) -> None:
        """Mark one webhook processed (call inside the transaction that applied it)."""
        self.conn.execute(
            "UPDATE inbox SET status = ?, error = ?, processed_at = ? WHERE id = ?",
            (status, error, now, inbox_id),
        )

    def inbox_depth(self) -> int:
        """How many webhooks wait for the worker."""
        row = self.conn.execute("SELECT count(*) FROM inbox WHERE status = 'pending'").fetchone()
        return int(row[0])

    # -- alerts and incidents ------------------------------------------------------------

    def seen_event(self, event_key: str, fingerprint: str, inbox_id: int, now: float) -> bool:
        """Record an alert state event; True if it had been recorded before."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO alert_events (event_key, fingerprint, inbox_id, at) "
            "VALUES (?, ?, ?, ?)",
            (event_key, fingerprint, inbox_id, now),
        )
        return cur.rowcount == 0

    def get_alert(self, fingerprint: str) -> dict[str, Any] | None:
        """The alert row for ``fingerprint``."""
        return self._one("SELECT * FROM alerts WHERE fingerprint = ?", fingerprint)

    def put_alert(self, row: dict[str, Any]) -> None:
        """Insert or replace an alert row.

        Plain SQL rather than ``Table.upsert``: this runs for every alert event and
        sqlite-utils introspects the table on each call (~10x slower here).
        """
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.conn.execute(
            f"INSERT OR REPLACE INTO alerts ({columns}) VALUES ({marks})", tuple(row.values())
        )

    def incident_alerts(self, incident_id: str) -> list[dict[str, Any]]:
        """Every alert attached to an incident."""
        return self._all(
            "SELECT * FROM alerts WHERE incident_id = ? ORDER BY starts_at", incident_id
        )

    def alert_counts(self, incident_id: str) -> tuple[int, int]:
        """``(total, firing)`` alerts of an incident."""
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(status = 'firing'), 0) FROM alerts "
            "WHERE incident_id = ?",
            (incident_id,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def first_alert(self, incident_id: str) -> dict[str, Any] | None:
        """The earliest alert of an incident (what its parent message describes)."""
        return self._one(
            "SELECT * FROM alerts WHERE incident_id = ? ORDER BY starts_at, fingerprint LIMIT 1",
            incident_id,
        )

    def get_incident(self, incident_id: str) -> dict[str, Any] | None:
        """One incident row."""
        return self._one("SELECT * FROM incidents WHERE id = ?", incident_id)

    def latest_incident(self, group_key: str) -> dict[str, Any] | None:
        """The most recent incident with this grouping key (open or not)."""
        return self._one(
            "SELECT * FROM incidents WHERE group_key = ? ORDER BY received_at DESC, id DESC "
            "LIMIT 1",
            group_key,
        )

    def insert_incident(self, row: dict[str, Any]) -> None:
        """Insert a new incident row."""
        self.db.table("incidents").insert(row, pk="id")

    def update_incident(self, incident_id: str, changes: dict[str, Any]) -> None:
        """Update some columns of an incident."""
        self.db.table("incidents").update(incident_id, changes)

    def next_incident_id(self, day: str) -> str:
        """``INC_<day>_<nnn>``, numbered within the day."""
        prefix = f"INC_{day}_"
        row = self.conn.execute(
            "SELECT id FROM incidents WHERE id LIKE ? ORDER BY id DESC LIMIT 1", (prefix + "%",)
        ).fetchone()
        number = int(row[0].rsplit("_", 1)[1]) + 1 if row else 1
        return f"{prefix}{number:03d}"

    def incidents(self, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Incidents, newest first."""
        if status:
            return self._all(
                "SELECT * FROM incidents WHERE status = ? ORDER BY received_at DESC LIMIT ?",
                status,
                limit,
            )
        return self._all("SELECT * FROM incidents ORDER BY received_at DESC LIMIT ?", limit)

    def evidence_pending(self) -> list[str]:
        """Incidents whose first analysis reply has not been queued yet."""
        rows = self.conn.execute(
            "SELECT id FROM incidents WHERE evidence_state = 'pending' ORDER BY received_at"
        ).fetchall()
        return [r[0] for r in rows]

    # -- Slack ---------------------------------------------------------------------------

    def enqueue(
        self, incident_id: str, channel: str, kind: str, payload: dict[str, Any], now: float
    ) -> int:
        """Queue a Slack operation (call inside the transaction that decided it)."""
        cur = self.conn.execute(
            "INSERT INTO outbox (incident_id, channel, kind, payload, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (incident_id, channel, kind, json.dumps(payload), now),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def outbox_channels(self) -> list[str]:
        """Channels with rows still to be sent."""
        rows = self.conn.execute(
            "SELECT DISTINCT channel FROM outbox WHERE state IN ('pending', 'sending')"
        ).fetchall()
        return [r[0] for r in rows]

    def outbox_open(self, channel: str | None = None, *, limit: int = 1000) -> list[OutboxItem]:
        """Rows still to be sent (``pending`` or interrupted ``sending``), oldest first."""
        where = "state IN ('pending', 'sending')" + (" AND channel = ?" if channel else "")
        args: tuple[Any, ...] = (channel, limit) if channel else (limit,)
        rows = self._all(f"SELECT * FROM outbox WHERE {where} ORDER BY id LIMIT ?", *args)
        return [
            OutboxItem(
                id=r["id"],
                incident_id=r["incident_id"],
                channel=r["channel"],
                kind=r["kind"],
                payload=json.loads(r["payload"]),
                state=r["state"],
                attempts=r["attempts"],
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def outbox_mark(
        self,
        outbox_id: int,
        state: str,
        *,
        error: str | None = None,
        ts: str | None = None,
        now: float | None = None,
    ) -> None:
        """Move an outbox row to ``state`` (``sending`` also counts an attempt)."""
        bump = 1 if state == "sending" else 0
        self.conn.execute(
            "UPDATE outbox SET state = ?, error = ?, ts = coalesce(?, ts), "
            "sent_at = coalesce(?, sent_at), attempts = attempts + ? WHERE id = ?",
            (state, error, ts, now, bump, outbox_id),
        )

    def outbox_interrupted(self) -> list[OutboxItem]:
        """Rows a previous process marked ``sending`` and never settled."""
        return [i for i in self.outbox_open(limit=1_000_000) if i.state == "sending"]

    def newer_update_pending(self, item_id: int, incident_id: str) -> bool:
        """True when a later parent update for the incident is queued (this one is stale)."""
        row = self.conn.execute(
            "SELECT 1 FROM outbox WHERE incident_id = ? AND kind = 'update' AND id > ? "
            "AND state = 'pending' LIMIT 1",
            (incident_id, item_id),
        ).fetchone()
        return row is not None

    def outbox_ts(self, outbox_id: int) -> str | None:
        """The Slack ts of a sent outbox row (what an ``edit`` row changes)."""
        row = self.conn.execute(
            "SELECT ts FROM outbox WHERE id = ? AND state = 'sent'", (outbox_id,)
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def outbox_depth(self) -> int:
        """How many Slack operations wait to be sent."""
        row = self.conn.execute(
            "SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')"
        ).fetchone()
        return int(row[0])

    def thread_of(self, incident_id: str) -> tuple[str, str] | None:
        """``(channel_id, ts)`` of an incident's parent message, once posted."""
        row = self.conn.execute(
            "SELECT channel, ts FROM slack_threads WHERE incident_id = ?", (incident_id,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def channel_id(self, channel: str) -> str | None:
        """The channel ID Slack returned for a configured channel name, once known."""
        row = self.conn.execute(
            "SELECT t.channel FROM slack_threads t JOIN incidents i ON i.id = t.incident_id "
            "WHERE i.channel = ? LIMIT 1",
            (channel,),
        ).fetchone()
        return str(row[0]) if row else None

    def record_thread(self, incident_id: str, channel: str, ts: str) -> None:
        """Remember ``(channel, ts)`` as the incident's thread parent (replacing any before).

        Joins the caller's transaction when there is one.
        """
        self.conn.execute(
            "INSERT OR REPLACE INTO slack_threads (incident_id, channel, ts) VALUES (?, ?, ?)",
            (incident_id, channel, ts),
        )

    def record_parent(self, outbox_id: int, incident_id: str, channel: str, ts: str) -> None:
        """Atomically mark a parent post sent and remember its thread."""
        with self.transaction():
            self.record_thread(incident_id, channel, ts)
            self.outbox_mark(outbox_id, "sent", ts=ts, now=time.time())

    # -- helpers -------------------------------------------------------------------------

    def _one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = self._all(sql, *args)
        return rows[0] if rows else None

    def _all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
