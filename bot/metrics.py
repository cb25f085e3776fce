"""Prometheus metrics of one bot instance (its own registry, so tests can run several)."""

from __future__ import annotations

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
        self.outbox_depth = Gauge(
            "incident_bot_outbox_depth", "Slack messages decided but not yet sent.", registry=r
        )
