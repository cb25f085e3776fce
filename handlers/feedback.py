"""RCA feedback: 👍/👎 ("was this right?") and the "Correct the root cause" modal.

Votes and corrections feed the incident memory (:mod:`bot.remember`): acceptance metrics,
and the root cause the next similar incident will be shown.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.models.blocks import InputBlock, PlainTextInputElement, PlainTextObject
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.remember import correct_root_cause, record_vote
from bot.runtime import Runtime
from handlers.clicks import button_click, ephemeral

log = logging.getLogger(__name__)

CORRECT_MODAL = "rca_correct_modal"
CAUSE_BLOCK = "root_cause"
CAUSE_INPUT = "root_cause_input"


def register(bolt: AsyncApp, runtime: Runtime) -> None:
    """Add the feedback listeners to ``bolt``."""

    async def vote(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        incident_id, user_id, channel = button_click(body)
        up = (body.get("actions") or [{}])[0].get("action_id") == messages.FEEDBACK_UP
        answer = await record_vote(runtime.store, runtime.memory, incident_id, user_id, up)
        await ephemeral(client, channel, user_id, answer)

    async def correct(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        incident_id, user_id, channel = button_click(body)
        store = runtime.store
        incident = await store.call(store.get_incident, incident_id)
        if incident is None:
            await ephemeral(client, channel, user_id, "This incident is unknown.")
            return
        report = json.loads(incident["rca"]) if incident.get("rca") else {}
        view = correction_modal(incident_id, channel, str(report.get("root_cause") or ""))
        await client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)

    async def submitted(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        values = ((view.get("state") or {}).get("values") or {}).get(CAUSE_BLOCK) or {}
        text = str((values.get(CAUSE_INPUT) or {}).get("value") or "").strip()
        if len(text) < 3:
            await ack(response_action="errors", errors={CAUSE_BLOCK: "Write it in a few words."})
            return
        await ack()
        incident_id, _, channel = str(view.get("private_metadata") or "").partition("|")
        user_id = str((body.get("user") or {}).get("id") or "")
        error = await correct_root_cause(runtime.store, runtime.memory, incident_id, user_id, text)
        if error:
            await ephemeral(client, channel, user_id, error)
        else:
            runtime.outbox.wake()

    bolt.action(messages.FEEDBACK_UP)(vote)
    bolt.action(messages.FEEDBACK_DOWN)(vote)
    bolt.action(messages.FEEDBACK_CORRECT)(correct)
    bolt.view(CORRECT_MODAL)(submitted)


def correction_modal(incident_id: str, channel: str, current: str) -> dict[str, Any]:
    """The modal that replaces the stored root cause (prefilled with the current one)."""
    return View(
        type="modal",
        callback_id=CORRECT_MODAL,
        private_metadata=f"{incident_id}|{channel}",
        title=PlainTextObject(text="Correct the root cause"),
        submit=PlainTextObject(text="Save"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            InputBlock(
                block_id=CAUSE_BLOCK,
                label=PlainTextObject(text=f"What was the root cause of {incident_id}?"[:2000]),
                element=PlainTextInputElement(
                    action_id=CAUSE_INPUT,
                    multiline=True,
                    initial_value=current[:3000] or None,
                    max_length=3000,
                ),
            )
        ],
    ).to_dict()
