"""PNG metric charts for incident threads, drawn with Pillow, and their upload to Slack.

:func:`render_png` draws one time-series chart: a UTC time axis (``HH:MM``), a value axis in
human units (MiB/GiB, %, ms/s, k/M), up to :data:`MAX_SERIES` lines with a legend, a dashed
threshold (e.g. the memory limit) and the alert's start as a labelled vertical marker.
:func:`upload_chart` posts the PNG into the incident's thread (files upload v2).

Why Pillow and not matplotlib (``bench/charts.py``, 2 shared cores, one 60-minute chart at
15 s steps with 3 series, 800x320): Pillow imports in ~30 ms against 450-650 ms for
matplotlib's Agg backend, renders at p50 ~9 ms (p99 ~13 ms) against 100-220 ms, installs
21 MiB against 91 MiB (matplotlib needs Pillow too, plus fontTools, kiwisolver, contourpy …)
and writes 8 KiB PNGs against 40 KiB. One fixed chart type does not need a plotting
library's generality; the price is the tick and layout code below. Everything is drawn at
twice the size and box-averaged down, which anti-aliases lines and text (Pillow's own lines
are not), then stored with a 256-colour palette. The font is the one Pillow ships
(``ImageFont.load_default(size=…)``, which needs FreeType; Pillow's wheels include it).

No data: a chart whose series hold no samples is still rendered, as a framed "No data" panel
naming the title, so a thread shows that the metric was looked at and found empty. Callers
that prefer to post nothing check :attr:`bot.chart_data.ChartData.empty` first.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

from PIL import Image, ImageDraw, ImageFont
from slack_sdk.web.async_client import AsyncWebClient

from bot.chart_data import Series, Unit

__all__ = [
    "MAX_SERIES",
    "Axis",
    "format_value",
    "render_png",
    "time_ticks",
    "upload_chart",
    "value_axis",
    "visible_series",
]

MAX_SERIES: Final = 5
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE: Final = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9")
THRESHOLD_COLOUR: Final = "#D55E00"
ALERT_COLOUR: Final = "#B00020"
_TEXT: Final = "#222222"
_MUTED: Final = "#5F6368"
_GRID: Final = "#E6E6E6"
_AXIS: Final = "#9AA0A6"
_SCALE: Final = 2  # supersampling factor
_TITLE_PX: Final = 14
_LABEL_PX: Final = 11
_PAD: Final = 10
_LEGEND_ROW: Final = 16
_LABEL_CHARS: Final = 40
_BYTE_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_TIME_STEPS: Final = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
# A gap longer than this many typical sample intervals breaks the line (series absent).
_GAP_FACTOR: Final = 2.5

Point = tuple[float, float]
_Map = Callable[[float], float]  # data coordinate -> pixel coordinate


# --------------------------------------------------------------------------- units and ticks


def _scale(unit: Unit, magnitude: float) -> tuple[float, str]:
    """``(divisor, suffix)`` to show values of about ``magnitude`` in ``unit``."""
    if unit == "bytes":
        power = 0
        while magnitude >= 1024 and power < len(_BYTE_UNITS) - 1:
            magnitude /= 1024
            power += 1
        return 1024.0**power, " " + _BYTE_UNITS[power]
    if unit == "ratio":
        return 0.01, "%"
    if unit == "seconds":
        for limit, divisor, suffix in ((1e-3, 1e-6, " µs"), (1, 1e-3, " ms"), (120, 1, " s")):
            if magnitude < limit:
                return divisor, suffix
        return (60.0, " min") if magnitude < 7200 else (3600.0, " h")
    for divisor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= divisor:
            return divisor, suffix
    return 1.0, ""


def _number(x: float) -> str:
    """``x`` with at most three significant digits (two decimals), no trailing zeros."""
    if x == 0:
        return "0"
    digits = 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2
    text = f"{x:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_value(value: float, unit: Unit) -> str:
    """``value`` for people: ``256 MiB``, ``12.5%``, ``250 ms``, ``1.5k``."""
    divisor, suffix = _scale(unit, abs(value))
    return _number(value / divisor) + suffix


def _nice_step(raw: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^n that is at least ``raw``."""
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for mantissa in (1.0, 2.0, 2.5, 5.0):
        if mantissa * magnitude >= raw * (1 - 1e-9):
            return mantissa * magnitude
    return 10 * magnitude


