"""The incident slash commands through Bolt: signed form posts, ephemeral answers, RCA threads."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import yaml

import handlers.commands
from bot.messages import FEEDBACK_UP, thread_link
from handlers.commands import COMMANDS
from rag.text import IncidentDoc
from sandbox.slack import sign_request
from tests.handlers.test_spine import CART, resolved
from tests.stack import ROOT, SECRET, Stack, message_text, running_stack

CHANNEL = "C0INCIDENTS"
PAST = IncidentDoc(
    incident_id="INC_20261001_007",
    root_cause="cart OOMKilled after the memory limit was lowered to 256Mi",
    title="cart OOMKilled in shop",
    alertname="KubePodCrashLooping",
    namespace="shop",
    object="shop/Deployment/cart",
    category="oom_killed",
    action="kubectl -n shop set resources deployment/cart -c cart --limits=memory=512Mi",
    result="success",
    timestamp="2026-10-01T10:00:00Z",
    resolved_at="2026-10-01T10:40:00Z",
    channel="C0OLDINC",
    thread_ts="1790000000.000100",
)


async def command(
    stack: Stack, name: str, text: str = "", *, user: str = "U0ALICE", channel: str = CHANNEL
) -> dict[str, Any]:
    """Send a signed slash command; the ack's JSON body."""
    body = urlencode(
        {
            "command": name,
            "text": text,
            "user_id": user,
            "channel_id": channel,
            "team_id": "T0SANDBOX",
            "trigger_id": f"{secrets.randbelow(10**9)}.{secrets.token_hex(4)}",
            "response_url": "http://127.0.0.1:9/unused",
        }
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign_request(body, SECRET)}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{stack.url}/slack/events", data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            answer: dict[str, Any] = json.loads(await r.text())
    assert answer["response_type"] == "ephemeral"
    return answer


async def ask(stack: Stack, name: str, text: str = "", *, user: str = "U0ALICE") -> str:
    """The full text of a command's answer, whether in the ack or posted ephemerally later."""
    answer = await command(stack, name, text, user=user)
    if answer["text"] != "Working on it…":
        return message_text(answer)
    await stack.wait(lambda: any(m["user"] == user for m in stack.slack.ephemeral_messages()))
    late = [m for m in stack.slack.ephemeral_messages() if m["user"] == user]
    return message_text(late[-1])


def thread_url(stack: Stack, incident_id: str) -> str:
    assert stack.runtime is not None
    thread = stack.runtime.store.thread_of(incident_id)
    assert thread is not None
    return thread_link(*thread)


def approver_policy(tmp_path: Path) -> str:
    """A policy layer making alice (by ID) and the S0SRE group approvers."""
    path = tmp_path / "approvers.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "description": "slash-command tests",
                "approvers": {
                    "low": ["U0ALICE", "S0SRE"],
                    "medium": ["U0ALICE", "S0SRE"],
                    "high": ["U0ALICE"],
                },
            }
        )
    )
    return str(path)


async def cart_thread(stack: Stack, size: int = 4) -> dict[str, Any]:
    """Post the cart alert and wait for its thread (parent, RCA, two proposals)."""
    assert (await stack.post(CART))[0] == 200
    await stack.wait(lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) == size)
    assert stack.runtime is not None
    (incident,) = stack.runtime.store.incidents()
    return incident


def test_commands_agree_with_the_manifest() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    declared = {
        c["command"]: (c["usage_hint"], c["description"])
        for c in manifest["features"]["slash_commands"]
    }
    assert declared == COMMANDS


