"""A scenario's ``metrics`` in a real Prometheus: OpenMetrics, ``promtool`` backfill, serve.

Contract §1 gives each series as a selector and ``[seconds relative to now, value]`` samples.
:func:`openmetrics_text` turns them into OpenMetrics (via ``prometheus_client``'s exposition,
which escapes label values); :func:`backfill_scenario_metrics` runs ``promtool tsdb
create-blocks-from openmetrics`` into a TSDB directory; :func:`scenario_prometheus` starts a
real Prometheus on that directory and yields its URL.

The scenario's clock is not the wall clock, so queries must be made *at the scenario's*
``now`` (``PromCollector.collect(now=scenario.now)``); Prometheus serves the backfilled
blocks at any time, past or future.

Scenario samples are sparse (one every few minutes) while Prometheus only looks back 5
minutes for an instant value and ``rate()`` needs two samples in its range. A scenario sample
means "the value from here on", so by default each value is repeated every
``fill_interval`` seconds until the next sample, as scraping would have recorded it; a series
still ends at its last sample and goes stale 5 minutes later, like a vanished target.

Errors::

    RealStackError (sandbox.realstack)
    └── BackfillError   a series is malformed, or promtool failed (carries its stderr)
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import ALLOWUTF8, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

from sandbox.realstack import PrometheusProcess, RealStackError, find_binary

__all__ = [
    "BackfillError",
    "backfill_scenario_metrics",
    "openmetrics_text",
    "prometheus_for_tsdb",
    "scenario_prometheus",
]

FILL_INTERVAL: Final = 30.0
PROMTOOL_TIMEOUT: Final = 120.0
# Prometheus 2.42 knows only these names (no quoted UTF-8 names yet).
_METRIC_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Promtool's block-per-2h layout is read as is; retention never deletes scenario data (it is
# measured back from the newest block), and the lookback is Prometheus's default, stated.
_PROMETHEUS_ARGS: Final = ("--storage.tsdb.retention.time=10y", "--query.lookback-delta=5m")


# Samples are filled in only over the last FILL_WINDOW_MS before `now` (see _filled).
FILL_WINDOW_MS = 3 * 3600 * 1000


class BackfillError(RealStackError):
    """A scenario series is malformed, or ``promtool`` failed; ``stderr`` is promtool's."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(f"{message}\n--- promtool stderr ---\n{stderr}" if stderr else message)
        self.stderr = stderr


@dataclass(frozen=True)
class _Series:
    name: str
    labels: tuple[tuple[str, str], ...]  # sorted


def openmetrics_text(
    metrics: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    fill_interval: float | None = FILL_INTERVAL,
) -> str:
    """Scenario metrics as an OpenMetrics exposition with timestamps, ending in ``# EOF``.

    Series of one metric name form one family of type ``unknown`` (PromQL ignores types);
    samples are at ``now + offset`` seconds, sorted by time, a repeated timestamp keeping
    the later entry.

    Args:
        metrics: Contract §1 entries, ``{"series": selector, "samples": [[offset, value]]}``.
        now: The scenario's clock.
        fill_interval: Repeat each value every this many seconds until the next sample;
            ``None`` writes the samples exactly as given.

    Raises:
        BackfillError: A series is not ``name{label="value",...}``.
    """
    series: dict[_Series, dict[int, float]] = {}
    base_ms = round(now.timestamp() * 1000)
    for index, entry in enumerate(metrics):
        key = _parse_series(str(entry.get("series", "")), f"metrics[{index}].series")
        points = series.setdefault(key, {})
        for offset, value in entry.get("samples") or ():
            points[base_ms + round(float(offset) * 1000)] = float(value)

    families: dict[str, Metric] = {}
    for key in sorted(series, key=lambda s: (s.name, s.labels)):
        if not series[key]:
            continue
        family = families.setdefault(key.name, Metric(key.name, "", "unknown"))
        filled = _filled(sorted(series[key].items()), fill_interval, base_ms - FILL_WINDOW_MS)
        for ms, value in filled:
            family.add_sample(key.name, dict(key.labels), value, timestamp=ms / 1000)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values())))
    # The default escaping rewrites ':' in sample names (recording rules) to '_'.
    text: bytes = generate_latest(registry, escaping=ALLOWUTF8)  # type: ignore[no-untyped-call]
    return text.decode()


