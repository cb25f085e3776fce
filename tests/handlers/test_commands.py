"""Slash commands through Bolt with signed requests, answered within the ack."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from sandbox.slack import sign_request
from tests.stack import SECRET, Stack, running_stack


async def _command(stack: Stack, command: str, text: str) -> tuple[int, str]:
    body = urlencode(
        {
            "command": command,
            "text": text,
            "user_id": "U0ALICE",
            "channel_id": "C0INCIDENTS",
            "team_id": "T0SANDBOX",
            "trigger_id": "1337.42",
            "response_url": "http://127.0.0.1:9/unused",
        }
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign_request(body, SECRET)}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{stack.url}/slack/events", data=body, headers=headers) as r:
            return r.status, await r.text()


async def test_policy_shows_the_rules_for_a_namespace(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        status, text = await _command(stack, "/policy", "kube-system")
        assert status == 200
        answer = json.loads(text)
        assert answer["response_type"] == "ephemeral"
        rendered = json.dumps(answer["blocks"])
        assert "namespace `kube-system`" in rendered and "restricted_namespaces" in rendered


async def test_policy_usage_hint_for_a_bad_namespace(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        status, text = await _command(stack, "/policy", "Prod; rm -rf /")
        assert status == 200
        assert "Usage: /policy [namespace]" in json.loads(text)["text"]


async def test_unsigned_command_is_rejected(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{stack.url}/slack/events",
                data="command=%2Fpolicy&text=",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ) as r:
                assert r.status == 401
