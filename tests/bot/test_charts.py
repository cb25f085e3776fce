"""Incident charts: what is charted, the Prometheus range query, the PNG, the Slack upload.

The Prometheus stub answers bodies captured from Prometheus 2.42 (a matrix with a NaN series,
a ``bad_data`` parse error). The generated PromQL is checked by the real ``promtool`` when it
is installed (e2e). The upload goes through the Slack emulator with the real AsyncWebClient.
"""

from __future__ import annotations

import io
import math
import re
import struct
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import yaml
from aiohttp import web
from PIL import Image
from slack_sdk.web.async_client import AsyncWebClient

from bot.chart_data import (
    ChartDataError,
    ChartSpec,
    Series,
    chart_specs,
    fetch_chart,
    fetch_range,
    pod_regex,
)
from bot.charts import (
    ALERT_COLOUR,
    MAX_SERIES,
    PALETTE,
    THRESHOLD_COLOUR,
    format_value,
    render_png,
    time_ticks,
    upload_chart,
    value_axis,
    visible_series,
)
from sandbox.loopback import LoopbackServer
from sandbox.realstack import free_port
from sandbox.slack import SlackSandbox
from tests.e2e.conftest import require_binary

MIB = 2**20
START = datetime(2026, 11, 20, 9, 15, tzinfo=UTC)
ALERT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
# Captured from Prometheus 2.42: `... or label_replace(vector(0) / 0, "pod", "cart-2", ...)`.
MATRIX = (
    '{"status":"success","data":{"resultType":"matrix","result":['
    '{"metric":{"pod":"cart-1"},"values":[[1795444636,"268435456"],[1795444666,"268435456"],'
    '[1795444696,"268435456"]]},'
    '{"metric":{"pod":"cart-2"},"values":[[1795444636,"NaN"],[1795444666,"NaN"],'
    '[1795444696,"NaN"]]}]}}'
)
PARSE_ERROR = (
    '{"status":"error","errorType":"bad_data",'
    '"error":"1:5: parse error: unclosed left parenthesis"}'
)


def memory_series(count: int = 3) -> list[Series]:
    t0 = START.timestamp()
    return [
        Series(
            f"cart-7d9f8b6c4-{k}",
            tuple(
                (t0 + 15 * i, (180 + 30 * k + 80 * (i % 80) / 80 + 5 * math.sin(i / 7)) * MIB)
                for i in range(241)
            ),
        )
        for k in range(count)
    ]


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, read without an image library."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


def colour_columns(image: Image.Image, hex_colour: str, tolerance: int = 40) -> list[int]:
    """x of every pixel within ``tolerance`` (sum of channel differences) of ``hex_colour``."""
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    distance = np.abs(np.asarray(image, dtype=np.int32) - target).sum(axis=2)
    return [int(x) for x in np.nonzero(distance <= tolerance)[1]]


def distinct_colours(image: Image.Image) -> int:
    colours = image.getcolors(maxcolors=image.width * image.height)
    assert colours is not None
    return len(colours)


# ------------------------------------------------------------------------------ the PNG


def test_chart_is_a_png_of_the_requested_size_with_every_element_drawn() -> None:
    png = render_png(
        memory_series(),
        title="Memory working set of cart vs limit",
        unit="bytes",
        alert_start=ALERT,
        threshold=256 * MIB,
    )
    assert png_size(png) == (800, 320)
    image = decode(png)
    assert image.size == (800, 320)
    assert distinct_colours(image) > 20  # lines, anti-aliasing, text: not a blank canvas
    for colour in (*PALETTE[:3], THRESHOLD_COLOUR, ALERT_COLOUR):
        assert colour_columns(image, colour), f"nothing drawn in {colour}"
    # Only three series: no fourth hue (a tight tolerance, as the red marker's anti-aliased
    # edge is pinkish).
    assert not colour_columns(image, PALETTE[3], tolerance=16)


def test_width_and_height_are_honoured() -> None:
    png = render_png(
        memory_series(1), title="t", unit="bytes", alert_start=ALERT, width=640, height=240
    )
    assert png_size(png) == (640, 240)
    assert decode(png).size == (640, 240)


