"""``incident-bot demo``: the real bot against the sandbox, with every scenario's alert fired.

Everything runs on loopback: the Kubernetes API server serves the union of the scenarios'
clusters, the Slack emulator receives the threads, and the bot is the same code ``serve``
runs. The threads are printed as a terminal rendering of the Block Kit the bot sent, and a
small web page (``sandbox.slack_web``) shows them as a Slack client would: clicking Approve
there sends a signed interaction to the bot, which executes the change against the sandbox
cluster and verifies the rollout. The demo policy (``policies/examples/demo.yaml``) makes
alice an approver and leaves bob out.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
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
from sandbox.slack_web import Person, SlackWebPage
from sandbox.slack_web_render import EMOJI

DEMO_TOKEN = "demo-webhook-token"
DEMO_SECRET = "demo-signing-secret"
DEFAULT_WEB_PORT = 8090
DEMO_PEOPLE = (
    Person("U0ALICE", "alice", "approver"),
    Person("U0BOB", "bob", "not an approver"),
)


def demo_policy() -> Path:
    """The demo's policy layer (alice approves every risk level)."""
    return Path(str(resources.files("policies").joinpath("examples", "demo.yaml")))


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


def demo_settings(
    slack: SlackSandbox, cluster: KubeSandbox, data_dir: Path, **overrides: Any
) -> Settings:
    """The bot's settings for the demo: sandbox Slack and cluster, execution enabled.

    The remediation identity is the sandbox API server itself (``remediation_mode=url``), so
    an approved action is dry-run, applied and verified against the simulated rollout.
    """
    settings: dict[str, Any] = {
        "slack_bot_token": slack.bot_token,
        "slack_signing_secret": DEMO_SECRET,
        "slack_api_url": slack.api_url,
        "default_channel": "#incidents",
        "webhook_token": DEMO_TOKEN,
        "data_dir": data_dir,
        "kube_mode": "url",
        "kube_url": cluster.base_url,
        "slack_min_interval": 0.05,
        "remediation_mode": "url",
        "remediation_url": cluster.base_url,
        "verify_timeout": 20.0,
        "policy_files": ("default", str(demo_policy())),
    }
    settings.update(overrides)
    return Settings(**settings)


@dataclass
class DemoStack:
    """Handles to a running demo: emulators, the bot and the web page."""

    slack: SlackSandbox
    cluster: KubeSandbox
    runtime: Runtime
    bot_url: str
    page: SlackWebPage

    @property
    def page_url(self) -> str:
        """Where the Slack web page is served."""
        return self.page.base_url


@asynccontextmanager
async def demo_stack(
    scenarios: Iterable[Scenario],
    data_dir: Path,
    *,
    port: int = 0,
    web_port: int = 0,
    **overrides: Any,
) -> AsyncIterator[DemoStack]:
    """Start the sandbox cluster, the Slack emulator, the bot and the web page (no alerts yet).

    Args:
        scenarios: Whose clusters the sandbox API server serves.
        data_dir: The bot's data directory.
        port: The bot's port (0 = any free port).
        web_port: The web page's port (0 = any free port).
        **overrides: Settings fields to change (e.g. ``embed_backend="hash"`` in tests).
    """
    async with SlackSandbox() as slack, merged_cluster(scenarios) as cluster:
        runtime = Runtime(demo_settings(slack, cluster, data_dir, **overrides))
        runner = web.AppRunner(create_app(runtime), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            bot_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            page = SlackWebPage(
                slack,
                events_url=f"{bot_url}/slack/events",
                signing_secret=DEMO_SECRET,
                people=DEMO_PEOPLE,
            )
            await page.start(port=web_port)
            try:
                yield DemoStack(slack, cluster, runtime, bot_url, page)
            finally:
                await page.stop()
        finally:
            await runner.cleanup()


async def run_demo(
    scenario_dir: Path, *, port: int = 8080, once: bool = False, web_port: int | None = None
) -> None:
    """Start sandbox + bot + web page, fire the scenarios' webhooks, print the threads.

    Args:
        scenario_dir: Directory of scenario files.
        port: The bot's port (0 = any).
        once: Exit after printing the threads instead of serving until Ctrl-C.
        web_port: The web page's port; by default 8090, or any free port with ``once`` or
            ``port=0``.
    """
    console = Console()
    scenarios = load_all(scenario_dir)
    if not scenarios:
        raise SystemExit(f"no scenarios in {scenario_dir}")
    if web_port is None:
        web_port = 0 if once or port == 0 else DEFAULT_WEB_PORT
    with tempfile.TemporaryDirectory(prefix="incident-bot-demo-") as data_dir:
        async with demo_stack(scenarios, Path(data_dir), port=port, web_port=web_port) as stack:
            await fire(stack.bot_url, [s.webhook for s in scenarios])
            await wait_for_threads(stack.slack, len(scenarios), replies=1, within=60)
            render_threads(console, stack.slack)
            console.print(
                f"\nBot: {stack.bot_url}  (POST /alertmanager with "
                f"'Authorization: Bearer {DEMO_TOKEN}')"
                f"\nSlack emulator: {stack.slack.base_url}   "
                f"Kubernetes sandbox: {stack.cluster.base_url}"
            )
            if not once:
                console.print(
                    f"\nOpen {stack.page_url} to see the channel and approve a remediation "
                    "(act as alice, an approver in the demo policy; bob is not)."
                    "\nServing until Ctrl-C …"
                )
                await asyncio.Event().wait()


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


_SHORTCODE = re.compile(r":([a-z0-9_+-]+):")


def _mrkdwn(text: str) -> str:
    text = _SHORTCODE.sub(lambda m: EMOJI.get(m[1], m[0]), text)
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
