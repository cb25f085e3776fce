"""Chart rendering benchmark: Pillow (``bot/charts.py``) against matplotlib (Agg).

Both draw the same incident chart: 800x320, a 60-minute window at 15 s steps (241 samples),
3 series, a dashed memory limit that changes once, the alert start as a labelled vertical
line, a legend, ``HH:MM`` time ticks and MiB value ticks. For each library it prints:

* import time: median of fresh interpreters importing only what rendering needs (matplotlib
  without pyplot: ``Figure`` + ``FigureCanvasAgg``), and the first render in that process
  (fonts and caches load lazily);
* render time p50/p99 over ``--renders`` charts in one process;
* installed size of the distributions the library brings that the project does not already
  have (``importlib.metadata`` file sizes);
* PNG size.

Prints numbers, asserts nothing. Run: ``.venv/bin/python bench/charts.py`` (about 20 s on
2 cores; matplotlib must be installed for its column, ``pip install matplotlib``; numbers
are noisy when other work shares the machine). ``--out DIR`` also writes both PNGs.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.chart_data import Series  # noqa: E402
from bot.charts import format_value, render_png  # noqa: E402

START = datetime(2026, 11, 20, 9, 15, tzinfo=UTC)
ALERT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
MIB = 2**20
TITLE = "Memory working set of cart vs limit"
# Distributions each candidate adds to this project (numpy, packaging, python-dateutil are
# already there through other dependencies).
ADDED = {
    "pillow": ["pillow"],
    "matplotlib": ["matplotlib", "pillow", "contourpy", "cycler", "fonttools", "kiwisolver"]
    + ["pyparsing"],
}
IMPORTS = {
    "pillow": "import PIL.Image, PIL.ImageDraw, PIL.ImageFont",
    "matplotlib": (
        "import matplotlib; matplotlib.use('Agg'); "
        "from matplotlib.figure import Figure; "
        "from matplotlib.backends.backend_agg import FigureCanvasAgg; "
        "import matplotlib.dates, matplotlib.ticker"
    ),
}


def data() -> tuple[list[Series], Series]:
    """Three sawtooth-ish memory series (OOM kills every 20 min) and a changing limit."""
    t0 = START.timestamp()
    series = [
        Series(
            f"cart-7d9f8b6c4-{k}x2x9q",
            tuple(
                (t0 + 15 * i, (180 + 30 * k + 80 * (i % 80) / 80 + 5 * math.sin(i / 7)) * MIB)
                for i in range(241)
            ),
        )
        for k in range(3)
    ]
    limit = Series(
        "memory limit",
        tuple((t0 + 15 * i, (256 if i < 150 else 320) * MIB) for i in range(0, 241, 4)),
    )
    return series, limit


def render_pillow(series: Sequence[Series], limit: Series) -> bytes:
    """The production renderer."""
    return render_png(series, title=TITLE, unit="bytes", alert_start=ALERT, threshold=limit)


def render_matplotlib(series: Sequence[Series], limit: Series) -> bytes:
    """The same chart with matplotlib's object API (no pyplot state)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    figure = Figure(figsize=(8, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = ("#0072B2", "#E69F00", "#009E73")
    for colour, line in zip(colours, series, strict=False):
        times = [t for t, _ in line.samples]
        axes.plot(times, [v for _, v in line.samples], color=colour, lw=1.6, label=line.label)
    limit_times = [t for t, _ in limit.samples]
    axes.step(
        limit_times,
        [v for _, v in limit.samples],
        where="post",
        color="#D55E00",
        ls="--",
        lw=1.4,
        label=limit.label,
    )
    alert = ALERT.timestamp()
    axes.axvline(alert, color="#B00020", lw=1.2)
    axes.annotate(
        f"alert {ALERT:%H:%M}",
        (alert, 1),
        xycoords=("data", "axes fraction"),
        xytext=(4, -12),
        textcoords="offset points",
        color="#B00020",
        fontsize=8,
    )
    # Unix seconds on the x axis, ticks every 10 minutes, labelled in UTC.
    axes.xaxis.set_major_locator(MultipleLocator(600))
    axes.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _: datetime.fromtimestamp(v, UTC).strftime("%H:%M"))
    )
    axes.yaxis.set_major_locator(MultipleLocator(100 * MIB))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, "bytes")))
    axes.set_ylim(bottom=0)
    axes.grid(axis="y", color="#E6E6E6")
    axes.set_title(TITLE, loc="left", fontsize=10)
    axes.set_xlabel("UTC", fontsize=8, loc="left")
    axes.tick_params(labelsize=8)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4, fontsize=8, frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


RENDERERS: dict[str, Callable[[Sequence[Series], Series], bytes]] = {
    "pillow": render_pillow,
    "matplotlib": render_matplotlib,
}


def import_seconds(name: str, runs: int) -> tuple[float, float]:
    """Median import time and median first-render time, each in a fresh interpreter."""
    script = (
        "import time, json\n"
        "t = time.perf_counter()\n"
        f"{IMPORTS[name]}\n"
        "imported = time.perf_counter() - t\n"
        "from bench.charts import RENDERERS, data\n"
        "series, limit = data()\n"
        "t = time.perf_counter()\n"
        f"RENDERERS[{name!r}](series, limit)\n"
        "print(json.dumps([imported, time.perf_counter() - t]))\n"
    )
    results = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


def installed_mib(distributions: Sequence[str]) -> float:
    """Bytes on disk of the distributions' files, in MiB."""
    total = 0
    for name in distributions:
        for file in metadata.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total / MIB


def pct(values: list[float], q: float) -> float:
    """The ``q``-quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Measure every installed candidate and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=100, help="renders per candidate")
    parser.add_argument("--imports", type=int, default=5, help="fresh interpreters per candidate")
    parser.add_argument("--out", type=Path, help="write <candidate>.png here")
    args = parser.parse_args()

    series, limit = data()
    print(
        f"{'library':<11} {'import':>8} {'1st render':>10} {'p50':>8} {'p99':>8}"
        f" {'installed':>10} {'PNG':>9}"
    )
    for name, render in RENDERERS.items():
        if importlib.util.find_spec("matplotlib" if name == "matplotlib" else "PIL") is None:
            print(f"{name:<11} not installed (pip install {name})")
            continue
        imported, first = import_seconds(name, args.imports)
        png = render(series, limit)
        times = []
        for _ in range(args.renders):
            started = time.perf_counter()
            render(series, limit)
            times.append(time.perf_counter() - started)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}.png").write_bytes(png)
        print(
            f"{name:<11} {imported * 1e3:>6.0f}ms {first * 1e3:>8.0f}ms"
            f" {pct(times, 0.5) * 1e3:>6.1f}ms {pct(times, 0.99) * 1e3:>6.1f}ms"
            f" {installed_mib(ADDED[name]):>7.1f}MiB {len(png) / 1024:>7.1f}KiB"
        )


if __name__ == "__main__":
    main()
