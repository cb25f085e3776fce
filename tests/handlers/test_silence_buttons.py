"""Silence buttons: signed ``block_actions`` through the real app, a stateful Alertmanager stub.

The stub keeps silences like Alertmanager's API v2 does (IDs, ``startsAt`` clamped to now,
``status.state`` computed from the times, 400 JSON strings for invalid silences, an empty 404
and 0.25's 500 ``"silence not found"``). tests/e2e/test_silence_buttons_e2e.py clicks the same
buttons against the real binary.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.silences import matchers_for_incident
from sandbox.loopback import LoopbackServer
from sandbox.scenario import load_scenario
from tests.handlers.test_spine import resolved
from tests.remediate.flow_support import post_interaction
from tests.stack import Stack, message_text, running_stack, scenario_path

CART = load_scenario(scenario_path("cart-oomkilled")).webhook
CART_LABELS: dict[str, str] = CART["alerts"][0]["labels"]
INCIDENT = "INC_20261120_001"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class StubSilence:
    id: str
    matchers: list[dict[str, Any]]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def state(self, now: datetime) -> str:
        if self.ends_at <= now:
            return "expired"
        return "pending" if self.starts_at > now else "active"

    def to_api(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": {"state": self.state(now)},
            "updatedAt": _rfc3339(self.updated_at),
            "matchers": self.matchers,
            "startsAt": _rfc3339(self.starts_at),
            "endsAt": _rfc3339(self.ends_at),
            "createdBy": self.created_by,
            "comment": self.comment,
        }


class AlertmanagerStub(LoopbackServer):
    """Alertmanager's silence API v2, in memory; ``refuse`` scripts the next POST's answer."""

    name = "alertmanager-stub"

    def __init__(self) -> None:
        super().__init__()
        self.silences: dict[str, StubSilence] = {}
        self.requests: list[tuple[str, str]] = []
        self.refuse: tuple[int, str] | None = None

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v2/silences", self._post)
        app.router.add_get("/api/v2/silences", self._list)
        app.router.add_get("/api/v2/silence/{id}", self._get)
        app.router.add_delete("/api/v2/silence/{id}", self._delete)
        return app

    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    async def _post(self, request: web.Request) -> web.Response:
        self.requests.append(("POST", request.path))
        if self.refuse is not None:
            (status, text), self.refuse = self.refuse, None
            return web.Response(status=status, text=text, content_type="application/json")
        body = await request.json()
        now = datetime.now(UTC)
        matchers = body.get("matchers") or []
        if not matchers:
            return self._json("silence invalid: at least one matcher required", 400)
        for i, matcher in enumerate(matchers):
            if not _LABEL_NAME.match(matcher.get("name", "")):
                name = matcher.get("name")
                message = f'silence invalid: invalid label matcher {i}: invalid label name "{name}"'
                return self._json(message, 400)
        starts = datetime.fromisoformat(body["startsAt"])
        ends = datetime.fromisoformat(body["endsAt"])
        if ends < starts:
            return self._json("silence invalid: end time must not be before start time", 400)
        if not body.get("createdBy"):
            return self._json("silence invalid: creator information missing", 400)
        silence = StubSilence(
            id=str(uuid.uuid4()),
            matchers=matchers,
            starts_at=max(starts, now),  # Alertmanager starts a silence from the past now
            ends_at=ends,
            created_by=body["createdBy"],
            comment=body["comment"],
        )
        self.silences[silence.id] = silence
        return self._json({"silenceID": silence.id})

    async def _list(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path))
        now = datetime.now(UTC)
        wanted = [tuple(f.split("=", 1)) for f in request.query.getall("filter", [])]
        found = [
            s.to_api(now)
            for s in self.silences.values()
            if all(
                {"name": n, "value": json.loads(v), "isRegex": False, "isEqual": True} in s.matchers
                for n, v in wanted
            )
        ]
        return self._json(found)

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path))
        silence = self.silences.get(request.match_info["id"])
        if silence is None:
            return web.Response(status=404)
        return self._json(silence.to_api(datetime.now(UTC)))

    async def _delete(self, request: web.Request) -> web.Response:
        self.requests.append(("DELETE", request.path))
        silence = self.silences.get(request.match_info["id"])
        if silence is None:
            return self._json("silence not found", 500)
        now = datetime.now(UTC)
        if silence.state(now) == "active":
            silence.ends_at = silence.updated_at = now
        return web.Response(status=200)


@pytest.fixture
async def alertmanager() -> AsyncIterator[AlertmanagerStub]:
    async with AlertmanagerStub() as stub:
        yield stub


# ---------------------------------------------------------------------------- clicking


def parent_of(stack: Stack) -> dict[str, Any]:
    channel = stack.slack.channels()[0]
    parent: dict[str, Any] = stack.slack.channel_messages(channel)[0]
    parent["channel"] = channel
    return parent


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Button text → button element, over every actions block of ``message``."""
    return {
        element["text"]["text"]: {**element, "block_id": block["block_id"]}
        for block in message.get("blocks") or []
        if block["type"] == "actions"
        for element in block["elements"]
    }


