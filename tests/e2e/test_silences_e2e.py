"""SilenceClient against the real Alertmanager binary (API v2).

Alerts are posted straight to Alertmanager's ``/api/v2/alerts`` (no Prometheus needed); the
route's ``group_wait`` is an hour, so no notification is attempted while the test runs.
Alertmanager recomputes an alert's silenced state when ``/api/v2/alerts`` is read, so the
polls below normally succeed at once; they only bound the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.silences import (
    Matcher,
    SilenceClient,
    SilenceError,
    matchers_for_incident,
    silence_comment,
    silence_creator,
)
from sandbox.realstack import AlertmanagerProcess, free_port

WAIT = 10.0
UNKNOWN_ID = "3c1ab9f3-0000-4000-8000-000000000000"
# The incident's alert, with the volatile labels a real KubePodCrashLooping carries.
INCIDENT = {
    "alertname": "KubePodCrashLooping",
    "namespace": "shop",
    "deployment": "cart",
    "container": "cart",
    "pod": "cart-7d9f8b6c4-x2x9q",
    "instance": "10.0.3.17:8080",
    "uid": "0d5c1c7e-5f3e-4a43-9a43-7d2ab1f0e111",
    "severity": "warning",
}
# The same Deployment after its pod was replaced: the silence must still cover it.
REPLACED_POD = {**INCIDENT, "pod": "cart-7d9f8b6c4-kq2zz", "instance": "10.0.3.18:8080"}
# Another Deployment in the namespace: the silence must not cover it.
NEIGHBOUR = {**INCIDENT, "deployment": "checkout", "container": "checkout", "pod": "checkout-1"}


@pytest.fixture
async def alertmanager(alertmanager_bin: str, tmp_path: Path) -> AsyncIterator[str]:
    """Base URL of a running Alertmanager whose receiver is never called during a test."""
    am = AlertmanagerProcess(
        tmp_path,
        f"http://127.0.0.1:{free_port()}/alertmanager",
        None,
        group_wait="1h",
        binary=alertmanager_bin,
    )
    await asyncio.to_thread(am.start)
    try:
        yield am.url
    finally:
        await asyncio.to_thread(am.stop)


async def post_alerts(session: aiohttp.ClientSession, url: str, *labels: dict[str, str]) -> None:
    now = datetime.now(UTC)
    body = [
        {
            "labels": alert,
            "annotations": {"summary": "crash looping"},
            "startsAt": (now - timedelta(minutes=1)).isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "generatorURL": "http://prometheus.example/graph",
        }
        for alert in labels
    ]
    async with session.post(f"{url}/api/v2/alerts", json=body) as response:
        assert response.status == 200, await response.text()


async def alert_status(
    session: aiohttp.ClientSession, url: str, labels: dict[str, str]
) -> dict[str, Any]:
    """``status`` of the alert with exactly ``labels``."""
    async with session.get(f"{url}/api/v2/alerts") as response:
        assert response.status == 200
        alerts = await response.json()
    [alert] = [a for a in alerts if a["labels"] == labels]
    status: dict[str, Any] = alert["status"]
    return status


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after :data:`WAIT` seconds."""
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen within {WAIT:g} s", pytrace=False)
        await asyncio.sleep(0.05)


@pytest.mark.e2e
async def test_silence_suppresses_the_incident_and_expiring_releases_it(
    alertmanager: str,
) -> None:
    async with aiohttp.ClientSession() as session:
        await post_alerts(session, alertmanager, INCIDENT, REPLACED_POD, NEIGHBOUR)

        async def state_is(labels: dict[str, str], state: str, by: list[str]) -> bool:
            status = await alert_status(session, alertmanager, labels)
            return bool(status["state"] == state and status["silencedBy"] == by)

        await eventually(partial(state_is, INCIDENT, "active", []), "the alert active")

        client = SilenceClient(alertmanager, session)
        matchers = matchers_for_incident(INCIDENT)
        assert "pod" not in {m["name"] for m in matchers}
        creator = silence_creator("alice", "U0ALICE")
        comment = silence_comment("deploying a fix", "INC_20261120_001")
        silence_id = await client.create(matchers, "4h", creator, comment)

        for labels in (INCIDENT, REPLACED_POD):
            await eventually(
                partial(state_is, labels, "suppressed", [silence_id]),
                f"{labels['pod']} suppressed by {silence_id}",
            )
        assert await state_is(NEIGHBOUR, "active", [])

        silence = await client.get(silence_id)
        assert silence["status"]["state"] == "active"
        assert (silence["createdBy"], silence["comment"]) == (creator, comment)
        assert silence["matchers"] == matchers
        starts = datetime.fromisoformat(silence["startsAt"])
        ends = datetime.fromisoformat(silence["endsAt"])
        assert abs((ends - starts) - timedelta(hours=4)) < timedelta(seconds=1)
        assert [s["id"] for s in await client.list_active(matchers)] == [silence_id]

        await client.expire(silence_id)
        assert (await client.get(silence_id))["status"]["state"] == "expired"
        for labels in (INCIDENT, REPLACED_POD):
            await eventually(
                partial(state_is, labels, "active", []),
                f"{labels['pod']} active again",
            )
        assert await client.list_active(matchers) == []
        await client.expire(silence_id)  # expiring twice is fine


@pytest.mark.e2e
async def test_real_alertmanager_errors_become_silence_errors(alertmanager: str) -> None:
    async with aiohttp.ClientSession() as session:
        client = SilenceClient(alertmanager, session)
        with pytest.raises(SilenceError) as missing:
            await client.get(UNKNOWN_ID)
        assert missing.value.status == 404 and missing.value.not_found
        with pytest.raises(SilenceError) as gone:
            await client.expire(UNKNOWN_ID)
        assert gone.value.not_found

        bad_name: list[Matcher] = [
            {"name": "not a label", "value": "x", "isRegex": False, "isEqual": True}
        ]
        with pytest.raises(SilenceError) as refused:
            await client.create(bad_name, "1h", "alice (U0ALICE)", "test")
        assert refused.value.status == 400
        assert "invalid label name" in refused.value.message
