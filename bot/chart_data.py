"""What to chart for an incident, and the samples to chart, from Prometheus.

:func:`chart_specs` picks the metrics that show an incident's mechanism (its RCA category):
memory against the limit for an OOM kill, restarts for a crash, throttling for CPU limits,
HTTP errors and latency for a failing dependency. :func:`fetch_range` runs one PromQL range
query over Prometheus's HTTP API (``POST /api/v1/query_range``) with aiohttp, and
:func:`fetch_chart` fetches a spec's series and threshold together, ready for
:func:`bot.charts.render_png`.

Names in queries come from alert labels, i.e. from whoever can post a webhook, so namespace
and container are quoted as PromQL string literals and pod names are regex-escaped by
:func:`pod_regex`.

Errors::

    IncidentBotError
    └── ChartDataError   Prometheus answered an error or nonsense, or was unreachable
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from string import Template
from typing import Any, Final, Literal

import aiohttp

from bot.collect.prometheus import CATALOGUE
from bot.errors import IncidentBotError

__all__ = [
    "ChartData",
    "ChartDataError",
    "ChartSpec",
    "Series",
    "Unit",
    "chart_specs",
    "fetch_chart",
    "fetch_range",
    "pod_regex",
]

Unit = Literal["bytes", "ratio", "count", "seconds"]

# RE2 metacharacters; everything else in a Kubernetes name is literal in a regex.
_RE2_META: Final = frozenset("\\.+*?()|[]{}^$")
# Pod-name suffixes Kubernetes controllers generate (lower-case alphanumerics).
_RAND: Final = "[a-z0-9]{5}"
_POD_SUFFIX: Final = {
    "deployment": f"-[a-z0-9]{{1,10}}-{_RAND}",  # <deployment>-<pod-template-hash>-<random>
    "replicaset": f"-{_RAND}",
    "daemonset": f"-{_RAND}",
    "statefulset": "-[0-9]+",
    "job": f"-([0-9]+-)?{_RAND}",  # indexed Jobs add the completion index
    "cronjob": f"-[0-9]+-{_RAND}",  # <cronjob>-<scheduled minute>-<random>
    "pod": "",
}
_MESSAGE_CHARS: Final = 300


class ChartDataError(IncidentBotError):
    """A Prometheus range query failed.

    Attributes:
        message: Prometheus's ``errorType: error`` (or the connection problem).
        status: The HTTP status, ``None`` when no HTTP answer came.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.message = message
        self.status = status
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"prometheus query failed ({where}): {message}")


@dataclass(frozen=True)
class Series:
    """One line of a chart: a legend label and its ``(unix seconds, value)`` samples."""

    label: str
    samples: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ChartSpec:
    """One chart of an incident.

    Attributes:
        title: Chart title, e.g. ``"Memory working set vs limit"``.
        promql: The query whose series are drawn.
        unit: How values are shown: ``bytes`` (KiB/MiB/GiB), ``ratio`` (%), ``count``,
            ``seconds``.
        threshold_promql: A query for the dashed threshold (one series), or ``None``.
        label: Legend template over each series' labels, e.g. ``"{pod}"``.
        threshold_label: Legend text of the threshold.
    """

    title: str
    promql: str
    unit: Unit
    threshold_promql: str | None
    label: str
    threshold_label: str = "limit"


@dataclass(frozen=True)
class ChartData:
    """A spec's fetched series and threshold (``None`` when it has none or no data)."""

    spec: ChartSpec
    series: list[Series]
    threshold: Series | None

    @property
    def empty(self) -> bool:
        """Whether there is nothing to draw (the query matched no samples)."""
        return not any(s.samples for s in self.series)


def _re2_escape(text: str) -> str:
    return "".join("\\" + char if char in _RE2_META else char for char in text)


def _literal(text: str) -> str:
    """``text`` as a double-quoted PromQL string (Go escapes; JSON's are a subset)."""
    return json.dumps(text, ensure_ascii=False)


def pod_regex(*, pods: Sequence[str] = (), kind: str | None = None, name: str = "") -> str:
    """An RE2 regex for the ``pod`` label: exactly ``pods``, or every pod of a workload.

    A workload's pods are matched by the names its controller gives them, so the chart also
    shows pods that were replaced during the window (before a rollout, after an OOM kill).

    Args:
        pods: Pod names to match exactly.
        kind: The workload's kind (``Deployment``, ``StatefulSet``, ``DaemonSet``,
            ``ReplicaSet``, ``Job``, ``CronJob``, ``Pod``), case-insensitive.
        name: The workload's name.

    Raises:
        ValueError: Neither pods nor a workload, or an unknown kind.
    """
    if pods:
        return "|".join(_re2_escape(pod) for pod in dict.fromkeys(pods))
    suffix = _POD_SUFFIX.get((kind or "").lower())
    if suffix is None or not name:
        raise ValueError(f"need pods or a workload kind and name, got {kind!r}/{name!r}")
    return _re2_escape(name) + suffix


