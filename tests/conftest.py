"""Shared fixtures: a clean environment for every test, small builders for webhooks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

_PREFIXES = ("SLACK_", "INCIDENT_BOT_", "ANTHROPIC_", "KUBECONFIG")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's Slack/Kubernetes/Anthropic settings."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    yield


def make_alert(
    *,
    alertname: str = "KubePodCrashLooping",
    namespace: str = "shop",
    status: str = "firing",
    starts_at: str = "2026-11-20T10:00:00Z",
    ends_at: str = "0001-01-01T00:00:00Z",
    fingerprint: str = "fp-1",
    **labels: str,
) -> dict[str, Any]:
    """One alert as Alertmanager sends it."""
    return {
        "status": status,
        "labels": {"alertname": alertname, "namespace": namespace, "severity": "warning", **labels},
        "annotations": {"summary": f"{alertname} in {namespace}", "runbook_url": "https://rb/x"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def make_webhook(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """A version-4 notification around ``alerts``."""
    first = alerts[0]
    return {
        "version": "4",
        "groupKey": "{}:{alertname=" + json.dumps(first["labels"]["alertname"]) + "}",
        "truncatedAlerts": 0,
        "status": status or first["status"],
        "receiver": "incident-bot",
        "groupLabels": {"alertname": first["labels"]["alertname"]},
        "commonLabels": {"alertname": first["labels"]["alertname"]},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }
