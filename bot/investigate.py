"""``investigate``: run the evidence pipeline on one incident and build the §3 report."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.config import Settings
from bot.evidence import EvidenceCollector
from bot.kube import KubeReader, make_api_client
from bot.targets import WorkloadResolver
from bot.webhook import WebhookPayload, parse_webhook
from sandbox.kube import KubeSandbox
from sandbox.scenario import Scenario


async def investigate_scenario(scenario: Scenario, settings: Settings) -> dict[str, Any]:
    """Serve the scenario's cluster on loopback and investigate its webhook through it.

    Raises:
        PayloadError: when the scenario's webhook is not a valid notification.
    """
    payload = parse_webhook(scenario.webhook)
    async with KubeSandbox.from_scenario(scenario) as cluster:
        local = replace(settings, kube_mode="url", kube_url=cluster.base_url)
        api = make_api_client(local)
        assert api is not None
        kube = KubeReader(api, timeout=settings.kube_timeout)
        try:
            return await investigate(payload, kube, settings, now=scenario.now)
        finally:
            kube.close()


async def investigate(
    payload: WebhookPayload, kube: KubeReader | None, settings: Settings, *, now: Any
) -> dict[str, Any]:
    """The §3 report for the first firing alert of ``payload`` (rules arrive later)."""
    alert = next((a for a in payload.alerts if a.status == "firing"), payload.alerts[0])
    labels = alert.labels
    obj = await WorkloadResolver(kube).resolve(labels)
    evidence = await EvidenceCollector(kube, timeout=settings.evidence_timeout).collect(
        obj, labels, now=now
    )
    missing = list(evidence.missing)
    if not settings.prometheus_url:
        missing.append("prometheus: no server configured")
    summary = alert.annotations.get("summary") or alert.annotations.get("description", "")
    return {
        "incident": {
            "alertname": labels.get("alertname", "unnamed"),
            "severity": labels.get("severity", ""),
            "namespace": labels.get("namespace", ""),
            "object": str(obj) if obj else None,
        },
        "category": "unknown",
        "summary": summary,
        "root_cause": "",
        "trigger": None,
        "confidence": 0.0,
        "evidence": [fact.to_dict() for fact in evidence.facts],
        "actions": [],
        "similar": [],
        "missing_data": missing,
        "analyzer": "none",
    }
