"""Kubernetes reads that never raise: a failed read becomes a ``missing`` line.

:class:`Reads` wraps a :class:`~bot.kube.KubeReader` for one collection. Every read names
what it was for (``events of shop/Pod/x``), so a failure reads as ``kubernetes: events of
shop/Pod/x: 500 …`` in the bundle, and the caller simply gets None or an empty list and
carries on with what it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from bot.errors import KubeError
from bot.kube import KubeReader
from bot.rca.bundle import Bundle, KubeObject
from bot.targets import ObjectRef

T = TypeVar("T")

# The log endpoint applies limitBytes from the *start* of the tail, so a limit below the
# tail's size cuts off the newest lines (the crash). The server-side limit is therefore only a
# memory guard, far above what ``tailLines`` of ordinary logs make; the kept size is trimmed
# from the front here.
LOG_FETCH_BYTES = 512 * 1024
# 400 answers that only mean "there is no such log": no previous instance, not started yet.
_NO_LOG = ("previous terminated container", "waiting to start", "does not have a host assigned")


class Reads:
    """The reads of one collection, recording failures in ``bundle.missing``.

    Args:
        kube: The read-only API reader.
        bundle: Receives found objects (``objects``) and failures (``missing``).
        log_tail_lines: Lines of each container log to read.
        log_bytes: Bytes of each container log to keep (the newest).

    Attributes:
        events: Every event read so far, unfiltered (the caller filters the window).
    """

    def __init__(
        self, kube: KubeReader, bundle: Bundle, *, log_tail_lines: int, log_bytes: int
    ) -> None:
        self.kube = kube
        self.bundle = bundle
        self.events: list[KubeObject] = []
        self._events_read: set[ObjectRef] = set()
        self._log_tail_lines = log_tail_lines
        self._log_bytes = log_bytes

    async def attempt(self, what: str, call: Awaitable[T]) -> T | None:
        """``await call``; on an API error, a missing line naming ``what`` and None."""
        try:
            return await call
        except KubeError as exc:
            self.bundle.missing.append(f"kubernetes: {what}: {exc.problem}")
            return None

    async def get(self, ref: ObjectRef) -> KubeObject | None:
        """One object, stored in the bundle when it exists; a 404 stores nothing.

        An object already in the bundle is not read again.
        """
        if ref in self.bundle.objects:
            return self.bundle.objects[ref]
        call = self.kube.get(ref.kind, ref.namespace or None, ref.name)
        obj = await self.attempt(str(ref), call)
        if obj is not None:
            self.bundle.objects[ref] = obj
        return obj

    async def listing(
        self,
        what: str,
        kind: str,
        namespace: str | None,
        *,
        labels: str | None = None,
        fields: str | None = None,
        limit: int | None = None,
    ) -> list[KubeObject]:
        """Objects of ``kind`` in ``namespace`` (all namespaces for None or ""); [] on error."""
        call = self.kube.list_objects(
            kind, namespace or None, label_selector=labels, field_selector=fields, limit=limit
        )
        return await self.attempt(what, call) or []

    async def events_of(self, refs: Iterable[ObjectRef]) -> None:
        """Read the events of each object (once per object) into :attr:`events`."""
        todo = [ref for ref in dict.fromkeys(refs) if ref not in self._events_read]
        self._events_read.update(todo)
        batches = await asyncio.gather(
            *(
                self.listing(
                    f"events of {ref}",
                    "Event",
                    # The API keeps a Node's events in "default"; search every namespace.
                    ref.namespace or None,
                    fields=f"involvedObject.name={ref.name},involvedObject.kind={ref.kind}",
                )
                for ref in todo
            )
        )
        for batch in batches:
            self.events.extend(batch)

    async def log(self, pod: ObjectRef, container: str, *, previous: bool) -> str:
        """The newest part of a container's log; "" when it has none (or the read failed)."""
        try:
            text = await self.kube.logs(
                pod.namespace,
                pod.name,
                container,
                previous=previous,
                tail_lines=self._log_tail_lines,
                limit_bytes=max(LOG_FETCH_BYTES, self._log_bytes),
            )
        except KubeError as exc:
            if exc.status == 400 and any(hint in exc.problem for hint in _NO_LOG):
                return ""
            which = "previous logs" if previous else "logs"
            self.bundle.missing.append(f"kubernetes: {which} of {pod}/{container}: {exc.problem}")
            return ""
        return newest_bytes(text, self._log_bytes)


def newest_bytes(text: str, limit: int) -> str:
    """The last ``limit`` bytes of a log, starting at a line boundary when one is near."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    kept = data[-limit:].decode("utf-8", "ignore")  # drops a split multi-byte character
    newline = kept.find("\n")
    return kept[newline + 1 :] if 0 <= newline < len(kept) - 1 else kept
