"""Wires the bot's services together and runs its background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.errors import ConfigError
from bot.inbox import Inbox
from bot.incidents import IncidentEngine
from bot.investigate import Investigator
from bot.kube import KubeReader, make_api_client
from bot.metrics import Metrics
from bot.outbox import SlackOutbox, make_client
from bot.pipeline import Pipeline
from bot.remediate.authz import GroupResolver

if TYPE_CHECKING:
    from bot.remediate.kube_write import KubeWriter
    from rag.memory import IncidentMemory
from bot.remediate.service import Remediation
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
        # Incident memory (FAISS + SQLite under data_dir/memory); opened by start().
        self.memory: IncidentMemory | None = make_memory(settings)
        self.pipeline.memory = self.memory
        self.pipeline.slack = self.slack
        self.pipeline.prometheus_url = settings.prometheus_url
        investigator = self.pipeline.investigator
        investigator.memory = self.memory
        investigator.similar_top = settings.similar_top
        investigator.similar_min_score = settings.similar_min_score
        self._writer: KubeWriter | None = None
        self.remediation = make_remediation(self)
        self.pipeline.remediation = self.remediation
        self._tasks: list[asyncio.Task[None]] = []
        self._warm_up: asyncio.Task[None] | None = None
        self._extra: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Open the incident memory; start the worker, the Slack outbox and remediation."""
        if self.memory is not None:
            try:
                await self.memory.aopen()
            except Exception:  # the bot works without memory; the thread will say so
                log.exception("incident memory unavailable")
                self.memory = self.pipeline.memory = self.pipeline.investigator.memory = None
        self._tasks = [
            asyncio.create_task(self.pipeline.run(), name="pipeline"),
            asyncio.create_task(self.outbox.run(), name="outbox"),
            asyncio.create_task(self.remediation.run(), name="remediation"),
        ]
        if self.memory is not None:
            # Load the embedding model now, not when the first incident is waiting for it.
            # Not one of the workers whose death /readyz reports: it ends by design.
            self._warm_up = asyncio.create_task(_warm(self.memory), name="memory-warm-up")
        for task in self._tasks:
            task.add_done_callback(_log_crash)

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run ``coro`` as an extra background task, cancelled by :meth:`stop`."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_log_crash)
        self._extra.append(task)

    def running(self) -> bool:
        """True while both background tasks are alive."""
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def stop(self) -> None:
        """Cancel background work and close the store and clients."""
        for extra in self._extra:
            extra.cancel()
        for extra in self._extra:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await extra
        self._extra = []
        if self._warm_up is not None:
            self._warm_up.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._warm_up
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.kube is not None:
            self.kube.close()
        if self._writer is not None:
            self._writer.close()
        await self.remediation.close()
        if self.memory is not None:
            await self.memory.aclose()
        if self._inbox_store is not self.store:
            self._inbox_store.close()
        self.store.close()


def make_memory(settings: Settings) -> IncidentMemory | None:
    """The incident memory the settings describe (the model itself loads lazily)."""
    from rag.embed import make_encoder
    from rag.memory import IncidentMemory

    try:
        encoder = make_encoder(settings.embed_model, settings.embed_backend)
    except ValueError as exc:
        raise ConfigError("INCIDENT_BOT_EMBED_MODEL", str(exc)) from None
    return IncidentMemory(settings.memory_dir, encoder, hybrid=True)


async def _warm(memory: IncidentMemory) -> None:
    try:
        await memory.asearch("warm-up: load the embedding model", top=1)
    except Exception:
        log.exception("warming up the embedding model failed")


def make_remediation(runtime: Runtime) -> Remediation:
    """The remediation flow: execution only with a remediation identity configured."""
    settings = runtime.settings
    executor = None
    if settings.remediation_mode != "none":
        from bot.remediate.executor import Executor
        from bot.remediate.kube_write import KubeWriter, remediation_api_client

        writer = KubeWriter(remediation_api_client(settings), timeout=settings.kube_timeout * 2)
        runtime._writer = writer
        executor = Executor(
            writer,
            verify_timeout=settings.verify_timeout,
            # A tenth of the budget, at most 2 s: short budgets (tests, demo) still poll often.
            poll_interval=min(2.0, settings.verify_timeout / 10),
            helm_binary=settings.helm_binary,
        )
    reviewer = None
    if settings.anthropic_api_key and settings.second_opinion:
        import anthropic

        from bot.remediate.second_opinion import SecondOpinion

        client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url,
            max_retries=2,
            timeout=30.0,
        )
        reviewer = SecondOpinion(client, model=settings.anthropic_model)
    return Remediation(
        store=runtime.store,
        policy=runtime.pipeline.investigator.policy,
        groups=GroupResolver(runtime.slack),
        kube=runtime.kube,
        executor=executor,
        reviewer=reviewer,
        on_queued=runtime.outbox.wake,
    )


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s died", task.get_name(), exc_info=task.exception())
