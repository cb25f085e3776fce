"""Crash safety: SIGKILL the real ``incident-bot serve`` process and restart it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.metrics import Metrics
from bot.outbox import META_TYPE, SlackOutbox, make_client
from bot.store import Store
from sandbox.slack import SlackSandbox
from tests.handlers.test_spine import CART
from tests.stack import SECRET, TOKEN, Stack, running_stack


def _serve(stack: Stack, data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-sandbox",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": stack.slack.api_url,
        "INCIDENT_BOT_DEFAULT_CHANNEL": "#incidents",
        "INCIDENT_BOT_WEBHOOK_TOKEN": TOKEN,
        "INCIDENT_BOT_DATA_DIR": str(data_dir),
        "INCIDENT_BOT_HOST": "127.0.0.1",
        "INCIDENT_BOT_PORT": "0",
        "INCIDENT_BOT_KUBE_MODE": "url",
        "INCIDENT_BOT_KUBE_URL": stack.kube.base_url,
        "INCIDENT_BOT_SLACK_MIN_INTERVAL": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return proc, found.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("incident-bot serve did not start")


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()


@pytest.mark.parametrize("slack_delay", [0.0, 0.8], ids=["before-post", "during-post"])
async def test_sigkill_after_ack_gives_exactly_one_thread(
    tmp_path: Path, slack_delay: float
) -> None:
    async with running_stack(tmp_path, start=False) as stack:
        # Slack stalls (or the worker has not even started): the kill lands between the
        # 2xx and the confirmed post.
        stack.slack.set_delay(slack_delay or 30.0, method="chat.postMessage")
        proc, stack.url = await asyncio.to_thread(_serve, stack, tmp_path / "data")
        try:
            status, body = await stack.post(CART)
            assert (status, body["status"]) == (200, "accepted")
            if slack_delay:
                await asyncio.sleep(slack_delay / 2)
        finally:
            await asyncio.to_thread(_kill, proc)
        await asyncio.sleep(slack_delay)  # let a stalled post finish (or fail) server-side
        stack.slack.clear_faults()
        proc, stack.url = await asyncio.to_thread(_serve, stack, tmp_path / "data")
        try:
            # Parent, RCA reply and one message per proposed action (two for cart).
            await stack.wait(lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) == 4)
            await asyncio.sleep(1.0)  # anything doubled would show up now
            assert len(stack.threads()) == 1
            thread = stack.threads()[0]
            assert len(thread) == 4
            texts = [m["text"] for m in thread]
            assert len(set(texts)) == 4
            assert sum(t.startswith("Root cause") for t in texts) == 1
        finally:
            await asyncio.to_thread(_kill, proc)


async def test_recovery_finds_a_post_the_crash_did_not_record() -> None:
    """A row left in ``sending`` whose message Slack has is marked sent, not posted again."""
    async with SlackSandbox() as slack:
        store = Store.memory()
        client = make_client("xoxb-sandbox", slack.api_url)
        store.db.table("incidents").insert(
            {
                "id": "INC_1",
                "group_key": "g",
                "alertname": "A",
                "status": "firing",
                "channel": "#incidents",
                "opened_at": "2026-11-20T10:00:00+00:00",
                "received_at": time.time(),
            }
        )
        outbox_id = store.enqueue(
            "INC_1", "#incidents", "parent", {"text": "hi", "blocks": []}, time.time()
        )
        store.outbox_mark(outbox_id, "sending")
        posted = await client.chat_postMessage(
            channel="#incidents",
            text="hi",
            metadata={
                "event_type": META_TYPE,
                "event_payload": {"outbox_id": outbox_id, "incident_id": "INC_1"},
            },
        )
        runner = SlackOutbox(store, client, Metrics(), min_interval=0)
        task = asyncio.create_task(runner.run())
        for _ in range(100):
            if store.outbox_depth() == 0:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert store.thread_of("INC_1") == (posted["channel"], posted["ts"])
        assert len(slack.calls_to("chat.postMessage")) == 1
        store.close()
