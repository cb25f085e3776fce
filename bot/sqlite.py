"""The SQLite plumbing the bot's databases share (:mod:`bot.store`, :mod:`rag.docstore`).

Files are opened in WAL mode with ``synchronous=FULL`` (every commit fsyncs the WAL: see
:mod:`bot.store` for why) and a 5 s busy timeout, in autocommit mode so that transactions
are explicit: :func:`transaction` is one ``BEGIN IMMEDIATE`` … ``COMMIT``. A
:class:`ThreadedSQLite` owns one connection and one worker thread; async callers run their
database work there through :meth:`ThreadedSQLite.call`, so the connection is never used by
two threads at once and the event loop never waits on disk.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from bot.errors import StoreError

T = TypeVar("T")


def open_wal(path: Path, build: Callable[[sqlite3.Connection], T]) -> T:
    """Open (creating if needed) the database file at ``path`` and ``build`` on it.

    Args:
        path: The database file; missing parent directories are created.
        build: Makes the caller's object from the connection (creating its tables).

    Raises:
        StoreError: when the file cannot be created or opened, or ``build`` fails with a
            SQLite or OS error.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        return build(conn)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc


def connect_memory() -> sqlite3.Connection:
    """An in-memory database, in autocommit mode like :func:`open_wal`'s (for tests)."""
    return sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` … ``COMMIT`` on ``conn`` (rolled back on error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class ThreadedSQLite:
    """One SQLite connection and the single worker thread that uses it.

    Args:
        conn: An autocommit connection (:func:`open_wal` or :func:`connect_memory`).
        thread_name: Prefix of the worker thread's name.
    """

    def __init__(self, conn: sqlite3.Connection, *, thread_name: str) -> None:
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the worker thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Finish queued work and close the connection."""
        self._executor.shutdown(wait=True)
        self.conn.close()

    def transaction(self) -> AbstractContextManager[None]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error)."""
        return transaction(self.conn)
