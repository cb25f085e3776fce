"""Silence buttons on an incident's parent message: "Silence 1h / 4h / 24h", "Expire silence".

Who may silence: **any member of the incident's channel**. Seeing the parent message (and so
its buttons) already means being in that channel, Bolt has verified that Slack signed the
click, and a silence is reversible and bounded (24 h at most from these buttons); Alertmanager
records who did it (``createdBy`` ``"alice (U0ALICE) via incident-bot"``) and the thread
says so. The checks here are that the click comes from the incident's own parent message
(same channel and message), that the incident still fires and is not silenced already, and
for expiry that the silence is one the bot created for that incident.

A click creates the silence through Alertmanager's API v2 (at ``INCIDENT_BOT_ALERTMANAGER_URL``,
else the ``externalURL`` the incident's webhook carried) with
:func:`bot.silences.matchers_for_incident` of the incident's first alert, then, in one store
transaction, records it (:mod:`bot.silence_store`), queues the parent message's update and a
thread reply. Alertmanager's refusal reaches the clicker as an ephemeral message with its own
words; nothing is recorded then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.incidents import parent_payload
from bot.runtime import Runtime
from bot.silence_store import (
    IncidentSilence,
    active_silence,
    get_silence,
    mark_expired,
    record_silence,
)
from bot.silences import (
    DURATIONS,
    SilenceClient,
    SilenceError,
    matchers_for_incident,
    parse_duration,
    silence_creator,
)
from bot.store import Store

# The ephemeral helper the approval buttons use: a refusal is a courtesy note, never fatal.
from handlers.clicks import ephemeral

log = logging.getLogger(__name__)

NO_ALERTMANAGER = "No Alertmanager is known: set INCIDENT_BOT_ALERTMANAGER_URL."

SILENCE_ACTIONS = re.compile(
    "^" + re.escape(messages.SILENCE_ACTION_PREFIX) + "(" + "|".join(DURATIONS) + ")$"
)


@dataclass(frozen=True)
class Click:
    """What a silence button click says: which button, by whom, where."""

    action_id: str
    incident_id: str
    argument: str  # the duration ("4h") or, for expiry, the silence ID
    user_id: str
    user_name: str
    channel: str
    message_ts: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> Click:
        """Read a ``block_actions`` payload."""
        action = (body.get("actions") or [{}])[0]
        incident_id, _, argument = str(action.get("value") or "").partition("|")
        user = body.get("user") or {}
        container = body.get("container") or {}
        message = body.get("message") or {}
        return cls(
            action_id=str(action.get("action_id") or ""),
            incident_id=incident_id,
            argument=argument,
            user_id=str(user.get("id") or ""),
            user_name=str(user.get("username") or user.get("name") or ""),
            channel=str((body.get("channel") or {}).get("id") or ""),
            message_ts=str(container.get("message_ts") or message.get("ts") or ""),
        )


def register(bolt: AsyncApp, runtime: Runtime) -> None:
    """Add the silence button listeners to ``bolt``."""
    actions = SilenceActions(runtime)
    bolt.action(SILENCE_ACTIONS)(_listener(actions.silence))
    bolt.action(messages.SILENCE_EXPIRE)(_listener(actions.expire))


def _listener(
    handle: Callable[[Click], Awaitable[str | None]],
) -> Callable[[AsyncAck, dict[str, Any], AsyncWebClient], Awaitable[None]]:
    """A Bolt listener: acknowledge, ``handle`` the click, show its answer to the clicker."""

    async def listener(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        click = Click.of(body)
        answer = await handle(click)
        if answer and click.channel:
            await ephemeral(client, click.channel, click.user_id, answer)

    return listener


class SilenceActions:
    """What the silence buttons do; each method returns text for the clicker, or ``None``.

    Clicks are handled one at a time (a lock): two people pressing "Silence" together create
    one silence, and the second hears that it is already silenced.
    """

    def __init__(self, runtime: Runtime, *, request_timeout: float = 5.0) -> None:
        self.runtime = runtime
        self.request_timeout = request_timeout
        self._lock = asyncio.Lock()

    @property
    def store(self) -> Store:
        """The bot's store."""
        return self.runtime.store

    @asynccontextmanager
    async def _client(self, url: str) -> AsyncIterator[SilenceClient]:
        # A session per click: clicks are rare, and the runtime owns no HTTP session to share.
        async with aiohttp.ClientSession() as session:
            yield SilenceClient(url, session, timeout=self.request_timeout)

    async def _clicked(self, click: Click, now: datetime) -> _State | str:
        """The clicked incident's state, or why this click may not act on it."""
        state = await self.store.call(_state, self.store, click.incident_id, now)
        return _checked(state, click)

    async def silence(self, click: Click, reason: str = "") -> str | None:
        """Silence the incident for the clicked duration (``reason`` goes into the comment)."""
        if click.action_id != messages.SILENCE_ACTION_PREFIX + click.argument:
            return "This button is not a silence button of an incident."
        try:
            duration = parse_duration(click.argument)
        except ValueError as exc:
            return str(exc)
        async with self._lock:
            now = datetime.now(UTC)
            state = await self._clicked(click, now)
            if isinstance(state, str):
                return state
            if state.incident["status"] != "firing":
                return "This incident is resolved; there is nothing to silence."
            if state.silence is not None:
                until = messages.silence_until(state.silence)
                return f"Already silenced until {until} by <@{state.silence.created_by}>."
            url = self.runtime.settings.alertmanager_url or state.incident["external_url"]
            if not url:
                return NO_ALERTMANAGER
            try:
                matchers = matchers_for_incident(state.labels)
            except ValueError as exc:
                return f"Cannot silence this incident: {exc}."
            created_by = silence_creator(click.user_name, click.user_id) + " via incident-bot"
            reason = " ".join(reason.split())
            comment = f"incident {click.incident_id}: {reason or 'silenced from Slack'}"
            try:
                async with self._client(url) as client:
                    silence_id = await client.create(
                        matchers, duration, created_by, comment, now=now
                    )
            except (SilenceError, ValueError) as exc:
                log.warning("silencing %s failed: %s", click.incident_id, exc)
                message = exc.message if isinstance(exc, SilenceError) else str(exc)
                return f"Alertmanager did not create the silence: {message}"
            silence = IncidentSilence(
                incident_id=click.incident_id,
                silence_id=silence_id,
                until=now + duration,
                created_by=click.user_id,
                reason=reason,
                at=now,
            )
            text = (
                f":no_bell: Silenced for {click.argument} by <@{click.user_id}> "
                f"(silence `{silence_id}`)"
            )
            text += f": {messages.escape(reason)}" if reason else "."
            await self.store.call(_commit, self.store, click.incident_id, now, text, silence, None)
        self.runtime.outbox.wake()
        return None

    async def expire(self, click: Click) -> str | None:
        """Expire the incident's silence named by the button."""
        async with self._lock:
            now = datetime.now(UTC)
            state = await self._clicked(click, now)
            if isinstance(state, str):
                return state
            silence = await self.store.call(
                get_silence, self.store, click.incident_id, click.argument
            )
            if silence is None:
                return "That silence does not belong to this incident."
            if silence.expired_at is not None:
                return "That silence was already expired."
            url = self.runtime.settings.alertmanager_url or state.incident["external_url"]
            if not url:
                return NO_ALERTMANAGER
            try:
                async with self._client(url) as client:
                    await client.expire(silence.silence_id)
            except SilenceError as exc:
                if not exc.not_found:  # gone from Alertmanager already: record it as expired
                    log.warning("expiring silence %s failed: %s", silence.silence_id, exc)
                    return f"Alertmanager did not expire the silence: {exc.message}"
            text = (
                f":bell: Silence `{silence.silence_id}` expired by <@{click.user_id}>; "
                "notifications for this incident resume."
            )
            await self.store.call(
                _commit, self.store, click.incident_id, now, text, None, silence.silence_id
            )
        self.runtime.outbox.wake()
        return None


