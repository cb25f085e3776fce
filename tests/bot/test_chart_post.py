"""Charts posted into an incident's thread: Prometheus stub → PNG → Slack emulator.

The Prometheus stub answers ``/api/v1/query_range`` with a matrix covering exactly the window
asked for (one sample per step), as Prometheus would; the Slack emulator stores the uploaded
files, so the test reads back the PNG bytes that landed in the thread.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from PIL import Image
from slack_sdk.web.async_client import AsyncWebClient

from bot.chart_post import WINDOW, post_charts, should_chart
from bot.store import Store
from sandbox.loopback import LoopbackServer
from sandbox.realstack import free_port
from sandbox.slack import SlackSandbox

INCIDENT = "INC_20261120_001"
STARTED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
NOW = STARTED + timedelta(minutes=5)
MIB = 2**20
LABELS = {
    "alertname": "KubePodCrashLooping",
    "namespace": "shop",
    "pod": "cart-7d9f8b6c4-x2x9q",
    "container": "cart",
    "severity": "warning",
}
OOM_REPORT: dict[str, Any] = {
    "incident": {"alertname": "KubePodCrashLooping", "object": "shop/Deployment/cart"},
    "category": "oom_killed",
    "evidence": [
        {"source": "kubernetes", "text": "OOMKilled (exit 137) x6", "ref": "shop/Pod/cart-1"},
        {"source": "prometheus", "text": "working set peaked at 268Mi", "ref": "cart-1"},
    ],
}


class PrometheusStub(LoopbackServer):
    """``query_range`` answering a matrix over the requested window; records each form."""

    def __init__(self, *, empty: bool = False) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []
        self.empty = empty

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/query_range", self._query_range)
        return app

    async def _query_range(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.forms.append(form)
        start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
        times = [start + i * step for i in range(int((end - start) // step) + 1)]
        if self.empty:
            result: list[dict[str, Any]] = []
        elif form["query"].startswith("min("):  # the threshold: the memory limit
            result = [{"metric": {}, "values": [[t, str(256 * MIB)] for t in times]}]
        elif "restarts" in form["query"]:  # a crash every few minutes
            result = [
                {"metric": {"pod": "cart-7d9f8b6c4-x2x9q"}, "values": [[t, "2"] for t in times]}
            ]
        else:
            result = [
                {
                    "metric": {"pod": pod},
                    "values": [
                        [t, str((150 + k * 40) * MIB + i * MIB // 4)] for i, t in enumerate(times)
                    ],
                }
                for k, pod in enumerate(("cart-7d9f8b6c4-x2x9q", "cart-7d9f8b6c4-q7m2k"))
            ]
        body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        return web.Response(text=json.dumps(body), content_type="application/json")


@pytest.fixture
async def prometheus() -> AsyncIterator[PrometheusStub]:
    async with PrometheusStub() as stub:
        yield stub


@pytest.fixture
async def slack() -> AsyncIterator[SlackSandbox]:
    async with SlackSandbox("xoxb-sandbox") as sandbox:
        yield sandbox


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    yield s
    s.close()


def client_for(slack: SlackSandbox) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-sandbox", base_url=slack.api_url)


async def post_parent(store: Store, client: AsyncWebClient) -> tuple[str, str]:
    """Post the incident's parent and record its thread, as the outbox does."""
    parent = await client.chat_postMessage(channel="#incidents", text="KubePodCrashLooping")
    empty = {"text": "", "blocks": []}
    outbox_id = await store.call(store.enqueue, INCIDENT, "#incidents", "parent", empty, 0.0)
    await store.call(store.record_parent, outbox_id, INCIDENT, parent["channel"], parent["ts"])
    return str(parent["channel"]), str(parent["ts"])


async def charts(
    store: Store, slack: SlackSandbox, prometheus_url: str | None, **kwargs: Any
) -> int:
    arguments: dict[str, Any] = {
        "report": OOM_REPORT,
        "labels": LABELS,
        "started": STARTED,
        "now": NOW,
        "thread_wait": 30.0,
        **kwargs,
    }
    return await post_charts(
        store=store,
        slack_client=client_for(slack),
        prometheus_url=prometheus_url,
        incident_id=INCIDENT,
        **arguments,
    )


def uploaded_files(slack: SlackSandbox, channel: str, ts: str) -> list[dict[str, Any]]:
    return [f for m in slack.thread(channel, ts)[1:] for f in m.get("files") or []]


async def test_oom_incident_gets_memory_and_restart_charts_in_its_thread(
    store: Store, slack: SlackSandbox, prometheus: PrometheusStub
) -> None:
    channel, ts = await post_parent(store, client_for(slack))
    assert await charts(store, slack, prometheus.base_url) == 2

    files = uploaded_files(slack, channel, ts)
    assert [f["title"] for f in files] == [
        "Memory working set of cart vs limit",
        "Container restarts (per 5 min)",
    ]
    assert [f["name"] for f in files] == [
        f"{INCIDENT}-memory-working-set-of-cart-vs-limit.png",
        f"{INCIDENT}-container-restarts-per-5-min.png",
    ]
    for shared in files:
        assert shared["mimetype"] == "image/png"
        png = slack.file_content(shared["id"])
        assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")
        image = Image.open(io.BytesIO(png))
        assert image.size == (800, 320)
        # A drawn chart, not the near-blank "No data" panel.
        colours = image.convert("RGB").getcolors(maxcolors=800 * 320)
        assert colours is not None and len(colours) > 20

    # The hour before the alert's start up to now (5 minutes after it), every 15 s.
    assert len(prometheus.forms) == 3  # memory, its limit, restarts
    for form in prometheus.forms:
        assert float(form["end"]) == NOW.timestamp()
        assert float(form["end"]) - float(form["start"]) == WINDOW.total_seconds()
        assert form["step"] == "15"
        assert 'namespace="shop"' in form["query"]
        assert "cart-" in form["query"]  # the Deployment's pods, by their generated names
    queries = sorted(f["query"] for f in prometheus.forms)
    assert any("container_memory_working_set_bytes" in q for q in queries)
    assert any('resource="memory"' in q for q in queries)
    assert any("kube_pod_container_status_restarts_total" in q for q in queries)


async def test_old_alert_window_ends_a_quarter_hour_after_its_start(
    store: Store, slack: SlackSandbox, prometheus: PrometheusStub
) -> None:
    await post_parent(store, client_for(slack))
    later = STARTED + timedelta(days=2)  # a backlog replayed long after the alert
    assert await charts(store, slack, prometheus.base_url, now=later) == 2
    end = STARTED + timedelta(minutes=15)
    assert {float(f["end"]) for f in prometheus.forms} == {end.timestamp()}


async def test_no_prometheus_means_no_charts_and_no_error(
    store: Store, slack: SlackSandbox
) -> None:
    channel, ts = await post_parent(store, client_for(slack))
    assert await charts(store, slack, None) == 0
    assert await charts(store, slack, "") == 0
    down = f"http://127.0.0.1:{free_port()}"
    assert await charts(store, slack, down) == 0
    assert uploaded_files(slack, channel, ts) == []
    assert slack.calls_to("files.getUploadURLExternal") == []


async def test_no_samples_or_nothing_to_chart_posts_nothing(
    store: Store, slack: SlackSandbox, prometheus: PrometheusStub
) -> None:
    channel, ts = await post_parent(store, client_for(slack))
    watchdog = {**OOM_REPORT, "category": "not_an_incident", "evidence": []}
    assert await charts(store, slack, prometheus.base_url, report=watchdog) == 0
    assert await charts(store, slack, prometheus.base_url, report=None) == 0
    assert prometheus.forms == []  # not even asked
    async with PrometheusStub(empty=True) as empty:
        assert await charts(store, slack, empty.base_url) == 0
        assert len(empty.forms) == 3
    assert uploaded_files(slack, channel, ts) == []


async def test_charts_wait_for_the_thread_and_its_queued_replies(
    store: Store, slack: SlackSandbox, prometheus: PrometheusStub
) -> None:
    client = client_for(slack)
    task = asyncio.create_task(charts(store, slack, prometheus.base_url))
    await asyncio.sleep(0.3)
    assert not task.done()  # no parent yet: nowhere to post
    channel, ts = await post_parent(store, client)
    rca = {"text": "RCA", "blocks": []}
    reply = await store.call(store.enqueue, INCIDENT, "#incidents", "reply", rca, 0.0)
    await asyncio.sleep(0.3)
    assert not task.done()  # the RCA reply is still queued: charts come after it
    posted = await client.chat_postMessage(channel=channel, thread_ts=ts, text="Root cause: OOM")
    await store.call(store.outbox_mark, reply, "sent", ts=str(posted["ts"]), now=0.0)
    assert await task == 2
    thread = slack.thread(channel, ts)
    assert [m["text"] for m in thread[:2]] == ["KubePodCrashLooping", "Root cause: OOM"]
    assert [len(m.get("files") or []) for m in thread[2:]] == [1, 1]


async def test_no_thread_in_time_posts_nothing(
    store: Store, slack: SlackSandbox, prometheus: PrometheusStub
) -> None:
    assert await charts(store, slack, prometheus.base_url, thread_wait=0.2) == 0
    assert slack.calls_to("files.getUploadURLExternal") == []


async def test_slack_refusing_the_upload_is_logged_not_raised(
    store: Store, slack: SlackSandbox, prometheus: PrometheusStub
) -> None:
    await post_parent(store, client_for(slack))
    slack.fail_next(10, status=500, method="files.getUploadURLExternal")
    assert await charts(store, slack, prometheus.base_url) == 0


@pytest.mark.parametrize(
    ("category", "evidence", "wanted"),
    [
        ("oom_killed", [], True),
        ("app_crash", [], True),
        ("unknown", [], False),
        ("unknown", [{"source": "prometheus", "text": "5xx ratio 40%"}], True),
        ("not_an_incident", [{"source": "prometheus", "text": "always firing"}], False),
    ],
)
def test_which_reports_get_charts(category: str, evidence: list[Any], wanted: bool) -> None:
    assert should_chart({"category": category, "evidence": evidence}) is wanted
