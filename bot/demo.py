"""``incident-bot demo``: the real bot against the sandbox, with every scenario's alert fired.

Everything runs on loopback: the Kubernetes API server serves the union of the scenarios'
clusters, the Slack emulator receives the threads, and the bot is the same code ``serve``
runs. The threads are printed as a terminal rendering of the Block Kit the bot sent.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from bot.config import Settings
from bot.runtime import Runtime
from handlers.server import create_app
from sandbox.kube import KubeSandbox
from sandbox.scenario import Scenario, load_scenario
from sandbox.slack import SlackSandbox

DEMO_TOKEN = "demo-webhook-token"
DEMO_SECRET = "demo-signing-secret"


def load_all(directory: Path) -> list[Scenario]:
    """Every scenario file in ``directory``, sorted by name."""
    return [load_scenario(p) for p in sorted(directory.glob("*.yaml"))]


def merged_cluster(scenarios: Iterable[Scenario]) -> KubeSandbox:
    """One sandbox API server holding every scenario's objects and logs."""
    objects: list[dict[str, Any]] = []
    logs: dict[str, dict[str, str]] = {}
    seen: set[tuple[str, str, str]] = set()
    for scenario in scenarios:
        for obj in scenario.objects:
            meta = obj.get("metadata") or {}
            key = (obj["kind"], meta.get("namespace", ""), meta["name"])
            if key not in seen:
                seen.add(key)
                objects.append(obj)
        logs.update(scenario.logs)
    return KubeSandbox(objects, logs)


async def run_demo(scenario_dir: Path, *, port: int = 8080, once: bool = False) -> None:
    """Start sandbox + bot, fire the scenarios' webhooks, print the threads."""
    console = Console()
    scenarios = load_all(scenario_dir)
    if not scenarios:
        raise SystemExit(f"no scenarios in {scenario_dir}")
    with tempfile.TemporaryDirectory(prefix="incident-bot-demo-") as data_dir:
        async with SlackSandbox() as slack, merged_cluster(scenarios) as cluster:
            settings = Settings(
                slack_bot_token="xoxb-sandbox",
                slack_signing_secret=DEMO_SECRET,
                slack_api_url=slack.api_url,
                default_channel="#incidents",
                webhook_token=DEMO_TOKEN,
                data_dir=Path(data_dir),
                kube_mode="url",
                kube_url=cluster.base_url,
                slack_min_interval=0.05,
            )
            runtime = Runtime(settings)
            runner = web.AppRunner(create_app(runtime), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", port)
            await site.start()
            bound = runner.addresses[0][1]
            url = f"http://127.0.0.1:{bound}"
            try:
                await fire(url, [s.webhook for s in scenarios])
                await wait_for_threads(slack, len(scenarios), replies=1, within=60)
                render_threads(console, slack)
                console.print(
                    f"\nBot: {url}  (POST /alertmanager with 'Authorization: Bearer {DEMO_TOKEN}')"
                    f"\nSlack emulator: {slack.base_url}   Kubernetes sandbox: {cluster.base_url}"
                )
                if not once:
                    console.print("Serving until Ctrl-C …")
                    await asyncio.Event().wait()
            finally:
                await runner.cleanup()


async def fire(url: str, webhooks: Iterable[Mapping[str, Any]]) -> None:
    """POST each webhook to the bot as Alertmanager would."""
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}", "User-Agent": "Alertmanager/0.25.0"}
    async with aiohttp.ClientSession() as session:
        for body in webhooks:
            async with session.post(f"{url}/alertmanager", json=body, headers=headers) as resp:
                resp.raise_for_status()


async def wait_for_threads(slack: SlackSandbox, count: int, *, replies: int, within: float) -> None:
    """Wait until ``count`` threads exist, each with at least ``replies`` replies."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        threads = list(all_threads(slack))
        if len(threads) >= count and all(len(t) > replies for t in threads):
            return
        await asyncio.sleep(0.1)


def all_threads(slack: SlackSandbox) -> Iterable[list[dict[str, Any]]]:
    """Every thread (parent + replies) in every channel."""
    for channel in slack.channels():
        for message in slack.channel_messages(channel):
            yield slack.thread(channel, message["ts"])


def render_threads(console: Console, slack: SlackSandbox) -> None:
    """Print each thread as a panel: the parent, then its replies."""
    for channel in slack.channels():
        channel_title = f"Slack channel {channel}"
        for message in slack.channel_messages(channel):
            thread = slack.thread(channel, message["ts"])
            parts: list[Text] = [render_blocks(thread[0])]
            for reply in thread[1:]:
                parts.append(Text("  ↳ ", style="dim") + render_blocks(reply))
            console.print(Panel(Group(*parts), title=channel_title, title_align="left"))


def render_blocks(message: Mapping[str, Any]) -> Text:
    """A plain-text rendering of a message's Block Kit."""
    lines: list[str] = []
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind == "section":
            if block.get("text"):
                lines.append(_mrkdwn(block["text"]["text"]))
            fields = [_mrkdwn(f["text"]).replace("\n", ": ", 1) for f in block.get("fields") or []]
            if fields:
                lines.append("   ".join(fields))
        elif kind == "context":
            lines.append(" ".join(_mrkdwn(e.get("text", "")) for e in block.get("elements", [])))
        elif kind == "header":
            lines.append(block["text"]["text"].upper())
        elif kind == "actions":
            lines.append(" ".join(f"[{e['text']['text']}]" for e in block.get("elements", [])))
        elif kind == "divider":
            lines.append("─" * 40)
    if not lines:
        lines.append(str(message.get("text", "")))
    return Text("\n".join(lines) + "\n")


_EMOJI = {
    ":red_circle:": "🔴",
    ":large_orange_circle:": "🟠",
    ":large_blue_circle:": "🔵",
    ":white_circle:": "⚪",
    ":white_check_mark:": "✅",
    ":mag:": "🔍",
    ":warning:": "⚠️",
    ":heavy_plus_sign:": "➕",
    ":heavy_minus_sign:": "➖",
    ":repeat:": "🔁",
    ":arrow_forward:": "▶️",
    ":hourglass:": "⌛",
}


def _mrkdwn(text: str) -> str:
    for code, emoji in _EMOJI.items():
        text = text.replace(code, emoji)
    # <url|label> → label (url)
    out, rest = "", text
    while "<" in rest and ">" in rest.split("<", 1)[1]:
        before, link = rest.split("<", 1)
        inner, rest = link.split(">", 1)
        target, _, label = inner.partition("|")
        out += before + (f"{label} ({target})" if label else target)
    out += rest
    out = out.replace("*", "").replace("`", "")
    return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
