"""PromCollector: safe PromQL rendering, and time-boxed queries against a loopback Prometheus.

The fake speaks the part of the Prometheus HTTP API the client uses (``/api/v1/query_range``,
GET or POST form) and answers per query: a matrix, an API error, a hang, or junk.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from bot.collect.prometheus import CATALOGUE, NO_SERVER, PromCollector, render_query
from sandbox.realstack import free_port

NOW = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
POD = "cart-7d9f8b6c4-x2x9q"
Answer = Callable[[dict[str, str]], Awaitable[web.Response]]


def _literal(query: str, matcher: str) -> str:
    """The value of ``matcher="..."`` in ``query``, unquoted (JSON and PromQL agree)."""
    match = re.search(re.escape(matcher) + r'("(?:[^"\\]|\\.)*")', query)
    assert match, f"{matcher} not in {query}"
    value: str = json.loads(match.group(1))
    return value


# --- render_query -------------------------------------------------------------------------


def test_render_query_quotes_namespace_and_escapes_pod_regex() -> None:
    query = render_query(
        "m{namespace=$namespace,pod=~$pods}", "shop", ["cart-1.a", "b+c", "cart-1.a"]
    )
    assert query == r'm{namespace="shop",pod=~"cart-1\\.a|b\\+c"}'


def test_render_query_cannot_be_broken_out_of() -> None:
    evil_ns = 'shop"} or vector(1) or up{x="'
    evil_pod = '.*"} or vector(1) #\n'
    query = render_query("m{namespace=$namespace,pod=~$pods}", evil_ns, [evil_pod])
    assert _literal(query, "namespace=") == evil_ns
    regex = _literal(query, "pod=~")
    assert re.fullmatch(regex, evil_pod)
    assert not re.fullmatch(regex, "anything-else")
    # Only the two matchers' quotes are unescaped: nothing else became PromQL.
    assert query.startswith('m{namespace="') and query.endswith('"}')
    assert query.count('"') - query.count('\\"') == 4


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4))
def test_pod_regex_matches_exactly_the_given_names(pods: list[str]) -> None:
    regex = _literal(render_query("m{pod=~$pods}", "ns", pods), "pod=~")
    for pod in pods:
        assert re.fullmatch(regex, pod)
        assert not re.fullmatch(regex, pod + "x")
    assert not re.fullmatch(regex, "")


def test_hpa_matches_the_named_autoscaler_or_any() -> None:
    template = "m{namespace=$namespace,horizontalpodautoscaler=~$hpa}"
    assert render_query(template, "web", [], hpa="web.v2") == (
        r'm{namespace="web",horizontalpodautoscaler=~"web\\.v2"}'
    )
    assert render_query(template, "web", []).endswith('horizontalpodautoscaler=~".+"}')


def test_render_query_refuses_an_empty_pod_list() -> None:
    # pod=~"" would select every series without a pod label.
    with pytest.raises(ValueError, match="no pods"):
        render_query("m{pod=~$pods}", "shop", [])


def test_catalogue_names() -> None:
    assert [entry.name for entry in CATALOGUE] == [
        "restarts",
        "memory_working_set_bytes",
        "memory_limit_bytes",
        "cpu_usage_cores",
        "cpu_limit_cores",
        "cpu_throttling_ratio",
        "http_request_rate",
        "http_error_ratio",
        "http_latency_p99_seconds",
        "hpa_current_replicas",
        "hpa_max_replicas",
    ]


def test_queries_depend_on_namespace_pods_and_hpa_label() -> None:
    collector = PromCollector("http://prometheus:9090")
    assert collector.queries({}, namespace="", pods=[POD]) == []
    without_pods = dict(collector.queries({}, namespace="shop", pods=[]))
    assert set(without_pods) == {"hpa_current_replicas", "hpa_max_replicas"}
    labels = {"horizontalpodautoscaler": "web"}
    queries = dict(collector.queries(labels, namespace="shop", pods=[POD]))
    assert len(queries) == len(CATALOGUE)
    assert 'horizontalpodautoscaler=~"web"' in queries["hpa_max_replicas"]
    assert queries["restarts"] == (
        r'kube_pod_container_status_restarts_total{namespace="shop",pod=~"' + POD + '"}'
    )


# --- collect without a server -------------------------------------------------------------


@pytest.mark.parametrize("url", [None, ""])
async def test_no_server_configured(url: str | None) -> None:
    assert await PromCollector(url).collect({}, namespace="shop", pods=[POD], now=NOW) == (
        {},
        [NO_SERVER],
    )


async def test_unreachable_server_is_one_missing_line() -> None:
    collector = PromCollector(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    metrics, missing = await collector.collect({}, namespace="shop", pods=[POD], now=NOW)
    assert metrics == {}
    assert len(missing) == 1
    assert missing[0].startswith(f"prometheus: all {len(CATALOGUE)} queries failed: unreachable")


# --- collect against a loopback fake ------------------------------------------------------


def matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> web.Response:
    result = [
        {"metric": labels, "values": [[t, v] for t, v in values]} for labels, values in series
    ]
    return web.json_response(
        {"status": "success", "data": {"resultType": "matrix", "result": result}}
    )


def api_error(status: int, kind: str, message: str) -> web.Response:
    body = {"status": "error", "errorType": kind, "error": message}
    return web.json_response(body, status=status)


class FakePrometheus:
    """``/api/v1/query_range`` answering by the first rule whose text occurs in the query."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, Answer]] = []
        self.requests: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.release = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    def on(self, text: str, answer: Answer) -> None:
        self.rules.append((text, answer))

    async def hang(self, params: dict[str, str]) -> web.Response:
        await self.release.wait()
        return matrix()

    async def _handle(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.requests.append(params)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for text, answer in self.rules:
                if text in params["query"]:
                    return await answer(params)
            return matrix()
        finally:
            self.in_flight -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/v1/query_range", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def prom() -> AsyncIterator[FakePrometheus]:
    server = FakePrometheus()
    await server.start()
    yield server
    await server.stop()


def reply(response: Callable[[], web.Response]) -> Answer:
    async def answer(params: dict[str, str]) -> web.Response:
        return response()

    return answer


async def test_series_are_parsed_and_queried_at_the_given_now(prom: FakePrometheus) -> None:
    t0 = NOW.timestamp()
    labels = {"__name__": "container_memory_working_set_bytes", "pod": POD, "container": "cart"}
    prom.on(
        "container_memory_working_set_bytes",
        reply(lambda: matrix((labels, [(t0 - 60, "231000000"), (t0 - 30, "NaN"), (t0, "2.6e8")]))),
    )
    collector = PromCollector(prom.url, window=timedelta(minutes=10), step="15s")
    metrics, missing = await collector.collect({}, namespace="shop", pods=[POD], now=NOW)

    assert missing == []
    assert set(metrics) == {entry.name for entry in CATALOGUE}
    [series] = metrics["memory_working_set_bytes"]
    assert series.labels == labels
    assert series.samples == ((t0 - 60, 231000000.0), (t0, 260000000.0))  # NaN dropped
    assert (series.peak, series.last) == (260000000.0, 260000000.0)
    assert series.query == dict(collector.queries({}, namespace="shop", pods=[POD]))[series.name]
    assert metrics["http_request_rate"] == []  # no HTTP metrics: empty, not missing

    assert len(prom.requests) == len(CATALOGUE)
    for params in prom.requests:
        assert (params["start"], params["end"]) == (str(round(t0 - 600)), str(round(t0)))
        assert params["step"] == "15s"
        assert params["timeout"] == "5"


async def test_errors_and_timeouts_become_missing_lines(prom: FakePrometheus) -> None:
    prom.on(
        "container_cpu_usage_seconds_total",
        reply(lambda: api_error(400, "bad_data", 'parse error: unexpected "}"')),
    )
    prom.on("kube_pod_container_status_restarts_total", prom.hang)
    prom.on("container_cpu_cfs_periods_total", reply(lambda: web.Response(text="<html>oops")))
    prom.on(
        "kube_horizontalpodautoscaler_spec_max_replicas",
        reply(lambda: api_error(503, "unavailable", "too many queries")),
    )
    prom.on(
        "container_memory_working_set_bytes",
        reply(lambda: web.json_response({"status": "success", "data": {"result": "junk"}})),
    )
    prom.on(
        'resource="cpu"',
        reply(lambda: web.Response(status=502, text="<html>Bad Gateway</html>")),
    )
    collector = PromCollector(prom.url, timeout=0.5)

    started = time.monotonic()
    metrics, missing = await collector.collect({}, namespace="shop", pods=[POD], now=NOW)
    elapsed = time.monotonic() - started

    assert elapsed < 0.5 + 1.0
    by_name = {line.split()[1]: line for line in missing}
    assert set(by_name) == {
        "restarts",
        "cpu_usage_cores",
        "cpu_throttling_ratio",
        "hpa_max_replicas",
        "memory_working_set_bytes",
        "cpu_limit_cores",
    }
    assert by_name["restarts"] == "prometheus: restarts query failed: timed out after 0.5 s"
    assert by_name["cpu_usage_cores"] == (
        'prometheus: cpu_usage_cores query failed: HTTP 400: bad_data: parse error: unexpected "}"'
    )
    assert "HTTP 503: unavailable: too many queries" in by_name["hpa_max_replicas"]
    assert by_name["cpu_limit_cores"].endswith("HTTP 502: <html>Bad Gateway</html>")
    assert "malformed response" in by_name["cpu_throttling_ratio"]
    assert "malformed response" in by_name["memory_working_set_bytes"]
    assert set(metrics).isdisjoint(by_name)
    assert len(metrics) == len(CATALOGUE) - len(by_name)
    # No retries: the 503 was asked once.
    assert sum("spec_max_replicas" in p["query"] for p in prom.requests) == 1


async def test_queries_run_concurrently_within_one_timeout(prom: FakePrometheus) -> None:
    prom.on("", prom.hang)
    collector = PromCollector(prom.url, timeout=0.5)

    started = time.monotonic()
    metrics, missing = await collector.collect({}, namespace="shop", pods=[POD], now=NOW)
    elapsed = time.monotonic() - started

    assert 0.5 <= elapsed < 0.5 + 1.0  # one slot of the time box, not eleven
    assert prom.max_in_flight == len(CATALOGUE)
    assert metrics == {}
    assert missing == [f"prometheus: all {len(CATALOGUE)} queries failed: timed out after 0.5 s"]


async def test_hostile_labels_reach_prometheus_as_literals(prom: FakePrometheus) -> None:
    pod = 'x"} or vector(1) #'
    labels = {"horizontalpodautoscaler": 'web"}'}
    await PromCollector(prom.url).collect(labels, namespace='shop"', pods=[pod], now=NOW)
    seen: dict[str, Any] = {p["query"].split("{")[0]: p["query"] for p in prom.requests}
    restarts = seen["kube_pod_container_status_restarts_total"]
    assert _literal(restarts, "namespace=") == 'shop"'
    assert re.fullmatch(_literal(restarts, "pod=~"), pod)
    hpa = seen["kube_horizontalpodautoscaler_spec_max_replicas"]
    assert re.fullmatch(_literal(hpa, "horizontalpodautoscaler=~"), 'web"}')
