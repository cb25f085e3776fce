"""Prometheus metrics of one bot instance (its own registry, so tests can run several)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The counters, gauges and histograms exposed at ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.webhooks = Counter(
            "incident_bot_webhooks_total",
            "Alertmanager webhook requests by outcome.",
            ["outcome"],  # accepted | duplicate | unauthorized | too_large | invalid | error
            registry=r,
        )
        self.alerts_received = Counter(
            "incident_bot_alerts_received_total", "Alerts in accepted webhooks.", registry=r
        )
        self.alerts_duplicate = Counter(
            "incident_bot_alerts_duplicate_total",
            "Alert state events already seen (re-deliveries, repeats).",
            registry=r,
        )
        self.alerts_processed = Counter(
            "incident_bot_alerts_processed_total", "Alert state events applied.", registry=r
        )
        self.incidents_opened = Counter(
            "incident_bot_incidents_opened_total", "Incidents opened.", registry=r
        )
        self.pipeline_latency = Histogram(
            "incident_bot_pipeline_latency_seconds",
            "From webhook receipt to the notification being applied.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.slack_latency = Histogram(
            "incident_bot_alert_to_slack_seconds",
            "From webhook receipt to the incident's parent message being posted.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.slack_errors = Counter(
            "incident_bot_slack_api_errors_total",
            "Slack Web API calls that failed (after retries).",
            ["method", "error"],
            registry=r,
        )
        self.inbox_depth = Gauge(
            "incident_bot_inbox_depth", "Webhooks stored but not yet processed.", registry=r
        )
        # The learning loop (incident memory), refreshed at each scrape.
        self.memory_documents = Gauge(
            "incident_bot_memory_documents", "Incidents in the incident memory.", registry=r
        )
        self.mttr = Gauge(
            "incident_bot_mttr_seconds",
            "Time to resolve by root-cause category (all = every category).",
            ["category", "quantile"],
            registry=r,
        )
        self.action_success = Gauge(
            "incident_bot_action_success_ratio",
            "Share of remediations of a kind that resolved the incident.",
            ["kind"],
            registry=r,
        )
        self.rca_acceptance = Gauge(
            "incident_bot_rca_acceptance_ratio",
            "Share of 👍 among 👍/👎 votes on root-cause analyses (all = every category).",
            ["category"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "incident_bot_outbox_depth", "Slack messages decided but not yet sent.", registry=r
        )

    def set_learning(self, stats: dict[str, Any], documents: int) -> None:
        """Publish :meth:`rag.learning.LearningStats.to_dict` output as gauges."""
        self.memory_documents.set(documents)
        for gauge in (self.mttr, self.action_success, self.rca_acceptance):
            gauge.clear()
        mttr = dict(stats.get("mttr") or {})
        if stats.get("mttr_overall"):
            mttr["all"] = stats["mttr_overall"]
        for category, value in mttr.items():
            self.mttr.labels(category, "0.5").set(value["p50_seconds"])
            self.mttr.labels(category, "0.9").set(value["p90_seconds"])
        for kind, value in (stats.get("actions") or {}).items():
            if value.get("success_rate") is not None:
                self.action_success.labels(kind).set(value["success_rate"])
        acceptance = dict(stats.get("acceptance") or {})
        acceptance["all"] = stats.get("acceptance_overall") or {}
        for category, value in acceptance.items():
            if value.get("rate") is not None:
                self.rca_acceptance.labels(category).set(value["rate"])
