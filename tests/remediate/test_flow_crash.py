"""Crash safety of execution: SIGKILL the real ``incident-bot serve`` around an approval.

An action is run at most once. Killed while it executes, the restarted bot marks it failed
("restarted during execution") and never runs it again; approved but not yet started (the
approval committed, the process died before ``start_execution``), it runs exactly once after
the restart — and only if the stored row still matches the hash the approvers saw.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.remediate.approvals import RESTART_ERROR
from sandbox.kube_registry import Target
from tests.handlers.test_crash import _kill, _serve
from tests.handlers.test_spine import CART
from tests.remediate.flow_support import (
    CART_RESOURCES,
    CART_UNDO,
    FLOW_POLICY,
    approve_offline,
    assert_audit_intact,
    audit_events,
    by_command,
    click,
    proposals,
    real_patches,
    stored_action,
    tamper_offline,
    text_of,
    thread_of,
    wait_for,
)
from tests.stack import Stack, running_stack

Patch = Callable[[web.Request, Target], Awaitable[web.StreamResponse]]


@pytest.fixture(autouse=True)
def remediation_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``_serve`` passes on to the bot besides its own settings (clean_env ran first)."""
    monkeypatch.setenv("INCIDENT_BOT_REMEDIATION_MODE", "url")
    monkeypatch.setenv("INCIDENT_BOT_POLICY", f"default,{FLOW_POLICY}")
    monkeypatch.setenv("INCIDENT_BOT_VERIFY_TIMEOUT", "3")
    monkeypatch.setenv("INCIDENT_BOT_SECOND_OPINION", "off")
    monkeypatch.setenv("INCIDENT_BOT_EMBED_BACKEND", "hash")


class Bot:
    """The bot as a subprocess on the stack's sandboxes; restartable on the same data dir."""

    def __init__(self, stack: Stack, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stack = stack
        self.data_dir = data_dir
        self.proc: subprocess.Popen[str] | None = None
        monkeypatch.setenv("INCIDENT_BOT_REMEDIATION_URL", stack.kube.base_url)

    async def start(self) -> None:
        self.proc, self.stack.url = await asyncio.to_thread(_serve, self.stack, self.data_dir)

    async def kill(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(_kill, self.proc)
            self.proc = None


@asynccontextmanager
async def bot_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bot]:
    async with running_stack(tmp_path, start=False) as stack:
        bot = Bot(stack, tmp_path / "data", monkeypatch)
        try:
            yield bot
        finally:
            await bot.kill()


async def _wait_state(data_dir: Path, action_id: str, states: set[str]) -> dict[str, Any]:
    await wait_for(
        lambda: stored_action(data_dir, action_id)["state"] in states,
        within=20,
        what=f"{action_id} in {sorted(states)}",
    )
    return stored_action(data_dir, action_id)


def _hold_real_patches(stack: Stack) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the sandbox hold every non-dry-run PATCH until ``release`` is set.

    Returns ``(arrived, release)``. A held request is logged (``stack.kube.requests``) but
    not applied until released — the moment between "sent" and "done" a crash can hit.
    """
    writes = stack.kube._writes
    original: Patch = writes.patch
    arrived, release = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request, target: Target) -> web.StreamResponse:
        if "dryRun" not in request.query:
            arrived.set()
            await release.wait()
        return await original(request, target)

    writes.patch = held  # type: ignore[method-assign]
    return arrived, release


async def test_sigkill_while_executing_marks_the_action_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_stack(tmp_path, monkeypatch) as bot:
        stack, data_dir = bot.stack, bot.data_dir
        await bot.start()
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack, within=30), CART_RESOURCES)
        arrived, release = _hold_real_patches(stack)

        assert await click(stack, target, "U0ALICE") == 200
        await asyncio.wait_for(arrived.wait(), 20)
        row = stored_action(data_dir, target.action_id)
        assert row["state"] == "executing" and row["snapshot"]  # snapshot before the apply
        await bot.kill()
        # Its client is gone: the sandbox cancels the held request. The restarted bot cannot
        # know whether the change landed, so it must not guess (nor retry).
        release.set()
        await stack.kube.settle()

        await bot.start()
        row = await _wait_state(data_dir, target.action_id, {"failed"})
        assert row["result"]["error"] == RESTART_ERROR
        await stack.wait(
            lambda: "restarted during execution" in text_of(_message(stack, target.ts)), 20
        )
        await stack.wait(lambda: _result_replies(stack, "restarted during execution") == 1, 20)
        assert len(real_patches(stack.kube.requests)) == 1  # never sent again
    records = audit_events(data_dir, target.action_id)
    assert [r.event for r in records].count("failed") == 1
    assert "executed" not in [r.event for r in records]
    assert_audit_intact(data_dir)


async def test_an_approved_action_left_by_a_crash_runs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_stack(tmp_path, monkeypatch) as bot:
        stack, data_dir = bot.stack, bot.data_dir
        await bot.start()
        assert (await stack.post(CART))[0] == 200
        found = await proposals(stack, within=30)
        await bot.kill()
        # The approvals committed; the process died before start_execution. The undo's row
        # is then altered behind the bot's back: it must not run.
        resources, undo = by_command(found, CART_RESOURCES), by_command(found, CART_UNDO)
        await approve_offline(data_dir, resources.action_id, undo.action_id)
        await tamper_offline(data_dir, undo.action_id, "=6", "=5", to_revision=5)
        assert stack.kube.requests and real_patches(stack.kube.requests) == []

        await bot.start()
        done = await _wait_state(data_dir, resources.action_id, {"succeeded", "failed"})
        assert done["state"] == "succeeded", done["result"]
        refused = await _wait_state(data_dir, undo.action_id, {"failed", "succeeded"})
        assert refused["state"] == "failed"
        assert "no longer matches the hash" in refused["result"]["error"]
        await stack.wait(lambda: _result_replies(stack, "no longer matches the hash") == 1, 20)
        await stack.wait(lambda: _result_replies(stack, "Executed and verified") == 1, 20)
        await stack.kube.settle()
        patches = real_patches(stack.kube.requests)
        assert len(patches) == 1 and patches[0].startswith(
            "/apis/apps/v1/namespaces/shop/deployments/cart?"
        )
        container = _container(stack)
        assert container["resources"]["limits"]["memory"] == "512Mi"
        assert container["image"].endswith(":3.8.0")  # the undo did not happen
    executed = [r for r in audit_events(data_dir) if r.event == "executed"]
    assert [r.action_id for r in executed] == [resources.action_id]
    assert_audit_intact(data_dir)


def _message(stack: Stack, ts: str) -> dict[str, Any]:
    return next((m for m in thread_of(stack) if m["ts"] == ts), {})


def _result_replies(stack: Stack, needle: str) -> int:
    """Thread replies (not action messages) whose text contains ``needle``."""
    return sum(
        1
        for m in thread_of(stack)[1:]
        if not m.get("text", "").startswith("Proposed remediation") and needle in text_of(m)
    )


def _container(stack: Stack) -> dict[str, Any]:
    found = stack.kube.get_object("Deployment", "shop", "cart")
    assert found is not None
    return dict(found["spec"]["template"]["spec"]["containers"][0])
