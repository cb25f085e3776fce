"""SlackSandbox against the real slack_sdk AsyncWebClient and Slack Bolt AsyncApp."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.models.blocks import ActionsBlock, ButtonElement, HeaderBlock, SectionBlock
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import SlackSandbox, sign_request

TOKEN = "xoxb-sandbox"
SECRET = "sandbox-signing-secret"


@pytest.fixture
async def sandbox() -> AsyncIterator[SlackSandbox]:
    async with SlackSandbox(TOKEN, missing_channels=["#gone"]) as sb:
        yield sb


def make_client(
    sb: SlackSandbox, *handlers: AsyncRetryHandler, token: str = TOKEN
) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=sb.api_url, retry_handlers=list(handlers))


@pytest.fixture
def client(sandbox: SlackSandbox) -> AsyncWebClient:
    return make_client(sandbox)


async def api_error(coro: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await coro
    return info.value


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(action_id: str, text: str = "Ack", value: str = "v") -> dict[str, Any]:
    label = {"type": "plain_text", "text": text}
    return {"type": "button", "action_id": action_id, "text": label, "value": value}


def modal(blocks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    title = {"type": "plain_text", "text": "Incident"}
    return {"type": "modal", "title": title, "blocks": blocks, **extra}


# --------------------------------------------------------------------------- server basics


async def test_binds_loopback_and_api_url_ends_with_slash(sandbox: SlackSandbox) -> None:
    assert sandbox.base_url.startswith("http://127.0.0.1:")
    assert not sandbox.base_url.endswith(":0")
    assert sandbox.api_url == sandbox.base_url + "/api/"


async def test_auth_test_reports_bot_identity_and_scopes(client: AsyncWebClient) -> None:
    resp = await client.auth_test()
    assert resp["team_id"] == "T0SANDBOX"
    assert resp["user_id"] == "U0BOT"
    assert resp["bot_id"] == "B0BOT"
    assert resp["is_enterprise_install"] is False
    assert resp["url"].startswith("https://")
    assert "chat:write" in resp.headers["X-OAuth-Scopes"].split(",")


async def test_missing_token_is_not_authed(sandbox: SlackSandbox) -> None:
    err = await api_error(AsyncWebClient(base_url=sandbox.api_url).auth_test())
    assert err.response["error"] == "not_authed"
    assert err.response.status_code == 200


async def test_wrong_token_is_invalid_auth(sandbox: SlackSandbox) -> None:
    err = await api_error(
        make_client(sandbox, token="xoxb-wrong").chat_postMessage(channel="#x", text="hi")
    )
    assert err.response["error"] == "invalid_auth"
    assert sandbox.channel_messages("#x") == []


async def test_form_token_accepted_but_json_body_token_ignored(sandbox: SlackSandbox) -> None:
    async with aiohttp.ClientSession() as http:
        url = sandbox.api_url + "auth.test"
        async with http.post(url, data={"token": TOKEN}) as resp:
            assert (await resp.json())["ok"] is True
        async with http.post(url, json={"token": TOKEN}) as resp:
            assert (await resp.json())["error"] == "not_authed"


async def test_unknown_method_is_404(client: AsyncWebClient) -> None:
    err = await api_error(client.api_call("incidents.frobnicate"))
    assert err.response.status_code == 404
    assert err.response["error"] == "unknown_method"


# ------------------------------------------------------------------------------- messages


async def test_post_message_resolves_names_and_issues_increasing_ts(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    first = await client.chat_postMessage(channel="#incidents", text="one")
    second = await client.chat_postMessage(channel="incidents", text="two")
    cid = sandbox.resolve_channel("#incidents")
    assert first["channel"] == second["channel"] == cid
    assert cid.startswith("C") and cid.isupper()
    assert float(first["ts"]) < float(second["ts"])
    assert first["ts"].split(".")[1].isdigit() and len(first["ts"].split(".")[1]) == 6
    assert first["message"]["text"] == "one"
    assert first["message"]["bot_id"] == "B0BOT"
    assert [m["text"] for m in sandbox.channel_messages(cid)] == ["one", "two"]
    assert sandbox.channels() == [cid]


async def test_post_to_user_id_opens_a_dm(sandbox: SlackSandbox, client: AsyncWebClient) -> None:
    resp = await client.chat_postMessage(channel="U0ALICE", text="page")
    assert resp["channel"].startswith("D")
    assert sandbox.channel_messages("U0ALICE")[0]["text"] == "page"


async def test_threads_replies_and_parent_summary(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="#inc", text="incident")
    r1 = await client.chat_postMessage(channel="#inc", text="r1", thread_ts=parent["ts"])
    r2 = await client.chat_postMessage(channel=parent["channel"], text="r2", thread_ts=parent["ts"])
    assert r1["message"]["thread_ts"] == parent["ts"]

    top = sandbox.channel_messages("#inc")
    assert [m["text"] for m in top] == ["incident"]
    assert top[0]["reply_count"] == 2
    assert top[0]["latest_reply"] == r2["ts"]
    assert [m["text"] for m in sandbox.thread("#inc", parent["ts"])] == ["incident", "r1", "r2"]

    replies = await client.conversations_replies(channel=parent["channel"], ts=parent["ts"])
    assert [m["text"] for m in replies["messages"]] == ["incident", "r1", "r2"]
    err = await api_error(client.chat_postMessage(channel="#inc", text="x", thread_ts="1.000001"))
    assert err.response["error"] == "thread_not_found"


async def test_update_replaces_content_and_records_edit(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(
        channel="#inc", text="firing", blocks=[section("*firing*")]
    )
    updated = await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="resolved")
    assert updated["ts"] == posted["ts"]
    assert updated["message"]["edited"]["user"] == "U0BOT"
    [msg] = sandbox.channel_messages("#inc")
    assert msg["text"] == "resolved"
    assert msg["blocks"] == [section("*firing*")]  # omitted blocks are kept, as in Slack
    await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="r", blocks=[])
    assert "blocks" not in sandbox.channel_messages("#inc")[0]
    assert [r["text"] for r in sandbox.revisions("#inc", posted["ts"])] == ["firing", "resolved"]

    err = await api_error(client.chat_update(channel=posted["channel"], ts="1.000001", text="x"))
    assert err.response["error"] == "message_not_found"


async def test_bot_cannot_edit_a_person_s_message(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    human = sandbox.post_as_user("#inc", "U0ALICE", "help")
    err = await api_error(client.chat_update(channel="#inc", ts=human["ts"], text="x"))
    assert err.response["error"] == "cant_update_message"
    reply = await client.chat_postMessage(channel="#inc", text="on it", thread_ts=human["ts"])
    assert reply["message"]["parent_user_id"] == "U0ALICE"


async def test_metadata_round_trips_through_history(client: AsyncWebClient) -> None:
    metadata = {"event_type": "incident_opened", "event_payload": {"id": "INC-7", "sev": 2}}
    posted = await client.chat_postMessage(channel="#inc", text="opened", metadata=metadata)
    plain = await client.conversations_history(channel=posted["channel"])
    assert "metadata" not in plain["messages"][0]
    full = await client.conversations_history(channel=posted["channel"], include_all_metadata=True)
    assert full["messages"][0]["metadata"] == metadata

    err = await api_error(
        client.chat_postMessage(channel="#inc", text="x", metadata={"event_type": 1})
    )
    assert err.response["error"] == "invalid_metadata_schema"


async def test_history_is_latest_first_with_cursor_pages(client: AsyncWebClient) -> None:
    for i in range(5):
        await client.chat_postMessage(channel="#inc", text=f"m{i}")
    page1 = await client.conversations_history(channel="#inc", limit=3)
    assert [m["text"] for m in page1["messages"]] == ["m4", "m3", "m2"]
    assert page1["has_more"] is True
    cursor = page1["response_metadata"]["next_cursor"]
    page2 = await client.conversations_history(channel="#inc", limit=3, cursor=cursor)
    assert [m["text"] for m in page2["messages"]] == ["m1", "m0"]
    assert page2["has_more"] is False

    ts = [m["ts"] for m in page2["messages"][::-1] + page1["messages"][::-1]]
    window = await client.conversations_history(channel="#inc", oldest=ts[1], latest=ts[3])
    assert [m["text"] for m in window["messages"]] == ["m2"]
    both = await client.conversations_history(
        channel="#inc", oldest=ts[1], latest=ts[3], inclusive=True
    )
    assert [m["text"] for m in both["messages"]] == ["m3", "m2", "m1"]
    err = await api_error(client.conversations_history(channel="#empty", oldest="soon"))
    assert err.response["error"] == "invalid_ts_oldest"


async def test_ephemeral_delete_and_reactions(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    eph = await client.chat_postEphemeral(channel="#inc", user="U0ALICE", text="only you")
    assert eph["message_ts"]
    assert sandbox.ephemeral_messages("#inc")[0]["user"] == "U0ALICE"
    assert sandbox.channel_messages("#inc") == []

    msg = await client.chat_postMessage(channel="#inc", text="ack me")
    await client.reactions_add(channel=msg["channel"], timestamp=msg["ts"], name="eyes")
    err = await api_error(
        client.reactions_add(channel=msg["channel"], timestamp=msg["ts"], name="eyes")
    )
    assert err.response["error"] == "already_reacted"
    assert sandbox.channel_messages("#inc")[0]["reactions"] == [
        {"name": "eyes", "users": ["U0BOT"], "count": 1}
    ]

    reply = await client.chat_postMessage(channel="#inc", text="r", thread_ts=msg["ts"])
    await client.chat_delete(channel=msg["channel"], ts=reply["ts"])
    assert "reply_count" not in sandbox.channel_messages("#inc")[0]
    deleted = await client.chat_delete(channel=msg["channel"], ts=msg["ts"])
    assert deleted["ts"] == msg["ts"]
    assert sandbox.channel_messages("#inc") == []
    err = await api_error(client.chat_delete(channel=msg["channel"], ts=msg["ts"]))
    assert err.response["error"] == "message_not_found"


async def test_missing_channel_and_not_in_channel(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    err = await api_error(client.chat_postMessage(channel="#gone", text="x"))
    assert err.response["error"] == "channel_not_found"
    err = await api_error(client.conversations_info(channel=sandbox.resolve_channel("#gone")))
    assert err.response["error"] == "channel_not_found"
    sandbox.add_channel("private-ops", is_member=False)
    err = await api_error(client.chat_postMessage(channel="#private-ops", text="x"))
    assert err.response["error"] == "not_in_channel"


async def test_conversations_info(sandbox: SlackSandbox, client: AsyncWebClient) -> None:
    cid = sandbox.add_channel("incidents", channel_id="C0INCIDENTS")
    info = await client.conversations_info(channel=cid)
    assert info["channel"]["id"] == "C0INCIDENTS"
    assert info["channel"]["name"] == "incidents"
    assert info["channel"]["is_channel"] is True
    assert info["channel"]["is_member"] is True
    posted = await client.chat_postMessage(channel="#incidents", text="x")
    assert posted["channel"] == "C0INCIDENTS"
    assert sandbox.channel_name("C0INCIDENTS") == "incidents"
    with pytest.raises(KeyError):
        sandbox.channel_name("C0NOWHERE")


async def test_users_info_and_usergroups(sandbox: SlackSandbox, client: AsyncWebClient) -> None:
    sandbox.add_user("U0CAROL", "carol", "Carol SRE", display_name="carol-sre")
    user = (await client.users_info(user="U0CAROL"))["user"]
    assert (user["id"], user["name"], user["real_name"]) == ("U0CAROL", "carol", "Carol SRE")
    assert user["profile"]["display_name"] == "carol-sre"
    err = await api_error(client.users_info(user="U0NOBODY"))
    assert err.response["error"] == "user_not_found"
    assert [(u.id, u.name) for u in sandbox.users()][-1] == ("U0CAROL", "carol")

    sandbox.add_usergroup("S0ONCALL", ["U0ALICE", "U0BOB"])
    assert (await client.usergroups_users_list(usergroup="S0ONCALL"))["users"] == [
        "U0ALICE",
        "U0BOB",
    ]


# ----------------------------------------------------------------------- content checks


async def test_no_text_and_msg_too_long(client: AsyncWebClient) -> None:
    err = await api_error(client.api_call("chat.postMessage", json={"channel": "#inc"}))
    assert err.response["error"] == "no_text"
    err = await api_error(client.chat_postMessage(channel="#inc", text="x" * 40_001))
    assert err.response["error"] == "msg_too_long"


async def test_form_encoded_blocks_are_decoded(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    blocks = [section("hi")]
    form = {"channel": "#inc", "text": "hi", "blocks": json.dumps(blocks)}
    await client.api_call("chat.postMessage", data=form)
    assert sandbox.calls_to("chat.postMessage")[0].params["blocks"] == blocks
    assert sandbox.channel_messages("#inc")[0]["blocks"] == blocks
    bad = {"channel": "#inc", "text": "hi", "blocks": "[not json"}
    err = await api_error(client.api_call("chat.postMessage", data=bad))
    assert err.response["error"] == "invalid_blocks_format"


async def test_blocks_built_with_slack_sdk_models_pass(client: AsyncWebClient) -> None:
    blocks = [
        HeaderBlock(text="INC-7 firing"),
        SectionBlock(text="*KubePodCrashLooping*", fields=["ns: prod", "pod: api-1"]),
        ActionsBlock(elements=[ButtonElement(text="Ack", action_id="ack", value="INC-7")]),
    ]
    resp = await client.chat_postMessage(channel="#inc", text="INC-7", blocks=blocks)
    assert resp["message"]["blocks"][0]["type"] == "header"


INVALID_BLOCKS = {
    "too_many_blocks": [{"type": "divider"}] * 51,
    "section_text_3001": [section("x" * 3001)],
    "eleven_fields": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
    "field_text_2001": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
    "header_151": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
    "button_value_2001": [{"type": "actions", "elements": [button("a", value="v" * 2001)]}],
    "button_text_76": [{"type": "actions", "elements": [button("a", text="t" * 76)]}],
    "duplicate_action_id": [
        {"type": "actions", "elements": [button("ack")]},
        section("s", accessory=button("ack")),
    ],
    "duplicate_block_id": [section("a", block_id="b1"), section("b", block_id="b1")],
    "unknown_type": [{"type": "carousel"}],
    "section_without_text_or_fields": [{"type": "section"}],
}


@pytest.mark.parametrize("blocks", INVALID_BLOCKS.values(), ids=INVALID_BLOCKS.keys())
async def test_invalid_blocks_are_rejected_like_slack(
    sandbox: SlackSandbox, client: AsyncWebClient, blocks: list[dict[str, Any]]
) -> None:
    err = await api_error(client.chat_postMessage(channel="#inc", text="fallback", blocks=blocks))
    body = err.response.data
    assert body["error"] == "invalid_blocks"
    assert body["errors"] and all("[json-pointer:/blocks" in e for e in body["errors"])
    assert all(m.startswith("[ERROR] ") for m in body["response_metadata"]["messages"])
    assert sandbox.channel_messages("#inc") == []


async def test_limits_are_inclusive(client: AsyncWebClient) -> None:
    blocks = [{"type": "divider"}] * 49 + [section("x" * 3000)]
    await client.chat_postMessage(channel="#inc", text="fallback", blocks=blocks)


# ----------------------------------------------------------------------------------- views


async def test_views_open_push_update_publish(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    opened = await client.views_open(trigger_id="123.456.abc", view=modal([section("hi")]))
    view = opened["view"]
    assert view["id"].startswith("V") and view["type"] == "modal" and view["hash"]
    pushed = await client.views_push(trigger_id="123.456.def", view=modal([section("more")]))
    assert pushed["view"]["id"] != view["id"]

    updated = await client.views_update(
        view_id=view["id"], view=modal([section("new")]), hash=view["hash"]
    )
    assert updated["view"]["blocks"] == [section("new")]
    err = await api_error(
        client.views_update(view_id=view["id"], view=modal([]), hash=view["hash"])
    )
    assert err.response["error"] == "hash_conflict"
    err = await api_error(client.views_update(view_id="V0NOPE", view=modal([])))
    assert err.response["error"] == "not_found"

    home = {"type": "home", "blocks": [section("on call: alice")]}
    published = await client.views_publish(user_id="U0ALICE", view=home)
    assert sandbox.home_view("U0ALICE") == published["view"]
    assert len(sandbox.views()) == 3


async def test_views_triggers(client: AsyncWebClient) -> None:
    err = await api_error(client.views_open(trigger_id="", view=modal([])))
    assert err.response["error"] == "invalid_trigger_id"
    await client.views_open(trigger_id="1.2.a", view=modal([]))
    err = await api_error(client.views_open(trigger_id="1.2.a", view=modal([])))
    assert err.response["error"] == "exchanged_trigger_id"


async def test_invalid_views_are_rejected(sandbox: SlackSandbox, client: AsyncWebClient) -> None:
    err = await api_error(client.views_open(trigger_id="t1", view={"blocks": []}))
    assert err.response["error"] == "invalid_arguments"
    assert "missing required field: type" in err.response["response_metadata"]["messages"][0]

    err = await api_error(
        client.views_open(trigger_id="t2", view=modal([{"type": "divider"}] * 101))
    )
    assert err.response["error"] == "invalid_arguments"
    assert "[json-pointer:/view/blocks]" in err.response["response_metadata"]["messages"][0]
    await client.views_open(trigger_id="t3", view=modal([{"type": "divider"}] * 100))

    dup = modal([{"type": "actions", "elements": [button("a"), button("a")]}])
    err = await api_error(client.views_open(trigger_id="t4", view=dup))
    assert "duplicate action_id" in err.response["response_metadata"]["messages"][0]

    err = await api_error(client.views_publish(user_id="U0ALICE", view=modal([])))
    assert err.response["error"] == "invalid_arguments"
    assert len(sandbox.views()) == 1


# ----------------------------------------------------------------------------------- files


async def test_files_upload_v2_lands_in_thread(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="#inc", text="incident")
    resp = await client.files_upload_v2(
        channel=parent["channel"],
        thread_ts=parent["ts"],
        content="pod logs\n",
        filename="logs.txt",
        title="api-1 logs",
        initial_comment="logs attached",
    )
    file_id = resp["file"]["id"]
    assert sandbox.file_content(file_id) == b"pod logs\n"
    thread = sandbox.thread("#inc", parent["ts"])
    assert [m["text"] for m in thread] == ["incident", "logs attached"]
    shared = thread[1]["files"][0]
    assert (shared["id"], shared["title"], shared["name"]) == (file_id, "api-1 logs", "logs.txt")
    assert resp["file"]["shares"]["public"][parent["channel"]][0]["thread_ts"] == parent["ts"]
    get_url = sandbox.calls_to("files.getUploadURLExternal")[0]
    assert get_url.params["filename"] == "logs.txt" and int(get_url.params["length"]) == 9


async def test_complete_upload_without_bytes_is_rejected(client: AsyncWebClient) -> None:
    url = await client.files_getUploadURLExternal(filename="a.txt", length=3)
    err = await api_error(
        client.files_completeUploadExternal(files=[{"id": url["file_id"]}], channel_id="C0X1")
    )
    assert err.response["error"] == "file_not_found"


# ------------------------------------------------------------------------- fault injection


async def test_rate_limit_is_retried_by_slack_sdk_handler(sandbox: SlackSandbox) -> None:
    client = make_client(sandbox, AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    sandbox.rate_limit_next(2, retry_after=1, method="chat.postMessage")
    started = time.monotonic()
    resp = await client.chat_postMessage(channel="#inc", text="once")
    assert time.monotonic() - started >= 2.0  # two waits of Retry-After (1 s) plus jitter
    assert resp["ok"] is True
    assert [c.status for c in sandbox.calls_to("chat.postMessage")] == [429, 429, 200]
    assert [m["text"] for m in sandbox.channel_messages("#inc")] == ["once"]


async def test_rate_limit_without_handler_surfaces_429(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    sandbox.rate_limit_next(1, retry_after=7)
    err = await api_error(client.chat_postMessage(channel="#inc", text="x"))
    assert err.response.status_code == 429
    assert err.response["error"] == "ratelimited"
    assert err.response.headers["Retry-After"] == "7"
    assert sandbox.channel_messages("#inc") == [] and sandbox.channels() == []
    await client.chat_postMessage(channel="#inc", text="x")  # the fault is used up


async def test_rate_limit_only_hits_the_named_method(
    sandbox: SlackSandbox, client: AsyncWebClient
) -> None:
    sandbox.rate_limit_next(1, method="views.open")
    await client.chat_postMessage(channel="#inc", text="x")
    err = await api_error(client.views_open(trigger_id="t", view=modal([])))
    assert err.response.status_code == 429


async def test_server_error_is_retried_by_slack_sdk_handler(sandbox: SlackSandbox) -> None:
    fast = FixedValueRetryIntervalCalculator(0.05)
    client = make_client(
        sandbox, AsyncServerErrorRetryHandler(max_retry_count=2, interval_calculator=fast)
    )
    sandbox.fail_next(1, status=500)
    await client.chat_postMessage(channel="#inc", text="once")
    assert [c.status for c in sandbox.calls_to("chat.postMessage")] == [500, 200]
    assert len(sandbox.channel_messages("#inc")) == 1


async def test_server_error_without_handler(sandbox: SlackSandbox, client: AsyncWebClient) -> None:
    sandbox.fail_next(1, status=503)
    err = await api_error(client.chat_postMessage(channel="#inc", text="x"))
    assert (err.response.status_code, err.response["error"]) == (503, "service_unavailable")
    assert sandbox.channel_messages("#inc") == []


async def test_delay(sandbox: SlackSandbox, client: AsyncWebClient) -> None:
    sandbox.set_delay(0.2, method="auth.test")
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started >= 0.2
    sandbox.clear_faults()
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started < 0.2


# ---------------------------------------------------------------------------- Bolt + signing


def test_sign_request_verifies_with_slack_sdk() -> None:
    body = b'{"type":"event_callback"}'
    headers = sign_request(body, SECRET, timestamp=1_700_000_000)

    class OneSecondLater(Clock):
        def now(self) -> float:
            return 1_700_000_001

    verifier = SignatureVerifier(SECRET, clock=OneSecondLater())
    assert verifier.is_valid(
        body=body,
        timestamp=headers["X-Slack-Request-Timestamp"],
        signature=headers["X-Slack-Signature"],
    )


async def test_bolt_app_answers_a_signed_mention_through_the_sandbox(sandbox: SlackSandbox) -> None:
    # Bolt takes the token from the client it is given (passing token= too makes it log a warning).
    app = AsyncApp(
        signing_secret=SECRET,
        client=AsyncWebClient(token=TOKEN, base_url=sandbox.api_url),
        process_before_response=True,
    )
    assert (await app.client.auth_test())["user_id"] == "U0BOT"

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any) -> None:
        await say(text="on it", thread_ts=event["ts"])

    mention = sandbox.post_as_user("#incidents", "U0ALICE", "<@U0BOT> status?")
    cid = sandbox.resolve_channel("#incidents")
    event = {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": mention["text"],
        "ts": mention["ts"],
        "channel": cid,
    }
    payload = {
        "type": "event_callback",
        "team_id": "T0SANDBOX",
        "api_app_id": "A0SANDBOX",
        "event_id": "Ev0001",
        "event_time": 1_700_000_000,
        "event": event,
    }
    body = json.dumps(payload)
    headers: dict[str, str | Sequence[str]] = {
        "Content-Type": "application/json",
        **sign_request(body, SECRET),
    }

    resp = await app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
    assert resp.status == 200
    assert [m["text"] for m in sandbox.thread(cid, mention["ts"])] == ["<@U0BOT> status?", "on it"]
    assert len(sandbox.calls_to("auth.test")) == 2  # ours, then Bolt's authorization

    forged: dict[str, str | Sequence[str]] = {**headers, **sign_request(body, "wrong-secret")}
    assert (await app.async_dispatch(AsyncBoltRequest(body=body, headers=forged))).status == 401
