"""Durable intake: webhook bodies are committed to SQLite before they are acknowledged.

Group commit: while one batch is being written and fsync'd, new bodies queue up; the next
batch takes them all in one transaction. Under load the fsync cost is shared by every
request in the batch; with one request at a time it is one fsync per request, as before.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bot.store import Store
from bot.webhook import body_digest


@dataclass(frozen=True)
class Accepted:
    """The outcome of :meth:`Inbox.accept`."""

    duplicate: bool


class Inbox:
    """Accepts raw webhook bodies and makes them durable, batching concurrent writers."""

    def __init__(self, store: Store, *, max_batch: int = 512) -> None:
        self._store = store
        self._max_batch = max_batch
        self._pending: list[tuple[str, str, float, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.arrived = asyncio.Event()  # set whenever new work was committed

    async def accept(self, body: bytes) -> Accepted:
        """Store ``body`` durably; return once it is committed.

        Raises:
            StoreError / sqlite3.Error: when the commit failed (the caller answers 5xx so
                Alertmanager retries).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        text = body.decode("utf-8")
        self._pending.append((body_digest(body), text, time.time(), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        fresh = await future
        return Accepted(duplicate=not fresh)

    async def _flush_loop(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: len(batch)]
            rows = [(digest, text, at) for digest, text, at, _ in batch]
            try:
                fresh = await self._store.call(self._store.inbox_add_many, rows)
            except Exception as exc:  # every waiter must hear about the failure
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_, future), is_new in zip(batch, fresh, strict=True):
                if not future.done():
                    future.set_result(is_new)
            if any(fresh):
                self.arrived.set()