def chart_specs(
    category: str, namespace: str, pod_regex_or_workload: str, container: str | None
) -> list[ChartSpec]:
    """The charts that show an incident of ``category`` (an RCA category id).

    * ``oom_killed`` → memory working set vs the memory limit, and restarts;
    * ``evicted`` → memory working set vs the memory limit;
    * ``cpu_throttling`` → throttled CFS periods, and p99 HTTP latency;
    * ``dependency_unavailable``, ``dns_failure``, ``certificate_expired``,
      ``resource_contention``, ``readiness_probe``, ``hpa_maxed`` → HTTP 5xx ratio and p99
      latency (these are empty for workloads without HTTP metrics);
    * ``not_an_incident`` → none;
    * anything else → restarts.

    Args:
        category: The RCA category.
        namespace: The incident's namespace.
        pod_regex_or_workload: An RE2 regex for the ``pod`` label (see :func:`pod_regex`).
        container: Narrow container metrics to this container; ``None`` for whole pods.

    Raises:
        ValueError: No namespace or no pod regex (the query would select the cluster).
    """
    if not namespace or not pod_regex_or_workload:
        raise ValueError("charts need a namespace and a pod regex")
    ns, regex = _literal(namespace), _literal(pod_regex_or_workload)
    pods = f"namespace={ns},pod=~{regex}"
    narrowed = pods + (f",container={_literal(container)}" if container else "")
    builders = {
        "memory": lambda: _memory(pods, container),
        "restarts": lambda: _restarts(narrowed),
        "cpu_throttling": lambda: _throttling(narrowed),
        "http_errors": lambda: _http(ns, regex, "http_error_ratio", "HTTP 5xx ratio", "ratio"),
        "http_latency": lambda: _http(
            ns, regex, "http_latency_p99_seconds", "HTTP latency p99", "seconds"
        ),
    }
    return [builders[chart]() for chart in _CHARTS.get(category, ("restarts",))]


_HTTP_CHARTS: Final = ("http_errors", "http_latency")
_CHARTS: Final[Mapping[str, tuple[str, ...]]] = {
    "oom_killed": ("memory", "restarts"),
    "evicted": ("memory",),
    "cpu_throttling": ("cpu_throttling", "http_latency"),
    "dependency_unavailable": _HTTP_CHARTS,
    "dns_failure": _HTTP_CHARTS,
    "certificate_expired": _HTTP_CHARTS,
    "resource_contention": _HTTP_CHARTS,
    "readiness_probe": _HTTP_CHARTS,
    "hpa_maxed": _HTTP_CHARTS,
    "not_an_incident": (),
}


def _memory(pods: str, container: str | None) -> ChartSpec:
    # cAdvisor also reports the pod cgroup (container="") and the pause container ("POD").
    cadvisor = pods + ',container!="",container!="POD"'
    if container:
        # A container is OOM-killed at its own limit: each pod's container against it.
        selector = f"{cadvisor},container={_literal(container)}"
        return ChartSpec(
            title=f"Memory working set of {container} vs limit",
            promql=f"sum by (pod) (container_memory_working_set_bytes{{{selector}}})",
            unit="bytes",
            threshold_promql=(
                f"min(kube_pod_container_resource_limits{{{pods},"
                f'container={_literal(container)},resource="memory"}})'
            ),
            label="{pod}",
            threshold_label="memory limit",
        )
    return ChartSpec(
        title="Memory working set per pod vs limit",
        promql=f"sum by (pod) (container_memory_working_set_bytes{{{cadvisor}}})",
        unit="bytes",
        threshold_promql=(
            f'min(sum by (pod) (kube_pod_container_resource_limits{{{pods},resource="memory"}}))'
        ),
        label="{pod}",
        threshold_label="pod memory limit",
    )


def _restarts(selector: str) -> ChartSpec:
    return ChartSpec(
        title="Container restarts (per 5 min)",
        promql=(
            f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{{selector}}}[5m]))"
        ),
        unit="count",
        threshold_promql=None,
        label="{pod}",
    )


def _throttling(selector: str) -> ChartSpec:
    cadvisor = selector + ',container!="",container!="POD"'
    return ChartSpec(
        title="CPU throttled periods",
        promql=(
            f"sum by (pod) (rate(container_cpu_cfs_throttled_periods_total{{{cadvisor}}}[5m]))"
            f" / sum by (pod) (rate(container_cpu_cfs_periods_total{{{cadvisor}}}[5m]))"
        ),
        unit="ratio",
        threshold_promql=None,
        label="{pod}",
    )


