"""The gated remediation flow end to end: alert → action messages → signed clicks → cluster.

Everything runs through the real aiohttp app (Bolt verifies each request's signature), the
Slack emulator and the Kubernetes sandbox, with ``INCIDENT_BOT_REMEDIATION_MODE=url`` pointing
the remediation identity at the sandbox. The cart scenario proposes two medium-risk actions:
``rollout undo --to-revision=6`` and ``set resources --limits=memory=512Mi``.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from click.testing import CliRunner
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli import main as cli
from sandbox.slack import SlackSandbox, sign_request
from tests.handlers.test_spine import CART, resolved
from tests.remediate.flow_support import (
    CART_RESOURCES,
    CART_UNDO,
    approve_offline,
    audit_events,
    block_actions_payload,
    buttons,
    by_command,
    click,
    deployment,
    ephemerals_for,
    flow_stack,
    limits,
    message,
    post_form,
    post_interaction,
    proposals,
    real_patches,
    record,
    refused,
    reject_submission,
    stop_bot,
    tamper_offline,
    text_of,
    thread_of,
    wait_for,
    wait_state,
    writes,
)
from tests.stack import SECRET


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


async def test_approving_the_undo_rolls_back_to_revision_6(tmp_path: Path) -> None:
    async with flow_stack(tmp_path) as stack:
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_UNDO)
        container = deployment(stack)["spec"]["template"]["spec"]["containers"][0]
        assert container["image"].endswith(":3.8.0")

        assert await click(stack, target, "U0ALICE") == 200
        done = await wait_state(stack, target.action_id, {"succeeded", "failed", "rolled_back"})
        assert done.state == "succeeded", done.result
        container = deployment(stack)["spec"]["template"]["spec"]["containers"][0]
        assert container["image"].endswith(":3.7.2")  # revision 6's template
        assert {"name": "CACHE_MAX_ITEMS", "value": "100000"} in container["env"]
        assert len(real_patches(stack.kube.requests)) == 1
        await stack.wait(lambda: any(_is_result(m, CART_UNDO) for m in thread_of(stack)))
        reply = text_of(next(m for m in thread_of(stack) if _is_result(m, CART_UNDO)))
        assert "cart:3.8.0 → registry.example.com/shop/cart:3.7.2" in reply


def _is_result(msg: dict[str, Any], kubectl: str) -> bool:
    """The execution's result reply: its fallback text is ``<final state>: <kubectl>``."""
    state, _, command = msg.get("text", "").partition(": ")
    return command == kubectl and state in ("succeeded", "rolled_back", "failed")


async def test_broken_rollout_is_rolled_back_to_the_snapshot(tmp_path: Path) -> None:
    # The packaged default policy alone: medium risk needs one of @sre-oncall, resolved
    # through usergroups.list (handle → ID) and usergroups.users.list (members).
    async with flow_stack(tmp_path, policy_files=("default",)) as stack:
        stack.slack.add_usergroup("S0ONCALL", ["U0BOB"], handle="sre-oncall")
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_RESOURCES)
        before = deployment(stack)["spec"]["template"]
        stack.kube.script_rollout("shop", "Deployment", "cart", outcome="broken")

        assert await click(stack, target, "U0BOB") == 200
        done = await wait_state(
            stack, target.action_id, {"succeeded", "failed", "rolled_back", "rollback_failed"}
        )
        assert done.state == "rolled_back", done.result
        assert deployment(stack)["spec"]["template"] == before
        assert limits(stack)["memory"] == "256Mi"
        assert len(real_patches(stack.kube.requests)) == 1  # the change; the restore is a PUT
        await stack.wait(lambda: "rolled back" in text_of(message(stack, target)))
        await stack.wait(
            lambda: any(
                "rolled back automatically" in text_of(m) and CART_RESOURCES in m["text"]
                for m in thread_of(stack)
                if m["ts"] != target.ts
            )
        )
        assert stack.slack.calls_to("usergroups.list")  # the handle was looked up
    events = [r.event for r in audit_events(stack.settings.data_dir, target.action_id)]
    assert events[:5] == ["proposed", "approval", "dry_run", "snapshot", "applied"]
    assert "verified" not in events  # the failed verification is audited as failed
    assert "failed" in events
    assert events[-1] == "rolled_back" and "executed" not in events


