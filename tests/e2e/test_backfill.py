"""Scenario metrics through promtool into a real Prometheus, read back by PromCollector.

The OpenMetrics writer is tested on its own (no binaries); the rest needs ``prometheus`` and
``promtool`` (Debian package ``prometheus``) and is marked ``e2e``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_api_client import PrometheusConnect

from bot.collect.prometheus import PromCollector
from sandbox.backfill import (
    BackfillError,
    backfill_scenario_metrics,
    openmetrics_text,
    prometheus_for_tsdb,
    scenario_prometheus,
)
from sandbox.scenario import load_scenario
from tests.e2e.conftest import require_binary

NOW = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
T0 = NOW.timestamp()
CART = load_scenario(Path(__file__).parents[2] / "scenarios" / "cart-oomkilled.yaml")
CART_POD = "cart-7d9f8b6c4-x2x9q"
TRICKY_VALUE = 'say "hi"\\path\nnext'
# The same value as written in a scenario's series selector.
TRICKY_ESCAPED = 'say \\"hi\\"\\\\path\\nnext'


@pytest.fixture(scope="session")
def promtool_bin() -> str:
    """Path of promtool (shipped with Debian's ``prometheus``)."""
    return require_binary("promtool", "prometheus")


# --- the OpenMetrics writer ---------------------------------------------------------------


def test_openmetrics_groups_sorts_and_escapes() -> None:
    text = openmetrics_text(
        [
            {"series": f'b_total{{pod="p",msg="{TRICKY_ESCAPED}"}}', "samples": [[0, 2]]},
            {"series": 'a:rate5m{z="1",a="2"}', "samples": [[0, 1.5], [-60, 1], [-60, 1.25]]},
            {"series": 'b_total{pod="q"}', "samples": [[-30, 7]]},
        ],
        NOW,
        fill_interval=None,
    )
    assert text.splitlines() == [
        "# HELP a:rate5m ",
        "# TYPE a:rate5m unknown",
        f'a:rate5m{{a="2",z="1"}} 1.25 {T0 - 60}',  # a repeated timestamp keeps the later
        f'a:rate5m{{a="2",z="1"}} 1.5 {T0}',
        "# HELP b_total ",
        "# TYPE b_total unknown",
        f'b_total{{msg="{TRICKY_ESCAPED}",pod="p"}} 2.0 {T0}',
        f'b_total{{pod="q"}} 7.0 {T0 - 30}',
        "# EOF",
    ]


def test_openmetrics_fills_sparse_samples_like_scrapes() -> None:
    text = openmetrics_text(
        [{"series": "up", "samples": [[0, 0], [-90, 1]]}], NOW, fill_interval=30.0
    )
    samples = [line.split()[1:] for line in text.splitlines() if line.startswith("up ")]
    assert samples == [
        ["1.0", str(T0 - 90)],
        ["1.0", str(T0 - 60)],
        ["1.0", str(T0 - 30)],
        ["0.0", str(T0)],  # the series ends at its last sample
    ]


@pytest.mark.parametrize(
    ("series", "problem"),
    [
        ('up{job="a"', "not a series selector"),
        ("up{job='a'}", "not a series selector"),
        ("up 5", "not one series selector"),
        ('a.b{x="1"}', "invalid metric name"),
        ('up{__meta="x"}', "not a series selector"),
        ('bad name{x="1"}', "invalid metric name"),
    ],
)
def test_openmetrics_rejects_malformed_series(series: str, problem: str) -> None:
    metrics: list[dict[str, Any]] = [
        {"series": "up", "samples": []},
        {"series": series, "samples": [[0, 1]]},
    ]
    with pytest.raises(BackfillError, match=rf"metrics\[1\]\.series: {problem}"):
        openmetrics_text(metrics, NOW)


def test_promtool_failure_carries_its_stderr(tmp_path: Path) -> None:
    fake = tmp_path / "promtool"
    fake.write_text("#!/bin/sh\necho 'getting min and max timestamp: boom' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BackfillError, match="exited with code 3") as caught:
        backfill_scenario_metrics(CART.metrics, NOW, tmp_path / "w", promtool=str(fake))
    assert caught.value.stderr.strip() == "getting min and max timestamp: boom"
    assert "boom" in str(caught.value)


def test_backfill_refuses_a_tsdb_with_data(tmp_path: Path) -> None:
    (tmp_path / "tsdb" / "01BLOCK").mkdir(parents=True)
    with pytest.raises(BackfillError, match="already holds data"):
        backfill_scenario_metrics([], NOW, tmp_path, promtool="/bin/true")


# --- real promtool and Prometheus ---------------------------------------------------------


@pytest.mark.e2e
async def test_cart_scenario_metrics_read_back_at_scenario_now(
    tmp_path: Path,
    prometheus_bin: str,
    promtool_bin: str,
    report_timing: Callable[[str, float], None],
) -> None:
    started = time.monotonic()
    tsdb = backfill_scenario_metrics(CART.metrics, CART.now, tmp_path, promtool=promtool_bin)
    backfilled = time.monotonic()
    process = prometheus_for_tsdb(tsdb, tmp_path, binary=prometheus_bin)
    with process:
        ready = time.monotonic()
        report_timing("promtool backfill", backfilled - started)
        report_timing("prometheus start to ready", ready - backfilled)

        collector = PromCollector(process.url, window=timedelta(minutes=15))
        metrics, missing = await collector.collect(
            {}, namespace="shop", pods=[CART_POD, 'evil"} or vector(1) #'], now=CART.now
        )
        report_timing("PromCollector.collect", time.monotonic() - ready)

    assert missing == []
    [working_set] = metrics["memory_working_set_bytes"]
    [restarts] = metrics["restarts"]
    [limit] = metrics["memory_limit_bytes"]
    assert working_set.labels["pod"] == CART_POD
    assert (working_set.peak, working_set.last) == (262000000.0, 244000000.0)
    assert (restarts.peak, restarts.last) == (6.0, 6.0)
    assert limit.last == 268435456.0
    assert working_set.samples[-1][0] == CART.now.timestamp()  # queried at the scenario's now
    # Every scenario sample is there, at its scenario time (the range uses a 30 s step).
    for name, series in (("container_memory", working_set), ("restarts", restarts)):
        [entry] = [m for m in CART.metrics if name in m["series"]]
        at = dict(series.samples)
        for offset, value in entry["samples"]:
            assert at[CART.now.timestamp() + offset] == value
    assert metrics["http_request_rate"] == [] and metrics["hpa_max_replicas"] == []


@pytest.mark.e2e
async def test_scenario_prometheus_serves_exact_labels_and_stops(
    tmp_path: Path, prometheus_bin: str, promtool_bin: str
) -> None:
    future = datetime.now(UTC) + timedelta(days=400)  # blocks far from the wall clock
    metrics = [
        {
            "series": f'job:requests:rate5m{{msg="{TRICKY_ESCAPED}"}}',
            "samples": [[-120, 1], [0, 2]],
        },
    ]
    async with scenario_prometheus(
        metrics, future, tmp_path, prometheus=prometheus_bin, promtool=promtool_bin
    ) as url:
        with PrometheusConnect(url) as client:
            [result] = await asyncio.to_thread(
                client.custom_query, "job:requests:rate5m", {"time": future.timestamp()}
            )
        assert result["metric"] == {"__name__": "job:requests:rate5m", "msg": TRICKY_VALUE}
        assert result["value"][1] == "2"
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
