"""The incident memory on the command line: ``history import``, ``similar``, ``reindex``, ``stats``.

Registered in :mod:`bot.cli` with ``main.add_command(...)``. Every command takes
``--data-dir`` (else ``INCIDENT_BOT_DATA_DIR``); the memory lives in ``<data-dir>/memory``
and the encoder comes from ``INCIDENT_BOT_EMBED_MODEL`` / ``INCIDENT_BOT_EMBED_BACKEND``.
The rag package (numpy, FAISS) and the model (torch) are imported inside the commands, so
``incident-bot --help`` stays fast.

Exit codes of ``history import``: 0 every line imported; 1 the file was read but some lines
were bad (each reported on stderr as ``line N: problem`` and skipped, the good ones
imported) — so scripts notice; 2 the file is missing or unreadable, or the configuration or
the memory is unusable. The other commands exit 0, or 2 for those usage errors.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

    from rag.memory import IncidentMemory
    from rag.text import IncidentDoc

MAX_LINE_BYTES = 1 << 20  # a history line above 1 MiB is refused without being decoded
MAX_ERRORS_SHOWN = 200  # bad lines reported one by one; the rest are only counted

_data_dir = click.option(
    "--data-dir",
    default=None,
    metavar="DIR",
    help="Where the memory lives (DIR/memory); overrides INCIDENT_BOT_DATA_DIR.",
)
_backend = click.option(
    "--backend",
    type=click.Choice(["torch", "onnx", "hash"]),
    default=None,
    hidden=True,
    help="Overrides INCIDENT_BOT_EMBED_BACKEND (hash: tests only).",
)


def _fail(message: str) -> NoReturn:
    click.echo(f"incident-bot: {message}", err=True)
    sys.exit(2)


class _Bar:
    """A rich progress bar on stderr, started on first use, silent when disabled."""

    def __init__(self, label: str, *, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled
        self._progress: RichProgress | None = None
        self._task: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=total)
        self._progress.update(self._task, completed=done, total=total)

    def echo(self, message: str) -> None:
        """Print a line on stderr without breaking the bar."""
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            click.echo(message, err=True)

    def close(self) -> None:
        """Remove the bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _open(
    data_dir: str | None, backend: str | None, *, repair: bool = True, progress: bool = True
) -> IncidentMemory:
    """The memory of the configured data dir, opened (repaired unless ``repair`` is False)."""
    from bot.cli import _settings
    from bot.errors import StoreError
    from rag.embed import make_encoder
    from rag.memory import IncidentMemory

    settings = _settings(data_dir=data_dir)
    try:
        encoder = make_encoder(settings.embed_model, backend or settings.embed_backend)
    except (ValueError, ImportError, OSError) as exc:
        _fail(f"cannot load the embedding model: {exc}")
    memory = IncidentMemory(settings.memory_dir, encoder)
    bar = _Bar("rebuilding the index", enabled=progress and sys.stderr.isatty())
    try:
        memory.open(bar, repair=repair)
    except StoreError as exc:
        _fail(str(exc))
    finally:
        bar.close()
    if repair and memory.stale_reason:
        click.echo(
            f"incident-bot: re-embedded {memory.repaired} documents ({memory.stale_reason})",
            err=True,
        )
    return memory


@click.group()
def history() -> None:
    """Import past incidents into the incident memory."""


@history.command("import")
@click.argument("file", metavar="FILE.jsonl", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr (default: when stderr is a terminal).",
)
@_data_dir
@_backend
def import_(file: str, progress: bool | None, data_dir: str | None, backend: str | None) -> None:
    """Add the incidents of FILE.jsonl (one CONTRACTS §5 document per line; - = stdin).

    Idempotent on incident_id: an unchanged document is left alone, a changed one updated.
    A bad line is reported on stderr as "line N: problem" and skipped. Exit status 0 when
    every line was imported, 1 when some were bad, 2 when FILE cannot be read.
    """
    try:
        fh: IO[bytes] = sys.stdin.buffer if file == "-" else Path(file).open("rb")
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")
    with fh:
        size = None if file == "-" else Path(file).stat().st_size
        memory = _open(data_dir, backend)
        show = sys.stderr.isatty() if progress is None else progress
        bar = _Bar(f"importing {Path(file).name}", enabled=show)
        reader = _Reader(fh, bar, size)
        try:
            counts = memory.add(reader.docs())
        except OSError as exc:
            _fail(f"cannot read {file}: {exc.strerror or exc}")
        finally:
            bar.close()
            memory.close()
    if reader.bad > MAX_ERRORS_SHOWN:
        click.echo(f"... and {reader.bad - MAX_ERRORS_SHOWN} more bad lines", err=True)
    click.echo(
        f"imported {counts.total} (added {counts.added}, updated {counts.updated}, "
        f"unchanged {counts.unchanged}), skipped {reader.bad} bad lines"
    )
    sys.exit(1 if reader.bad else 0)


class _Reader:
    """Streams documents out of a JSONL file, reporting and skipping bad lines."""

    def __init__(self, fh: IO[bytes], bar: _Bar, size: int | None) -> None:
        self.fh = fh
        self.bar = bar
        self.size = size
        self.bad = 0

    def docs(self) -> Iterator[IncidentDoc]:
        from rag.text import parse_doc

        for number, line, problem in _lines(self.fh):
            if problem is None:
                try:
                    yield parse_doc(_decode(line, first=number == 1))
                except _Blank:
                    pass
                except ValueError as exc:
                    problem = str(exc)
            if problem is not None:
                self.bad += 1
                if self.bad <= MAX_ERRORS_SHOWN:
                    self.bar.echo(f"line {number}: {problem}")
            if self.size:
                self.bar(self.fh.tell(), self.size)