async def test_a_non_approver_click_changes_nothing(tmp_path: Path) -> None:
    async with flow_stack(tmp_path) as stack:
        stack.slack.add_usergroup("S0SRE", ["U0CAROL"])
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_RESOURCES)
        seen = len(stack.kube.requests)

        assert await click(stack, target, "U0BOB") == 200
        answer = await refused(stack, "U0BOB", 0)
        assert "You may not decide on this medium-risk action" in answer
        assert "not among U0ALICE, S0SRE" in answer
        # Rejecting needs the same authority: the modal (opened at once, the trigger is
        # short-lived) is replaced by the refusal.
        assert await click(stack, target, "U0BOB", button="remediation_reject") == 200
        assert "Only an authorized approver" in await refused(stack, "U0BOB", 1)
        shown = stack.slack.views()
        assert len(shown) == 1 and shown[0]["callback_id"] != "remediation_reject_modal"
        assert "Only an authorized approver" in json.dumps(shown[0]["blocks"])
        assert (await record(stack, target.action_id)).state == "pending"
        assert buttons(message(stack, target))  # still approvable by someone else
        assert writes(stack.kube.requests[seen:]) == []
    unauthorized = [
        r for r in audit_events(stack.settings.data_dir, target.action_id) if r.actor == "U0BOB"
    ]
    assert [r.event for r in unauthorized] == ["unauthorized_click", "unauthorized_click"]


async def test_two_concurrent_clicks_execute_once(tmp_path: Path) -> None:
    async with flow_stack(tmp_path) as stack:
        # Carol is an approver only through the S0SRE user group.
        stack.slack.add_user("U0CAROL", "carol", "Carol Sre")
        stack.slack.add_usergroup("S0SRE", ["U0CAROL"])
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_RESOURCES)

        statuses = await asyncio.gather(
            click(stack, target, "U0CAROL"), click(stack, target, "U0CAROL")
        )
        assert statuses == [200, 200]
        done = await wait_state(stack, target.action_id, {"succeeded", "failed", "rolled_back"})
        assert done.state == "succeeded", done.result
        await stack.kube.settle()
        assert len(real_patches(stack.kube.requests)) == 1
        assert "already" in await refused(stack, "U0CAROL", 0)
    events = [r.event for r in audit_events(stack.settings.data_dir, target.action_id)]
    assert events.count("approval") == 1 and events.count("executed") == 1


async def test_an_expired_action_cannot_be_approved(tmp_path: Path) -> None:
    short = tmp_path / "expiry.yaml"
    short.write_text("approval_expiry: 1s\n")
    async with flow_stack(tmp_path, str(short)) as stack:
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_RESOURCES)
        pending = await record(stack, target.action_id)
        assert (pending.expires_at - pending.created_at).total_seconds() == 1
        await wait_for(lambda: datetime.now(UTC) > pending.expires_at, what="expiry")
        seen = len(stack.kube.requests)

        assert await click(stack, target, "U0ALICE") == 200
        assert "expired" in await refused(stack, "U0ALICE", 0)
        assert (await record(stack, target.action_id)).state == "expired"
        await stack.wait(lambda: "Expired without a decision" in text_of(message(stack, target)))
        assert buttons(message(stack, target)) == []
        assert writes(stack.kube.requests[seen:]) == []
    events = [r.event for r in audit_events(stack.settings.data_dir, target.action_id)]
    assert events == ["proposed", "expired"]


