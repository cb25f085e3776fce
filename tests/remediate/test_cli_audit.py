"""``incident-bot audit verify|export`` on a real data dir, through click's CliRunner."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.rca.model import Action
from bot.remediate.approvals import ActionBook
from bot.remediate.audit import verify_chain
from bot.store import Store
from policies.engine import Judgement

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ACTION = Action(
    "rollout_restart", "shop/Deployment/cart", "kubectl -n shop rollout restart deployment/cart"
)
JUDGEMENT = Judgement("allowed", "medium", ["risk medium"], ACTION, 1, False, ("@sre-oncall",))


async def _history(store: Store) -> str:
    """Propose, approve, run: five audit records. Returns the head hash."""
    book = ActionBook(store)
    rec = await book.propose("INC_1", ACTION, JUDGEMENT, proposed_by="rules", now=NOW)
    later = NOW + timedelta(minutes=10)
    await book.approve(
        rec.id,
        "U0ALICE",
        now=later,
        incident_open=True,
        command_hash=rec.command_hash,
        authorized=True,
    )
    assert await book.start_execution(rec.id)
    await book.store_snapshot(rec.id, {"spec": {"replicas": 2}})
    await book.finish(rec.id, "succeeded", {"duration_s": 2.0})
    report = verify_chain(store.conn)
    assert report.ok and report.records == 4 and report.head
    return report.head


@pytest.fixture
async def data_dir(tmp_path: Path) -> tuple[Path, str]:
    store = Store.open(tmp_path / "incident-bot.db")
    try:
        head = await _history(store)
    finally:
        store.close()
    return tmp_path, head


def _files(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def test_verify_ok_and_read_only(data_dir: tuple[Path, str]) -> None:
    directory, head = data_dir
    before = _files(directory)
    result = CliRunner().invoke(main, ["audit", "verify", "--data-dir", str(directory)])
    assert result.exit_code == 0, result.output
    assert result.output == f"audit log intact: 4 records, head {head[:12]}\n"
    after = _files(directory)
    assert after["incident-bot.db"] == before["incident-bot.db"]
    # A read-only reader of a WAL database may create the -shm index and an empty -wal
    # (SQLite's own reader protocol); it never writes a page.
    wal = directory / "incident-bot.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_verify_uses_the_data_dir_from_the_environment(
    data_dir: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INCIDENT_BOT_DATA_DIR", str(data_dir[0]))
    result = CliRunner().invoke(main, ["audit", "verify"])
    assert result.exit_code == 0 and "4 records" in result.output


async def test_verify_next_to_a_running_bot(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "incident-bot.db")  # open: WAL and -shm files exist
    try:
        await _history(store)
        result = CliRunner().invoke(main, ["audit", "verify", "--data-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert "4 records" in result.output
    finally:
        store.close()


def test_verify_reports_the_first_bad_record(data_dir: tuple[Path, str]) -> None:
    directory, _ = data_dir
    store = Store.open(directory / "incident-bot.db")
    store.conn.execute("DROP TRIGGER audit_no_update")
    store.conn.execute("UPDATE audit SET actor = 'U0MALLORY' WHERE seq = 2")
    store.close()
    result = CliRunner().invoke(main, ["audit", "verify", "--data-dir", str(directory)])
    assert result.exit_code == 1
    assert result.output.startswith("audit log BROKEN at record 2: hash does not match")


def test_verify_without_a_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["audit", "verify", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert result.output.startswith("incident-bot: no database at ")
    assert not (tmp_path / "none").exists()


def test_verify_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "incident-bot.db").write_text("not sqlite at all, just some text " * 10)
    result = CliRunner().invoke(main, ["audit", "verify", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "cannot open" in result.output


def test_export_to_stdout_and_file(data_dir: tuple[Path, str], tmp_path: Path) -> None:
    directory, head = data_dir
    result = CliRunner().invoke(main, ["audit", "export", "--data-dir", str(directory)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["event"] for r in rows] == ["proposed", "approval", "snapshot", "executed"]
    assert rows[1]["actor"] == "U0ALICE" and rows[-1]["hash"] == head
    assert '"duration_s":2.0' in rows[-1]["details"]

    out = tmp_path / "audit.csv"
    args = ["audit", "export", "--data-dir", str(directory), "--output", str(out)]
    result = CliRunner().invoke(main, [*args, "--since", "2026-11-20T10:05:00Z"])
    assert result.exit_code == 0
    with out.open(newline="", encoding="utf-8") as f:
        since = list(csv.DictReader(f))
    assert [r["event"] for r in since] == ["approval", "snapshot", "executed"]


def test_export_bad_since(data_dir: tuple[Path, str]) -> None:
    args = ["audit", "export", "--data-dir", str(data_dir[0]), "--since", "yesterday"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--since wants an RFC 3339 time" in result.output


def test_help_documents_both_commands() -> None:
    result = CliRunner().invoke(main, ["audit", "--help"])
    assert result.exit_code == 0
    assert "verify" in result.output and "export" in result.output
    top = CliRunner().invoke(main, ["--help"])
    assert "audit" in top.output
