"""The learning loop through the running bot: history → similar incidents in the thread,
re-ranked actions, 👍/👎 and corrections, and the resolved incident becoming a document."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.messages import FEEDBACK_CORRECT, FEEDBACK_UP
from handlers.feedback import CAUSE_BLOCK, CAUSE_INPUT, CORRECT_MODAL
from rag.embed import HashEncoder
from rag.memory import IncidentMemory
from rag.text import parse_doc
from sandbox.scenario import load_scenario
from sandbox.slack import sign_request
from tests.stack import SECRET, Stack, message_text, running_stack, scenario_path

HISTORY = [
    {
        "incident_id": "INC_20250301_001",
        "title": "cart OOMKilled after cache size increase",
        "alertname": "KubePodCrashLooping",
        "namespace": "shop",
        "object": "shop/Deployment/cart",
        "category": "oom_killed",
        "root_cause": "cart container OOMKilled at its 256Mi memory limit after the cache grew",
        "evidence": "lastState terminated reason OOMKilled exit code 137 memory limit 256Mi",
        "action": "kubectl -n shop set resources deployment/cart -c cart --limits=memory=512Mi",
        "result": "success",
        "timestamp": "2025-03-01T10:00:00Z",
        "resolved_at": "2025-03-01T10:40:00Z",
    },
    {
        "incident_id": "INC_20250410_002",
        "title": "cart OOMKilled, restart did not help",
        "alertname": "KubePodCrashLooping",
        "namespace": "shop",
        "object": "shop/Deployment/cart",
        "category": "oom_killed",
        "root_cause": "cart OOMKilled memory limit exceeded; container killed exit 137",
        "evidence": "OOMKilled exit code 137 restarts memory limit",
        "action": "kubectl -n shop rollout undo deployment/cart",
        "result": "failed",
        "timestamp": "2025-04-10T08:00:00Z",
        "resolved_at": "2025-04-10T09:30:00Z",
    },
    {
        "incident_id": "INC_20250512_003",
        "title": "ingress TLS certificate expired",
        "alertname": "CertificateExpiring",
        "namespace": "ingress",
        "object": "ingress/Deployment/nginx",
        "category": "certificate_expired",
        "root_cause": "x509 certificate expired for api.example.com; cert-manager renewal failed",
        "evidence": "x509: certificate has expired or is not yet valid",
        "action": "kubectl -n cert-manager rollout restart deployment/cert-manager",
        "result": "success",
        "timestamp": "2025-05-12T08:00:00Z",
        "resolved_at": "2025-05-12T08:20:00Z",
    },
]


def _seed(data_dir: Path) -> None:
    with IncidentMemory(data_dir / "memory", HashEncoder()) as memory:
        memory.add(parse_doc(d) for d in HISTORY)


async def _interact(stack: Stack, payload: dict[str, Any]) -> tuple[int, str]:
    body = urlencode({"payload": json.dumps(payload)})
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign_request(body, SECRET)}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{stack.url}/slack/events", data=body, headers=headers) as r:
            return r.status, await r.text()


def _click(channel: str, ts: str, action_id: str, value: str, user: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": "T0SANDBOX"},
        "api_app_id": "A0SANDBOX",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{time.time():.0f}.trigger.{action_id}",
        "team": {"id": "T0SANDBOX", "domain": "sandbox"},
        "channel": {"id": channel, "name": "incidents"},
        "message": {"ts": ts, "type": "message"},
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": f"rca:{value}",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def _cart_webhook(status: str = "firing") -> dict[str, Any]:
    body: dict[str, Any] = load_scenario(scenario_path("cart-oomkilled")).webhook
    if status == "resolved":
        body = json.loads(json.dumps(body))
        body["status"] = "resolved"
        for alert in body["alerts"]:
            alert["status"] = "resolved"
            alert["endsAt"] = "2026-11-20T10:31:30Z"
    return body


async def test_history_shows_in_the_thread_and_feeds_back(tmp_path: Path) -> None:
    _seed(tmp_path / "data")
    async with running_stack(tmp_path, similar_min_score=0.1) as stack:
        assert (await stack.post(_cart_webhook()))[0] == 200
        await stack.wait(
            lambda: any(
                "Similar past incidents" in message_text(m) for t in stack.threads() for m in t
            )
        )
        thread = stack.threads()[0]
        rca = next(m for m in thread if "Root cause" in message_text(m))
        text = message_text(rca)
        assert "INC_20250301_001" in text and "INC_20250410_002" in text
        assert "INC_20250512_003" not in text  # the TLS incident is not similar
        # The action that fixed the similar incident comes first; the failed one is flagged.
        assert stack.runtime is not None
        store = stack.runtime.store
        incident = (await store.call(store.incidents))[0]
        report = json.loads(incident["rca"])
        assert report["actions"][0]["kind"] == "set_resources"
        assert "resolved 1 similar incident" in report["actions"][0]["history"]
        assert "failed on similar incident INC_20250410_002" in report["actions"][1]["history"]
        assert {s["incident_id"] for s in report["similar"]} >= {
            "INC_20250301_001",
            "INC_20250410_002",
        }

        # 👍 from alice, then a correction through the modal.
        channel, ts = stack.slack.channels()[0], rca["ts"]
        incident_id = incident["id"]
        status, _ = await _interact(stack, _click(channel, ts, FEEDBACK_UP, incident_id, "U0ALICE"))
        assert status == 200
        await stack.wait(lambda: bool(stack.slack.ephemeral_messages()))
        assert "right" in stack.slack.ephemeral_messages()[-1]["text"]
        status, _ = await _interact(
            stack, _click(channel, ts, FEEDBACK_CORRECT, incident_id, "U0ALICE")
        )
        assert status == 200
        await stack.wait(
            lambda: any(v.get("callback_id") == CORRECT_MODAL for v in stack.slack.views())
        )
        view = next(v for v in stack.slack.views() if v.get("callback_id") == CORRECT_MODAL)
        submission = {
            "type": "view_submission",
            "user": {"id": "U0ALICE", "username": "alice", "name": "alice", "team_id": "T0SANDBOX"},
            "api_app_id": "A0SANDBOX",
            "team": {"id": "T0SANDBOX", "domain": "sandbox"},
            "trigger_id": "1.2.3",
            "view": {
                **view,
                "state": {
                    "values": {
                        CAUSE_BLOCK: {
                            CAUSE_INPUT: {
                                "type": "plain_text_input",
                                "value": "cache size env var raised tenfold in release 3.8.0",
                            }
                        }
                    }
                },
            },
        }
        status, _ = await _interact(stack, submission)
        assert status == 200
        await stack.wait(
            lambda: any(
                "Root cause corrected by <@U0ALICE>" in message_text(m) for m in stack.threads()[0]
            )
        )

        # Resolution writes the incident into the memory with the corrected cause and its thread.
        assert (await stack.post(_cart_webhook("resolved")))[0] == 200
        memory = stack.runtime.memory
        assert memory is not None

        async def remembered() -> dict[str, Any] | None:
            found = await memory.asearch("cache size env var raised tenfold", top=10, min_score=0.0)
            return next((s.to_dict() for s in found if s.incident_id == incident_id), None)

        deadline = time.monotonic() + 10
        doc = await remembered()
        while doc is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            doc = await remembered()
        assert doc is not None
        assert doc["root_cause"] == "cache size env var raised tenfold in release 3.8.0"
        assert doc["channel"] and doc["thread_ts"]
        # Learning metrics at /metrics: alice's 👍 is the only vote; 4 documents now.
        status, metrics = await stack.get("/metrics")
        assert status == 200
        assert 'incident_bot_rca_acceptance_ratio{category="all"} 1.0' in metrics
        assert "incident_bot_memory_documents 4.0" in metrics
        assert 'incident_bot_mttr_seconds{category="oom_killed",quantile="0.5"}' in metrics
        assert 'incident_bot_action_success_ratio{kind="set_resources"} 1.0' in metrics