async def test_resolving_the_incident_cancels_its_actions(tmp_path: Path) -> None:
    async with flow_stack(tmp_path) as stack:
        assert (await stack.post(CART))[0] == 200
        found = await proposals(stack)
        assert (await stack.post(resolved(CART)))[0] == 200
        for proposal in found:
            await wait_state(stack, proposal.action_id, {"cancelled"})
        target = by_command(found, CART_RESOURCES)
        await stack.wait(lambda: buttons(message(stack, target)) == [])
        seen = len(stack.kube.requests)

        assert await click(stack, target, "U0ALICE") == 200
        assert "already cancelled" in await refused(stack, "U0ALICE", 0)
        assert (await record(stack, target.action_id)).state == "cancelled"
        assert writes(stack.kube.requests[seen:]) == []
    assert writes(stack.kube.requests) == []


async def test_a_tampered_command_is_refused_by_its_hash(tmp_path: Path) -> None:
    async with flow_stack(tmp_path) as stack:
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_RESOURCES)
        shown = (await record(stack, target.action_id)).short_hash
        # Someone with write access to the database raises the limit behind the bot's back.
        await tamper_offline(
            stack.settings.data_dir, target.action_id, "512Mi", "64Gi", limits={"memory": "64Gi"}
        )
        seen = len(stack.kube.requests)
        assert await click(stack, target, "U0ALICE") == 200
        answer = await refused(stack, "U0ALICE", 0)
        assert "The command changed since this message was shown" in answer and shown in answer
        assert (await record(stack, target.action_id)).state == "pending"
        assert writes(stack.kube.requests[seen:]) == []
        assert limits(stack)["memory"] == "256Mi"
    events = [r.event for r in audit_events(stack.settings.data_dir, target.action_id)]
    assert "refused" in events and "approval" not in events


async def test_a_policy_denied_action_has_no_buttons_and_refuses_forged_clicks(
    tmp_path: Path,
) -> None:
    # allowed_commands is replaced as a whole by a later layer: set resources is off the list.
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text("allowed_commands: [kubectl rollout undo, kubectl rollout restart]\n")
    async with flow_stack(tmp_path, str(narrow)) as stack:
        assert (await stack.post(CART))[0] == 200
        found = await proposals(stack)
        denied, allowed = by_command(found, CART_RESOURCES), by_command(found, CART_UNDO)
        assert (await record(stack, denied.action_id)).state == "needs_review"
        assert "Needs Review" in text_of(message(stack, denied))
        assert buttons(message(stack, denied)) == []
        assert len(buttons(message(stack, allowed))) == 2
        seen = len(stack.kube.requests)

        assert await click(stack, denied, "U0ALICE", value=denied.action_id) == 200
        assert "needs review" in await refused(stack, "U0ALICE", 0)
        assert (await record(stack, denied.action_id)).state == "needs_review"
        assert writes(stack.kube.requests[seen:]) == []


async def test_high_risk_needs_two_distinct_approvers(tmp_path: Path) -> None:
    high = tmp_path / "high.yaml"
    high.write_text("risk: {set_resources: high}\n")
    async with flow_stack(tmp_path, str(high)) as stack:
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_RESOURCES)
        shown = message(stack, target)
        assert "0 of 2 (distinct people)" in text_of(shown)
        approve = next(b for b in buttons(shown) if b["action_id"] == "remediation_approve")
        assert approve["confirm"]["title"]["text"] == "Run this change?"

        assert await click(stack, target, "U0ALICE") == 200
        await stack.wait(lambda: "approved by <@U0ALICE>" in text_of(message(stack, target)))
        assert buttons(message(stack, target))  # still waiting for a second person
        assert await click(stack, target, "U0ALICE") == 200
        assert "You already approved this (1 of 2)" in await refused(stack, "U0ALICE", 0)
        assert (await record(stack, target.action_id)).state == "pending"
        assert writes(stack.kube.requests) == []

        assert await click(stack, target, "U0BOB") == 200
        done = await wait_state(stack, target.action_id, {"succeeded", "failed", "rolled_back"})
        assert done.state == "succeeded", done.result
        assert done.approvals == ("U0ALICE", "U0BOB")
        assert len(real_patches(stack.kube.requests)) == 1
    approvals = [
        r.actor
        for r in audit_events(stack.settings.data_dir, target.action_id)
        if r.event == "approval"
    ]
    assert approvals == ["U0ALICE", "U0BOB"]


