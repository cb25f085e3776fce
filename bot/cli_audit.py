"""``incident-bot audit``: verify the remediation audit log's hash chain and export it as CSV.

Registered in :mod:`bot.cli` with ``main.add_command(audit)``. Both commands open the
database read-only (an SQLite ``mode=ro`` URI), so they never change it and can run next to
a serving bot. Exit codes of ``verify``: 0 intact, 1 broken (the first bad record and why),
2 usage errors (no database, unreadable file, bad option value) — one line on stderr.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click

from bot.config import Settings
from bot.errors import ConfigError

_DATA_DIR_HELP = "Overrides INCIDENT_BOT_DATA_DIR."


def _fail(message: str) -> NoReturn:
    click.echo(f"incident-bot: {message}", err=True)
    sys.exit(2)


def _db_path(data_dir: str | None) -> Path:
    if data_dir:
        return Settings(data_dir=Path(data_dir)).db_path
    try:
        return Settings.from_env(os.environ).db_path
    except ConfigError as exc:
        _fail(f"configuration error: {exc}")


def _open_read_only(data_dir: str | None) -> sqlite3.Connection:
    path = _db_path(data_dir)
    if not path.is_file():
        _fail(f"no database at {path}")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails on a non-database
        return conn
    except sqlite3.Error as exc:
        _fail(f"cannot open {path} read-only: {exc}")


@click.group()
def audit() -> None:
    """Verify and export the remediation audit log."""


@audit.command()
@click.option("--data-dir", default=None, help=_DATA_DIR_HELP)
def verify(data_dir: str | None) -> None:
    """Check the audit log's hash chain: exit 0 intact, 1 broken."""
    from bot.remediate.audit import verify_chain

    with closing(_open_read_only(data_dir)) as conn:
        try:
            report = verify_chain(conn)
        except sqlite3.Error as exc:
            _fail(f"cannot read the audit log: {exc}")
    if report.ok:
        head = report.head[:12] if report.head else "(empty)"
        click.echo(f"audit log intact: {report.records} records, head {head}")
        return
    click.echo(
        f"audit log BROKEN at record {report.first_bad_seq}: {report.problem} "
        f"({report.records} records before it verified)"
    )
    sys.exit(1)


@audit.command()
@click.option("--data-dir", default=None, help=_DATA_DIR_HELP)
@click.option(
    "--output",
    "-o",
    default="-",
    show_default=True,
    metavar="FILE|-",
    help="Where to write the CSV; '-' is standard output.",
)
@click.option("--since", metavar="RFC3339", help="Only records at or after this time.")
def export(data_dir: str | None, output: str, since: str | None) -> None:
    """Write the audit log as CSV (header row first)."""
    from bot.remediate.audit import export_csv, parse_time

    start: datetime | None = None
    if since is not None:
        try:
            start = parse_time(since)
        except ValueError:
            _fail(f"--since wants an RFC 3339 time with a UTC offset, got {since!r}")
    with closing(_open_read_only(data_dir)) as conn:
        try:
            if output == "-":
                count = export_csv(conn, sys.stdout, start)
            else:
                with open(output, "w", newline="", encoding="utf-8") as out:
                    count = export_csv(conn, out, start)
        except OSError as exc:
            _fail(f"cannot write {output}: {exc.strerror}")
        except sqlite3.Error as exc:
            _fail(f"cannot read the audit log: {exc}")
    if output != "-":
        click.echo(f"{count} records written to {output}", err=True)