async def click(
    stack: Stack,
    message: dict[str, Any],
    label: str,
    *,
    user: str = "U0ALICE",
    name: str = "alice",
    channel: str | None = None,
) -> int:
    """Press the button ``label`` of ``message`` as Slack would (signed block_actions)."""
    button = buttons(message)[label]
    where = channel or message["channel"]
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": "T0SANDBOX"},
        "api_app_id": "A0INCIDENTBOT",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": where,
            "is_ephemeral": False,
        },
        "trigger_id": "1337.42.abcdef",
        "team": {"id": "T0SANDBOX", "domain": "sandbox"},
        "channel": {"id": where, "name": "incidents"},
        "message": {k: v for k, v in message.items() if k != "channel"},
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": button["block_id"],
                "text": button["text"],
                "value": button["value"],
                "type": "button",
                "action_ts": "1795444800.123456",
            }
        ],
    }
    status, _ = await post_interaction(stack, payload)
    return status


def ephemerals(stack: Stack) -> list[str]:
    return [m["text"] for m in stack.slack.ephemeral_messages()]


def webhook_from(alertmanager_url: str) -> dict[str, Any]:
    body = copy.deepcopy(CART)
    body["externalURL"] = alertmanager_url
    return body


async def open_incident(stack: Stack, webhook: dict[str, Any]) -> dict[str, Any]:
    """Post the webhook; the parent message once the first look is in the thread."""
    status, _ = await stack.post(webhook)
    assert status == 200
    await stack.wait(lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) >= 2)
    return parent_of(stack)


# ---------------------------------------------------------------------------- the tests


async def test_silence_then_expire_from_the_parent_message(
    tmp_path: Path, alertmanager: AlertmanagerStub
) -> None:
    # No INCIDENT_BOT_ALERTMANAGER_URL: the webhook's externalURL is where silences go.
    async with running_stack(tmp_path) as stack:
        parent = await open_incident(stack, webhook_from(alertmanager.base_url))
        assert set(buttons(parent)) == {"Silence 1h", "Silence 4h", "Silence 24h"}
        assert buttons(parent)["Silence 4h"]["value"] == f"{INCIDENT}|4h"

        assert await click(stack, parent, "Silence 1h") == 200
        await stack.wait(lambda: "Expire silence" in buttons(parent_of(stack)))
        [silence] = alertmanager.silences.values()
        assert silence.matchers == matchers_for_incident(CART_LABELS)
        assert silence.created_by == "alice (U0ALICE) via incident-bot"
        assert silence.comment == f"incident {INCIDENT}: silenced from Slack"
        assert abs(silence.ends_at - silence.starts_at - timedelta(hours=1)) < timedelta(seconds=5)
        assert silence.state(datetime.now(UTC)) == "active"

        shown = parent_of(stack)
        until = silence.ends_at.astimezone(UTC)
        assert f"Silenced until {until:%H:%M} UTC by <@U0ALICE>" in message_text(shown)
        assert set(buttons(shown)) == {"Expire silence"}
        assert buttons(shown)["Expire silence"]["value"] == f"{INCIDENT}|{silence.id}"
        await stack.wait(
            lambda: any(
                f":no_bell: Silenced for 1h by <@U0ALICE> (silence `{silence.id}`)"
                in message_text(m)
                for m in stack.threads()[0]
            )
        )

        # A second click on the old buttons (someone else's stale view): no second silence.
        assert await click(stack, parent, "Silence 4h", user="U0BOB", name="bob") == 200
        await stack.wait(lambda: any("Already silenced until" in t for t in ephemerals(stack)))
        assert len(alertmanager.silences) == 1

        assert await click(stack, shown, "Expire silence", user="U0BOB", name="bob") == 200
        await stack.wait(lambda: "Silence 1h" in buttons(parent_of(stack)))
        assert silence.state(datetime.now(UTC)) == "expired"
        assert ("DELETE", f"/api/v2/silence/{silence.id}") in alertmanager.requests
        assert "Silenced until" not in message_text(parent_of(stack))
        await stack.wait(
            lambda: any(
                f":bell: Silence `{silence.id}` expired by <@U0BOB>" in message_text(m)
                for m in stack.threads()[0]
            )
        )

        # Expiring it again from the stale message changes nothing.
        deletes = len([r for r in alertmanager.requests if r[0] == "DELETE"])
        assert await click(stack, shown, "Expire silence") == 200
        await stack.wait(lambda: any("already expired" in t for t in ephemerals(stack)))
        assert len([r for r in alertmanager.requests if r[0] == "DELETE"]) == deletes