def _http(namespace: str, regex: str, catalogue_name: str, title: str, unit: Unit) -> ChartSpec:
    """A pod-level HTTP chart; ``namespace`` and ``regex`` are PromQL string literals."""
    # The request-metric unions (client libraries, Spring) live in the evidence catalogue.
    [entry] = [q for q in CATALOGUE if q.name == catalogue_name]
    promql = Template(entry.template).substitute(namespace=namespace, pods=regex)
    return ChartSpec(title, promql, unit, None, "{pod}")


class _LegendLabels(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def _legend(template: str | None, labels: Mapping[str, str], promql: str) -> str:
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    if template:
        return template.format_map(_LegendLabels(shown))
    if shown:
        return "{" + ", ".join(f"{k}={v!r}" for k, v in sorted(shown.items())) + "}"
    return promql if len(promql) <= 60 else promql[:59] + "…"


def _unix(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _error(status: int, text: str) -> ChartDataError:
    try:
        body = json.loads(text)
        message = f"{body['errorType']}: {body['error']}"
    except (ValueError, KeyError, TypeError):
        message = " ".join(text.split()) or f"HTTP {status}"
    return ChartDataError(message[:_MESSAGE_CHARS], status=status)


async def fetch_range(
    prom_url: str,
    session: aiohttp.ClientSession,
    promql: str,
    start: datetime,
    end: datetime,
    step: float,
    *,
    legend: str | None = None,
    request_timeout: float = 5.0,
) -> list[Series]:
    """Run one range query and return its series, ordered by label.

    Args:
        prom_url: Prometheus base URL (``/api/v1/query_range`` is appended).
        session: The aiohttp session (owned by the caller).
        promql: The query.
        start: Window start (naive means UTC).
        end: Window end.
        step: Resolution in seconds.
        legend: Legend template over each series' labels (``"{pod}"``); by default the
            label set.
        request_timeout: Seconds for the request; also sent as Prometheus's query
            ``timeout``.

    Returns:
        One :class:`Series` per result; NaN and infinite samples are dropped (a ratio of
        0/0 periods, a histogram with no requests), which leaves gaps in the line.

    Raises:
        ChartDataError: Prometheus answered an error or a body that is not a matrix, or
            could not be reached in time.
    """
    form = {
        "query": promql,
        "start": f"{_unix(start):.3f}",
        "end": f"{_unix(end):.3f}",
        "step": f"{step:g}",
        "timeout": f"{max(1, int(request_timeout))}s",
    }
    try:
        async with session.post(
            prom_url.rstrip("/") + "/api/v1/query_range",
            data=form,
            timeout=aiohttp.ClientTimeout(total=request_timeout),
        ) as response:
            text = await response.text(errors="replace")
            status = response.status
    except TimeoutError:
        raise ChartDataError(f"timed out after {request_timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise ChartDataError(f"unreachable: {exc or type(exc).__name__}") from exc
    if status != 200:
        raise _error(status, text)
    try:
        return _matrix(json.loads(text), legend, promql)
    except (ValueError, KeyError, TypeError) as exc:
        message = f"malformed response: {type(exc).__name__}: {exc}"
        raise ChartDataError(message, status=status) from None


def _matrix(body: Any, legend: str | None, promql: str) -> list[Series]:
    data = body["data"]
    if body["status"] != "success" or data["resultType"] != "matrix":
        raise ValueError(f"status {body['status']!r}, resultType {data['resultType']!r}")
    series = []
    for item in data["result"]:
        samples = tuple(
            (float(ts), value) for ts, raw in item["values"] if math.isfinite(value := float(raw))
        )
        series.append(Series(_legend(legend, item["metric"], promql), samples))
    series.sort(key=lambda s: s.label)
    return series


async def fetch_chart(
    prom_url: str,
    session: aiohttp.ClientSession,
    spec: ChartSpec,
    *,
    start: datetime,
    end: datetime,
    step: float,
    request_timeout: float = 5.0,
) -> ChartData:
    """Fetch a spec's series and its threshold (concurrently).

    The threshold is the first series of ``threshold_promql`` (the specs aggregate it to
    one), named ``spec.threshold_label``.

    Raises:
        ChartDataError: Either query failed.
    """
    queries = [spec.promql] + ([spec.threshold_promql] if spec.threshold_promql else [])
    results = await asyncio.gather(
        *(
            fetch_range(
                prom_url,
                session,
                query,
                start,
                end,
                step,
                legend=spec.label,
                request_timeout=request_timeout,
            )
            for query in queries
        )
    )
    threshold = None
    if len(results) > 1 and results[1] and results[1][0].samples:
        threshold = Series(spec.threshold_label, results[1][0].samples)
    return ChartData(spec, results[0], threshold)