async def test_reject_asks_for_a_reason_in_a_modal(tmp_path: Path) -> None:
    async with flow_stack(tmp_path) as stack:
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_UNDO)
        trigger = "4242.1.deadbeef"
        assert (
            await click(stack, target, "U0ALICE", button="remediation_reject", trigger_id=trigger)
            == 200
        )
        await wait_for(lambda: len(stack.slack.views()) == 1, what="the modal")
        opened = stack.slack.calls_to("views.open")
        assert opened[-1].params["trigger_id"] == trigger
        view = stack.slack.views()[0]
        assert view["callback_id"] == "remediation_reject_modal"
        assert view["private_metadata"] == f"{target.action_id}|{target.channel}"

        status, text = await post_interaction(stack, reject_submission("U0ALICE", view, "  "))
        assert status == 200
        answer = json.loads(text)
        assert answer["response_action"] == "errors" and "reason" in answer["errors"]
        assert (await record(stack, target.action_id)).state == "pending"

        why = "revision 6 had the same leak; raise the limit instead"
        status, _ = await post_interaction(stack, reject_submission("U0ALICE", view, why))
        assert status == 200
        done = await wait_state(stack, target.action_id, {"rejected"})
        assert done.reason == why and done.decided_by == "U0ALICE"
        await stack.wait(lambda: "Rejected by <@U0ALICE>" in text_of(message(stack, target)))
        final = text_of(message(stack, target))
        assert why in final and buttons(message(stack, target)) == []
        assert writes(stack.kube.requests) == []
    rejected = [
        r for r in audit_events(stack.settings.data_dir, target.action_id) if r.event == "rejected"
    ]
    assert len(rejected) == 1 and rejected[0].details["reason"] == why


async def test_the_policy_in_force_at_the_click_decides(tmp_path: Path) -> None:
    async with flow_stack(tmp_path) as stack:
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_RESOURCES)
        # A restart brings a change freeze on shop: the action proposed before it stays
        # pending, but approving it now is refused.
        freeze = tmp_path / "freeze.yaml"
        freeze.write_text(
            "freeze:\n  - name: peak\n    start: '2020-01-01T00:00:00Z'\n"
            "    end: '2100-01-01T00:00:00Z'\n    namespaces: [shop]\n    reason: peak traffic\n"
        )
        await stop_bot(stack)
        await stack.start_bot(policy_files=(*stack.settings.policy_files, str(freeze)))
        seen = len(stack.kube.requests)

        assert await click(stack, target, "U0ALICE") == 200
        answer = await refused(stack, "U0ALICE", 0)
        assert "The policy now says needs review" in answer and "peak" in answer
        assert (await record(stack, target.action_id)).state == "pending"
        assert writes(stack.kube.requests[seen:]) == []


async def test_forged_and_unsigned_clicks_are_turned_away(tmp_path: Path) -> None:
    async with flow_stack(tmp_path) as stack:
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_RESOURCES)
        payload = block_actions_payload(
            user_id="U0ALICE",
            channel_id=target.channel,
            message=message(stack, target),
            action_id="remediation_approve",
            value=target.action_id,
            block_id=f"act:{target.action_id}",
        )
        body = urlencode({"payload": json.dumps(payload)})
        stale = int(time.time()) - 600  # Bolt refuses signatures older than 5 minutes
        for headers in (
            {},
            sign_request(body, "not-the-signing-secret"),
            sign_request(body, SECRET, timestamp=stale),
        ):
            assert (await post_form(stack, body, headers))[0] == 401
        # A signed click naming an action this bot never proposed.
        assert await click(stack, target, "U0ALICE", value="act_doesnotexist") == 200
        assert "unknown" in await refused(stack, "U0ALICE", 0)
        assert (await record(stack, target.action_id)).state == "pending"
        assert writes(stack.kube.requests) == []
    events = [r.event for r in audit_events(stack.settings.data_dir, target.action_id)]
    assert events == ["proposed"]