@dataclass(frozen=True)
class Axis:
    """A value axis: its range, tick values and tick labels (one unit for all labels)."""

    lo: float
    hi: float
    ticks: tuple[float, ...]
    labels: tuple[str, ...]


def value_axis(lo: float, hi: float, unit: Unit, max_ticks: int = 5) -> Axis:
    """A value axis covering ``[lo, hi]`` with round ticks in one display unit.

    The unit is chosen from the larger end (``0, 100 MiB, 200 MiB, 300 MiB``); ticks are
    1/2/2.5/5 x 10^n of it. Counts never get fractional steps once the range spans 2.
    """
    divisor, suffix = _scale(unit, max(abs(lo), abs(hi)))
    low, high = lo / divisor, hi / divisor
    if high - low <= 0:
        high = low + 1
    step = _nice_step((high - low) / max(1, max_ticks - 1))
    if unit == "count" and suffix == "" and high - low >= 2:
        step = max(step, 1.0)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    count = round((last - first) / step)
    ticks = [round(first + i * step, 9) for i in range(count + 1)]
    labels = tuple("0" if t == 0 else _number(t) + suffix for t in ticks)
    return Axis(first * divisor, last * divisor, tuple(t * divisor for t in ticks), labels)


def time_ticks(start: float, end: float, max_ticks: int) -> tuple[list[float], str]:
    """Round UTC tick times within ``[start, end]`` (unix seconds) and their ``strftime``.

    Steps are whole minutes, hours or days so that at most ``max_ticks`` fit. Labels are
    ``%H:%M`` within a day, ``%d %b %H:%M`` for longer windows with sub-day steps, and
    ``%d %b`` for steps of whole days.
    """
    span = max(end - start, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= max_ticks), 0)
    if not step:
        step = 86400 * math.ceil(span / 86400 / max_ticks)
    first = math.ceil(start / step) * step
    ticks = [float(t) for t in range(first, int(end) + 1, step)]
    if step >= 86400:
        return ticks, "%d %b"
    return ticks, ("%H:%M" if span <= 86400 else "%d %b %H:%M")


# --------------------------------------------------------------------------- drawing


@lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px * _SCALE)


