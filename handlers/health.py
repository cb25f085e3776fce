"""``/healthz`` (process up), ``/readyz`` (store writable, workers alive), ``/metrics``."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from handlers.alertmanager import RUNTIME

log = logging.getLogger(__name__)


def register(app: web.Application) -> None:
    """Add the three routes."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def healthz(request: web.Request) -> web.Response:
    """The process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the store takes writes and the background workers run."""
    runtime = request.app[RUNTIME]
    checks = {
        "store_writable": await runtime.store.call(runtime.store.writable),
        "workers_alive": runtime.running() and runtime.pipeline.alive(),
    }
    status = 200 if all(checks.values()) else 503
    return web.json_response({"ready": status == 200, "checks": checks}, status=status)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    runtime = request.app[RUNTIME]
    store = runtime.store
    runtime.metrics.inbox_depth.set(await store.call(store.inbox_depth))
    runtime.metrics.outbox_depth.set(await store.call(store.outbox_depth))
    memory = runtime.memory
    if memory is not None:
        try:
            stats = await memory.docs.call(memory.learning)
            documents = await memory.docs.call(memory.docs.count)
            runtime.metrics.set_learning(stats.to_dict(), documents)
        except Exception:  # a scrape must not fail because the memory did
            log.exception("learning metrics unavailable")
    body = generate_latest(runtime.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
