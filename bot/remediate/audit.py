"""The remediation audit log: append-only, hash-chained, in the bot's SQLite database.

Every record names an event (``proposed``, ``approval``, ``applied`` …), the action and
incident it is about, who did it, the command hash the approver saw and a JSON ``details``
object (reason, dry-run output, result, duration …).

Each record carries ``prev_hash`` (the previous record's ``hash``; 64 zeros for the first)
and ``hash = sha256(prev_hash + canonical JSON of the record without "hash")``, where the
canonical JSON has sorted keys, no spaces, and ``details`` as its stored JSON text. Triggers
make the table append-only at the database level (UPDATE and DELETE abort);
:func:`verify_chain` detects what someone with write access to the file could still do —
edit, delete, reorder or re-hash records. Rewriting the *whole* chain after a point is only
detectable against a head hash kept elsewhere: ``incident-bot audit verify`` prints it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.store import Store

GENESIS = "0" * 64
EVENTS = frozenset(
    {
        "proposed",
        "second_opinion",
        "approval",
        "unauthorized_click",
        "refused",  # an authorized click refused: the hash or the policy in force changed
        "rejected",
        "expired",
        "cancelled",
        "dry_run",
        "snapshot",
        "applied",
        "verified",
        "rolled_back",
        "failed",
        "executed",
    }
)
COLUMNS = (
    "seq",
    "at",
    "event",
    "action_id",
    "incident_id",
    "actor",
    "command_hash",
    "details",
    "prev_hash",
    "hash",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- AUTOINCREMENT: sqlite_sequence remembers the tail
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    action_id TEXT,
    incident_id TEXT,
    actor TEXT,
    command_hash TEXT,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_action ON audit(action_id, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the ``audit`` table and its append-only triggers when missing."""
    conn.executescript(SCHEMA)