async def test_alertmanager_refusal_reaches_the_clicker_only(
    tmp_path: Path, alertmanager: AlertmanagerStub
) -> None:
    async with running_stack(tmp_path, alertmanager_url=alertmanager.base_url) as stack:
        # The setting wins over the webhook's externalURL (which points nowhere here).
        parent = await open_incident(stack, CART)
        alertmanager.refuse = (400, '"silence invalid: end time can\'t be in the past"')
        assert await click(stack, parent, "Silence 24h") == 200
        await stack.wait(lambda: bool(ephemerals(stack)))
        [answer] = stack.slack.ephemeral_messages()
        assert answer["user"] == "U0ALICE"
        assert "end time can't be in the past" in answer["text"]
        assert alertmanager.requests == [("POST", "/api/v2/silences")]
        assert alertmanager.silences == {}
        assert set(buttons(parent_of(stack))) == {"Silence 1h", "Silence 4h", "Silence 24h"}
        assert not any("Silenced for" in message_text(m) for m in stack.threads()[0])

        # Next time Alertmanager agrees.
        assert await click(stack, parent, "Silence 24h") == 200
        await stack.wait(lambda: "Expire silence" in buttons(parent_of(stack)))
        [silence] = alertmanager.silences.values()
        assert abs(silence.ends_at - silence.starts_at - timedelta(hours=24)) < timedelta(seconds=5)


async def test_unreachable_alertmanager_and_foreign_clicks_are_refused(
    tmp_path: Path, alertmanager: AlertmanagerStub
) -> None:
    async with running_stack(tmp_path, alertmanager_url=alertmanager.base_url) as stack:
        parent = await open_incident(stack, CART)

        # A button relayed from another channel does not act on this incident.
        assert await click(stack, parent, "Silence 1h", channel="C0ELSEWHERE") == 200
        await stack.wait(lambda: len(ephemerals(stack)) == 1)
        assert "does not belong to the incident's message" in ephemerals(stack)[0]
        assert alertmanager.requests == []

        await alertmanager.stop()  # Alertmanager is down
        assert await click(stack, parent, "Silence 1h") == 200
        await stack.wait(lambda: len(ephemerals(stack)) == 2)
        assert "Alertmanager did not create the silence: unreachable" in ephemerals(stack)[1]
        assert set(buttons(parent_of(stack))) == {"Silence 1h", "Silence 4h", "Silence 24h"}

        # Once resolved, the parent offers no silence, and a stale button is refused.
        assert (await stack.post(resolved(CART)))[0] == 200
        await stack.wait(lambda: buttons(parent_of(stack)) == {})
        assert await click(stack, parent, "Silence 1h") == 200
        await stack.wait(lambda: len(ephemerals(stack)) == 3)
        assert "This incident is resolved" in ephemerals(stack)[2]
