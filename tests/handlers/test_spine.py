"""Alertmanager webhook → incident → Slack thread, through the real app and sandboxes."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

from sandbox.scenario import load_scenario
from tests.stack import message_text, running_stack, scenario_path

CART = load_scenario(scenario_path("cart-oomkilled")).webhook


def resolved(webhook: dict) -> dict:  # type: ignore[type-arg]
    body = copy.deepcopy(webhook)
    body["status"] = "resolved"
    for alert in body["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-20T10:31:30Z"
    return body


async def test_firing_then_resolved_thread(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        status, body = await stack.post(CART)
        assert (status, body["status"]) == (200, "accepted")
        # Parent, RCA reply, and one approval message per suggested action (two for cart).
        await stack.wait(lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) == 4)
        parent, evidence, *proposals = stack.threads()[0]
        assert all("Proposed remediation" in message_text(m) for m in proposals)
        text = message_text(parent)
        assert "KubePodCrashLooping" in text and "shop/Deployment/cart" in text
        assert ":large_orange_circle:" in text
        assert "runbooks.prometheus-operator.dev" in text and "/#/alerts?filter=" in text
        rca = message_text(evidence)
        assert "Root cause" in rca and "oom_killed" in rca
        assert "OOMKilled (exit 137)" in rca and "memory limit 256Mi" in rca
        assert "revision 7" in rca  # the rollout that triggered it
        assert "kubectl -n shop set resources deployment/cart -c cart --limits=memory=512Mi" in rca

        status, _ = await stack.post(resolved(CART))
        assert status == 200
        await stack.wait(lambda: len(stack.threads()[0]) == 5)
        channel = stack.slack.channels()[0]
        # The "Resolved" reply is queued before the parent's update: wait for both.
        await stack.wait(
            lambda: ":white_check_mark:" in message_text(stack.slack.channel_messages(channel)[0])
        )
        parent = stack.slack.channel_messages(channel)[0]
        assert "Resolved after 22m" in message_text(parent)
        assert "Resolved" in message_text(stack.threads()[0][4])
        # Undecided proposals die with the incident: their buttons are replaced.
        await stack.wait(
            lambda: all("Cancelled" in message_text(m) for m in stack.threads()[0][2:4])
        )


async def test_duplicate_delivery_makes_one_thread(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        assert (await stack.post(CART))[1]["status"] == "accepted"
        # Alertmanager re-delivers byte for byte: recognised at the inbox.
        assert (await stack.post(CART))[1]["status"] == "duplicate"
        # The same notification formatted differently is stored, but changes nothing.
        raw = json.dumps(CART, indent=1).encode()
        assert (await stack.post(None, raw=raw))[1]["status"] == "accepted"
        await stack.wait(lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) == 4)
        # A group re-send that repeats the same alert state also changes nothing.
        again = copy.deepcopy(CART)
        again["groupKey"] = "something-else"
        assert (await stack.post(again))[1]["status"] == "accepted"
        assert stack.runtime is not None
        await stack.runtime.pipeline.drain()
        assert len(stack.threads()) == 1 and len(stack.threads()[0]) == 4
        assert len(stack.slack.calls_to("chat.postMessage")) == 4


async def test_bad_requests_are_rejected_and_store_nothing(tmp_path: Path) -> None:
    async with running_stack(tmp_path, max_body_bytes=4096) as stack:
        assert (await stack.post(CART, token=None))[0] == 401
        assert (await stack.post(CART, token="wrong"))[0] == 401
        status, body = await stack.post(None, raw=b"{" + b" " * 5000 + b"}")
        assert status == 413
        status, body = await stack.post(None, raw=b"not json")
        assert (status, body["field"]) == (400, "body")
        broken = copy.deepcopy(CART)
        broken["alerts"][0]["startsAt"] = "soon"
        status, body = await stack.post(broken)
        assert (status, body["field"]) == (400, "alerts[0].startsAt")
        status, body = await stack.post(None, raw=b'{"status": "firing", "alerts": [\xff]}')
        assert status == 400
        assert stack.runtime is not None
        store = stack.runtime.store
        rows = await store.call(lambda: store.conn.execute("select count(*) from inbox").fetchone())
        assert rows[0] == 0
        assert (await stack.get("/healthz"))[0] == 200


async def test_kubernetes_errors_still_post_naming_missing_evidence(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.kube.fail_next(1000, status=500)
        await stack.post(CART)
        await stack.wait(lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) == 2)
        text = message_text(stack.threads()[0][1])
        assert "Missing data" in text and "500" in text


async def test_hanging_kubernetes_bounded_by_timeout(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.kube.set_delay(30)
        await stack.post(CART)
        # owner lookup (1 s) + evidence (2 s) + margin; the hang is 30 s.
        await stack.wait(
            lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) >= 2, within=6.0
        )
        text = message_text(stack.threads()[0][1])
        assert "timed out" in text
        # Without the API the pod name's shape still finds the Deployment.
        assert "shop/Deployment/cart" in message_text(stack.threads()[0][0])


async def test_slack_429_delivers_everything_in_order(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        stack.slack.rate_limit_next(2, retry_after=1, method="chat.postMessage")
        await stack.post(CART)
        await stack.post(resolved(CART))

        def done() -> bool:
            texts = [message_text(m) for t in stack.threads() for m in t]
            return (
                len(stack.threads()) == 1
                and any("Root cause" in t for t in texts)
                and any(t.startswith(":white_check_mark: Resolved") for t in texts)
            )

        await stack.wait(done, within=15)
        assert stack.runtime is not None
        for _ in range(200):  # the last post is in Slack; its row is marked sent right after
            if await stack.runtime.store.call(stack.runtime.store.outbox_depth) == 0:
                break
            await asyncio.sleep(0.02)
        texts = "\n".join(message_text(m) for m in stack.threads()[0])
        assert "Root cause" in texts and "Resolved" in texts
        # Delivered in the order decided: outbox ids and Slack timestamps agree.
        assert stack.runtime is not None
        store = stack.runtime.store
        rows = await store.call(
            lambda: store.conn.execute(
                "select ts from outbox where kind != 'update' order by id"
            ).fetchall()
        )
        assert [r[0] for r in rows] == [m["ts"] for m in stack.threads()[0]]
        posts = stack.slack.calls_to("chat.postMessage")
        assert len(posts) == 5  # 2 rate-limited attempts + 3 delivered messages


async def test_readyz_and_metrics(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.post(CART)
        await stack.post(CART)
        await stack.wait(lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) >= 2)
        status, body = await stack.get("/readyz")
        assert status == 200 and json.loads(body)["checks"]["store_writable"]
        status, text = await stack.get("/metrics")
        assert status == 200
        assert 'incident_bot_webhooks_total{outcome="accepted"} 1.0' in text
        assert 'incident_bot_webhooks_total{outcome="duplicate"} 1.0' in text
        assert "incident_bot_alerts_received_total 1.0" in text
        assert "incident_bot_inbox_depth 0.0" in text
        assert "incident_bot_alert_to_slack_seconds_count 1.0" in text