async def test_rca_of_an_object_opens_an_rca_thread(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rebase=True) as stack:
        answer = await command(stack, "/rca", "shop/Deployment/cart")
        assert answer["text"].startswith("Investigating shop/Deployment/cart…")
        # Parent, RCA reply, one approval message per suggested action (two for cart).
        await stack.wait(lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) == 4)
        parent, rca, *proposals = stack.threads()[0]
        assert "On-demand RCA requested by <@U0ALICE>" in message_text(parent)
        assert "shop/Deployment/cart" in message_text(parent)
        text = message_text(rca)
        assert "Root cause" in text and "oom_killed" in text and "OOMKilled" in text
        assert FEEDBACK_UP in json.dumps(rca["blocks"])  # same feedback buttons as alerts
        assert all("Proposed remediation" in message_text(m) for m in proposals)
        assert stack.slack.channel_messages(CHANNEL)[0]["ts"] == parent["ts"]

        assert stack.runtime is not None
        (incident,) = stack.runtime.store.incidents()
        assert (incident["alertname"], incident["severity"]) == ("OnDemandRCA", "info")
        assert (incident["object"], incident["channel"]) == ("shop/Deployment/cart", CHANNEL)
        assert incident["status"] == "firing"  # its actions wait for a decision
        assert json.loads(incident["rca"])["category"] == "oom_killed"

        # Each request is its own incident and thread.
        await command(stack, "/rca", "shop/deploy/cart")
        await stack.wait(lambda: len(stack.threads()) == 2)
        keys = {i["group_key"] for i in stack.runtime.store.incidents()}
        assert len(keys) == 2


async def test_rca_with_nothing_to_approve_resolves_at_once(tmp_path: Path) -> None:
    async with running_stack(tmp_path, rebase=True) as stack:
        await command(stack, "/rca", "shop/Service/cart")
        await stack.wait(lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) == 2)
        assert stack.runtime is not None
        await stack.wait(lambda: stack.runtime.store.incidents()[0]["status"] == "resolved")
        assert "No open incidents" in await ask(stack, "/incidents")


BAD_REFERENCES = [
    ("", "Name an object"),
    ("shop/Gizmo/cart", "unknown kind 'Gizmo'"),
    ("shop/Node/worker-1", "Node is cluster-scoped"),
    ("Deployment/cart", "Deployment needs a namespace"),
    ("Shop!/Deployment/cart", "is not a namespace name"),
    ("shop/Deployment/Cart_1", "is not a Kubernetes object name"),
]


