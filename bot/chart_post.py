"""Metric charts in an incident's thread, posted after the RCA reply, off the critical path.

:func:`post_charts` decides whether an incident deserves charts (its RCA cites Prometheus
evidence, or its category is one the charts explain), picks them with
:func:`bot.chart_data.chart_specs`, fetches the hour around the alert's start from Prometheus,
draws at most :data:`MAX_CHARTS` with :func:`bot.charts.render_png` and uploads them into the
thread. It never raises: charts are a courtesy, and a Prometheus or Slack failure is logged
and leaves the thread as it was.

The RCA reply goes through the outbox; a file upload does not. So that the charts follow the
reply (and have a thread to go to), uploading waits until the incident's parent is posted and
its queued messages are sent, for at most ``thread_wait`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.chart_data import ChartData, ChartDataError, ChartSpec, chart_specs, fetch_chart, pod_regex
from bot.charts import render_png, upload_chart
from bot.store import Store
from bot.targets import ObjectRef, label_object

__all__ = ["MAX_CHARTS", "WINDOW", "post_charts", "should_chart"]

log = logging.getLogger(__name__)

MAX_CHARTS: Final = 2
WINDOW: Final = timedelta(minutes=60)
# The window ends this long after the alert's start (or now, if sooner): mostly the lead-up.
AFTER_START: Final = timedelta(minutes=15)
STEP: Final = 15.0  # seconds between points: 240 per hour
# Categories whose mechanism no pod metric shows: chart them only with Prometheus evidence.
_UNCHARTED: Final = frozenset({"unknown", "not_an_incident"})
_WORKLOAD_KINDS: Final = frozenset(
    {"deployment", "statefulset", "daemonset", "replicaset", "job", "cronjob"}
)


def should_chart(report: Mapping[str, Any]) -> bool:
    """Whether an RCA report deserves charts: Prometheus evidence, or a charted category."""
    evidence = report.get("evidence") or []
    cited = any(isinstance(e, Mapping) and e.get("source") == "prometheus" for e in evidence)
    category = str(report.get("category") or "unknown")
    return category != "not_an_incident" and (cited or category not in _UNCHARTED)


async def post_charts(
    *,
    store: Store,
    slack_client: AsyncWebClient,
    prometheus_url: str | None,
    incident_id: str,
    report: Mapping[str, Any] | None,
    labels: Mapping[str, str],
    started: datetime,
    now: datetime | None = None,
    thread_wait: float = 60.0,
    request_timeout: float = 5.0,
) -> int:
    """Upload the incident's metric charts into its thread; how many were uploaded.

    Args:
        store: The bot's store (the thread comes from :meth:`Store.thread_of`).
        slack_client: The Web API client (``files:write``).
        prometheus_url: Prometheus's base URL; empty or ``None`` means no charts.
        incident_id: The incident.
        report: Its RCA report (CONTRACTS §3), ``None`` when the investigation failed.
        labels: Its first alert's labels (namespace, pod, container …).
        started: When the alert started (naive means UTC).
        now: The wall clock (tests); the window never ends after it.
        thread_wait: Seconds to wait for the parent and the queued replies to be posted.
        request_timeout: Seconds per Prometheus query.

    Returns:
        The number of charts uploaded; 0 when there was nothing to chart or anything failed.
    """
    if not prometheus_url or report is None or not should_chart(report):
        return 0
    try:
        return await _post(
            store,
            slack_client,
            prometheus_url,
            incident_id,
            report,
            labels,
            started if started.tzinfo else started.replace(tzinfo=UTC),
            now or datetime.now(UTC),
            thread_wait,
            request_timeout,
        )
    except Exception:  # charts are optional: the thread already has the RCA
        log.exception("posting charts for %s failed", incident_id)
        return 0


async def _post(
    store: Store,
    slack: AsyncWebClient,
    prometheus_url: str,
    incident_id: str,
    report: Mapping[str, Any],
    labels: Mapping[str, str],
    started: datetime,
    now: datetime,
    thread_wait: float,
    request_timeout: float,
) -> int:
    specs = _specs(report, labels)
    if not specs:
        return 0
    end = max(started, min(now, started + AFTER_START))
    async with aiohttp.ClientSession() as session:
        fetched = await asyncio.gather(
            *(
                fetch_chart(
                    prometheus_url,
                    session,
                    spec,
                    start=end - WINDOW,
                    end=end,
                    step=STEP,
                    request_timeout=request_timeout,
                )
                for spec in specs
            ),
            return_exceptions=True,
        )
    charts: list[ChartData] = []
    for spec, result in zip(specs, fetched, strict=True):
        if isinstance(result, ChartDataError):
            log.warning("chart %r for %s: %s", spec.title, incident_id, result)
        elif isinstance(result, BaseException):
            raise result
        elif not result.empty:
            charts.append(result)
    charts = charts[:MAX_CHARTS]
    if not charts:
        return 0
    pngs = [
        await asyncio.to_thread(
            render_png,
            chart.series,
            title=chart.spec.title,
            unit=chart.spec.unit,
            alert_start=started,
            threshold=chart.threshold,
        )
        for chart in charts
    ]
    thread = await _wait_for_thread(store, incident_id, thread_wait)
    if thread is None:
        log.warning("no thread for %s after %g s: charts not posted", incident_id, thread_wait)
        return 0
    uploaded = 0
    for chart, png in zip(charts, pngs, strict=True):
        await upload_chart(
            slack,
            channel=thread[0],
            thread_ts=thread[1],
            png=png,
            title=chart.spec.title,
            filename=f"{incident_id}-{_slug(chart.spec.title)}.png",
        )
        uploaded += 1
    return uploaded


def _specs(report: Mapping[str, Any], labels: Mapping[str, str]) -> list[ChartSpec]:
    """The chart specs for the report's category and the incident's pods (may be none)."""
    namespace, regex = _pods(report, labels)
    if not namespace or not regex:
        return []
    category = str(report.get("category") or "unknown")
    return chart_specs(category, namespace, regex, labels.get("container") or None)


def _pods(report: Mapping[str, Any], labels: Mapping[str, str]) -> tuple[str, str]:
    """``(namespace, pod regex)`` of the incident's pods: its workload's, else its pod."""
    incident = report.get("incident")
    text = incident.get("object") if isinstance(incident, Mapping) else None
    candidates: list[ObjectRef] = []
    if isinstance(text, str) and text:
        try:
            candidates.append(ObjectRef.parse(text))
        except ValueError:
            pass
    found = label_object(labels)
    if found is not None:
        candidates.append(found)
    for obj in candidates:
        namespace = obj.namespace or labels.get("namespace", "")
        if namespace and obj.kind.lower() in _WORKLOAD_KINDS:
            return namespace, pod_regex(kind=obj.kind, name=obj.name)
    pod, namespace = labels.get("pod", ""), labels.get("namespace", "")
    return (namespace, pod_regex(pods=[pod])) if pod and namespace else ("", "")


async def _wait_for_thread(store: Store, incident_id: str, within: float) -> tuple[str, str] | None:
    """The incident's thread once its queued messages are sent (or when ``within`` is up)."""
    deadline = time.monotonic() + within
    while True:
        thread, busy = await store.call(_thread_state, store, incident_id)
        if thread is not None and (not busy or time.monotonic() >= deadline):
            return thread
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.2)


def _thread_state(store: Store, incident_id: str) -> tuple[tuple[str, str] | None, bool]:
    """The incident's thread and whether some of its Slack messages still wait (store thread)."""
    row = store.conn.execute(
        "SELECT 1 FROM outbox WHERE incident_id = ? AND state IN ('pending', 'sending') LIMIT 1",
        (incident_id,),
    ).fetchone()
    return store.thread_of(incident_id), row is not None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "chart"