class _Canvas:
    """An RGB image drawn at :data:`_SCALE` times the size; coordinates are output pixels."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.image = Image.new("RGB", (width * _SCALE, height * _SCALE), "white")
        self.draw = ImageDraw.Draw(self.image)

    def text_width(self, text: str, px: int = _LABEL_PX) -> float:
        return self.draw.textlength(text, font=_font(px)) / _SCALE

    def text(
        self, xy: Point, text: str, *, px: int = _LABEL_PX, fill: str = _MUTED, anchor: str = "la"
    ) -> None:
        x, y = xy
        self.draw.text((x * _SCALE, y * _SCALE), text, fill=fill, font=_font(px), anchor=anchor)

    def label_box(self, xy: Point, text: str, *, fill: str, anchor: str) -> None:
        """Text on a white box, readable over lines."""
        x, y = xy
        font = _font(_LABEL_PX)
        box = self.draw.textbbox((x * _SCALE, y * _SCALE), text, font=font, anchor=anchor)
        margin = 2 * _SCALE
        self.draw.rectangle(
            (box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin), fill="white"
        )
        self.draw.text((x * _SCALE, y * _SCALE), text, fill=fill, font=font, anchor=anchor)

    def line(self, points: Sequence[Point], fill: str, width: float = 1.0) -> None:
        scaled = [(x * _SCALE, y * _SCALE) for x, y in points]
        px = max(1, round(width * _SCALE))
        if len(scaled) == 1:
            (x, y), r = scaled[0], px
            self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        else:
            self.draw.line(scaled, fill=fill, width=px, joint="curve")

    def dashed(
        self, points: Sequence[Point], fill: str, width: float, on: float = 6, off: float = 4
    ) -> None:
        for piece in _dashes(points, on, off):
            self.line(piece, fill, width)

    def rectangle(self, box: tuple[float, float, float, float], outline: str) -> None:
        self.draw.rectangle(tuple(v * _SCALE for v in box), outline=outline, width=_SCALE)

    def png(self) -> bytes:
        # Box-averaging each 2x2 block anti-aliases; 256 colours hold every shade that
        # leaves (white, six hues and their blends) and make the file ~3x smaller.
        small = self.image.reduce(_SCALE)
        palette = small.quantize(256, method=Image.Quantize.FASTOCTREE)
        buffer = io.BytesIO()
        palette.save(buffer, format="PNG")
        return buffer.getvalue()


def _dashes(points: Sequence[Point], on: float, off: float) -> list[list[Point]]:
    """Split a polyline into dash pieces of length ``on`` separated by ``off``."""
    pieces: list[list[Point]] = []
    current: list[Point] = [points[0]]
    drawing, left = True, on
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        length = math.hypot(x1 - x0, y1 - y0)
        done = 0.0
        while length - done > left:
            done += left
            point = (x0 + (x1 - x0) * done / length, y0 + (y1 - y0) * done / length)
            if drawing:
                current.append(point)
                pieces.append(current)
            else:
                current = [point]
            drawing, left = not drawing, (off if drawing else on)
        left -= length - done
        if drawing:
            current.append((x1, y1))
    if drawing and len(current) > 1:
        pieces.append(current)
    return pieces


def _runs(samples: Sequence[Point]) -> list[list[Point]]:
    """``samples`` split where a gap is much longer than the typical interval."""
    if len(samples) < 3:
        return [list(samples)] if samples else []
    typical = statistics.median(b[0] - a[0] for a, b in zip(samples, samples[1:], strict=False))
    runs: list[list[Point]] = [[samples[0]]]
    for previous, sample in zip(samples, samples[1:], strict=False):
        if sample[0] - previous[0] > _GAP_FACTOR * typical:
            runs.append([])
        runs[-1].append(sample)
    return runs


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _utc(ts: float, fmt: str) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


# --------------------------------------------------------------------------- the chart


def render_png(
    series: Sequence[Series],
    *,
    title: str,
    unit: Unit,
    alert_start: datetime,
    threshold: Series | float | None = None,
    width: int = 800,
    height: int = 320,
) -> bytes:
    """Draw a time-series chart as PNG bytes.

    CPU-bound (about 10 ms on an idle core): async callers may run it in
    ``asyncio.to_thread``.

    Args:
        series: The lines. With more than :data:`MAX_SERIES`, the ones with the highest peaks
            are drawn and the legend says how many were left out.
        title: Shown at the top left.
        unit: ``bytes``, ``ratio``, ``count`` or ``seconds`` (see :func:`format_value`).
        alert_start: When the alert started (naive means UTC): a labelled vertical marker.
            The time axis is widened to include it.
        threshold: A constant or a (possibly changing) series, drawn dashed and labelled
            with its latest value, e.g. the memory limit.
        width: Image width in pixels (at least 240).
        height: Image height in pixels (at least 160).

    Returns:
        The PNG file's bytes. Without any samples, a "No data" panel (see the module doc).

    Raises:
        ValueError: The image would be too small to be readable.
    """
    if width < 240 or height < 160:
        raise ValueError(f"chart too small: {width}x{height} (minimum 240x160)")
    canvas = _Canvas(width, height)
    canvas.text((_PAD, _PAD), title, px=_TITLE_PX, fill=_TEXT)
    drawn, hidden = visible_series(series)
    if not drawn:
        _no_data(canvas)
        return canvas.png()
    alert = (alert_start if alert_start.tzinfo else alert_start.replace(tzinfo=UTC)).timestamp()
    if isinstance(threshold, Series) and not threshold.samples:
        threshold = None

    times = [t for s in drawn for t, _ in s.samples]
    t0, t1 = min(*times, alert), max(*times, alert)
    values = [v for s in drawn for _, v in s.samples]
    if isinstance(threshold, Series):
        values += [v for _, v in threshold.samples]
    elif threshold is not None:
        values.append(threshold)
    low, high = min(0.0, *values), max(0.0, *values)
    axis = value_axis(low, high + 0.05 * (high - low), unit)

    entries = _legend_entries(canvas, drawn, threshold, hidden)
    rows = _legend_rows(canvas, entries, width - 2 * _PAD)
    label_width = max(canvas.text_width(label) for label in (*axis.labels, "UTC"))
    left = _PAD + label_width + 6
    right = width - _PAD - 4
    top = _PAD + _TITLE_PX + 12
    bottom = height - _PAD - len(rows) * _LEGEND_ROW - _LABEL_PX - 8

    def x_of(ts: float) -> float:
        return left + (ts - t0) / max(t1 - t0, 1e-9) * (right - left)

    def y_of(value: float) -> float:
        return bottom - (value - axis.lo) / (axis.hi - axis.lo) * (bottom - top)

    for tick, label in zip(axis.ticks, axis.labels, strict=True):
        y = y_of(tick)
        canvas.line([(left, y), (right, y)], _GRID)
        canvas.text((left - 6, y), label, anchor="rm")
    _time_axis(canvas, t0, t1, x_of, left, right, bottom)

    for colour, line in zip(PALETTE, drawn, strict=False):
        for run in _runs(line.samples):
            canvas.line([(x_of(t), y_of(v)) for t, v in run], colour, width=1.6)
    if threshold is not None:
        _threshold(canvas, threshold, unit, x_of, y_of, left, right, top)
    _alert_marker(canvas, alert, x_of(alert), top, bottom, right)
    _legend(canvas, rows, bottom + _LABEL_PX + 10)
    return canvas.png()


def visible_series(series: Sequence[Series]) -> tuple[list[Series], int]:
    """The series a chart draws and how many it leaves out.

    Series without samples are dropped; of the rest, the :data:`MAX_SERIES` with the highest
    peaks are drawn, highest first (the legend's order).
    """
    with_data = [s for s in series if s.samples]
    with_data.sort(key=lambda s: max(v for _, v in s.samples), reverse=True)
    return with_data[:MAX_SERIES], max(0, len(with_data) - MAX_SERIES)


def _no_data(canvas: _Canvas) -> None:
    box = (_PAD, _PAD + _TITLE_PX + 12, canvas.width - _PAD, canvas.height - _PAD)
    canvas.rectangle(box, _GRID)
    middle = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    canvas.text(middle, "No data in this window", px=_TITLE_PX, fill=_MUTED, anchor="mm")


def _time_axis(
    canvas: _Canvas,
    t0: float,
    t1: float,
    x_of: _Map,
    left: float,
    right: float,
    bottom: float,
) -> None:
    canvas.line([(left, bottom), (right, bottom)], _AXIS)
    fits = max(2, int((right - left) // 70))
    ticks, fmt = time_ticks(t0, t1, fits)
    label_y = bottom + 4
    for tick in ticks:
        x = x_of(tick)
        canvas.line([(x, bottom), (x, bottom + 3)], _AXIS)
        text = _utc(tick, fmt)
        half = canvas.text_width(text) / 2
        if x - half >= left - 4 and x + half <= canvas.width - _PAD:
            canvas.text((x, label_y), text, anchor="ma")
    # The empty corner under the value labels says which clock the axis shows.
    canvas.text((_PAD, label_y), "UTC", anchor="la")


def _threshold(
    canvas: _Canvas,
    threshold: Series | float,
    unit: Unit,
    x_of: _Map,
    y_of: _Map,
    left: float,
    right: float,
    top: float,
) -> None:
    if isinstance(threshold, Series):
        points: list[Point] = []
        for t, v in threshold.samples:
            if points:  # a step line: a limit holds until it changes
                points.append((x_of(t), points[-1][1]))
            points.append((x_of(t), y_of(v)))
        points.append((right, points[-1][1]))
        latest, name = threshold.samples[-1][1], threshold.label
    else:
        points = [(left, y_of(threshold)), (right, y_of(threshold))]
        latest, name = threshold, "threshold"
    canvas.dashed(points, THRESHOLD_COLOUR, width=1.4)
    # Above the line's right end, unless that is the top band the alert's label uses.
    line_y = points[-1][1]
    above = line_y - 3 - _LABEL_PX > top + _LABEL_PX + 6
    canvas.label_box(
        (right - 2, line_y - 3 if above else line_y + 4),
        f"{name} {format_value(latest, unit)}",
        fill=THRESHOLD_COLOUR,
        anchor="rd" if above else "ra",
    )


def _alert_marker(
    canvas: _Canvas, alert: float, x: float, top: float, bottom: float, right: float
) -> None:
    canvas.line([(x, top), (x, bottom)], ALERT_COLOUR, width=1.2)
    text = f"alert {_utc(alert, '%H:%M')}"
    fits_right = x + 4 + canvas.text_width(text) <= right
    canvas.label_box(
        (x + 4 if fits_right else x - 4, top + 2),
        text,
        fill=ALERT_COLOUR,
        anchor="la" if fits_right else "ra",
    )


@dataclass(frozen=True)
class _Entry:
    colour: str
    text: str
    dashed: bool = False

    def width(self, canvas: _Canvas) -> float:
        return 22 + canvas.text_width(self.text) + 14


def _legend_entries(
    canvas: _Canvas, drawn: Sequence[Series], threshold: Series | float | None, hidden: int
) -> list[_Entry]:
    entries = [_Entry(colour, _short(s.label)) for colour, s in zip(PALETTE, drawn, strict=False)]
    if threshold is not None:
        name = threshold.label if isinstance(threshold, Series) else "threshold"
        entries.append(_Entry(THRESHOLD_COLOUR, _short(name), dashed=True))
    if hidden > 0:
        entries.append(_Entry("", f"+{hidden} more series not shown"))
    return entries


def _legend_rows(canvas: _Canvas, entries: list[_Entry], room: float) -> list[list[_Entry]]:
    rows: list[list[_Entry]] = [[]]
    used = 0.0
    for entry in entries:
        if rows[-1] and used + entry.width(canvas) > room:
            rows.append([])
            used = 0.0
        rows[-1].append(entry)
        used += entry.width(canvas)
    return rows


def _legend(canvas: _Canvas, rows: list[list[_Entry]], y: float) -> None:
    for row in rows:
        x = float(_PAD)
        middle = y + _LEGEND_ROW / 2
        for entry in row:
            if entry.colour:
                swatch = [(x, middle), (x + 16, middle)]
                if entry.dashed:
                    canvas.dashed(swatch, entry.colour, 1.6, on=5, off=3)
                else:
                    canvas.line(swatch, entry.colour, 2.0)
                canvas.text((x + 22, middle), entry.text, fill=_TEXT, anchor="lm")
            else:
                canvas.text((x, middle), entry.text, anchor="lm")
            x += entry.width(canvas)
        y += _LEGEND_ROW


# --------------------------------------------------------------------------- Slack


async def upload_chart(
    client: AsyncWebClient, *, channel: str, thread_ts: str, png: bytes, title: str, filename: str
) -> str:
    """Upload ``png`` into the thread ``thread_ts`` of ``channel``; returns the file ID.

    Uses files upload v2 (``files.getUploadURLExternal`` + ``files.completeUploadExternal``),
    which needs the ``files:write`` scope.

    Raises:
        slack_sdk.errors.SlackApiError: Slack refused the upload.
    """
    response = await client.files_upload_v2(
        channel=channel, thread_ts=thread_ts, content=png, filename=filename, title=title
    )
    file_id: str = response["file"]["id"]
    return file_id