async def test_rca_refuses_bad_object_references(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for text, problem in BAD_REFERENCES:
            answer = await command(stack, "/rca", text)
            assert problem in answer["text"], text
            assert "Usage: /rca <namespace>/<kind>/<name> | <question>" in answer["text"]
        assert stack.runtime is not None
        assert stack.runtime.store.incidents() == []


async def test_rca_question_lists_matching_incidents_and_similar_ones(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        incident = await cart_thread(stack)
        assert stack.runtime is not None and stack.runtime.memory is not None
        await stack.runtime.memory.aadd([PAST])
        text = await ask(stack, "/rca", "cart OOMKilled")
        assert incident["id"] in text and "KubePodCrashLooping" in text
        assert thread_url(stack, incident["id"]) in text
        assert "cart OOMKilled in shop" in text and PAST.incident_id in text
        assert "/rca <namespace>/<kind>/<name>" in text  # the hint to the object form
        other = await ask(stack, "/rca", "payments latency")
        assert "No open incident matches" in other
        assert "no similar past incident" in other


async def test_incidents_lists_open_recent_and_matching(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        assert "No open incidents" in await ask(stack, "/incidents")
        incident = await cart_thread(stack)
        url = thread_url(stack, incident["id"])
        assert re.fullmatch(r"https://slack.com/archives/C\w+/p\d{16}", url)
        listed = await ask(stack, "/incidents", "open")
        assert incident["id"] in listed and url in listed
        assert "KubePodCrashLooping" in listed and "shop/Deployment/cart" in listed
        assert ":large_orange_circle:" in listed and "open ·" in listed
        assert incident["id"] in await ask(stack, "/incidents", "cart crashloop")
        assert "No incident matches" in await ask(stack, "/incidents", "payments")

        assert (await stack.post(resolved(CART)))[0] == 200
        await stack.wait(
            lambda: stack.runtime is not None and not stack.runtime.store.incidents(status="firing")
        )
        assert "No open incidents" in await ask(stack, "/incidents")
        recent = await ask(stack, "/incidents", "recent")
        assert incident["id"] in recent and "resolved ·" in recent


async def test_incidents_shows_at_most_fifteen_newest_first(tmp_path: Path) -> None:
    async with running_stack(tmp_path, start=False) as stack:
        await stack.start_bot()
        assert stack.runtime is not None
        store = stack.runtime.store
        for n in range(20):
            row = {
                "id": f"INC_20261120_{n:03d}",
                "group_key": f"g{n}",
                "alertname": f"Alert{n}",
                "channel": CHANNEL,
                "status": "firing",
                "opened_at": "2026-11-20T10:00:00+00:00",
                "received_at": 1000.0 + n,
            }
            await store.call(store.insert_incident, row)
        listed = await ask(stack, "/incidents")
        shown = re.findall(r"INC_20261120_(\d{3})", listed)
        assert shown == [f"{n:03d}" for n in range(19, 4, -1)]


async def test_incident_shows_status_rca_actions_and_thread(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        incident = await cart_thread(stack)
        detail = await ask(stack, "/incident", incident["id"].lower())
        assert incident["id"] in detail and "*Status*: Open" in detail
        assert "shop/Deployment/cart" in detail and "2026-11-20" in detail
        assert "oom_killed" in detail and "OOMKilled" in detail
        assert "rollout undo deployment/cart --to-revision=6" in detail
        assert "set resources deployment/cart -c cart --limits=memory=512Mi" in detail
        assert detail.count("*pending*") == 2
        assert thread_url(stack, incident["id"]) in detail
        # The action messages are linked too.
        *_, first, second = stack.threads()[0]
        channel = stack.slack.channels()[0]
        assert thread_link(channel, first["ts"]) in detail
        assert thread_link(channel, second["ts"]) in detail

        assert "No incident `INC_19990101_999`" in await ask(stack, "/incident", "INC_19990101_999")
        assert "Usage: /incident <incident id>" in await ask(stack, "/incident")


async def test_similar_searches_the_incident_memory(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        assert "Usage: /similar" in await ask(stack, "/similar")
        assert "incident memory is empty" in await ask(stack, "/similar", "cart OOMKilled")
        assert stack.runtime is not None and stack.runtime.memory is not None
        await stack.runtime.memory.aadd([PAST])
        found = await ask(stack, "/similar", "cart OOMKilled")
        assert "cart OOMKilled in shop" in found and PAST.incident_id in found
        assert re.search(r"\d+% similar", found)
        assert "memory limit was lowered" in found and ":white_check_mark: success" in found
        assert thread_link(PAST.channel, PAST.thread_ts) in found
        assert "No past incident is similar" in await ask(stack, "/similar", "disk full")
        stack.runtime.memory = None
        assert "not available" in await ask(stack, "/similar", "cart OOMKilled")


async def test_approvals_lists_what_the_caller_may_approve(tmp_path: Path) -> None:
    async with running_stack(tmp_path, start=False) as stack:
        stack.slack.add_user("U0CAROL", "carol", "Carol Oncall")
        stack.slack.add_usergroup("S0SRE", ["U0CAROL"])
        await stack.start_bot(policy_files=("default", approver_policy(tmp_path)))
        assert "Nothing is waiting" in await ask(stack, "/approvals")
        await cart_thread(stack)
        channel = stack.slack.channels()[0]
        links = [thread_link(channel, m["ts"]) for m in stack.threads()[0][2:]]
        for user in ("U0ALICE", "U0CAROL"):  # by ID; through the user group
            listed = await ask(stack, "/approvals", user=user)
            assert "Waiting for your approval* (2)" in listed
            assert "rollout undo deployment/cart" in listed and "risk medium" in listed
            assert all(link in listed for link in links)
        assert "Nothing is waiting" in await ask(stack, "/approvals", user="U0BOB")
        assert "takes no arguments" in await ask(stack, "/approvals", "please")


async def test_a_slow_answer_is_posted_ephemerally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers.commands, "ACK_BUDGET", 0.0)
    async with running_stack(tmp_path) as stack:
        answer = await command(stack, "/incidents", "recent")
        assert answer["text"] == "Working on it…"
        await stack.wait(lambda: bool(stack.slack.ephemeral_messages(CHANNEL)))
        (late,) = stack.slack.ephemeral_messages(CHANNEL)
        assert late["user"] == "U0ALICE" and "No incidents yet" in message_text(late)


async def test_every_command_is_served(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        for name in COMMANDS:
            answer = await command(stack, name, "kube-system" if name == "/policy" else "")
            assert answer["text"], name