def test_alert_marker_sits_where_the_alert_started() -> None:
    def marker_x(alert: datetime) -> float:
        png = render_png(memory_series(1), title="t", unit="bytes", alert_start=alert)
        columns = colour_columns(decode(png), ALERT_COLOUR)
        return sorted(columns)[len(columns) // 2]

    early = marker_x(START + timedelta(minutes=15))
    late = marker_x(START + timedelta(minutes=45))
    assert early < 400 < late
    # 30 of the 60 minutes apart: about half of the plot's ~700 px width.
    assert 300 < late - early < 400


def test_alert_before_the_data_widens_the_time_axis() -> None:
    png = render_png(
        memory_series(1), title="t", unit="bytes", alert_start=START - timedelta(hours=1)
    )
    columns = colour_columns(decode(png), ALERT_COLOUR)
    assert columns and sorted(columns)[len(columns) // 2] < 100


def test_threshold_series_changing_over_time() -> None:
    t0 = START.timestamp()
    limit = Series("memory limit", ((t0, 256 * MIB), (t0 + 1800, 320 * MIB)))
    png = render_png(memory_series(), title="t", unit="bytes", alert_start=ALERT, threshold=limit)
    assert colour_columns(decode(png), THRESHOLD_COLOUR)


@pytest.mark.parametrize("series", [[], [Series("cart-1", ())], [Series("a", ()), Series("b", ())]])
def test_no_samples_renders_a_no_data_panel(series: list[Series]) -> None:
    png = render_png(
        series, title="HTTP 5xx ratio", unit="ratio", alert_start=ALERT, threshold=0.05
    )
    assert png_size(png) == (800, 320)
    image = decode(png)
    assert not any(colour_columns(image, c) for c in (*PALETTE, THRESHOLD_COLOUR, ALERT_COLOUR))
    assert distinct_colours(image) > 2  # the frame and the "No data" text are there


def test_at_most_five_series_are_drawn_highest_peaks_first() -> None:
    flat = [Series(f"pod-{k}", ((0.0, float(k)), (60.0, float(k)))) for k in range(8)]
    drawn, hidden = visible_series(flat)
    assert [s.label for s in drawn] == ["pod-7", "pod-6", "pod-5", "pod-4", "pod-3"]
    assert (len(drawn), hidden) == (MAX_SERIES, 3)
    assert visible_series([Series("empty", ()), *flat[:2]]) == ([flat[1], flat[0]], 0)


def test_too_small_charts_are_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        render_png(memory_series(1), title="t", unit="bytes", alert_start=ALERT, width=100)


# ------------------------------------------------------------------------------ units


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0, "bytes", "0 B"),
        (512, "bytes", "512 B"),
        (1536, "bytes", "1.5 KiB"),
        (256 * MIB, "bytes", "256 MiB"),
        (268_000_000, "bytes", "256 MiB"),
        (1.5 * 2**30, "bytes", "1.5 GiB"),
        (0.25, "ratio", "25%"),
        (0.005, "ratio", "0.5%"),
        (1, "ratio", "100%"),
        (0.0005, "seconds", "500 µs"),
        (0.25, "seconds", "250 ms"),
        (1.5, "seconds", "1.5 s"),
        (300, "seconds", "5 min"),
        (7200, "seconds", "2 h"),
        (3, "count", "3"),
        (2.5, "count", "2.5"),
        (1500, "count", "1.5k"),
        (2_000_000, "count", "2M"),
    ],
)
def test_format_value(value: float, unit: Any, text: str) -> None:
    assert format_value(value, unit) == text


def test_value_axis_uses_one_unit_and_round_ticks() -> None:
    axis = value_axis(0, 300 * MIB, "bytes")
    assert axis.labels == ("0", "100 MiB", "200 MiB", "300 MiB")
    assert axis.ticks == (0, 100 * MIB, 200 * MIB, 300 * MIB)
    assert (axis.lo, axis.hi) == (0, 300 * MIB)
    gib = value_axis(0, 2.2 * 2**30, "bytes")
    assert gib.labels[-1].endswith("GiB") and gib.hi >= 2.2 * 2**30
    assert value_axis(0, 0.8, "ratio").labels == ("0", "20%", "40%", "60%", "80%")


def test_count_axis_has_whole_steps_and_flat_data_still_gets_a_range() -> None:
    axis = value_axis(0, 7, "count")
    assert all(float(t).is_integer() for t in axis.ticks) and axis.hi >= 7
    flat = value_axis(0, 0, "count")
    assert flat.hi > flat.lo


def test_time_ticks_are_round_utc_minutes() -> None:
    ticks, fmt = time_ticks(START.timestamp(), START.timestamp() + 3600, 10)
    labels = [datetime.fromtimestamp(t, UTC).strftime(fmt) for t in ticks]
    assert labels == ["09:20", "09:30", "09:40", "09:50", "10:00", "10:10"]
    halves, half_fmt = time_ticks(START.timestamp(), START.timestamp() + 3 * 86400, 6)
    assert half_fmt == "%d %b %H:%M" and len(halves) == 6
    days, day_fmt = time_ticks(START.timestamp(), START.timestamp() + 10 * 86400, 6)
    assert day_fmt == "%d %b"
    # Two-day steps, at midnight UTC.
    assert [datetime.fromtimestamp(t, UTC).strftime("%d %b %H:%M") for t in days][:2] == [
        "21 Nov 00:00",
        "23 Nov 00:00",
    ]


