"""Metric evidence from Prometheus: a fixed catalogue of PromQL range queries.

:class:`PromCollector` runs every query of :data:`CATALOGUE` that applies to the alert over
the window ending at the investigation's ``now`` (a scenario's frozen clock, or the wall
clock in production) and returns the series per catalogue name, ready for
:attr:`bot.rca.bundle.Bundle.metrics`. Collection never raises: a server that is not
configured, unreachable, slow or answering errors becomes lines for ``Bundle.missing``.

The namespace, pod and HPA names come from alert labels, i.e. from whoever can post a
webhook, so :func:`render_query` quotes them as PromQL string literals and escapes regular
expression metacharacters before they reach a selector.

Key semantics of the result:

* a catalogue name is present when its query succeeded, with an empty list when Prometheus
  has no such series (e.g. an application without HTTP metrics) -- that is not missing data;
* a failed query is absent and named in a missing line.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from string import Template
from typing import Any, Final

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from bot.rca.bundle import MetricSeries

__all__ = ["CATALOGUE", "NO_SERVER", "CatalogueQuery", "PromCollector", "render_query"]

NO_SERVER: Final = "prometheus: no server configured"
_REASON_CHARS: Final = 200
# RE2 metacharacters; everything else in a pod name is literal in a regex.
_RE2_META: Final = frozenset("\\.+*?()|[]{}^$")

# Selector fragments. ``$namespace``, ``$pods`` and ``$hpa`` are replaced by quoted literals.
_POD: Final = "namespace=$namespace,pod=~$pods"
# cAdvisor also reports the pod cgroup (container="") and the pause container ("POD").
_CONTAINER: Final = _POD + ',container!="",container!="POD"'
_HPA: Final = "namespace=$namespace,horizontalpodautoscaler=~$hpa"


def _sum_rate(metric: str, matchers: str, by: str = "namespace, pod") -> str:
    return f"sum by ({by}) (rate({metric}{{{matchers}}}[5m]))"


def _union(*parts: str) -> str:
    return " or ".join(parts)


# Request counters: Go/Python clients (http_requests_total, 5xx in `code` or `status`) and
# Spring Boot / Micrometer (http_server_requests_seconds_count, 5xx in `status`).
_HTTP_RATE: Final = _union(
    _sum_rate("http_requests_total", _POD),
    _sum_rate("http_server_requests_seconds_count", _POD),
)
_HTTP_ERRORS: Final = _union(
    _sum_rate("http_requests_total", _POD + ',code=~"5.."'),
    _sum_rate("http_requests_total", _POD + ',status=~"5.."'),
    _sum_rate("http_server_requests_seconds_count", _POD + ',status=~"5.."'),
)
_HTTP_P99: Final = _union(
    *(
        f"histogram_quantile(0.99, {_sum_rate(metric, _POD, 'namespace, pod, le')})"
        for metric in (
            "http_request_duration_seconds_bucket",
            "http_server_requests_seconds_bucket",
        )
    )
)


@dataclass(frozen=True)
class CatalogueQuery:
    """One named PromQL template of the catalogue.

    Attributes:
        name: The key in ``Bundle.metrics``.
        template: PromQL with ``$namespace``, ``$pods`` and ``$hpa`` placeholders.
    """

    name: str
    template: str

    @property
    def needs_pods(self) -> bool:
        """Whether the query selects pods (and is skipped when there are none)."""
        return "$pods" in self.template


CATALOGUE: Final[tuple[CatalogueQuery, ...]] = (
    CatalogueQuery("restarts", f"kube_pod_container_status_restarts_total{{{_POD}}}"),
    CatalogueQuery(
        "memory_working_set_bytes", f"container_memory_working_set_bytes{{{_CONTAINER}}}"
    ),
    CatalogueQuery(
        "memory_limit_bytes", f'kube_pod_container_resource_limits{{{_POD},resource="memory"}}'
    ),
    CatalogueQuery(
        "cpu_usage_cores", f"rate(container_cpu_usage_seconds_total{{{_CONTAINER}}}[5m])"
    ),
    CatalogueQuery(
        "cpu_limit_cores", f'kube_pod_container_resource_limits{{{_POD},resource="cpu"}}'
    ),
    CatalogueQuery(
        "cpu_throttling_ratio",
        f"rate(container_cpu_cfs_throttled_periods_total{{{_CONTAINER}}}[5m])"
        f" / rate(container_cpu_cfs_periods_total{{{_CONTAINER}}}[5m])",
    ),
    CatalogueQuery("http_request_rate", _HTTP_RATE),
    # Pods serving requests without a single 5xx get 0 rather than no series.
    CatalogueQuery(
        "http_error_ratio", f"(({_HTTP_ERRORS}) or ({_HTTP_RATE}) * 0) / ({_HTTP_RATE})"
    ),
    CatalogueQuery("http_latency_p99_seconds", _HTTP_P99),
    CatalogueQuery(
        "hpa_current_replicas", f"kube_horizontalpodautoscaler_status_current_replicas{{{_HPA}}}"
    ),
    CatalogueQuery("hpa_max_replicas", f"kube_horizontalpodautoscaler_spec_max_replicas{{{_HPA}}}"),
)


def render_query(
    template: str, namespace: str, pods: Sequence[str], *, hpa: str | None = None
) -> str:
    """Fill a catalogue template with safely quoted values.

    Args:
        template: PromQL with ``$namespace`` (an equality matcher's value), ``$pods`` (a
            regex matcher's value) and ``$hpa`` (likewise) placeholders.
        namespace: The namespace, matched literally.
        pods: Pod names; the regex matches exactly these (Prometheus anchors regexes).
        hpa: An HorizontalPodAutoscaler name to match exactly; ``None`` matches any.

    Returns:
        The PromQL query.

    Raises:
        ValueError: The template selects pods but ``pods`` is empty (an empty regex would
            match every series *without* a pod label).
    """
    if "$pods" in template and not pods:
        raise ValueError("query selects pods but no pods were given")
    return Template(template).substitute(
        namespace=_string_literal(namespace),
        pods=_string_literal("|".join(_re2_escape(pod) for pod in dict.fromkeys(pods))),
        hpa=_string_literal(_re2_escape(hpa) if hpa else ".+"),
    )


def _re2_escape(text: str) -> str:
    """``text`` as an RE2 regex matching only itself."""
    return "".join("\\" + char if char in _RE2_META else char for char in text)


def _string_literal(text: str) -> str:
    """``text`` as a double-quoted PromQL string.

    PromQL strings use Go's escapes, of which JSON's (``\\"``, ``\\\\``, ``\\n``,
    ``\\uXXXX`` for control characters) are a subset; non-ASCII stays raw UTF-8 because Go
    rejects the surrogate pairs ``ensure_ascii`` would produce.
    """
    return json.dumps(text, ensure_ascii=False)


class PromCollector:
    """Runs the catalogue against one Prometheus.

    ``prometheus_api_client`` is synchronous, so each query runs in a worker thread with a
    client of its own (a ``requests.Session`` is not guaranteed thread-safe) and no retries.
    The threads come from a pool sized to the query count: the default executor has only
    ``cpus + 4`` workers, and queries queued behind hung ones would time out unsent.

    Args:
        url: Prometheus base URL; ``None`` or ``""`` means no server is configured.
        timeout: Seconds allowed per query; queries run concurrently, so this also bounds
            :meth:`collect` as a whole. Also sent as the HTTP timeout and as Prometheus's
            own query ``timeout``.
        window: How far back from ``now`` each range query starts.
        step: Range query resolution, in Prometheus duration syntax.
    """

    def __init__(
        self,
        url: str | None,
        *,
        timeout: float = 5.0,
        window: timedelta = timedelta(minutes=60),
        step: str = "30s",
    ) -> None:
        self.url = (url or "").rstrip("/")
        self.timeout = timeout
        self.window = window
        self.step = step

    def queries(
        self, labels: Mapping[str, str], *, namespace: str, pods: Sequence[str]
    ) -> list[tuple[str, str]]:
        """The ``(catalogue name, PromQL)`` pairs that apply to an alert.

        Pod queries need pods; every query needs a namespace. The HPA queries are narrowed
        to the alert's ``horizontalpodautoscaler`` label when it has one.
        """
        if not namespace:
            return []
        hpa = labels.get("horizontalpodautoscaler") or None
        return [
            (entry.name, render_query(entry.template, namespace, pods, hpa=hpa))
            for entry in CATALOGUE
            if pods or not entry.needs_pods
        ]

    async def collect(
        self,
        labels: Mapping[str, str],
        *,
        namespace: str,
        pods: Sequence[str],
        now: datetime,
    ) -> tuple[dict[str, list[MetricSeries]], list[str]]:
        """Query the catalogue over ``[now - window, now]``.

        Args:
            labels: The alert's labels (only ``horizontalpodautoscaler`` is read).
            namespace: The incident's namespace.
            pods: The affected pods' names.
            now: End of the window: the investigation's clock, not necessarily the wall
                clock (a replayed scenario is queried at its own ``now``). Naive means UTC.

        Returns:
            Series per catalogue name, and lines for ``Bundle.missing``: one per failed
            query naming it, or a single line when every query failed for the same reason.
        """
        if not self.url:
            return {}, [NO_SERVER]
        queries = self.queries(labels, namespace=namespace, pods=pods)
        if not queries:
            return {}, []
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        start = now - self.window
        pool = ThreadPoolExecutor(max_workers=len(queries), thread_name_prefix="prometheus")
        try:
            outcomes = await asyncio.gather(
                *(self._run(pool, name, query, start, now) for name, query in queries)
            )
        finally:
            # Hung requests end at their HTTP timeout; nobody waits for them.
            pool.shutdown(wait=False, cancel_futures=True)

        metrics: dict[str, list[MetricSeries]] = {}
        failures: list[tuple[str, str]] = []
        for (name, _), outcome in zip(queries, outcomes, strict=True):
            if isinstance(outcome, str):
                failures.append((name, outcome))
            else:
                metrics[name] = outcome
        reasons = {reason for _, reason in failures}
        if len(failures) > 1 and len(failures) == len(queries) and len(reasons) == 1:
            return metrics, [f"prometheus: all {len(failures)} queries failed: {reasons.pop()}"]
        return metrics, [f"prometheus: {name} query failed: {reason}" for name, reason in failures]

    async def query(self, query: str, start: datetime, end: datetime) -> list[MetricSeries]:
        """One ad-hoc range query (the Claude agent's ``prometheus_query`` tool).

        Raises:
            RuntimeError: naming why the query failed (no server, timeout, API error).
        """
        if not self.url:
            raise RuntimeError(NO_SERVER)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prom-adhoc")
        try:
            outcome = await self._run(pool, "adhoc", query, start, end)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(outcome, str):
            raise RuntimeError(outcome)
        return outcome

    async def _run(
        self, pool: ThreadPoolExecutor, name: str, query: str, start: datetime, end: datetime
    ) -> list[MetricSeries] | str:
        """The series of one query, or why it failed."""
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(pool, self._query_range, query, start, end)
        try:
            return _to_series(name, query, await asyncio.wait_for(call, self.timeout))
        except (TimeoutError, requests.Timeout):
            return f"timed out after {self.timeout:g} s"
        except PrometheusApiClientException as exc:
            return _api_error(str(exc))
        except requests.ConnectionError as exc:
            return _shorten(f"unreachable: {_root_cause(exc)}")
        except (ValueError, TypeError, KeyError) as exc:
            return _shorten(f"malformed response: {type(exc).__name__}: {exc}")
        except Exception as exc:  # the contract is "never raises": anything else is reported
            return _shorten(f"{type(exc).__name__}: {exc}")

    def _query_range(self, query: str, start: datetime, end: datetime) -> Any:
        """One blocking ``/api/v1/query_range`` call (runs in a worker thread)."""
        client = PrometheusConnect(
            url=self.url,
            # Retries (the client's default is 3 with back-off) cannot fit the time box.
            retry=Retry(total=0),
            timeout=self.timeout,
            # Long pod lists would make long URLs.
            method="POST",
        )
        try:
            return client.custom_query_range(
                query,
                start_time=start,
                end_time=end,
                step=self.step,
                # Plain seconds: Prometheus's duration syntax has no fractions ("0.5s").
                params={"timeout": f"{self.timeout:g}"},
            )
        finally:
            client.close()


def _to_series(name: str, query: str, result: Any) -> list[MetricSeries]:
    """Matrix results as :class:`MetricSeries`, ordered by labels.

    NaN samples (e.g. a throttling ratio of 0/0 periods) carry no information and are
    dropped; infinities are kept.

    Raises:
        ValueError, TypeError, KeyError: The result is not a matrix.
    """
    if not isinstance(result, list):
        raise TypeError(f"result is {type(result).__name__}, not a list")
    series = []
    for item in result:
        labels = {str(key): str(value) for key, value in item["metric"].items()}
        samples = tuple(
            (float(ts), value) for ts, raw in item["values"] if not math.isnan(value := float(raw))
        )
        series.append(MetricSeries(name, query, labels, samples))
    series.sort(key=lambda s: sorted(s.labels.items()))
    return series


def _api_error(message: str) -> str:
    """Prometheus's own error out of the client's ``HTTP Status Code N (b'<body>')``."""
    status, _, rest = message.removeprefix("HTTP Status Code ").partition(" ")
    try:
        body = ast.literal_eval(rest.removeprefix("(").removesuffix(")"))
        text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    except (ValueError, SyntaxError):
        return _shorten(message)
    try:
        answer = json.loads(text)
        text = f"{answer['errorType']}: {answer['error']}"
    except (ValueError, KeyError, TypeError):
        pass  # not Prometheus's JSON (a proxy's page, say): show its start
    return _shorten(f"HTTP {status}: {text}" if text.strip() else f"HTTP {status}")


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's message (requests wraps urllib3 wraps OSError)."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return str(exc) or type(exc).__name__


def _shorten(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 1] + "…"