async def test_a_low_risk_action_the_policy_auto_executes_runs_without_a_click(
    tmp_path: Path,
) -> None:
    auto = tmp_path / "auto.yaml"
    auto.write_text("risk: {set_resources: low}\nauto_execute: {low: true}\n")
    async with flow_stack(tmp_path, str(auto)) as stack:
        assert (await stack.post(CART))[0] == 200
        found = await proposals(stack)
        target = by_command(found, CART_RESOURCES)
        done = await wait_state(stack, target.action_id, {"succeeded", "failed", "rolled_back"})
        assert done.state == "succeeded", done.result
        assert done.decided_by == "policy" and done.approvals == ()
        assert limits(stack)["memory"] == "512Mi"
        await stack.wait(lambda: "Executed and verified" in text_of(message(stack, target)))
        shown = text_of(message(stack, target))
        assert "Decided by the policy (auto-execute)" in shown and "<@policy>" not in shown
        assert buttons(message(stack, target)) == []
        # The medium-risk undo still waits for a person.
        assert (await record(stack, by_command(found, CART_UNDO).action_id)).state == "pending"
    records = audit_events(stack.settings.data_dir, target.action_id)
    assert [r.event for r in records] == [
        "proposed",
        "dry_run",
        "snapshot",
        "applied",
        "verified",
        "executed",
    ]
    steps = ("dry_run", "applied", "verified")
    assert {r.actor for r in records if r.event in steps} == {"policy:auto_execute"}


async def test_an_approval_that_outlived_its_deadline_while_down_expires(
    tmp_path: Path,
) -> None:
    short = tmp_path / "expiry.yaml"
    short.write_text("approval_expiry: 1s\n")
    async with flow_stack(tmp_path, str(short)) as stack:
        assert (await stack.post(CART))[0] == 200
        target = by_command(await proposals(stack), CART_RESOURCES)
        pending = await record(stack, target.action_id)
        await stop_bot(stack)
        # Approved in time (the click's transaction committed), then the process died and
        # stayed down past the deadline: the restarted bot must not run a stale approval.
        at = pending.created_at + (pending.expires_at - pending.created_at) / 2
        await approve_offline(stack.settings.data_dir, target.action_id, now=at)
        await wait_for(lambda: datetime.now(UTC) > pending.expires_at, what="expiry")
        await stack.start_bot()
        await wait_state(stack, target.action_id, {"expired"})
        await stack.wait(lambda: "Expired without a decision" in text_of(message(stack, target)))
        assert buttons(message(stack, target)) == []
        assert writes(stack.kube.requests) == []


async def test_the_slack_emulator_lists_user_groups_like_slack() -> None:
    async with SlackSandbox() as slack:
        slack.add_usergroup("S0ONCALL", ["U0ALICE", "U0BOB"], handle="@sre-oncall")
        slack.add_usergroup("S0LEADS", ["U0BOB"])
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        plain = await client.usergroups_list()
        full = await client.usergroups_list(include_users=True)
    assert slack.calls_to("usergroups.list")[0].headers.get("Authorization")
    groups = {g["id"]: g for g in plain["usergroups"]}
    assert groups["S0ONCALL"]["handle"] == "sre-oncall" and groups["S0LEADS"]["handle"] == "s0leads"
    assert all(g["date_delete"] == 0 and g["team_id"] == "T0SANDBOX" for g in groups.values())
    assert "users" not in groups["S0ONCALL"]
    assert {g["id"]: g["users"] for g in full["usergroups"]} == {
        "S0ONCALL": ["U0ALICE", "U0BOB"],
        "S0LEADS": ["U0BOB"],
    }
