"""Slash commands. Each listener acks within Slack's 3 s with an ephemeral answer.

:data:`COMMANDS` names every command with its usage hint and description: usage errors
quote it, and ``tests/handlers/test_slash_commands.py`` holds ``manifest.yml`` to it.

``/policy [namespace]`` (here) shows the remediation policy in effect (for a namespace, with
its overrides applied) — what ``incident-bot policy show`` prints. The incident commands
(``/rca``, ``/incidents``, ``/incident``, ``/similar``, ``/approvals``) live in
:mod:`handlers.commands_incidents`; their answers may need the store, the incident memory
or Slack's user groups, so :func:`answer_soon` acks with the answer when it is ready in
time and otherwise acks at once and posts the answer ephemerally when it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import yaml
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock
from slack_sdk.web.async_client import AsyncWebClient

from bot.messages import Payload, clip, escape
from bot.runtime import Runtime

log = logging.getLogger(__name__)

COMMANDS: dict[str, tuple[str, str]] = {
    "/policy": ("[namespace]", "Show the remediation policy in effect"),
    "/rca": (
        "<namespace>/<kind>/<name> | <question>",
        "Investigate a Kubernetes object now (an RCA thread here), or ask about incidents",
    ),
    "/incidents": ("[open | recent | <search words>]", "List open or recent incidents"),
    "/incident": ("<incident id>", "Show one incident: status, root cause, actions, thread"),
    "/similar": ("<what happened>", "Find similar past incidents in the incident memory"),
    "/approvals": ("(no arguments)", "List the remediations waiting for your approval"),
}
"""Command → (usage hint, description), as declared in ``manifest.yml``."""

ACK_BUDGET = 2.0  # seconds of Slack's 3 s spent waiting for an answer before acking without it

_NAMESPACE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def ephemeral(payload: Payload) -> dict[str, Any]:
    """A ``{"text", "blocks"}`` payload as an ephemeral command answer."""
    return {"response_type": "ephemeral", **payload}


def usage(command: str, problem: str = "") -> dict[str, Any]:
    """The ephemeral usage answer for ``command``, naming what was wrong."""
    hint, description = COMMANDS[command]
    text = f"Usage: {command} {hint} — {description}."
    if problem:
        text = f"{problem}\n{text}"
    return {"response_type": "ephemeral", "text": clip(text, 3000)}


async def answer_soon(
    ack: AsyncAck,
    command: dict[str, Any],
    work: Awaitable[Payload],
    *,
    client: AsyncWebClient,
    respond: AsyncRespond | None = None,
    budget: float | None = None,
) -> None:
    """Ack with ``work``'s answer if it is ready within ``budget``, else post it later.

    A late answer goes to the person with ``chat.postEphemeral`` (or the command's
    ``response_url`` when the bot may not post in that conversation). A failure is
    answered too: the person never waits for nothing.

    Args:
        ack: The listener's ``ack``.
        command: The slash-command payload (``command``, ``channel_id``, ``user_id``).
        work: Produces the ``{"text", "blocks"}`` answer.
        client: Posts a late answer.
        respond: The ``response_url`` fallback for a late answer.
        budget: Seconds to wait before acking without the answer (default
            :data:`ACK_BUDGET`).
    """
    name = str(command.get("command") or "")
    task: asyncio.Future[Payload] = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=ACK_BUDGET if budget is None else budget)
    if task in done:
        await ack(**_settled(task, name))
        return
    await ack(response_type="ephemeral", text="Working on it…")
    await asyncio.wait({task})
    answer = _settled(task, name)
    channel, user = str(command.get("channel_id") or ""), str(command.get("user_id") or "")
    try:
        await client.chat_postEphemeral(
            channel=channel, user=user, text=answer["text"], blocks=answer.get("blocks")
        )
    except SlackApiError as exc:
        log.info("chat.postEphemeral in %s failed (%s); using response_url", channel, exc)
        if respond is not None:
            await respond(**answer)


def _settled(task: asyncio.Future[Payload], name: str) -> dict[str, Any]:
    exc = task.exception()
    if exc is None:
        return ephemeral(task.result())
    log.error("%s failed", name, exc_info=exc)
    return {
        "response_type": "ephemeral",
        "text": f":warning: {name} failed ({type(exc).__name__}); the bot's log has details.",
    }


def register(bolt: AsyncApp, runtime: Runtime) -> None:
    """Add the ``/policy`` listener to ``bolt``."""

    async def policy_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack(**policy_answer(runtime, str(command.get("text") or "")))

    bolt.command("/policy")(policy_command)


def policy_answer(runtime: Runtime, text: str) -> dict[str, Any]:
    """The ephemeral answer to ``/policy [namespace]``."""
    namespace = text.strip() or None
    if namespace is not None and (len(namespace) > 63 or not set(namespace) <= _NAMESPACE_CHARS):
        return usage("/policy", f"{namespace[:63]!r} is not a namespace name.")
    policy = runtime.pipeline.investigator.policy
    rules = policy.rules_for(namespace).to_dict()
    body = yaml.safe_dump(rules, sort_keys=False, default_flow_style=False, width=80)
    where = f"namespace `{namespace}`" if namespace else "all namespaces"
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=f"*Remediation policy* for {where}")),
        SectionBlock(text=MarkdownTextObject(text=clip(f"```{escape(body)}```"))),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=clip("Sources: " + ", ".join(escape(s) for s in policy.sources), 1900)
                )
            ]
        ),
    ]
    return {
        "response_type": "ephemeral",
        "text": f"Remediation policy for {where}",
        "blocks": [b.to_dict() for b in blocks],
    }
