"""The sandbox's Slack web page over HTTP: its state API and the signed payloads it forwards.

The "bot" here is a loopback request URL that checks every request's signature with
``slack_sdk``'s ``SignatureVerifier`` (what Bolt uses) and answers as scripted; the browser
test (``tests/e2e/test_demo_browser.py``) drives the real bot through the page.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo import demo_policy
from policies.engine import load_policy
from sandbox.loopback import LoopbackServer
from sandbox.slack import SlackSandbox
from sandbox.slack_web import SlackWebPage

SECRET = "page-test-secret"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32

Reply = Callable[[dict[str, Any]], web.Response]


class FakeBot(LoopbackServer):
    """A Slack request URL: verifies signatures, records payloads, answers via ``reply``."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.verifier = SignatureVerifier(secret)
        self.payloads: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self.reply: Reply = lambda payload: web.Response(status=200)

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/slack/events", self._events)
        return app

    async def _events(self, request: web.Request) -> web.Response:
        body = await request.text()
        if not self.verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401, text="invalid signature")
        self.content_types.append(request.content_type)
        payload = json.loads(parse_qs(body)["payload"][0])
        self.payloads.append(payload)
        return self.reply(payload)


@dataclass
class World:
    slack: SlackSandbox
    bot: FakeBot
    page: SlackWebPage
    client: AsyncWebClient

    async def get(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(self.page.base_url + path) as resp:
                if resp.content_type == "application/json":
                    return resp.status, await resp.json()
                return resp.status, await resp.read()

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            async with session.post(self.page.base_url + path, json=body) as resp:
                return resp.status, await resp.json()

    async def state(self, **query: str) -> dict[str, Any]:
        args = "&".join(f"{k}={v}" for k, v in {"user": "U0ALICE", **query}.items())
        status, body = await self.get(f"/api/state?{args}")
        assert status == 200, body
        return dict(body)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with SlackSandbox() as slack, FakeBot(SECRET) as bot:
        page = SlackWebPage(slack, events_url=f"{bot.base_url}/slack/events", signing_secret=SECRET)
        async with page:
            yield World(
                slack, bot, page, AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            )


BUTTONS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Proposed remediation*"}},
    {
        "type": "actions",
        "block_id": "act:act_1",
        "elements": [
            {
                "type": "button",
                "action_id": "remediation_approve",
                "value": "act_1",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
            },
            {
                "type": "button",
                "action_id": "remediation_reject",
                "value": "act_1",
                "text": {"type": "plain_text", "text": "Reject"},
            },
        ],
    },
    {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": "other", "text": {"type": "plain_text", "text": "x"}}
        ],
    },
]


async def thread_with_buttons(world: World) -> tuple[str, str, str]:
    """(channel, parent ts, reply ts): a parent and a reply carrying approval buttons."""
    parent = await world.client.chat_postMessage(channel="#incidents", text="Firing: cart")
    reply = await world.client.chat_postMessage(
        channel="#incidents", thread_ts=parent["ts"], text="Proposed", blocks=BUTTONS
    )
    return parent["channel"], parent["ts"], reply["ts"]


async def click(
    world: World, channel: str, ts: str, **overrides: Any
) -> tuple[int, dict[str, Any]]:
    body = {
        "user": "U0ALICE",
        "channel": channel,
        "ts": ts,
        "block_index": 1,
        "action_id": "remediation_approve",
        **overrides,
    }
    return await world.post("/api/action", body)


async def test_page_and_its_assets_are_served(world: World) -> None:
    status, html = await world.get("/")
    assert status == 200 and b'<script src="/static/app.js">' in html
    assert (await world.get("/static/app.js"))[0] == 200
    assert (await world.get("/static/style.css"))[0] == 200
    assert (await world.get("/static/secrets.txt"))[0] == 404


async def test_state_shows_channels_messages_and_the_open_thread(world: World) -> None:
    channel, parent, reply = await thread_with_buttons(world)
    state = await world.state()
    assert state["changed"] is True
    assert state["channels"] == [{"id": channel, "name": "#incidents", "count": 1}]
    assert state["channel"] == channel and state["thread"] is None
    assert [m["ts"] for m in state["messages"]] == [parent]
    assert f'data-thread="{parent}">1 reply' in state["messages"][0]["html"]
    assert [p["id"] for p in state["people"]] == ["U0ALICE", "U0BOB"]

    opened = await world.state(channel=channel, thread=parent)
    assert opened["thread"] == parent and len(opened["thread_html"]) == 2
    assert 'data-action-id="remediation_approve"' in opened["thread_html"][1]

    same = await world.state(channel=channel, thread=parent, since=opened["version"])
    assert same == {"changed": False, "version": opened["version"]}
    await world.client.chat_update(
        channel=channel, ts=reply, text="Executed and verified", blocks=[]
    )
    again = await world.state(channel=channel, thread=parent, since=opened["version"])
    assert again["changed"] is True and "Executed and verified" in again["thread_html"][1]

    status, body = await world.get("/api/state?user=U0MALLORY")
    assert status == 400 and "unknown user" in body["error"]