def rfc3339(moment: datetime) -> str:
    """A fixed-width UTC RFC 3339 time (microseconds), so text order is time order.

    Raises:
        ValueError: ``moment`` has no time zone.
    """
    if moment.tzinfo is None:
        raise ValueError(f"a time zone is required: {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time (``Z`` or an offset) into an aware UTC datetime.

    Raises:
        ValueError: not RFC 3339 or no UTC offset.
    """
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"a UTC offset is required: {text!r}")
    return moment.astimezone(UTC)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the one serialisation that gets hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class AuditRecord:
    """One stored audit record."""

    seq: int
    at: str
    event: str
    action_id: str | None
    incident_id: str | None
    actor: str | None
    command_hash: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_chain` found.

    ``first_bad_seq`` is the first record that fails (``None`` when ``ok``); ``problem`` says
    why in one line; ``head`` is the hash of the last record (``None`` for an empty log).
    """

    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str = ""
    head: str | None = None


def record_hash(fields: Mapping[str, Any]) -> str:
    """The hash of a record given its columns (``hash`` itself is ignored)."""
    body = {k: fields[k] for k in COLUMNS if k != "hash"}
    return hashlib.sha256((body["prev_hash"] + canonical_json(body)).encode()).hexdigest()


def append_record(
    conn: sqlite3.Connection,
    event: str,
    *,
    at: datetime,
    action_id: str | None = None,
    incident_id: str | None = None,
    actor: str | None = None,
    command_hash: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """Append one record. Call inside a write transaction (``BEGIN IMMEDIATE``).

    The write lock of that transaction is what keeps the chain linear when two processes
    append at once. :class:`bot.remediate.approvals.ActionBook` calls this inside the
    transaction that changes an action, so a decision and its record commit together.

    Raises:
        ValueError: ``event`` is not one of :data:`EVENTS`.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    fields: dict[str, Any] = {
        "seq": (last[0] + 1) if last else 1,
        "at": rfc3339(at),
        "event": event,
        "action_id": action_id,
        "incident_id": incident_id,
        "actor": actor,
        "command_hash": command_hash,
        "details": canonical_json(dict(details or {})),
        "prev_hash": last[1] if last else GENESIS,
    }
    fields["hash"] = record_hash(fields)
    conn.execute(
        f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})",
        tuple(fields[c] for c in COLUMNS),
    )
    return _record(fields)


class AuditLog:
    """The audit log of one :class:`~bot.store.Store` (same database, same thread).

    Construct it at start-up, like the store: the constructor creates the table.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        ensure_schema(store.conn)

    async def append(
        self,
        event: str,
        *,
        action_id: str | None = None,
        incident_id: str | None = None,
        actor: str | None = None,
        command_hash: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditRecord:
        """Append one record in its own transaction; ``at`` defaults to now (UTC).

        Raises:
            ValueError: unknown ``event``.
        """
        moment = at if at is not None else datetime.now(UTC)

        def run() -> AuditRecord:
            with self.store.transaction():
                return append_record(
                    self.store.conn,
                    event,
                    at=moment,
                    action_id=action_id,
                    incident_id=incident_id,
                    actor=actor,
                    command_hash=command_hash,
                    details=details,
                )

        return await self.store.call(run)

    async def for_action(self, action_id: str) -> list[AuditRecord]:
        """Every record about one action, oldest first."""
        return await self.store.call(records, self.store.conn, action_id=action_id)

    async def verify(self) -> VerifyReport:
        """:func:`verify_chain` on the store's connection."""
        return await self.store.call(verify_chain, self.store.conn)


def records(
    conn: sqlite3.Connection, *, action_id: str | None = None, since: datetime | None = None
) -> list[AuditRecord]:
    """Stored records in ``seq`` order, optionally for one action or from a time on."""
    where, args = _filters(action_id, since)
    rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit{where} ORDER BY seq", args)
    return [_record(dict(zip(COLUMNS, row, strict=True))) for row in rows]


def verify_chain(conn: sqlite3.Connection) -> VerifyReport:
    """Walk the chain from the first record and report the first one that does not hold.

    Detects an edited record (its hash no longer matches), a deleted one (a gap in ``seq``,
    a broken link, or a tail shorter than ``sqlite_sequence`` remembers), reordered records
    (``seq`` is hashed, and each link names its predecessor) and a forged hash (the next
    record's ``prev_hash`` no longer matches). Read-only: works on a ``mode=ro`` connection.
    """
    if not _has_table(conn, "audit"):
        return VerifyReport(ok=True, records=0)
    count = 0
    prev = GENESIS
    expected_seq = 1
    for row in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq"):
        fields = dict(zip(COLUMNS, row, strict=True))
        seq = fields["seq"]
        problem = _check(fields, expected_seq, prev)
        if problem:
            return VerifyReport(False, count, seq, problem, prev if count else None)
        count += 1
        prev = fields["hash"]
        expected_seq = seq + 1
    remembered = None
    if _has_table(conn, "sqlite_sequence"):
        query = "SELECT seq FROM sqlite_sequence WHERE name = 'audit'"
        remembered = conn.execute(query).fetchone()
    if remembered and remembered[0] >= expected_seq:
        problem = (
            f"records {expected_seq}..{remembered[0]} are missing: the log was truncated "
            f"(sqlite_sequence remembers seq {remembered[0]})"
        )
        return VerifyReport(False, count, expected_seq, problem, prev if count else None)
    return VerifyReport(True, count, head=prev if count else None)


def export_csv(conn: sqlite3.Connection, out: TextIO, since: datetime | None = None) -> int:
    """Write the log as CSV (header row, then one row per record); returns the row count.

    Args:
        conn: a connection to the bot's database (read-only is enough).
        out: where to write; open files with ``newline=""``.
        since: only records at or after this time.
    """
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    if not _has_table(conn, "audit"):
        return 0
    where, args = _filters(None, since)
    count = 0
    for row in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit{where} ORDER BY seq", args):
        writer.writerow(row)
        count += 1
    return count


def _check(fields: Mapping[str, Any], expected_seq: int, prev: str) -> str:
    """Why this record breaks the chain, or ``""``."""
    seq = fields["seq"]
    if seq != expected_seq:
        return f"expected seq {expected_seq}, found {seq}: records were deleted"
    if fields["prev_hash"] != prev:
        link = "the genesis hash" if seq == 1 else f"the hash of record {seq - 1}"
        return f"prev_hash does not match {link}: records were deleted, reordered or re-hashed"
    try:
        computed = record_hash(fields)
    except (TypeError, KeyError) as exc:  # a column set to an unhashable value by hand
        return f"record cannot be hashed: {exc}"
    if computed != fields["hash"]:
        return "hash does not match the record's contents: the record was edited"
    return ""


def _filters(action_id: str | None, since: datetime | None) -> tuple[str, tuple[Any, ...]]:
    clauses, args = [], []
    if action_id is not None:
        clauses.append("action_id = ?")
        args.append(action_id)
    if since is not None:
        clauses.append("at >= ?")
        args.append(rfc3339(since))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row.fetchone() is not None


def _record(fields: Mapping[str, Any]) -> AuditRecord:
    details = json.loads(fields["details"]) if fields["details"] else {}
    return AuditRecord(
        seq=fields["seq"],
        at=fields["at"],
        event=fields["event"],
        action_id=fields["action_id"],
        incident_id=fields["incident_id"],
        actor=fields["actor"],
        command_hash=fields["command_hash"],
        details=details if isinstance(details, dict) else {"value": details},
        prev_hash=fields["prev_hash"],
        hash=fields["hash"],
    )