@dataclass(frozen=True)
class _State:
    incident: dict[str, Any]
    thread: tuple[str, str] | None
    labels: dict[str, str]
    silence: IncidentSilence | None


def _state(store: Store, incident_id: str, now: datetime) -> _State | None:
    """The incident, its thread, its first alert's labels and its silence (store thread)."""
    incident = store.get_incident(incident_id)
    first = store.first_alert(incident_id)
    if incident is None or first is None:
        return None
    labels = json.loads(first["labels"])
    return _State(
        incident, store.thread_of(incident_id), labels, active_silence(store, incident_id, now)
    )


def _checked(state: _State | None, click: Click) -> _State | str:
    """``state`` when this click may act on the incident; else why not, for the clicker."""
    if not click.user_id:
        return "Who clicked is unknown."
    if state is None:
        return f"Incident {click.incident_id or '?'} is unknown."
    if state.thread is None or state.thread[0] != click.channel:
        return "This button does not belong to the incident's message."
    if click.message_ts and click.message_ts != state.thread[1]:
        return "This button does not belong to the incident's message."
    return state


def _commit(
    store: Store,
    incident_id: str,
    now: datetime,
    reply: str,
    created: IncidentSilence | None,
    expired: str | None,
) -> None:
    """Record the change, queue the parent's update and the reply: all or nothing."""
    with store.transaction():
        if created is not None:
            record_silence(store, created)
        if expired is not None:
            mark_expired(store, incident_id, expired, now)
        incident = store.get_incident(incident_id)
        assert incident is not None
        stamp = time.time()
        channel = incident["channel"]
        store.enqueue(
            incident_id, channel, "update", parent_payload(store, incident_id, now), stamp
        )
        store.enqueue(incident_id, channel, "reply", messages.reply(reply), stamp)
