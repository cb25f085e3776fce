"""Delivers queued Slack operations in order, at most one post per second per channel.

Exactly-once delivery across crashes: a row is marked ``sending`` (committed) before the
Web API call and ``sent`` after it; every posted message carries Slack message metadata
naming its outbox row. On start, rows left in ``sending`` are looked up in the channel (or
thread) history by that metadata: found → marked sent, not found → posted. A crash between
deciding and posting therefore neither loses nor doubles a message.

Retries: ``slack_sdk.http_retry`` handlers retry 429 (honouring ``Retry-After``), 5xx and
connection errors inside one call; a call that still fails transiently keeps its row pending
and the channel's lane backs off, so later messages never overtake it. Permanent errors
(``invalid_blocks``, ``channel_not_found`` …) mark the row failed and are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import Metrics
from bot.store import OutboxItem, Store

log = logging.getLogger(__name__)

META_TYPE = "incident_bot_outbox"
TRANSIENT_ERRORS = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
}


_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


def retry_handlers() -> list[AsyncRetryHandler]:
    """The retry policy every Web API client of the bot uses."""
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
        AsyncServerErrorRetryHandler(max_retry_count=2),
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
    ]


def make_client(token: str, base_url: str) -> AsyncWebClient:
    """An ``AsyncWebClient`` with the bot's retry policy."""
    return AsyncWebClient(token=token, base_url=base_url, retry_handlers=retry_handlers())


