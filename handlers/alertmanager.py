"""``POST /alertmanager``: authenticate, bound, validate, persist, then 2xx.

Alertmanager retries 5xx and timeouts forever and never retries a 4xx, so 4xx is only for
input that can never succeed (bad token, too large, invalid), and a storage failure is 503.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot.errors import PayloadError
from bot.runtime import Runtime
from bot.webhook import parse_webhook

log = logging.getLogger(__name__)
RUNTIME = web.AppKey("runtime", Runtime)


def register(app: web.Application) -> None:
    """Add the route to ``app`` (which must hold the runtime under :data:`RUNTIME`)."""
    app.router.add_post("/alertmanager", receive)


def _error(status: int, error: str, **extra: str) -> web.Response:
    return web.json_response({"status": "error", "error": error, **extra}, status=status)


async def receive(request: web.Request) -> web.Response:
    """Handle one webhook delivery."""
    runtime = request.app[RUNTIME]
    settings = runtime.settings
    webhooks = runtime.metrics.webhooks
    supplied = request.headers.get("Authorization", "").encode()
    expected = f"Bearer {settings.webhook_token}".encode()
    if not hmac.compare_digest(supplied, expected):
        webhooks.labels(outcome="unauthorized").inc()
        response = _error(401, "unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="incident-bot"'
        return response
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        webhooks.labels(outcome="too_large").inc()
        return _error(413, f"body larger than {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        webhooks.labels(outcome="too_large").inc()
        return _error(413, f"body larger than {limit} bytes")
    try:
        body.decode("utf-8")
        payload = parse_webhook(body)
    except UnicodeDecodeError:
        webhooks.labels(outcome="invalid").inc()
        return _error(400, "invalid payload", field="body", message="not UTF-8")
    except PayloadError as exc:
        webhooks.labels(outcome="invalid").inc()
        return _error(400, "invalid payload", field=exc.field, message=exc.problem)
    try:
        accepted = await runtime.inbox.accept(body)
    except Exception:
        log.exception("could not store a webhook")
        webhooks.labels(outcome="error").inc()
        return _error(503, "could not store the notification; retry")
    if accepted.duplicate:
        webhooks.labels(outcome="duplicate").inc()
        return web.json_response({"status": "duplicate"})
    webhooks.labels(outcome="accepted").inc()
    runtime.metrics.alerts_received.inc(len(payload.alerts))
    return web.json_response({"status": "accepted", "alerts": len(payload.alerts)})
