"""The silence buttons against the real Alertmanager binary (API v2).

The bot runs on loopback (Slack emulator, Kubernetes sandbox) with
``INCIDENT_BOT_ALERTMANAGER_URL`` pointing at a real Alertmanager that also holds the
incident's alert, so the test sees Alertmanager itself suppress the alert under the silence
and release it when the silence is expired from Slack.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import aiohttp
import pytest

from bot.silences import SilenceClient, matchers_for_incident
from tests.e2e.test_silences_e2e import alert_status, eventually, post_alerts

# The fixture: the same real Alertmanager (receiver never called) as SilenceClient's tests.
from tests.e2e.test_silences_e2e import alertmanager as alertmanager
from tests.handlers.test_silence_buttons import (
    CART,
    CART_LABELS,
    INCIDENT,
    buttons,
    click,
    open_incident,
    parent_of,
)
from tests.stack import message_text, running_stack


@pytest.mark.e2e
async def test_silence_buttons_drive_the_real_alertmanager(
    tmp_path: Path, alertmanager: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        running_stack(tmp_path, alertmanager_url=alertmanager) as stack,
    ):
        await post_alerts(session, alertmanager, CART_LABELS)

        async def state_is(state: str, by: list[str]) -> bool:
            status = await alert_status(session, alertmanager, CART_LABELS)
            return bool(status["state"] == state and status["silencedBy"] == by)

        await eventually(partial(state_is, "active", []), "the alert active")
        parent = await open_incident(stack, CART)

        assert await click(stack, parent, "Silence 1h") == 200
        await stack.wait(lambda: "Expire silence" in buttons(parent_of(stack)))
        silence_id = buttons(parent_of(stack))["Expire silence"]["value"].split("|")[1]

        client = SilenceClient(alertmanager, session)
        silence = await client.get(silence_id)
        assert silence["status"]["state"] == "active"
        assert silence["matchers"] == matchers_for_incident(CART_LABELS)
        assert silence["createdBy"] == "alice (U0ALICE) via incident-bot"
        assert silence["comment"] == f"incident {INCIDENT}: silenced from Slack"
        starts = datetime.fromisoformat(silence["startsAt"])
        ends = datetime.fromisoformat(silence["endsAt"])
        assert abs(ends - starts - timedelta(hours=1)) < timedelta(seconds=5)
        await eventually(partial(state_is, "suppressed", [silence_id]), "the alert silenced")

        shown = parent_of(stack)
        assert f"Silenced until {ends.astimezone(UTC):%H:%M} UTC by <@U0ALICE>" in (
            message_text(shown)
        )

        assert await click(stack, shown, "Expire silence") == 200
        await stack.wait(lambda: "Silence 1h" in buttons(parent_of(stack)))
        assert (await client.get(silence_id))["status"]["state"] == "expired"
        await eventually(partial(state_is, "active", []), "the alert active again")
        assert await client.list_active(matchers_for_incident(CART_LABELS)) == []
