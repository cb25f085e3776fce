"""The audit log: hash chain, append-only triggers, and tamper detection by an attacker with
write access to the file (who drops the triggers first)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.remediate.audit import (
    COLUMNS,
    GENESIS,
    AuditLog,
    canonical_json,
    export_csv,
    records,
    verify_chain,
)
from bot.store import Store

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    yield s
    s.close()


@pytest.fixture
async def log(store: Store) -> AuditLog:
    audit = AuditLog(store)
    for i, event in enumerate(["proposed", "approval", "dry_run", "applied", "verified"]):
        await audit.append(
            event,
            action_id="act_1",
            incident_id="INC_1",
            actor="U0ALICE" if event == "approval" else "bot",
            command_hash="ab" * 32,
            details={"step": i, "output": "deployment.apps/cart restarted (server dry run)"},
            at=T0 + timedelta(seconds=i),
        )
    return audit


def attacker(store: Store) -> sqlite3.Connection:
    """Someone with the file: the append-only triggers are only SQL, so they go first."""
    store.conn.execute("DROP TRIGGER audit_no_update")
    store.conn.execute("DROP TRIGGER audit_no_delete")
    return store.conn


def rehash(fields: dict[str, object]) -> str:
    body = {k: fields[k] for k in COLUMNS if k != "hash"}
    return hashlib.sha256((str(body["prev_hash"]) + canonical_json(body)).encode()).hexdigest()


def row(conn: sqlite3.Connection, seq: int) -> dict[str, object]:
    values = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit WHERE seq = ?", (seq,))
    return dict(zip(COLUMNS, values.fetchone(), strict=True))


async def test_chain_links_every_record(log: AuditLog, store: Store) -> None:
    saved = records(store.conn)
    assert [r.seq for r in saved] == [1, 2, 3, 4, 5]
    assert saved[0].prev_hash == GENESIS
    for before, after in zip(saved, saved[1:], strict=False):
        assert after.prev_hash == before.hash
    for r in saved:  # the documented formula, recomputed independently
        assert rehash(row(store.conn, r.seq)) == r.hash
    assert saved[1].actor == "U0ALICE" and saved[2].details["step"] == 2
    assert saved[0].at == "2026-11-20T10:00:00.000000Z"
    report = verify_chain(store.conn)
    assert report.ok and report.records == 5 and report.head == saved[-1].hash
    assert (await log.verify()) == report
    assert [r.event for r in await log.for_action("act_1")][:2] == ["proposed", "approval"]


async def test_empty_log_verifies(store: Store) -> None:
    AuditLog(store)
    assert verify_chain(store.conn) == verify_chain(sqlite3.connect(":memory:"))
    assert verify_chain(store.conn).ok and verify_chain(store.conn).records == 0


async def test_unknown_event_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown audit event"):
        await AuditLog(store).append("deleted_everything")


async def test_update_and_delete_are_refused_by_the_database(log: AuditLog, store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("UPDATE audit SET actor = 'U0MALLORY' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("DELETE FROM audit WHERE seq = 5")
    assert verify_chain(store.conn).ok


async def test_edited_field_is_detected(log: AuditLog, store: Store) -> None:
    attacker(store).execute("UPDATE audit SET actor = 'U0MALLORY' WHERE seq = 2")
    report = verify_chain(store.conn)
    assert not report.ok and report.first_bad_seq == 2 and "edited" in report.problem
    assert report.records == 1


async def test_edited_details_are_detected(log: AuditLog, store: Store) -> None:
    attacker(store).execute("UPDATE audit SET details = '{\"step\":3}' WHERE seq = 4")
    report = verify_chain(store.conn)
    assert not report.ok and report.first_bad_seq == 4


async def test_deleted_row_is_detected(log: AuditLog, store: Store) -> None:
    attacker(store).execute("DELETE FROM audit WHERE seq = 3")
    report = verify_chain(store.conn)
    assert not report.ok and report.first_bad_seq == 4 and "deleted" in report.problem


async def test_deleted_first_row_is_detected(log: AuditLog, store: Store) -> None:
    attacker(store).execute("DELETE FROM audit WHERE seq = 1")
    report = verify_chain(store.conn)
    assert not report.ok and report.first_bad_seq == 2


async def test_truncated_tail_is_detected(log: AuditLog, store: Store) -> None:
    attacker(store).execute("DELETE FROM audit WHERE seq >= 4")
    report = verify_chain(store.conn)
    assert not report.ok and report.first_bad_seq == 4 and "truncated" in report.problem


async def test_deleted_and_renumbered_rows_are_detected(log: AuditLog, store: Store) -> None:
    conn = attacker(store)
    conn.execute("DELETE FROM audit WHERE seq = 3")
    conn.execute("UPDATE audit SET seq = seq - 1 WHERE seq > 3")
    conn.execute("UPDATE sqlite_sequence SET seq = 4 WHERE name = 'audit'")
    report = verify_chain(store.conn)
    assert not report.ok and report.first_bad_seq == 3


async def test_swapped_rows_are_detected(log: AuditLog, store: Store) -> None:
    conn = attacker(store)
    two, three = row(conn, 2), row(conn, 3)
    columns = [c for c in COLUMNS if c != "seq"]
    sets = ", ".join(f"{c} = ?" for c in columns)
    conn.execute(f"UPDATE audit SET {sets} WHERE seq = 2", [three[c] for c in columns])
    conn.execute(f"UPDATE audit SET {sets} WHERE seq = 3", [two[c] for c in columns])
    report = verify_chain(store.conn)
    assert not report.ok and report.first_bad_seq == 2


async def test_forged_hash_is_detected_at_the_next_link(log: AuditLog, store: Store) -> None:
    conn = attacker(store)
    forged = row(conn, 3)
    forged["actor"] = "U0MALLORY"
    conn.execute(
        "UPDATE audit SET actor = ?, hash = ? WHERE seq = 3", (forged["actor"], rehash(forged))
    )
    report = verify_chain(store.conn)
    assert not report.ok and report.first_bad_seq == 4 and "prev_hash" in report.problem


async def test_appends_from_two_connections_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    one, two = Store.open(path), Store.open(path)
    try:
        a, b = AuditLog(one), AuditLog(two)
        await asyncio.gather(
            *(log.append("dry_run", details={"n": i}) for i in range(20) for log in (a, b))
        )
        report = verify_chain(one.conn)
        assert report.ok and report.records == 40
    finally:
        one.close()
        two.close()


async def test_export_csv(log: AuditLog, store: Store) -> None:
    out = io.StringIO()
    assert export_csv(store.conn, out) == 5
    lines = out.getvalue().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 6
    assert lines[2].startswith("2,2026-11-20T10:00:01.000000Z,approval,act_1,INC_1,U0ALICE,")
    since = io.StringIO()
    assert export_csv(store.conn, since, T0 + timedelta(seconds=3)) == 2
    assert [ln.split(",")[2] for ln in since.getvalue().splitlines()[1:]] == [
        "applied",
        "verified",
    ]
