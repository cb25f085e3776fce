"""Slash commands. Each listener acks within Slack's 3 s with its answer (ephemeral).

``/policy [namespace]`` shows the remediation policy in effect (for a namespace, with its
overrides applied) — what ``incident-bot policy show`` prints.
"""

from __future__ import annotations

from typing import Any

import yaml
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from bot.messages import clip, escape
from bot.runtime import Runtime

_NAMESPACE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def register(bolt: AsyncApp, runtime: Runtime) -> None:
    """Add the slash-command listeners to ``bolt``."""

    async def policy_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack(**policy_answer(runtime, str(command.get("text") or "")))

    bolt.command("/policy")(policy_command)


def policy_answer(runtime: Runtime, text: str) -> dict[str, Any]:
    """The ephemeral answer to ``/policy [namespace]``."""
    namespace = text.strip() or None
    if namespace is not None and (len(namespace) > 63 or not set(namespace) <= _NAMESPACE_CHARS):
        return {
            "response_type": "ephemeral",
            "text": f"Usage: /policy [namespace] — {namespace[:63]!r} is not a namespace name.",
        }
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
