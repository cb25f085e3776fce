"""What every button listener needs: who clicked what where, and a reply only they see."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


def button_click(body: dict[str, Any]) -> tuple[str, str, str]:
    """(the button's value, the clicking user, the channel) of a ``block_actions`` payload."""
    action = (body.get("actions") or [{}])[0]
    user_id = str((body.get("user") or {}).get("id") or "")
    channel = str((body.get("channel") or {}).get("id") or "")
    return str(action.get("value") or ""), user_id, channel


async def ephemeral(client: AsyncWebClient, channel: str, user: str, text: str) -> None:
    """Tell ``user`` something in ``channel`` that only they see; a failure is only logged
    (the decision it reports stands; only the courtesy note is lost)."""
    if not channel:
        return
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text)
    except Exception as exc:
        log.warning("ephemeral answer to %s failed: %s", user, exc)
