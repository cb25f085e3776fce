"""Interactive components: Approve / Reject buttons and the rejection modal.

Bolt has already verified the request signature when a listener runs. Each listener acks
first (Slack wants an answer within 3 s) and then works; every check that matters —
authorization, pending, unexpired, incident open, hash — happens server-side in
:class:`bot.remediate.service.Remediation`, from the action id the button carries. The clicker
hears about a refusal in an ephemeral message; the thread sees decisions.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.remediate import views
from bot.runtime import Runtime
from handlers.clicks import button_click, ephemeral

log = logging.getLogger(__name__)


def register(bolt: AsyncApp, runtime: Runtime) -> None:
    """Add the approval listeners to ``bolt``."""

    async def approve(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        action_id, user_id, channel = button_click(body)
        remediation = runtime.remediation
        if remediation is None or not action_id:
            return
        answer = await remediation.approve_click(action_id, user_id)
        if answer:
            await ephemeral(client, channel, user_id, answer)

    async def reject(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        action_id, user_id, channel = button_click(body)
        remediation = runtime.remediation
        if remediation is None or not action_id:
            return
        record = await remediation.book.get(action_id)
        if record is None or record.state not in ("pending", "needs_review", "approved"):
            state = record.state.replace("_", " ") if record is not None else "unknown"
            await ephemeral(client, channel, user_id, f"This action is {state}.")
            return
        # Open the modal first: the trigger expires 3 s after the click, and the approver
        # check may need Slack's user-group API. A refusal then replaces the modal.
        view = views.reject_modal(action_id, record.kubectl)
        view["private_metadata"] = f"{action_id}|{channel}"  # where to answer a late refusal
        opened = await client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)
        refusal = await remediation.check_reject(action_id, user_id)
        if refusal:
            view_id = str((opened.get("view") or {}).get("id") or "")
            if view_id:
                await client.views_update(view_id=view_id, view=views.notice_modal(refusal))
            await ephemeral(client, channel, user_id, refusal)

    async def reject_submitted(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        reason = views.modal_reason(view)
        if len(reason) < 3:
            await ack(
                response_action="errors",
                errors={views.REASON_BLOCK: "Say in a few words why (kept in the audit log)."},
            )
            return
        await ack()
        action_id, _, channel = str(view.get("private_metadata") or "").partition("|")
        user_id = str((body.get("user") or {}).get("id") or "")
        remediation = runtime.remediation
        if remediation is None or not action_id:
            return
        answer = await remediation.reject(action_id, user_id, reason)
        if answer:
            await ephemeral(client, channel, user_id, answer)

    bolt.action(views.APPROVE)(approve)
    bolt.action(views.REJECT)(reject)
    bolt.view(views.REJECT_MODAL)(reject_submitted)
