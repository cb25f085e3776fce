"""A whole bot on loopback: Slack emulator, Kubernetes sandbox, the real aiohttp app."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.config import Settings
from bot.runtime import Runtime
from handlers.server import create_app
from sandbox.kube import KubeSandbox
from sandbox.scenario import load_scenario
from sandbox.slack import SlackSandbox

ROOT = Path(__file__).parents[1]
TOKEN = "test-webhook-token"
SECRET = "test-signing-secret"


def scenario_path(name: str) -> Path:
    return ROOT / "scenarios" / f"{name}.yaml"


def base_settings(data_dir: Path, slack: SlackSandbox, kube_url: str) -> Settings:
    return Settings(
        slack_bot_token="xoxb-sandbox",
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        default_channel="#incidents",
        webhook_token=TOKEN,
        data_dir=data_dir,
        kube_mode="url",
        kube_url=kube_url,
        kube_timeout=1.0,
        evidence_timeout=2.0,
        slack_min_interval=0.0,
        embed_backend="hash",  # the real model costs seconds per start; tests/rag covers it
    )


class Stack:
    """Handles to every part of a running test bot."""

    def __init__(self, slack: SlackSandbox, kube: KubeSandbox, settings: Settings) -> None:
        self.slack = slack
        self.kube = kube
        self.settings = settings
        self.runtime: Runtime | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start_bot(self, **overrides: Any) -> None:
        self.settings = replace(self.settings, **overrides)
        self.runtime = Runtime(self.settings)
        self._runner = web.AppRunner(create_app(self.runtime), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop_bot(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def post(
        self, body: Any, *, token: str | None = TOKEN, raw: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body).encode()
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/alertmanager", data=data, headers=headers) as r:
                return r.status, await r.json()

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            async with session.get(self.url + path) as r:
                return r.status, await r.text()

    def threads(self) -> list[list[dict[str, Any]]]:
        out = []
        for channel in self.slack.channels():
            for message in self.slack.channel_messages(channel):
                out.append(self.slack.thread(channel, message["ts"]))
        return out

    async def wait(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"condition not met within {within}s; threads: {self.threads()}")


@asynccontextmanager
async def running_stack(
    tmp_path: Path,
    scenario: str = "cart-oomkilled",
    *,
    start: bool = True,
    rebase: bool = False,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """A running bot; ``rebase`` moves the scenario's cluster to the wall clock (live alerts)."""
    async with SlackSandbox() as slack:
        loaded = load_scenario(scenario_path(scenario))
        if rebase:
            loaded = loaded.rebased(datetime.now(UTC))
        kube = KubeSandbox.from_scenario(loaded)
        async with kube:
            settings = replace(base_settings(tmp_path / "data", slack, kube.base_url), **overrides)
            stack = Stack(slack, kube, settings)
            if start:
                await stack.start_bot()
            try:
                yield stack
            finally:
                await stack.stop_bot()


def message_text(message: dict[str, Any]) -> str:
    """Every text of a message's blocks, joined."""
    parts = [message.get("text", "")]
    for block in message.get("blocks") or []:
        if block.get("text"):
            parts.append(block["text"].get("text", ""))
        for item in block.get("fields") or []:
            parts.append(item.get("text", ""))
        for item in block.get("elements") or []:
            if isinstance(item, dict) and "text" in item:
                text = item["text"]
                parts.append(text if isinstance(text, str) else text.get("text", ""))
    return "\n".join(parts)