def backfill_scenario_metrics(
    metrics: list[dict[str, Any]],
    now: datetime,
    workdir: Path,
    *,
    promtool: str,
    fill_interval: float | None = FILL_INTERVAL,
) -> Path:
    """Write ``workdir/metrics.om`` and turn it into TSDB blocks in ``workdir/tsdb``.

    Args:
        metrics: The scenario's ``metrics`` (contract §1).
        now: The scenario's ``now``; sample offsets are relative to it.
        workdir: A directory of the caller's; ``tsdb`` in it must not hold data yet.
        promtool: Path of the ``promtool`` binary.
        fill_interval: See :func:`openmetrics_text`.

    Returns:
        The TSDB directory (it exists, and is empty when there are no samples).

    Raises:
        BackfillError: A series is malformed, the TSDB directory is not empty, or promtool
            failed or took longer than ``PROMTOOL_TIMEOUT`` seconds.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    source, tsdb = workdir / "metrics.om", workdir / "tsdb"
    if tsdb.exists() and any(tsdb.iterdir()):
        # New blocks would overlap the old ones; deleting a caller's directory is not ours.
        raise BackfillError(f"{tsdb} already holds data; backfill into an empty directory")
    source.write_text(openmetrics_text(metrics, now, fill_interval=fill_interval))
    command = [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source)]
    try:
        done = subprocess.run(
            [*command, str(tsdb)],
            capture_output=True,
            text=True,
            timeout=PROMTOOL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackfillError(f"promtool took longer than {PROMTOOL_TIMEOUT:g} s") from exc
    except OSError as exc:
        raise BackfillError(f"cannot run {promtool}: {exc}") from exc
    if done.returncode != 0:
        raise BackfillError(
            f"promtool exited with code {done.returncode} on {source}", stderr=done.stderr
        )
    tsdb.mkdir(exist_ok=True)
    return tsdb


def prometheus_for_tsdb(
    tsdb: Path, workdir: Path, *, binary: str | None = None
) -> PrometheusProcess:
    """A Prometheus (not yet started) serving ``tsdb``: no scrapes, no alerting.

    Blocks are loaded when Prometheus opens the TSDB, so backfill before :meth:`start`.

    Args:
        tsdb: A TSDB directory, e.g. from :func:`backfill_scenario_metrics`.
        workdir: Directory for the configuration and the log.
        binary: Path of the ``prometheus`` binary; found on ``PATH`` by default.
    """
    process = PrometheusProcess(workdir, None, extra_args=_PROMETHEUS_ARGS, binary=binary)
    process.tsdb_path = tsdb
    return process


@asynccontextmanager
async def scenario_prometheus(
    metrics: list[dict[str, Any]],
    now: datetime,
    workdir: Path,
    *,
    prometheus: str | None = None,
    promtool: str | None = None,
) -> AsyncIterator[str]:
    """Backfill ``metrics`` and run a real Prometheus on loopback for the ``async with`` body.

    Query it at the scenario's ``now``, not the wall clock.

    Args:
        metrics: The scenario's ``metrics`` (contract §1).
        now: The scenario's ``now``.
        workdir: An empty directory for the OpenMetrics file, the TSDB, config and log.
        prometheus: Path of the ``prometheus`` binary; found on ``PATH`` by default.
        promtool: Path of the ``promtool`` binary; found on ``PATH`` by default.

    Yields:
        The base URL, e.g. ``http://127.0.0.1:41234``.

    Raises:
        RealStackError: A binary is missing (callers without one run with no metrics).
        BackfillError: See :func:`backfill_scenario_metrics`.
        ProcessStartError: Prometheus did not become ready.
    """
    tool = promtool or find_binary("promtool")
    if tool is None:
        raise RealStackError("promtool binary not found on PATH (Debian package: prometheus)")
    process = prometheus_for_tsdb(workdir / "tsdb", workdir, binary=prometheus)
    await asyncio.to_thread(backfill_scenario_metrics, metrics, now, workdir, promtool=tool)
    await asyncio.to_thread(process.start)
    try:
        yield process.url
    finally:
        await asyncio.to_thread(process.stop)


def _parse_series(text: str, field: str) -> _Series:
    """``name{label="value",...}`` (the exposition format's escapes) as a :class:`_Series`."""
    try:
        families = list(text_string_to_metric_families(f"{text} 0\n"))
    except ValueError as exc:
        raise BackfillError(f"{field}: not a series selector: {text!r} ({exc})") from exc
    samples = [sample for family in families for sample in family.samples]
    if len(samples) != 1 or samples[0].value != 0 or samples[0].timestamp is not None:
        raise BackfillError(f"{field}: not one series selector: {text!r}")
    # The parser checks label names (and rejects reserved "__" ones) but not metric names.
    name, labels = samples[0].name, samples[0].labels
    if not _METRIC_NAME.fullmatch(name):
        raise BackfillError(f"{field}: invalid metric name {name!r}")
    return _Series(name, tuple(sorted(labels.items())))


def _filled(
    points: list[tuple[int, float]], interval: float | None, fill_from_ms: int
) -> Iterator[tuple[int, float]]:
    """``points`` (ms, value), each value repeated every ``interval`` s until the next.

    Only the stretch after ``fill_from_ms`` is filled: queries look at the last hour, and
    filling a scenario's twelve-day history every 30 s made promtool take 14 s.
    """
    step = max(round(interval * 1000), 0) if interval else 0
    for (ms, value), (next_ms, _) in zip(points, points[1:], strict=False):
        yield ms, value
        if not step:
            continue
        t = ms + step
        if t < fill_from_ms:  # jump ahead, staying on this sample's grid
            t = ms + -(-(fill_from_ms - ms) // step) * step
        while t < next_ms:
            yield t, value
            t += step
    if points:
        yield points[-1]


class _Families(Collector):
    """Hands ready-made metric families to a registry."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)
