"""The App Home tab: ``app_home_opened`` → ``views.publish``, validated by the Slack emulator."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.messages import thread_link
from tests.handlers.test_mentions import send_event
from tests.handlers.test_slash_commands import PAST, approver_policy, cart_thread, thread_url
from tests.stack import Stack, message_text, running_stack


async def open_home(stack: Stack, user: str, *, tab: str = "home") -> None:
    await send_event(
        stack,
        {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0ALICEDM",
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        },
    )


def home_text(view: dict[str, Any]) -> str:
    return "\n".join(message_text({"blocks": [block]}) for block in view["blocks"])


async def past_incident(stack: Stack, n: int, alertname: str, minutes: float) -> None:
    """A resolved incident of the last week that took ``minutes`` to resolve."""
    assert stack.runtime is not None
    store = stack.runtime.store
    opened = datetime.now(UTC) - timedelta(days=1)
    row = {
        "id": f"INC_PAST_{n:03d}",
        "group_key": f"past-{n}",
        "alertname": alertname,
        "namespace": "shop",
        "severity": "warning",
        "channel": "#incidents",
        "status": "resolved",
        "opened_at": opened.isoformat(),
        "resolved_at": (opened + timedelta(minutes=minutes)).isoformat(),
        "received_at": opened.timestamp(),
    }
    await store.call(store.insert_incident, row)


async def test_home_shows_open_incidents_approvals_and_the_week(tmp_path: Path) -> None:
    async with running_stack(tmp_path, start=False) as stack:
        await stack.start_bot(policy_files=("default", approver_policy(tmp_path)))
        incident = await cart_thread(stack)
        for n, (alertname, minutes) in enumerate(
            [("KubePodCrashLooping", 10), ("KubePodCrashLooping", 20), ("NodeDiskPressure", 40)]
        ):
            await past_incident(stack, n, alertname, minutes)
        assert stack.runtime is not None and stack.runtime.memory is not None
        await stack.runtime.memory.aadd([PAST])

        await open_home(stack, "U0ALICE")
        await stack.wait(lambda: stack.slack.home_view("U0ALICE") is not None)
        view = stack.slack.home_view("U0ALICE")
        assert view is not None and view["type"] == "home"
        text = home_text(view)
        # Open incidents, by severity, linked to their threads.
        assert "*Open incidents* (1)" in text
        assert ":large_orange_circle: *warning* (1)" in text
        assert incident["id"] in text and thread_url(stack, incident["id"]) in text
        # What alice may approve, linked to the action messages.
        channel = stack.slack.channels()[0]
        assert "*Waiting for your approval* (2)" in text
        for proposal in stack.threads()[0][2:]:
            assert thread_link(channel, proposal["ts"]) in text
        # The last 7 days: the cart incident and three resolved ones (10, 20, 40 min).
        assert "*Incidents opened*\n4" in text and "*Resolved*\n3" in text
        assert "*MTTR p50*\n20m" in text and "*MTTR p90*\n36m" in text
        assert "*Action success*\n—" in text  # nothing executed yet
        assert "Incident memory, all time: 1 past incident ·" in text
        assert "MTTR p50 40m" in text and "action success 100% (1 of 1)" in text
        assert "1. `KubePodCrashLooping` — 3 incidents" in text
        assert "2. `NodeDiskPressure` — 1 incident" in text
        assert json.dumps(view).count('"type": "divider"') == 3

        # Bob may approve nothing; the rest is the same.
        await open_home(stack, "U0BOB")
        await stack.wait(lambda: stack.slack.home_view("U0BOB") is not None)
        bob = home_text(stack.slack.home_view("U0BOB") or {})
        assert "*Waiting for your approval*\nNothing right now." in bob
        assert incident["id"] in bob


async def test_home_of_a_quiet_workspace(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await open_home(stack, "U0BOB", tab="messages")  # the Messages tab: nothing to publish
        await open_home(stack, "U0ALICE")
        await stack.wait(lambda: stack.slack.home_view("U0ALICE") is not None)
        text = home_text(stack.slack.home_view("U0ALICE") or {})
        assert "*Open incidents*\nNone." in text
        assert "*Waiting for your approval*\nNothing right now." in text
        assert "*Incidents opened*\n0" in text and "*MTTR p50*\n—" in text
        assert "*Most frequent alerts (7 days)*\nNo alerts." in text
        assert stack.slack.home_view("U0BOB") is None
        assert len(stack.slack.calls_to("views.publish")) == 1


async def test_home_is_refreshed_when_incidents_change(tmp_path: Path) -> None:
    from handlers.home import HomeRefresher
    from tests.handlers.test_spine import CART

    async with running_stack(tmp_path) as stack:
        assert stack.runtime is not None
        await open_home(stack, "U0ALICE")
        await stack.wait(lambda: stack.slack.home_view("U0ALICE") is not None)
        first = stack.slack.home_view("U0ALICE")
        assert first is not None and "KubePodCrashLooping" not in home_text(first)

        client = stack.runtime.slack
        refresher = HomeRefresher(stack.runtime, interval=3600)
        refresher.opened("U0ALICE")
        refresher._signature = await refresher.signature()
        assert await refresher.refresh_if_changed(client) == 0  # nothing changed yet

        assert (await stack.post(CART))[0] == 200
        # Parent, RCA and the two proposals: everything the tab depends on is stored.
        await stack.wait(lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) >= 4)
        assert await refresher.refresh_if_changed(client) == 1
        view = stack.slack.home_view("U0ALICE")
        assert view is not None and "KubePodCrashLooping" in home_text(view)
        assert await refresher.refresh_if_changed(client) == 0  # published once per change