class SlackOutbox:
    """Sends outbox rows: one lane (task) per channel, rows in id order."""

    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        metrics: Metrics,
        *,
        min_interval: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self._store = store
        self._client = client
        self._metrics = metrics
        self._min_interval = min_interval
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._lanes: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._last_post: dict[str, float] = {}

    def wake(self) -> None:
        """New rows were committed: look for them."""
        self._wake.set()

    async def run(self) -> None:
        """Recover interrupted sends, then deliver forever (cancel to stop)."""
        await self._recover()
        try:
            while True:
                self._wake.clear()
                for channel in await self._store.call(self._store.outbox_channels):
                    self._lane_event(channel).set()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # lands as the event fires (CPython gh-86296), and shutdown would hang.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):
                        await self._wake.wait()
        finally:
            for task, _ in self._lanes.values():
                task.cancel()
            await asyncio.gather(*(t for t, _ in self._lanes.values()), return_exceptions=True)

    def _lane_event(self, channel: str) -> asyncio.Event:
        lane = self._lanes.get(channel)
        if lane is None or lane[0].done():
            event = asyncio.Event()
            lane = (asyncio.create_task(self._lane(channel, event)), event)
            self._lanes[channel] = lane
        return lane[1]

    async def _lane(self, channel: str, event: asyncio.Event) -> None:
        backoff = 1.0
        while True:
            event.clear()
            items = await self._store.call(self._store.outbox_open, channel, limit=50)
            if not items:
                await event.wait()
                continue
            for item in items:
                if not await self._deliver(item):
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    break
                backoff = 1.0

    async def _deliver(self, item: OutboxItem) -> bool:
        """Send one row. False when it failed transiently and must be retried."""
        store = self._store
        thread = await store.call(store.thread_of, item.incident_id)
        if item.kind != "parent" and thread is None:
            await store.call(store.outbox_mark, item.id, "failed", error="parent message missing")
            return True
        if item.kind == "edit":
            edit_ts = await store.call(store.outbox_ts, int(item.payload.get("edit_of", 0)))
            if edit_ts is None:
                await store.call(store.outbox_mark, item.id, "failed", error="original missing")
                return True
            assert thread is not None
            thread = (thread[0], edit_ts)
        if item.kind == "update" and await store.call(
            store.newer_update_pending, item.id, item.incident_id
        ):
            # Only the latest state of the parent matters: skip stale updates.
            await store.call(store.outbox_mark, item.id, "sent", error="superseded")
            return True
        await self._pace(item.channel)
        await store.call(store.outbox_mark, item.id, "sending")
        method = "chat.update" if item.kind in ("update", "edit") else "chat.postMessage"
        try:
            response = await self._call(item, thread)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or exc.response.status_code)
            self._metrics.slack_errors.labels(method=method, error=error).inc()
            if (
                exc.response.status_code == 429
                or exc.response.status_code >= 500
                or error in TRANSIENT_ERRORS
            ):
                await store.call(store.outbox_mark, item.id, "pending", error=error)
                return False
            log.error("slack %s for incident %s failed: %s", method, item.incident_id, error)
            await store.call(store.outbox_mark, item.id, "failed", error=error)
            return True
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = type(exc).__name__
            self._metrics.slack_errors.labels(method=method, error=error).inc()
            await store.call(store.outbox_mark, item.id, "pending", error=error)
            return False
        ts = str(response.get("ts") or "")
        if item.kind == "parent":
            await store.call(
                store.record_parent, item.id, item.incident_id, str(response["channel"]), ts
            )
            incident = await store.call(store.get_incident, item.incident_id)
            if incident is not None:
                self._metrics.slack_latency.observe(max(0.0, time.time() - incident["received_at"]))
        else:
            await store.call(store.outbox_mark, item.id, "sent", ts=ts, now=time.time())
        return True

    async def _call(self, item: OutboxItem, thread: tuple[str, str] | None) -> Any:
        payload = item.payload
        metadata = {
            "event_type": META_TYPE,
            "event_payload": {"outbox_id": item.id, "incident_id": item.incident_id},
        }
        if item.kind in ("update", "edit"):
            assert thread is not None
            return await self._client.chat_update(
                channel=thread[0], ts=thread[1], text=payload["text"], blocks=payload["blocks"]
            )
        return await self._client.chat_postMessage(
            channel=thread[0] if thread else item.channel,
            thread_ts=thread[1] if thread else None,
            text=payload["text"],
            blocks=payload["blocks"],
            metadata=metadata,
            unfurl_links=False,
            unfurl_media=False,
        )

    async def _pace(self, channel: str) -> None:
        wait = self._last_post.get(channel, 0.0) + self._min_interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_post[channel] = time.monotonic()

    async def _recover(self) -> None:
        """Settle rows a previous process left in ``sending``."""
        store = self._store
        for item in await store.call(store.outbox_interrupted):
            if item.kind in ("update", "edit"):
                continue  # updates are idempotent: simply sent again
            try:
                found = await self._find_posted(item)
            except (SlackApiError, aiohttp.ClientError, OSError) as exc:
                log.warning("cannot check whether outbox %s was posted: %s", item.id, exc)
                found = None
            if found is None:
                await store.call(store.outbox_mark, item.id, "pending")
            elif item.kind == "parent":
                await store.call(store.record_parent, item.id, item.incident_id, found[0], found[1])
            else:
                await store.call(store.outbox_mark, item.id, "sent", ts=found[1], now=time.time())

    async def _resolve_channel(self, channel: str) -> str:
        """A channel ID for a configured channel (IDs pass through; names are looked up)."""
        if _CHANNEL_ID.match(channel):
            return channel
        name = channel.lstrip("#")
        cursor = None
        while True:
            page = await self._client.conversations_list(
                types="public_channel,private_channel", limit=200, cursor=cursor
            )
            for found in page.get("channels") or []:
                if found.get("name") == name:
                    return str(found["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return channel

    async def _find_posted(self, item: OutboxItem) -> tuple[str, str] | None:
        """``(channel_id, ts)`` of the message posted for ``item``, if Slack has it."""
        store = self._store
        thread = await store.call(store.thread_of, item.incident_id)
        if item.kind == "parent":
            channel = await store.call(store.channel_id, item.channel)
            channel = channel or await self._resolve_channel(item.channel)
            response = await self._client.conversations_history(
                channel=channel,
                oldest=f"{item.created_at - 60:.6f}",
                include_all_metadata=True,
                limit=200,
            )
        else:
            assert thread is not None
            channel = thread[0]
            response = await self._client.conversations_replies(
                channel=channel, ts=thread[1], include_all_metadata=True, limit=200
            )
        for message in response.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == META_TYPE and payload.get("outbox_id") == item.id:
                return channel, str(message["ts"])
        return None
