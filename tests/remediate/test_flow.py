"""The gated remediation flow end to end: alert → action messages → signed clicks → cluster.

Everything runs through the real aiohttp app (Bolt verifies each request's signature), the
Slack emulator and the Kubernetes sandbox, with ``INCIDENT_BOT_REMEDIATION_MODE=url`` pointing
the remediation identity at the sandbox. The cart scenario proposes two medium-risk actions:
``rollout undo --to-revision=6`` and ``set resources --limits=memory=512Mi``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from bot.cli import main as cli
from tests.handlers.test_spine import CART, resolved
from tests.remediate.flow_support import (
    CART_RESOURCES,
    CART_UNDO,
    FLOW_POLICY,
    audit_events,
    buttons,
    by_command,
    click,
    ephemerals_for,
    message,
    post_interaction,
    proposal_messages,
    proposals,
    real_patches,
    record,
    text_of,
    thread_of,
    wait_for,
    wait_state,
    writes,
)
from tests.stack import Stack, running_stack


@asynccontextmanager
async def flow_stack(tmp_path: Path, *layers: str, **overrides: Any) -> AsyncIterator[Stack]:
    """A running bot that may execute, with the flow policy (and ``layers``) on the default."""
    async with running_stack(tmp_path, start=False) as stack:
        settings: dict[str, Any] = {
            "remediation_mode": "url",
            "remediation_url": stack.kube.base_url,
            "verify_timeout": 3.0,
            "second_opinion": False,
            "policy_files": ("default", str(FLOW_POLICY), *layers),
        }
        await stack.start_bot(**(settings | overrides))
        yield stack


def deployment(stack: Stack) -> dict[str, Any]:
    found = stack.kube.get_object("Deployment", "shop", "cart")
    assert found is not None
    return found


def limits(stack: Stack) -> dict[str, Any]:
    container = deployment(stack)["spec"]["template"]["spec"]["containers"][0]
    return dict(container["resources"]["limits"])


async def test_approve_runs_dry_run_snapshot_apply_verify(tmp_path: Path) -> None:
    async with flow_stack(tmp_path) as stack:
        assert (await stack.post(CART))[0] == 200
        found = await proposals(stack)
        assert {p.kubectl for p in found} == {CART_UNDO, CART_RESOURCES}
        target = by_command(found, CART_RESOURCES)
        shown = message(stack, target)
        stored = await record(stack, target.action_id)
        # The buttons carry the action id and nothing else; the short hash is on show.
        assert {b["action_id"]: b["value"] for b in buttons(shown)} == {
            "remediation_approve": target.action_id,
            "remediation_reject": target.action_id,
        }
        assert stored.short_hash in text_of(shown) and stored.state == "pending"
        before = deployment(stack)["spec"]["template"]
        seen = len(stack.kube.requests)

        assert await click(stack, target, "U0ALICE") == 200
        done = await wait_state(stack, target.action_id, {"succeeded", "failed", "rolled_back"})
        assert done.state == "succeeded", done.result
        log = stack.kube.requests[seen:]
        patches = [(i, path) for i, (method, path) in enumerate(log) if method == "PATCH"]
        dry = [i for i, path in patches if "dryRun=All" in path]
        real = [i for i, path in patches if "dryRun" not in path]
        assert len(dry) == 1 and len(real) == 1 and dry[0] < real[0]
        assert limits(stack)["memory"] == "512Mi"
        assert done.snapshot["spec"]["template"] == before  # what a rollback would restore

        # The message was edited in place: decided, then executed; no buttons left.
        await stack.wait(lambda: "Executed and verified" in text_of(message(stack, target)))
        final = message(stack, target)
        assert buttons(final) == [] and "Decided by <@U0ALICE>" in text_of(final)
        history = [text_of(m) for m in stack.slack.revisions(target.channel, target.ts)]
        assert any("Approved" in t for t in history)
        # A result reply says what changed and how long it took.
        await stack.wait(lambda: any(_is_result(m, CART_RESOURCES) for m in thread_of(stack)))
        reply = text_of(next(m for m in thread_of(stack) if _is_result(m, CART_RESOURCES)))
        assert "512Mi" in reply and "*Changed*" in reply and "Took " in reply
        # The other proposal is untouched and nobody saw a refusal.
        other = by_command(found, CART_UNDO)
        assert (await record(stack, other.action_id)).state == "pending"
        assert ephemerals_for(stack, "U0ALICE") == []

    events = [r.event for r in audit_events(stack.settings.data_dir, target.action_id)]
    assert events == [
        "proposed",
        "approval",
        "dry_run",
        "snapshot",
        "applied",
        "verified",
        "executed",
    ]
    result = CliRunner().invoke(cli, ["audit", "verify", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "audit log intact" in result.output


def _is_result(msg: dict[str, Any], kubectl: str) -> bool:
    text = msg.get("text", "")
    return not text.startswith("Proposed remediation") and kubectl in text and ": " in text