async def test_click_forwards_a_signed_block_actions_payload_built_from_the_stored_message(
    world: World,
) -> None:
    channel, parent, reply = await thread_with_buttons(world)
    status, answer = await click(world, channel, reply, value="act_FORGED")
    assert status == 200 and answer == {"status": 200, "body": ""}
    assert world.bot.content_types == ["application/x-www-form-urlencoded"]
    [payload] = world.bot.payloads
    assert payload["type"] == "block_actions"
    assert payload["user"] == {
        "id": "U0ALICE",
        "username": "alice",
        "name": "alice",
        "team_id": "T0SANDBOX",
    }
    assert payload["team"] == {"id": "T0SANDBOX", "domain": "sandbox"}
    assert payload["api_app_id"] == "A0SANDBOX"
    assert payload["container"] == {
        "type": "message",
        "message_ts": reply,
        "channel_id": channel,
        "is_ephemeral": False,
        "thread_ts": parent,
    }
    assert payload["channel"] == {"id": channel, "name": "incidents"}
    assert payload["message"]["ts"] == reply and payload["message"]["blocks"] == BUTTONS
    assert "metadata" not in payload["message"]
    [action] = payload["actions"]
    assert action["action_id"] == "remediation_approve"
    assert action["block_id"] == "act:act_1"
    assert action["value"] == "act_1"  # from the stored button, not the page's claim
    assert action["style"] == "primary" and action["type"] == "button"
    assert payload["trigger_id"] and payload["response_url"].startswith(world.page.base_url)

    # A block without a block_id gets the one Slack would assign, stable per position.
    await click(world, channel, reply, block_index=2, action_id="other")
    assert world.bot.payloads[-1]["actions"][0]["block_id"] == "b02"


async def test_a_wrong_signing_secret_is_refused_by_the_bot(world: World) -> None:
    channel, _, reply = await thread_with_buttons(world)
    world.page.signing_secret = "not-the-bots-secret"
    status, answer = await click(world, channel, reply)
    assert status == 200 and answer["status"] == 401
    assert world.bot.payloads == []


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"action_id": "remediation_execute_now"}, 404, "no button"),
        ({"block_index": 7}, 404, "no block 7"),
        ({"block_index": "x"}, 400, "not an integer"),
        ({"ts": "1.000001"}, 404, "no message"),
        ({"user": "U0MALLORY"}, 400, "unknown user"),
    ],
)
async def test_clicks_on_things_that_do_not_exist_are_refused(
    world: World, overrides: dict[str, Any], status: int, error: str
) -> None:
    channel, _, reply = await thread_with_buttons(world)
    where = {"ts": reply, **overrides}
    got, body = await click(world, channel, where.pop("ts"), **where)
    assert got == status and error in body["error"]
    assert world.bot.payloads == []


REASON_MODAL = {
    "type": "modal",
    "callback_id": "remediation_reject_modal",
    "private_metadata": "act_1|C1",
    "title": {"type": "plain_text", "text": "Reject remediation"},
    "submit": {"type": "plain_text", "text": "Reject"},
    "blocks": [
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Why reject it?"},
            "element": {"type": "plain_text_input", "action_id": "reason_input"},
        },
        {
            "type": "input",
            "block_id": "when",
            "optional": True,
            "label": {"type": "plain_text", "text": "When"},
            "element": {
                "type": "static_select",
                "action_id": "pick",
                "options": [{"text": {"type": "plain_text", "text": "Now"}, "value": "now"}],
            },
        },
    ],
}


async def open_modal(world: World, view: dict[str, Any]) -> str:
    """Click Reject as alice, then open ``view`` with the click's trigger as the bot would."""
    channel, _, reply = await thread_with_buttons(world)
    await click(world, channel, reply, action_id="remediation_reject")
    trigger = world.bot.payloads[-1]["trigger_id"]
    opened = await world.client.views_open(trigger_id=trigger, view=view)
    return str(opened["view"]["id"])


