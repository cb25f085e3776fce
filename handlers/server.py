"""The aiohttp application: routes, start-up and shutdown of the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.config import Settings
from bot.runtime import Runtime
from handlers import alertmanager, health, slack

log = logging.getLogger(__name__)


def create_app(runtime: Runtime) -> web.Application:
    """The web application serving every route of the bot."""
    app = web.Application(client_max_size=runtime.settings.max_body_bytes + 1024)
    app[alertmanager.RUNTIME] = runtime
    app[slack.BOLT] = slack.build_bolt(runtime)
    alertmanager.register(app)
    health.register(app)
    slack.register(app)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    runtime = app[alertmanager.RUNTIME]
    await runtime.start()
    socket_handler = None
    if runtime.settings.socket_mode:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        socket_handler = AsyncSocketModeHandler(app[slack.BOLT], runtime.settings.slack_app_token)
        await socket_handler.connect_async()  # type: ignore[no-untyped-call]
    yield
    if socket_handler is not None:
        with contextlib.suppress(Exception):
            await socket_handler.close_async()  # type: ignore[no-untyped-call]
    await runtime.stop()


async def serve(settings: Settings) -> None:
    """Run the bot until cancelled (SIGINT/SIGTERM)."""
    runtime = Runtime(settings)
    runner = web.AppRunner(create_app(runtime), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    # Everything imported and built at start-up (aiohttp, Bolt, the kubernetes client, numpy,
    # FAISS, onnxruntime, policy tables …) lives as long as the process: move it out of the
    # cyclic GC's reach, so full collections stay short and don't stall the event loop.
    gc.collect()
    gc.freeze()
    host, port = runner.addresses[0][:2]
    # WARNING level so the line shows at any log level: tests and operators read the port here.
    log.warning("incident-bot listening on http://%s:%s", host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
