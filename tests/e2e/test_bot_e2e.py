"""The whole path with real components: Prometheus rule → Alertmanager → bot → Slack thread.

Only Slack and the Kubernetes API are stand-ins (loopback emulators); Prometheus and
Alertmanager are the Debian binaries. The rule's labels name a pod of the cart scenario, so
the bot resolves its Deployment through the sandbox API and posts the evidence reply.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from sandbox.realstack import AlertmanagerProcess, PrometheusProcess
from tests.stack import TOKEN, message_text, running_stack

RULE: dict[str, Any] = {
    "alert": "KubePodCrashLooping",
    "expr": "vector(1) > 0",
    "for": "0s",
    "labels": {
        "namespace": "shop",
        "pod": "cart-7d9f8b6c4-x2x9q",
        "container": "cart",
        "severity": "critical",
    },
    "annotations": {
        "summary": "Pod is crash looping.",
        "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
    },
}


@pytest.mark.e2e
async def test_real_alert_becomes_thread_and_resolves(
    tmp_path: Path,
    alertmanager_bin: str,
    prometheus_bin: str,
    report_timing: Callable[[str, float], None],
) -> None:
    async with running_stack(tmp_path, rebase=True) as stack:
        with ExitStack() as procs:
            am = AlertmanagerProcess(
                tmp_path / "am", f"{stack.url}/alertmanager", TOKEN, binary=alertmanager_bin
            )
            procs.callback(am.stop)
            await asyncio.to_thread(am.start)
            prom = PrometheusProcess(tmp_path / "prom", am.url, binary=prometheus_bin)
            procs.callback(prom.stop)
            prom.set_rules([RULE])
            started = time.monotonic()
            await asyncio.to_thread(prom.start)

            await stack.wait(
                lambda: len(stack.threads()) == 1 and len(stack.threads()[0]) >= 2, within=30
            )
            report_timing("rule start → thread with evidence", time.monotonic() - started)
            parent, evidence = stack.threads()[0][:2]
            assert "KubePodCrashLooping" in message_text(parent)
            assert "shop/Deployment/cart" in message_text(parent)
            assert ":red_circle:" in message_text(parent)
            rca = message_text(evidence)
            assert "oom_killed" in rca and "OOMKilled" in rca and "revision 7" in rca
            # Alertmanager's externalURL carries the host name, not the loopback address.
            assert f":{am.port}/#/alerts?filter=" in message_text(parent)

            cleared = time.monotonic()
            await asyncio.to_thread(prom.set_rules, [])
            channel = stack.slack.channels()[0]
            await stack.wait(
                lambda: (
                    ":white_check_mark:" in message_text(stack.slack.channel_messages(channel)[0])
                ),
                within=30,
            )
            report_timing("rule cleared → thread resolved", time.monotonic() - cleared)
            thread = stack.threads()[0]
            assert any("Resolved" in message_text(m) for m in thread[2:])
            assert len(stack.threads()) == 1
