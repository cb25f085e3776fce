"""Helpers for the end-to-end approval-flow tests: Slack interaction payloads, signed posts.

The payloads are built the way Slack sends them to an app's Request URL: a form-encoded body
``payload=<json>`` signed with the app's signing secret (``X-Slack-Signature`` over
``v0:<timestamp>:<body>``). A ``block_actions`` payload carries the clicked button's
``action_id``, ``block_id`` and ``value`` (here only the bot's action id) with the user, the
channel and the message it was clicked in; a ``view_submission`` payload carries the modal's
``callback_id``, ``private_metadata`` and the typed values under ``state.values``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.remediate.approvals import ActionBook, ActionRecord
from bot.remediate.audit import AuditRecord, records, verify_chain
from bot.store import Store
from sandbox.slack import sign_request
from tests.stack import SECRET, Stack, message_text, running_stack

ROOT = Path(__file__).parents[2]
FLOW_POLICY = Path(__file__).with_name("policy_flow.yaml")
CART_UNDO = "kubectl -n shop rollout undo deployment/cart --to-revision=6"
CART_RESOURCES = "kubectl -n shop set resources deployment/cart -c cart --limits=memory=512Mi"
APP_ID = "A0SANDBOX"
TEAM = {"id": "T0SANDBOX", "domain": "sandbox"}

_trigger_seq = 0


def _trigger_id() -> str:
    global _trigger_seq
    _trigger_seq += 1
    return f"{int(time.time())}.{_trigger_seq}.0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"


def _user(user_id: str) -> dict[str, str]:
    name = user_id.removeprefix("U0").lower()
    return {"id": user_id, "username": name, "name": name, "team_id": TEAM["id"]}


def block_actions_payload(
    *,
    user_id: str,
    channel_id: str,
    message: dict[str, Any],
    action_id: str,
    value: str,
    block_id: str,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button click in a channel message."""
    return {
        "type": "block_actions",
        "user": _user(user_id),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel_id,
            "is_ephemeral": False,
            **({"thread_ts": message["thread_ts"]} if message.get("thread_ts") else {}),
        },
        "trigger_id": trigger_id or _trigger_id(),
        "team": TEAM,
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "incidents"},
        "message": message,
        "state": {"values": {}},
        "response_url": f"https://hooks.slack.com/actions/{TEAM['id']}/1/x",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def view_submission_payload(
    *, user_id: str, view: dict[str, Any], values: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A ``view_submission`` payload for the modal ``view`` (as views.open stored it)."""
    submitted = {
        **view,
        "state": {"values": values},
        "hash": view.get("hash", f"{int(time.time())}.abcdefgh"),
    }
    return {
        "type": "view_submission",
        "team": TEAM,
        "user": _user(user_id),
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": _trigger_id(),
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


async def post_interaction(stack: Stack, payload: dict[str, Any]) -> tuple[int, str]:
    """POST a signed ``payload=<json>`` form body to ``/slack/events``."""
    body = urlencode({"payload": json.dumps(payload)})
    return await post_form(stack, body, sign_request(body, SECRET))


async def post_form(stack: Stack, body: str, headers: dict[str, str]) -> tuple[int, str]:
    """POST a form body to ``/slack/events`` with exactly these signature ``headers``."""
    sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{stack.url}/slack/events", data=body, headers=sent) as r:
            return r.status, await r.text()


def reject_submission(user_id: str, view: dict[str, Any], reason: str) -> dict[str, Any]:
    """The ``view_submission`` of the reject modal with ``reason`` typed in."""
    assert view["blocks"][-1]["block_id"] == "reason"
    values = {"reason": {"reason_input": {"type": "plain_text_input", "value": reason}}}
    return view_submission_payload(user_id=user_id, view=view, values=values)


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
        try:
            yield stack
        finally:
            await stop_bot(stack)


def deployment(stack: Stack) -> dict[str, Any]:
    """The cart Deployment as the sandbox holds it now."""
    found = stack.kube.get_object("Deployment", "shop", "cart")
    assert found is not None
    return found


def limits(stack: Stack) -> dict[str, Any]:
    """The cart container's resource limits now."""
    container = deployment(stack)["spec"]["template"]["spec"]["containers"][0]
    return dict(container["resources"]["limits"])


@dataclass(frozen=True)
class Proposal:
    """One action message in the incident thread and the action it shows."""

    action_id: str
    kubectl: str
    channel: str
    ts: str


async def stop_bot(stack: Stack) -> None:
    """Stop the in-process bot, first ending its background tasks for sure.

    ``SlackOutbox.run`` and ``Pipeline.run`` wait with ``asyncio.wait_for(event.wait(), …)``;
    on Python 3.11 a ``cancel()`` that lands as the event fires is swallowed by ``wait_for``
    (CPython gh-86296), the loop goes on and ``Runtime.stop`` awaits it forever. Cancelling
    until done sidesteps that here; the bot's own shutdown still needs the fix (see report).
    """
    runtime = stack.runtime
    if runtime is not None:
        for task in list(runtime._tasks):
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
    await stack.stop_bot()


def thread_of(stack: Stack) -> list[dict[str, Any]]:
    """The one incident thread (parent first)."""
    threads = stack.threads()
    return threads[0] if threads else []


def proposal_messages(stack: Stack) -> list[dict[str, Any]]:
    """The action messages of the thread, as currently edited."""
    return [m for m in thread_of(stack) if m.get("text", "").startswith("Proposed remediation")]


async def proposals(stack: Stack, count: int = 2, within: float = 15.0) -> list[Proposal]:
    """Wait for ``count`` action messages; pair each with its stored action.

    The actions are read from the database file, so this works for a bot in a subprocess too.
    """
    await stack.wait(lambda: len(proposal_messages(stack)) >= count, within)
    rows = stored_actions(stack.settings.data_dir)
    channel = stack.slack.channels()[0]
    found: list[Proposal] = []
    for message in proposal_messages(stack):
        match = [row for row in rows if row["kubectl"] in message["text"]]
        assert len(match) == 1, (message["text"], rows)
        found.append(Proposal(match[0]["id"], match[0]["kubectl"], channel, message["ts"]))
    return found


def _read_only(data_dir: Path) -> sqlite3.Connection:
    path = data_dir / "incident-bot.db"
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def stored_actions(data_dir: Path) -> list[dict[str, Any]]:
    """Every row of the ``actions`` table, read from the database file read-only."""
    with closing(_read_only(data_dir)) as conn:
        cur = conn.execute("SELECT * FROM actions ORDER BY created_at, id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def stored_action(data_dir: Path, action_id: str) -> dict[str, Any]:
    """One row of the ``actions`` table (``result`` decoded)."""
    row = next(r for r in stored_actions(data_dir) if r["id"] == action_id)
    row["result"] = json.loads(row["result"]) if row["result"] else None
    return row


def by_command(found: Sequence[Proposal], kubectl: str) -> Proposal:
    """The proposal showing ``kubectl``."""
    return next(p for p in found if p.kubectl == kubectl)


def message(stack: Stack, proposal: Proposal) -> dict[str, Any]:
    """The proposal's message as it is now."""
    return next(m for m in thread_of(stack) if m["ts"] == proposal.ts)


def buttons(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """The button elements of a message's actions blocks, each with its ``block_id``."""
    return [
        {**element, "block_id": block.get("block_id", "")}
        for block in msg.get("blocks") or []
        if block.get("type") == "actions"
        for element in block.get("elements") or []
        if element.get("type") == "button"
    ]


async def click(
    stack: Stack,
    proposal: Proposal,
    user_id: str,
    *,
    button: str = "remediation_approve",
    value: str | None = None,
    trigger_id: str | None = None,
) -> int:
    """Click a button of the proposal's message as ``user_id`` (a forged ``value`` allowed).

    When the message shows no buttons any more (decided, needs review) the click is still
    sent, as a stale client or a forger would, with the action id as value.
    """
    msg = message(stack, proposal)
    shown = {b["action_id"]: b for b in buttons(msg)}
    element = shown.get(button, {"block_id": f"act:{proposal.action_id}"})
    payload = block_actions_payload(
        user_id=user_id,
        channel_id=proposal.channel,
        message=msg,
        action_id=button,
        value=value if value is not None else str(element.get("value", proposal.action_id)),
        block_id=str(element["block_id"]),
        trigger_id=trigger_id,
    )
    status, _ = await post_interaction(stack, payload)
    return status


async def record(stack: Stack, action_id: str) -> ActionRecord:
    """The stored action, read through the running bot's book."""
    assert stack.runtime is not None
    found = await stack.runtime.remediation.book.get(action_id)
    assert found is not None
    return found


async def wait_state(
    stack: Stack, action_id: str, states: Iterable[str], within: float = 15.0
) -> ActionRecord:
    """Poll until the action is in one of ``states``."""
    wanted = set(states)
    deadline = time.monotonic() + within
    while True:
        current = await record(stack, action_id)
        if current.state in wanted:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{action_id} is {current.state}, not {sorted(wanted)}")
        await asyncio.sleep(0.02)


async def wait_for(predicate: Any, within: float = 10.0, what: str = "condition") -> None:
    """Poll a plain predicate (no stack dump on failure)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within}s")
        await asyncio.sleep(0.02)


def ephemerals_for(stack: Stack, user_id: str) -> list[str]:
    """Texts of the ephemeral messages shown to ``user_id``."""
    return [m.get("text", "") for m in stack.slack.ephemeral_messages() if m["user"] == user_id]


async def refused(stack: Stack, user_id: str, seen_ephemerals: int) -> str:
    """Wait for the ephemeral answer to a refused click; return its text."""
    await wait_for(lambda: len(ephemerals_for(stack, user_id)) > seen_ephemerals, what="answer")
    return ephemerals_for(stack, user_id)[-1]


def writes(requests: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The non-reading requests (anything but GET) of a sandbox request log."""
    return [(method, path) for method, path in requests if method != "GET"]


def real_patches(requests: Sequence[tuple[str, str]]) -> list[str]:
    """Paths of PATCH requests that were not dry runs."""
    return [path for method, path in requests if method == "PATCH" and "dryRun" not in path]


def audit_events(data_dir: Path, action_id: str | None = None) -> list[AuditRecord]:
    """The audit records (of one action), read from the database file read-only."""
    with closing(_read_only(data_dir)) as conn:
        return records(conn, action_id=action_id)


def assert_audit_intact(data_dir: Path) -> None:
    """The audit log's hash chain verifies."""
    with closing(_read_only(data_dir)) as conn:
        report = verify_chain(conn)
    assert report.ok, report.problem


async def approve_offline(
    data_dir: Path, *action_ids: str, user_id: str = "U0ALICE", now: datetime | None = None
) -> None:
    """Commit an authorized approval straight into the database, as a click would have."""
    store = Store.open(data_dir / "incident-bot.db")
    try:
        book = ActionBook(store)
        for action_id in action_ids:
            stored = await book.get(action_id)
            assert stored is not None
            decision = await book.approve(
                action_id,
                user_id,
                now=now or datetime.now(UTC),
                incident_open=True,
                command_hash=stored.command_hash,
                authorized=True,
            )
            assert decision.outcome == "approved", decision.message
    finally:
        store.close()


async def tamper_offline(data_dir: Path, action_id: str, old: str, new: str, **params: Any) -> None:
    """Change a stored action behind the bot's back: ``old`` → ``new`` in its kubectl, and
    ``params`` merged into its parameters (what someone with write access could do)."""
    store = Store.open(data_dir / "incident-bot.db")
    try:

        def run() -> None:
            with store.transaction():
                row = store.conn.execute(
                    "SELECT kubectl, params FROM actions WHERE id = ?", (action_id,)
                ).fetchone()
                changed = {**json.loads(row[1]), **params}
                store.conn.execute(
                    "UPDATE actions SET kubectl = ?, params = ? WHERE id = ?",
                    (row[0].replace(old, new), json.dumps(changed), action_id),
                )

        await store.call(run)
    finally:
        store.close()


def text_of(msg: dict[str, Any]) -> str:
    """Every text of a message (re-exported for the tests)."""
    return message_text(msg)


def policy_file(tmp_path: Path, name: str, text: str) -> str:
    """Write a policy layer for one test; returns its path as a settings entry."""
    path = tmp_path / name
    path.write_text(text)
    return str(path)
