"""Wires the bot's services together and runs its background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.inbox import Inbox
from bot.incidents import IncidentEngine
from bot.investigate import Investigator
from bot.kube import KubeReader, make_api_client
from bot.metrics import Metrics
from bot.outbox import SlackOutbox, make_client
from bot.pipeline import Pipeline
from bot.store import Store
from bot.targets import WorkloadResolver

log = logging.getLogger(__name__)


class Runtime:
    """Every long-lived object of a running bot. Dependencies may be injected (tests)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        slack: AsyncWebClient | None = None,
        kube: KubeReader | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or Store.open(settings.db_path)
        self.metrics = metrics or Metrics()
        self.slack = slack or make_client(settings.slack_bot_token, settings.slack_api_url)
        if kube is None:
            api = make_api_client(settings)
            kube = KubeReader(api, timeout=settings.kube_timeout) if api else None
        self.kube = kube
        # The inbox writes through its own connection and thread: a webhook's commit then
        # waits only for SQLite's write lock, not behind the worker's queued store calls.
        self._inbox_store = Store.open(settings.db_path) if store is None else self.store
        self.inbox = Inbox(self._inbox_store)
        self.outbox = SlackOutbox(
            self.store, self.slack, self.metrics, min_interval=settings.slack_min_interval
        )
        self.pipeline = Pipeline(
            store=self.store,
            inbox=self.inbox,
            engine=IncidentEngine(self.store, settings),
            resolver=WorkloadResolver(kube),
            investigator=Investigator.from_settings(settings, kube),
            metrics=self.metrics,
            on_queued=self.outbox.wake,
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the worker and the Slack outbox."""
        self._tasks = [
            asyncio.create_task(self.pipeline.run(), name="pipeline"),
            asyncio.create_task(self.outbox.run(), name="outbox"),
        ]
        for task in self._tasks:
            task.add_done_callback(_log_crash)

    def running(self) -> bool:
        """True while both background tasks are alive."""
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def stop(self) -> None:
        """Cancel background work and close the store and clients."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.kube is not None:
            self.kube.close()
        if self._inbox_store is not self.store:
            self._inbox_store.close()
        self.store.close()


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s died", task.get_name(), exc_info=task.exception())