# ------------------------------------------------------------------------------ specs


def test_oom_charts_memory_against_the_containers_limit_and_restarts() -> None:
    memory, restarts = chart_specs(
        "oom_killed", "shop", pod_regex(kind="Deployment", name="cart"), "cart"
    )
    assert memory.unit == "bytes" and restarts.unit == "count"
    assert "container_memory_working_set_bytes" in memory.promql
    assert 'container="cart"' in memory.promql
    assert memory.threshold_promql is not None
    assert 'resource="memory"' in memory.threshold_promql
    assert 'container="cart"' in memory.threshold_promql
    assert "kube_pod_container_status_restarts_total" in restarts.promql
    assert restarts.threshold_promql is None


@pytest.mark.parametrize(
    ("category", "units"),
    [
        ("oom_killed", ["bytes", "count"]),
        ("cpu_throttling", ["ratio", "seconds"]),
        ("dependency_unavailable", ["ratio", "seconds"]),
        ("app_crash", ["count"]),
        ("liveness_probe", ["count"]),
        ("something_new", ["count"]),
        ("not_an_incident", []),
    ],
)
def test_charts_per_category(category: str, units: list[str]) -> None:
    specs = chart_specs(category, "shop", "cart-.*", None)
    assert [s.unit for s in specs] == units
    assert all("$" not in s.promql for s in specs)  # every placeholder filled


def test_label_values_are_quoted_not_injected() -> None:
    [spec] = chart_specs("app_crash", 'sh"op', 'x"} or vector(1) #', 'c"')
    assert 'namespace="sh\\"op"' in spec.promql
    assert 'pod=~"x\\"} or vector(1) #"' in spec.promql
    assert 'container="c\\""' in spec.promql


def test_specs_need_a_namespace_and_pods() -> None:
    with pytest.raises(ValueError):
        chart_specs("oom_killed", "", "cart-.*", None)
    with pytest.raises(ValueError):
        chart_specs("oom_killed", "shop", "", None)


@pytest.mark.parametrize(
    ("kind", "name", "matches", "others"),
    [
        (
            "Deployment",
            "cart",
            ["cart-7d9f8b6c4-x2x9q", "cart-5f4b9-abcde"],
            ["cart-api-7d9f8b6c4-x2x9q", "cart"],
        ),
        ("StatefulSet", "db", ["db-0", "db-12"], ["db-0-x", "db-primary-0"]),
        ("DaemonSet", "agent", ["agent-k2x9q"], ["agent-7d9f8b6c4-x2x9q"]),
        ("Job", "migrate", ["migrate-x2x9q", "migrate-3-x2x9q"], ["migrate"]),
        ("CronJob", "nightly", ["nightly-29123400-x2x9q"], ["nightly-x2x9q"]),
        ("Pod", "debug.shell", ["debug.shell"], ["debugxshell"]),
    ],
)
def test_pod_regex_for_workloads(
    kind: str, name: str, matches: list[str], others: list[str]
) -> None:
    regex = re.compile(pod_regex(kind=kind, name=name))
    assert all(regex.fullmatch(pod) for pod in matches)
    assert not any(regex.fullmatch(pod) for pod in others)


def test_pod_regex_for_pods_is_exact() -> None:
    regex = re.compile(pod_regex(pods=["a.b-1", "c+d", "a.b-1"]))
    assert regex.pattern == "a\\.b-1|c\\+d"
    assert regex.fullmatch("c+d") and not regex.fullmatch("axb-1")
    with pytest.raises(ValueError):
        pod_regex()
    with pytest.raises(ValueError):
        pod_regex(kind="Service", name="cart")


