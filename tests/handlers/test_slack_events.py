"""``POST /slack/events``: Bolt verifies signatures for real (signed with slack_sdk)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp

from sandbox.slack import sign_request
from tests.stack import SECRET, Stack, running_stack


async def _post(stack: Stack, body: str, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{stack.url}/slack/events",
            data=body,
            headers={"Content-Type": "application/json", **headers},
        ) as resp:
            return resp.status, await resp.text()


async def test_url_verification_with_valid_signature(tmp_path: Path) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"})
    async with running_stack(tmp_path) as stack:
        status, text = await _post(stack, body, sign_request(body, SECRET))
        assert status == 200
        assert "c-123" in text


async def test_bad_or_stale_signature_is_401(tmp_path: Path) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123"})
    async with running_stack(tmp_path) as stack:
        assert (await _post(stack, body, sign_request(body, "wrong-secret")))[0] == 401
        stale = sign_request(body, SECRET, timestamp=int(time.time()) - 3600)
        assert (await _post(stack, body, stale))[0] == 401
        assert (await _post(stack, body, {}))[0] == 401