class _Blank(Exception):
    """An empty line (skipped silently)."""


def _lines(fh: IO[bytes]) -> Iterator[tuple[int, bytes, str | None]]:
    """``(line number, bytes, problem)``; over-long lines are skipped without being kept."""
    number = 0
    while chunk := fh.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            size = len(chunk)
            while chunk and not chunk.endswith(b"\n"):
                chunk = fh.readline(MAX_LINE_BYTES)
                size += len(chunk)
            yield number, b"", f"line too long ({size} bytes, at most {MAX_LINE_BYTES})"
            continue
        yield number, chunk, None


def _decode(line: bytes, *, first: bool) -> Any:
    """One JSONL line as a JSON value.

    Raises:
        _Blank: for a line of whitespace.
        ValueError: for bytes that are not UTF-8 or text that is not JSON.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start + 1})") from None
    if first:
        text = text.removeprefix("\ufeff")
    if not text.strip():
        raise _Blank
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None


@click.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--top", type=click.IntRange(1, 100), default=None, help="How many (default 5).")
@click.option(
    "--min-score", type=click.FloatRange(0.0, 1.0), default=0.0, help="Lowest score shown."
)
@click.option("--json", "as_json", is_flag=True, help="Print the CONTRACTS §5 JSON list.")
@click.option(
    "--hybrid/--no-hybrid", default=None, help="Also rank by full-text match (fused by rank)."
)
@_data_dir
@_backend
def similar(
    text: tuple[str, ...],
    top: int | None,
    min_score: float,
    as_json: bool,
    hybrid: bool | None,
    data_dir: str | None,
    backend: str | None,
) -> None:
    """Show the past incidents most similar to TEXT (free text or an alert summary)."""
    query = " ".join(text).strip()
    if not query:
        _fail("similar: TEXT is empty")
    memory = _open(data_dir, backend)
    try:
        if memory.count() == 0:
            click.echo(
                "incident-bot: the incident memory is empty; "
                "add incidents with: incident-bot history import FILE.jsonl",
                err=True,
            )
            found = []
        else:
            from bot.cli import _settings

            limit = top or _settings(data_dir=data_dir).similar_top
            found = memory.search(query, top=limit, min_score=min_score, hybrid=hybrid)
    finally:
        memory.close()
    if as_json:
        click.echo(json.dumps([s.to_contract() for s in found], ensure_ascii=False))
        return
    if not found:
        click.echo("no similar incidents")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=True)
    table.add_column("score", no_wrap=True)
    table.add_column("incident", no_wrap=True)
    table.add_column("root cause → action", overflow="fold")
    for s in found:
        # Text cells: user text is never read as rich markup. Long text is cut (--json has it).
        who = Text(f"{s.incident_id}\n{s.category}\n{s.result}")
        what = Text(f"{_clip(s.root_cause, 300)}\n→ {_clip(s.action or '(no action)', 200)}")
        table.add_row(f"{s.score:.3f}", who, what)
    Console().print(table, markup=False, highlight=False)


@click.command()
@_data_dir
@_backend
def reindex(data_dir: str | None, backend: str | None) -> None:
    """Re-embed every document and rebuild the vector index from the database."""
    memory = _open(data_dir, backend, repair=False)
    bar = _Bar("re-embedding", enabled=sys.stderr.isatty())
    started = time.monotonic()
    try:
        count = memory.reindex(bar)
        kind = memory.index.kind
    finally:
        bar.close()
        memory.close()
    took = time.monotonic() - started
    click.echo(
        f"reindexed {count} documents in {took:.1f} s "
        f"(model {memory.encoder.model_id}, {kind} index)"
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_data_dir
@_backend
def stats(as_json: bool, data_dir: str | None, backend: str | None) -> None:
    """Documents, index and learning metrics (MTTR, action success, RCA acceptance)."""
    memory = _open(data_dir, backend, repair=False)
    try:
        report = memory.stats()
        report["index"]["stale_reason"] = memory.stale_reason
        report["learning"] = memory.learning().to_dict()
    finally:
        memory.close()
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    _print_stats(report)


def _print_stats(report: dict[str, Any]) -> None:
    index = report["index"]
    echo = click.echo
    echo(
        f"documents: {report['docs']} ({report['corrected']} corrected, "
        f"{report['deleted']} deleted, {report['pending_embed']} waiting to be embedded)"
    )
    echo(f"index:     {index['kind']}, {index['size']} vectors, model {index['model_id']}")
    if index["stale_reason"]:
        echo(f"           stale ({index['stale_reason']}): run incident-bot reindex")
    learning = report["learning"]
    echo("time to resolve (p50 / p90):")
    for category, m in learning["mttr"].items():
        echo(
            f"  {category:<28} {_duration(m['p50_seconds'])} / {_duration(m['p90_seconds'])}"
            f"  ({m['count']})"
        )
    echo("action success:")
    for kind, a in learning["actions"].items():
        echo(f"  {kind:<28} {_rate(a['success_rate'])}  ({a['count']})")
    overall = learning["acceptance_overall"]
    echo(f"RCA acceptance: {_rate(overall['rate'])} ({overall['up']} up, {overall['down']} down)")
    for category, a in learning["acceptance"].items():
        echo(f"  {category:<28} {_rate(a['rate'])}  ({a['up']} up, {a['down']} down)")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _rate(value: float | None) -> str:
    return "   -" if value is None else f"{value:4.0%}"


def _duration(seconds: float) -> str:
    from bot.messages import human_duration

    return human_duration(seconds)
