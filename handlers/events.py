"""Events API listeners: ``app_mention`` and ``app_home_opened``.

Bolt acknowledges an event as soon as it arrives (Slack wants 200 within 3 s); the
listener then works in the background.

A mention *inside an incident thread* (its ``thread_ts`` is an incident's parent message)
is a question about that incident: the answer — with the RCA summary, top evidence and
similar incidents — goes to the thread through the outbox (:mod:`bot.ask`). A mention
anywhere else behaves like ``/rca``: an object reference in the text starts an on-demand
RCA whose thread is the mention's thread; other text gets the free-question answer as a
thread reply. A mention Slack delivers twice is answered once.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.ask import Answerer, answer_message, load_context
from bot.messages import Payload, reply
from bot.ondemand import Request, find_target
from bot.overview import incident_by_thread
from bot.runtime import Runtime
from bot.store import Store
from handlers import home
from handlers.commands_incidents import ondemand_for, question_answer

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
DEFAULT_QUESTION = "What is the root cause, and what should we do?"


def register(bolt: AsyncApp, runtime: Runtime) -> None:
    """Add the event listeners to ``bolt``."""
    seen = _Seen()
    refresher = home.HomeRefresher(runtime)

    async def app_mention(event: dict[str, Any], client: AsyncWebClient) -> None:
        key = f"{event.get('channel')}|{event.get('ts')}"
        if not seen.first(key):
            return
        await handle_mention(runtime, client, event)

    async def app_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        user_id = str(event["user"])
        await home.publish(runtime, client, user_id)
        refresher.opened(user_id)
        if not refresher.started:  # refreshed on change from now on
            refresher.started = True
            runtime.spawn(refresher.run(client), name="home-refresh")

    bolt.event("app_mention")(app_mention)
    bolt.event("app_home_opened")(app_home_opened)


def question_of(text: str) -> str:
    """The mention's text without the ``<@…>`` mentions."""
    return " ".join(_MENTION.sub(" ", text).split())


async def handle_mention(runtime: Runtime, client: AsyncWebClient, event: dict[str, Any]) -> None:
    """Answer one ``app_mention`` event (see the module docstring)."""
    channel = str(event.get("channel") or "")
    ts = str(event.get("ts") or "")
    user = str(event.get("user") or "")
    thread_ts = event.get("thread_ts")
    question = question_of(str(event.get("text") or ""))
    store = runtime.store
    if thread_ts:
        incident = await store.call(incident_by_thread, store, channel, str(thread_ts))
        if incident is not None:
            await answer_in_thread(runtime, incident, question or DEFAULT_QUESTION, user)
            return
    root = str(thread_ts or ts)
    target = find_target(question)
    if target is not None:
        await ondemand_for(runtime).run(
            Request(target, user, channel, thread_ts=root, key=f"mention-{ts}")
        )
        return
    if question:
        payload = await question_answer(runtime, question)
    else:
        payload = _help()
    await client.chat_postMessage(
        channel=channel, thread_ts=root, text=payload["text"], blocks=payload["blocks"]
    )


async def answer_in_thread(
    runtime: Runtime, incident: dict[str, Any], question: str, user: str
) -> None:
    """Answer a question about ``incident`` in its thread, through the outbox."""
    context = await load_context(incident, runtime.memory)
    answerer = Answerer.from_settings(
        runtime.settings, claude=runtime.pipeline.investigator.claude is not None
    )
    answer = await answerer.answer(context, question)
    payload = answer_message(context, answer, user)
    store = runtime.store
    await store.call(_queue_reply, store, incident, payload)
    runtime.outbox.wake()


def _queue_reply(store: Store, incident: dict[str, Any], payload: Payload) -> None:
    with store.transaction():
        store.enqueue(incident["id"], incident["channel"], "reply", payload, time.time())


def _help() -> Payload:
    text = (
        "Mention me with an object to investigate it now (`@incident-bot shop/Deployment/cart`), "
        "with a question about incidents, or in an incident thread to ask about that incident."
    )
    return reply(text)


class _Seen:
    """Remembers the last ``size`` keys: Slack may deliver an event more than once."""

    def __init__(self, size: int = 1000) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first(self, key: str) -> bool:
        """True the first time ``key`` is offered."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return True
