"""Slack: the Bolt ``AsyncApp`` on ``POST /slack/events`` (HTTP mode) or Socket Mode.

Bolt verifies the request signature; listeners are registered by the modules of this
package (``register(bolt, runtime)``) as features land.
"""

from __future__ import annotations

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.runtime import Runtime
from handlers import commands, commands_incidents, feedback, interactions, silence_actions
from handlers import events as app_events

BOLT = web.AppKey("bolt", AsyncApp)


def build_bolt(runtime: Runtime) -> AsyncApp:
    """The Bolt app, sharing the runtime's Web API client (and its retry policy)."""
    settings = runtime.settings
    bolt = AsyncApp(
        client=runtime.slack,
        signing_secret=settings.slack_signing_secret or None,
        # Socket Mode requests are not signed; HTTP requests always are.
        request_verification_enabled=not settings.socket_mode,
        process_before_response=False,
    )
    commands.register(bolt, runtime)
    commands_incidents.register(bolt, runtime)
    app_events.register(bolt, runtime)
    interactions.register(bolt, runtime)
    silence_actions.register(bolt, runtime)
    feedback.register(bolt, runtime)
    return bolt


def register(app: web.Application) -> None:
    """Mount ``POST /slack/events`` (events, commands, interactions share the URL)."""
    app.router.add_post("/slack/events", events)


async def events(request: web.Request) -> web.Response:
    """Hand the request to Bolt and translate its answer."""
    bolt = request.app[BOLT]
    bolt_response = await bolt.async_dispatch(await to_bolt_request(request))
    return await to_aiohttp_response(bolt_response)