async def test_modal_shows_errors_then_closes_on_a_plain_ack(world: World) -> None:
    view_id = await open_modal(world, REASON_MODAL)
    alice = await world.state()
    assert alice["modal"]["id"] == view_id and "Why reject it?" in alice["modal"]["html"]
    assert (await world.state(user="U0BOB"))["modal"] is None  # not bob's click

    errors = {"reason": "Say in a few words why."}
    world.bot.reply = lambda p: web.json_response({"response_action": "errors", "errors": errors})
    status, answer = await world.post(
        "/api/view",
        {"user": "U0ALICE", "view_id": view_id, "values": {"reason": {"reason_input": ""}}},
    )
    assert status == 200 and answer["errors"] == errors
    submitted = world.bot.payloads[-1]
    assert submitted["type"] == "view_submission" and submitted["view"]["id"] == view_id
    assert submitted["view"]["callback_id"] == "remediation_reject_modal"
    assert submitted["view"]["private_metadata"] == "act_1|C1"
    assert submitted["view"]["state"]["values"] == {
        "reason": {"reason_input": {"type": "plain_text_input", "value": None}},
        "when": {"pick": {"type": "static_select", "selected_option": None}},
    }
    shown = (await world.state())["modal"]
    assert '<div class="error">Say in a few words why.</div>' in shown["html"]

    world.bot.reply = lambda p: web.Response(status=200)
    values = {"reason": {"reason_input": "cache fix first", "forged": "x"}, "when": {"pick": "now"}}
    status, answer = await world.post(
        "/api/view", {"user": "U0ALICE", "view_id": view_id, "values": values}
    )
    assert status == 200 and "errors" not in answer and "error" not in answer
    state = world.bot.payloads[-1]["view"]["state"]["values"]
    assert state["reason"] == {
        "reason_input": {"type": "plain_text_input", "value": "cache fix first"}
    }
    assert state["when"]["pick"]["selected_option"]["value"] == "now"
    assert (await world.state())["modal"] is None

    status, body = await world.post("/api/view", {"user": "U0ALICE", "view_id": view_id})
    assert status == 404 and "not open" in body["error"]


async def test_cancel_sends_view_closed_only_when_the_view_asks(world: World) -> None:
    view_id = await open_modal(world, {**REASON_MODAL, "notify_on_close": True})
    sent = len(world.bot.payloads)
    status, answer = await world.post("/api/view_closed", {"user": "U0ALICE", "view_id": view_id})
    assert status == 200 and answer["status"] == 200
    assert world.bot.payloads[sent]["type"] == "view_closed"
    assert world.bot.payloads[sent]["view"]["id"] == view_id
    assert (await world.state())["modal"] is None

    quiet = await open_modal(world, REASON_MODAL)
    sent = len(world.bot.payloads)
    await world.post("/api/view_closed", {"user": "U0ALICE", "view_id": quiet})
    assert len(world.bot.payloads) == sent


async def test_ephemeral_messages_show_to_their_user_only(world: World) -> None:
    channel, _, _ = await thread_with_buttons(world)
    await world.client.chat_postEphemeral(channel=channel, user="U0BOB", text="You may not decide")
    bob = await world.state(user="U0BOB")
    assert len(bob["ephemeral"]) == 1 and "Only visible to you" in bob["ephemeral"][0]
    assert "You may not decide" in bob["ephemeral"][0]
    assert (await world.state())["ephemeral"] == []


async def test_uploaded_files_are_served_and_shown(world: World) -> None:
    parent = await world.client.chat_postMessage(channel="#incidents", text="Firing")
    upload = await world.client.files_upload_v2(
        channel=parent["channel"], thread_ts=parent["ts"], content=PNG, filename="memory.png"
    )
    file_id = upload["file"]["id"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{world.page.base_url}/files/{file_id}") as resp:
            assert resp.status == 200 and resp.content_type == "image/png"
            assert await resp.read() == PNG
    assert (await world.get("/files/F0NOPE"))[0] == 404
    state = await world.state(channel=parent["channel"], thread=parent["ts"])
    assert f'<img src="/files/{file_id}"' in state["thread_html"][1]


async def test_response_url_answers_go_through_the_web_api(world: World) -> None:
    channel, parent, reply = await thread_with_buttons(world)
    await click(world, channel, reply)
    response_url = world.bot.payloads[-1]["response_url"]
    async with aiohttp.ClientSession() as session:
        async with session.post(response_url, json={"text": "Only you see this"}) as resp:
            assert resp.status == 200
        replace = {"replace_original": True, "text": "Approved", "blocks": []}
        async with session.post(response_url, json=replace) as resp:
            assert resp.status == 200
        async with session.post(world.page.base_url + "/response/unknown", json={}) as resp:
            assert resp.status == 404
    assert [m["text"] for m in world.slack.ephemeral_messages(channel)] == ["Only you see this"]
    updated = world.slack.thread(channel, parent)[1]
    assert updated["text"] == "Approved" and "blocks" not in updated


def test_the_demo_policy_makes_alice_the_approver_of_every_level(tmp_path: Path) -> None:
    rules = load_policy([Path("default"), demo_policy()]).rules_for("shop")
    assert {level: list(ids) for level, ids in rules.approvers.items()} == {
        "low": ["U0ALICE"],
        "medium": ["U0ALICE"],
        "high": ["U0ALICE"],
    }
    assert set(rules.approvals_required.values()) == {1}
