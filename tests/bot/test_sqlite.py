"""bot.sqlite: the WAL connection, transactions and the worker thread Store and DocStore share."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from bot.errors import StoreError
from bot.sqlite import ThreadedSQLite, connect_memory, open_wal, transaction


def test_open_wal_sets_the_durability_pragmas(tmp_path: Path) -> None:
    conn = open_wal(tmp_path / "sub" / "x.db", lambda c: c)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert conn.isolation_level is None  # transactions are explicit
    finally:
        conn.close()


def test_open_wal_reports_what_cannot_be_opened_or_built(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open"):
        open_wal(blocker / "x.db", lambda c: c)

    def broken(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("CREATE TABLE")  # a schema error while building
        finally:
            conn.close()

    with pytest.raises(StoreError, match="cannot open"):
        open_wal(tmp_path / "y.db", broken)


def test_transaction_commits_or_rolls_back() -> None:
    conn = connect_memory()
    conn.execute("CREATE TABLE t (x)")
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("abort")
    assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert not conn.in_transaction
    conn.close()


async def test_calls_run_on_one_named_worker_thread() -> None:
    db = ThreadedSQLite(connect_memory(), thread_name="probe")
    names = {await db.call(lambda: threading.current_thread().name) for _ in range(3)}
    assert len(names) == 1 and names.pop().startswith("probe")
    assert await db.call(lambda: db.conn.execute("SELECT 41 + 1").fetchone()[0]) == 42
    db.close()
    with pytest.raises(sqlite3.ProgrammingError):
        db.conn.execute("SELECT 1")
