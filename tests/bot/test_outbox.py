"""The Slack outbox against the Slack emulator: ordering, stale updates, permanent errors."""

from __future__ import annotations

import asyncio
import time

from bot.metrics import Metrics
from bot.outbox import SlackOutbox, make_client
from bot.store import Store
from sandbox.slack import SlackSandbox

INCIDENT = {
    "id": "INC_1",
    "group_key": "g",
    "alertname": "A",
    "status": "firing",
    "channel": "#incidents",
    "opened_at": "2026-11-20T10:00:00+00:00",
    "received_at": 0.0,
}


def _payload(text: str) -> dict[str, object]:
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


async def _deliver(store: Store, slack: SlackSandbox, metrics: Metrics | None = None) -> None:
    runner = SlackOutbox(
        store, make_client("xoxb-sandbox", slack.api_url), metrics or Metrics(), min_interval=0
    )
    task = asyncio.create_task(runner.run())
    for _ in range(200):
        if await store.call(store.outbox_depth) == 0:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_only_the_latest_parent_update_is_sent() -> None:
    async with SlackSandbox() as slack:
        store = Store.memory()
        store.db.table("incidents").insert(INCIDENT)
        store.enqueue("INC_1", "#incidents", "parent", _payload("v0"), time.time())
        for version in range(1, 5):
            store.enqueue("INC_1", "#incidents", "update", _payload(f"v{version}"), time.time())
        await _deliver(store, slack)
        assert len(slack.calls_to("chat.update")) == 1
        channel = slack.channels()[0]
        assert slack.channel_messages(channel)[0]["text"] == "v4"
        store.close()


async def test_permanent_error_fails_the_row_and_the_lane_moves_on() -> None:
    async with SlackSandbox() as slack:
        store = Store.memory()
        store.db.table("incidents").insert(INCIDENT)
        store.enqueue("INC_1", "#incidents", "parent", _payload("parent"), time.time())
        too_big = {"text": "x", "blocks": [{"type": "divider"}] * 51}
        store.enqueue("INC_1", "#incidents", "reply", too_big, time.time())
        store.enqueue("INC_1", "#incidents", "reply", _payload("after"), time.time())
        metrics = Metrics()
        await _deliver(store, slack, metrics)
        channel = slack.channels()[0]
        thread = slack.thread(channel, slack.channel_messages(channel)[0]["ts"])
        assert [m["text"] for m in thread] == ["parent", "after"]
        failed = store.conn.execute("select error from outbox where state = 'failed'").fetchall()
        assert failed == [("invalid_blocks",)]
        sample = metrics.registry.get_sample_value(
            "incident_bot_slack_api_errors_total",
            {"method": "chat.postMessage", "error": "invalid_blocks"},
        )
        assert sample == 1.0
        store.close()


async def test_replies_without_a_parent_are_failed_not_posted_to_the_channel() -> None:
    async with SlackSandbox() as slack:
        store = Store.memory()
        store.db.table("incidents").insert(INCIDENT)
        slack.mark_channel_missing("#incidents")
        store.enqueue("INC_1", "#incidents", "parent", _payload("parent"), time.time())
        store.enqueue("INC_1", "#incidents", "reply", _payload("reply"), time.time())
        await _deliver(store, slack)
        rows = store.conn.execute("select kind, state, error from outbox order by id").fetchall()
        assert rows == [
            ("parent", "failed", "channel_not_found"),
            ("reply", "failed", "parent message missing"),
        ]
        store.close()
