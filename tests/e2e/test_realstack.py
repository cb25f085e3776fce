"""Real Prometheus fires a rule, real Alertmanager delivers it to a loopback webhook.

Timings (2 cores): Alertmanager is discovered by Prometheus on its first 5 s discovery tick,
so the first webhook comes ~6.5 s after Prometheus starts; clearing the rules reloads
Prometheus, whose own "resolved" is then usually dropped, and Alertmanager resolves the alert
at its ``endsAt``, ~4 s later. See ``sandbox/realstack.py``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import sandbox.realstack as realstack
from sandbox.realstack import (
    AlertmanagerProcess,
    ProcessStartError,
    PrometheusProcess,
    find_binary,
    free_port,
)
from tests.e2e.conftest import require_binary

TOKEN = "e2e-webhook-token"
WAIT = 20.0
LABELS = {"namespace": "shop", "pod": "cart-7d9f-abcde", "severity": "critical"}
ANNOTATIONS = {
    "summary": "cart pod is crash looping",
    "description": "vector(1) > 0 is always true",
    "runbook_url": "https://runbooks.example/KubePodCrashLooping",
}
RULE: dict[str, Any] = {
    "alert": "KubePodCrashLooping",
    "expr": "vector(1) > 0",
    "for": "0s",
    "labels": LABELS,
    "annotations": ANNOTATIONS,
}


@dataclass(frozen=True)
class ReceivedWebhook:
    """One POST as Alertmanager delivered it."""

    body: dict[str, Any]
    authorization: str | None
    user_agent: str
    monotonic: float


class WebhookReceiver:
    """A loopback aiohttp server recording every webhook POSTed to ``/alertmanager``."""

    def __init__(self) -> None:
        self.received: list[ReceivedWebhook] = []
        self._queue: asyncio.Queue[ReceivedWebhook] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/alertmanager", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/alertmanager"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        hook = ReceivedWebhook(
            body=await request.json(),
            authorization=request.headers.get("Authorization"),
            user_agent=request.headers.get("User-Agent", ""),
            monotonic=time.monotonic(),
        )
        self.received.append(hook)
        self._queue.put_nowait(hook)
        return web.json_response({"ok": True})

    async def next_with_status(self, status: str) -> ReceivedWebhook:
        """Wait for the next webhook whose ``status`` is ``status``."""
        while True:
            hook = await self._queue.get()
            if hook.body.get("status") == status:
                return hook


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def _await_webhook(
    receiver: WebhookReceiver, status: str, *procs: AlertmanagerProcess | PrometheusProcess
) -> ReceivedWebhook:
    try:
        async with asyncio.timeout(WAIT):
            return await receiver.next_with_status(status)
    except TimeoutError:
        logs = "\n".join(f"--- {p.name} log ---\n{p.log_tail()}" for p in procs)
        pytest.fail(f"no {status} webhook within {WAIT:g} s\n{logs}", pytrace=False)


@pytest.mark.e2e
async def test_rule_fires_and_resolves_through_real_alertmanager(
    tmp_path: Path,
    alertmanager_bin: str,
    prometheus_bin: str,
    webhook_receiver: WebhookReceiver,
    report_timing: Callable[[str, float], None],
) -> None:
    with ExitStack() as stack:
        am = AlertmanagerProcess(
            tmp_path / "alertmanager", webhook_receiver.url, TOKEN, binary=alertmanager_bin
        )
        stack.callback(am.stop)
        await asyncio.to_thread(am.start)

        prom = PrometheusProcess(tmp_path / "prometheus", am.url, binary=prometheus_bin)
        stack.callback(prom.stop)
        # Set before start: a reload would hide the Alertmanager for up to 5 s again.
        prom.set_rules([RULE])
        started = time.monotonic()
        await asyncio.to_thread(prom.start)

        firing = await _await_webhook(webhook_receiver, "firing", am, prom)
        report_timing("first webhook", firing.monotonic - started)
        fingerprint = _check_notification(firing, "firing")

        cleared = time.monotonic()
        await asyncio.to_thread(prom.set_rules, [])
        resolved = await _await_webhook(webhook_receiver, "resolved", am, prom)
        report_timing("resolved", resolved.monotonic - cleared)
        assert _check_notification(resolved, "resolved") == fingerprint
        assert resolved.body["alerts"][0]["endsAt"] > resolved.body["alerts"][0]["startsAt"]


def _check_notification(hook: ReceivedWebhook, status: str) -> str:
    """Assert the wire format the bot relies on; return the alert's fingerprint."""
    assert hook.authorization == f"Bearer {TOKEN}"
    assert hook.user_agent.startswith("Alertmanager/")
    body = hook.body
    assert body["version"] == "4"
    assert body["status"] == status
    assert body["receiver"] == "incident-bot"
    assert body["groupLabels"] == {"alertname": "KubePodCrashLooping"}
    assert body["truncatedAlerts"] == 0
    [alert] = body["alerts"]
    assert alert["status"] == status
    assert alert["labels"] == {"alertname": "KubePodCrashLooping", **LABELS}
    assert alert["annotations"] == ANNOTATIONS
    fingerprint: str = alert["fingerprint"]
    assert fingerprint
    return fingerprint


@pytest.mark.e2e
def test_start_retries_when_the_port_is_taken(
    tmp_path: Path, alertmanager_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        ports = iter([squatter.getsockname()[1], free_port()])
        monkeypatch.setattr(realstack, "free_port", lambda: next(ports))
        with AlertmanagerProcess(
            tmp_path, "http://127.0.0.1:9/", None, binary=alertmanager_bin
        ) as am:
            assert am.port != squatter.getsockname()[1]
            assert "address already in use" in am.log_tail()


def test_start_failure_stops_and_reports_the_log(tmp_path: Path) -> None:
    fake = tmp_path / "fake-prometheus"
    fake.write_text("#!/bin/sh\necho 'err: bad flag' >&2\nexit 3\n")
    fake.chmod(0o755)
    prom = PrometheusProcess(tmp_path / "work", None, binary=str(fake))
    with pytest.raises(ProcessStartError, match="exited with code 3") as info:
        prom.start()
    assert "err: bad flag" in info.value.log_tail
    assert not prom.running


def test_configs(tmp_path: Path) -> None:
    am = AlertmanagerProcess(tmp_path, "http://127.0.0.1:1/hook", None, binary="/bin/true")
    [webhook] = am.config()["receivers"][0]["webhook_configs"]
    assert webhook == {"url": "http://127.0.0.1:1/hook", "send_resolved": True, "max_alerts": 0}
    prom = PrometheusProcess(tmp_path, "http://127.0.0.1:2/am", binary="/bin/true")
    [target] = prom.config()["alerting"]["alertmanagers"]
    assert target == {
        "scheme": "http",
        "static_configs": [{"targets": ["127.0.0.1:2"]}],
        "path_prefix": "/am",
    }


def test_find_binary_knows_the_debian_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_binary("alertmanager") is None
    debian = tmp_path / "prometheus-alertmanager"
    debian.write_text("#!/bin/sh\n")
    debian.chmod(0o755)
    assert find_binary("alertmanager") == str(debian)


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_binary_fails_only_in_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="prometheus-alertmanager"):
        require_binary("alertmanager", "prometheus-alertmanager")