@pytest.mark.e2e
def test_every_generated_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    categories = ("oom_killed", "cpu_throttling", "dependency_unavailable", "app_crash")
    queries = [
        query
        for category in categories
        for container in ("cart", None)
        for spec in chart_specs(
            category, "shop", pod_regex(kind="Deployment", name="cart"), container
        )
        for query in (spec.promql, spec.threshold_promql)
        if query
    ]
    rules = [{"record": f"chart:query{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "charts", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


# ------------------------------------------------------------------------------ Prometheus


class PrometheusStub(LoopbackServer):
    """Answers /api/v1/query_range with scripted bodies and records the form."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[tuple[int, str]] = []
        self.forms: list[dict[str, str]] = []

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/query_range", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.forms.append({k: str(v) for k, v in form.items()})
        status, body = self.replies.pop(0)
        return web.Response(status=status, text=body, content_type="application/json")


@pytest.fixture
async def prometheus() -> AsyncIterator[PrometheusStub]:
    async with PrometheusStub() as stub:
        yield stub


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_fetch_range_sends_the_window_and_parses_the_matrix(
    prometheus: PrometheusStub, session: aiohttp.ClientSession
) -> None:
    prometheus.replies.append((200, MATRIX))
    end = datetime(2026, 11, 23, 14, 38, 16, tzinfo=UTC)
    series = await fetch_range(
        prometheus.base_url + "/",
        session,
        "up",
        end - timedelta(minutes=60),
        end,
        15,
        legend="{pod}",
    )
    assert prometheus.forms == [
        {
            "query": "up",
            "start": f"{end.timestamp() - 3600:.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": "15",
            "timeout": "5s",
        }
    ]
    assert [s.label for s in series] == ["cart-1", "cart-2"]
    assert series[0].samples == (
        (1795444636.0, 268435456.0),
        (1795444666.0, 268435456.0),
        (1795444696.0, 268435456.0),
    )
    assert series[1].samples == ()  # NaN samples dropped


async def test_fetch_range_default_legend_is_the_label_set(
    prometheus: PrometheusStub, session: aiohttp.ClientSession
) -> None:
    prometheus.replies.append((200, MATRIX))
    series = await fetch_range(prometheus.base_url, session, "up", START, ALERT, 30)
    assert series[0].label == "{pod='cart-1'}"


async def test_fetch_range_errors(
    prometheus: PrometheusStub, session: aiohttp.ClientSession
) -> None:
    prometheus.replies += [
        (400, PARSE_ERROR),
        (200, '{"status":"success","data":{"resultType":"vector","result":[]}}'),
        (502, "bad gateway"),
    ]
    with pytest.raises(ChartDataError) as parse:
        await fetch_range(prometheus.base_url, session, "sum(", START, ALERT, 30)
    assert parse.value.status == 400
    assert parse.value.message == "bad_data: 1:5: parse error: unclosed left parenthesis"
    with pytest.raises(ChartDataError, match="malformed response"):
        await fetch_range(prometheus.base_url, session, "up", START, ALERT, 30)
    with pytest.raises(ChartDataError, match="bad gateway") as proxy:
        await fetch_range(prometheus.base_url, session, "up", START, ALERT, 30)
    assert proxy.value.status == 502
    unreachable = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChartDataError, match="unreachable") as down:
        await fetch_range(unreachable, session, "up", START, ALERT, 30)
    assert down.value.status is None


async def test_fetch_chart_names_the_threshold(
    prometheus: PrometheusStub, session: aiohttp.ClientSession
) -> None:
    spec = ChartSpec("Memory", "mem", "bytes", "limit", "{pod}", threshold_label="memory limit")
    # Both queries run concurrently: answer whichever comes first with the same body.
    prometheus.replies += [(200, MATRIX), (200, MATRIX)]
    data = await fetch_chart(prometheus.base_url, session, spec, start=START, end=ALERT, step=30)
    assert sorted(f["query"] for f in prometheus.forms) == ["limit", "mem"]
    assert [s.label for s in data.series] == ["cart-1", "cart-2"]
    assert data.threshold is not None and data.threshold.label == "memory limit"
    assert data.threshold.samples[0][1] == 268435456.0
    assert not data.empty


# ------------------------------------------------------------------------------ Slack


async def test_upload_lands_the_png_in_the_incident_thread() -> None:
    async with SlackSandbox("xoxb-sandbox") as slack:
        client = AsyncWebClient(token="xoxb-sandbox", base_url=slack.api_url)
        parent = await client.chat_postMessage(channel="#incidents", text="KubePodCrashLooping")
        png = render_png(memory_series(), title="Memory", unit="bytes", alert_start=ALERT)
        file_id = await upload_chart(
            client,
            channel=parent["channel"],
            thread_ts=parent["ts"],
            png=png,
            title="Memory working set of cart vs limit",
            filename="cart-memory.png",
        )
        assert slack.file_content(file_id) == png
        thread = slack.thread("#incidents", parent["ts"])
        assert len(thread) == 2
        [shared] = thread[1]["files"]
        assert (shared["id"], shared["name"], shared["mimetype"]) == (
            file_id,
            "cart-memory.png",
            "image/png",
        )
        assert shared["title"] == "Memory working set of cart vs limit"
        [get_url] = slack.calls_to("files.getUploadURLExternal")
        assert int(get_url.params["length"]) == len(png)
