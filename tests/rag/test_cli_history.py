"""``incident-bot history import``, ``similar``, ``reindex``, ``stats`` (bot.cli_history)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from bot.cli import main
from bot.cli_history import MAX_LINE_BYTES

ROOT = Path(__file__).resolve().parents[2]


def line(incident_id: str, root_cause: str, **fields: Any) -> str:
    doc = {
        "incident_id": incident_id,
        "title": root_cause[:20],
        "alertname": "KubePodCrashLooping",
        "namespace": "shop",
        "object": "shop/Deployment/backend",
        "category": "oom_killed",
        "root_cause": root_cause,
        "evidence": "…",
        "action": "kubectl rollout restart deployment backend",
        "result": "success",
        "timestamp": "2025-10-21T19:45:00Z",
        "resolved_at": "2025-10-21T20:05:00Z",
        **fields,
    }
    return json.dumps(doc, ensure_ascii=False)


GOOD = [
    line("INC_1", "memory leak in the backend cache"),
    line("INC_2", "coredns crashed, service lookups time out", category="dns_failure"),
    line("INC_3", "TLS certificate expired on the ingress", category="certificate_expired"),
]


def run(tmp_path: Path, *args: str, input: bytes | None = None) -> Result:
    env = {"INCIDENT_BOT_EMBED_BACKEND": "hash", "INCIDENT_BOT_DATA_DIR": str(tmp_path / "data")}
    return CliRunner().invoke(main, list(args), env=env, input=input)


def write(tmp_path: Path, lines: list[str], name: str = "history.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_is_idempotent(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    first = run(tmp_path, "history", "import", str(path))
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == (
        "imported 3 (added 3, updated 0, unchanged 0), skipped 0 bad lines"
    )
    second = run(tmp_path, "history", "import", str(path))
    assert second.exit_code == 0
    assert "imported 3 (added 0, updated 0, unchanged 3)" in second.stdout
    changed = write(tmp_path, [GOOD[0], line("INC_2", "coredns OOM", category="dns_failure")])
    third = run(tmp_path, "history", "import", str(changed))
    assert "imported 2 (added 0, updated 1, unchanged 1)" in third.stdout
    assert (tmp_path / "data" / "memory" / "history.db").exists()
    assert (tmp_path / "data" / "memory" / "index.faiss").exists()


def test_bad_lines_are_reported_with_numbers_and_skipped(tmp_path: Path) -> None:
    lines = [
        "\ufeff" + GOOD[0],  # a BOM on the first line is fine
        "{not json",
        "",  # blank lines are ignored, not bad
        json.dumps({"incident_id": "X", "root_cause": "r", "category": "oom"}),
        json.dumps([1, 2]),
        line("INC_T", "r", timestamp="21/10/2025"),
        GOOD[1],
        line("유니코드", "메모리 누수 🚀 in the café"),
    ]
    path = write(tmp_path, lines)
    with path.open("ab") as fh:
        fh.write(b'{"incident_id": "\xff\xfe"}\n')
    result = run(tmp_path, "history", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 2: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        "line 4: category: unknown category 'oom' (see CONTRACTS §2)",
        "line 5: document: want a JSON object, got list",
        "line 6: timestamp: not an RFC 3339 time with Z or an offset: '21/10/2025'",
        "line 9: not UTF-8 (byte 18)",
    ]
    assert "imported 3 (added 3, updated 0, unchanged 0), skipped 5 bad lines" in result.stdout
    found = run(tmp_path, "similar", "--json", "메모리 누수")
    assert json.loads(found.stdout)[0]["incident_id"] == "유니코드"


def test_a_huge_line_is_refused_and_the_next_one_imported(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    huge = line("INC_BIG", "x" * (10 * 1024 * 1024))
    path.write_text("\n".join([GOOD[0], huge, GOOD[1]]) + "\n", encoding="utf-8")
    result = run(tmp_path, "history", "import", str(path))
    assert result.exit_code == 1
    size = len(huge.encode()) + 1
    assert result.stderr.strip() == (
        f"line 2: line too long ({size} bytes, at most {MAX_LINE_BYTES})"
    )
    assert "imported 2 (added 2" in result.stdout


def test_a_long_field_within_the_line_limit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, [line("INC_1", "y" * 20_000)])
    result = run(tmp_path, "history", "import", str(path))
    assert result.exit_code == 1
    assert "line 1: root_cause: too long (20000 characters, at most 10000)" in result.stderr


def test_missing_or_unreadable_file_exits_2(tmp_path: Path) -> None:
    missing = run(tmp_path, "history", "import", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr and "nope.jsonl" in missing.stderr
    directory = run(tmp_path, "history", "import", str(tmp_path))
    assert directory.exit_code == 2


def test_import_from_stdin_with_forced_progress(tmp_path: Path) -> None:
    data = ("\n".join(GOOD) + "\n").encode()
    result = run(tmp_path, "history", "import", "--progress", "-", input=data)
    assert result.exit_code == 0, result.output
    assert "imported 3 (added 3" in result.stdout


def test_similar_json_contract(tmp_path: Path) -> None:
    run(tmp_path, "history", "import", str(write(tmp_path, GOOD)))
    result = run(tmp_path, "similar", "--json", "--top", "2", "backend", "memory", "leak")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert len(items) == 2
    for item in items:
        assert list(item) == ["incident_id", "score", "root_cause", "action", "result"]
        assert isinstance(item["score"], float) and 0 <= item["score"] <= 1
        assert round(item["score"], 3) == item["score"]
    assert items[0]["incident_id"] == "INC_1"
    assert items[0]["root_cause"] == "memory leak in the backend cache"
    assert items[0]["action"] == "kubectl rollout restart deployment backend"
    assert items[0]["result"] == "success"


def test_similar_table_and_hostile_text(tmp_path: Path) -> None:
    run(tmp_path, "history", "import", str(write(tmp_path, GOOD)))
    result = run(tmp_path, "similar", "--hybrid", 'coredns "lookups* (time) [bold]out')
    assert result.exit_code == 0, result.output
    assert "INC_2" in result.stdout and "score" in result.stdout


def test_similar_on_an_empty_memory(tmp_path: Path) -> None:
    result = run(tmp_path, "similar", "--json", "anything")
    assert result.exit_code == 0
    assert result.stdout.strip() == "[]"
    assert "history import" in result.stderr
    assert run(tmp_path, "similar", "  ").exit_code == 2


def test_data_dir_option_and_hidden_backend(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    other = tmp_path / "other"
    result = CliRunner().invoke(
        main, ["history", "import", "--data-dir", str(other), "--backend", "hash", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert (other / "memory" / "history.db").exists()
    assert not (tmp_path / "data").exists()


def test_reindex_and_stats(tmp_path: Path) -> None:
    run(tmp_path, "history", "import", str(write(tmp_path, GOOD)))
    result = run(tmp_path, "reindex")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("reindexed 3 documents in ")
    assert "model hash-256, flat index" in result.stdout
    stats = run(tmp_path, "stats", "--json")
    report = json.loads(stats.stdout)
    assert report["docs"] == 3 and report["pending_embed"] == 0
    assert report["index"]["size"] == 3 and report["index"]["stale_reason"] is None
    assert report["learning"]["mttr"]["oom_killed"]["p50_seconds"] == 1200.0
    assert report["learning"]["actions"]["rollout_restart"]["success_rate"] == 1.0
    text = run(tmp_path, "stats")
    assert "documents: 3" in text.stdout and "rollout_restart" in text.stdout


def test_model_change_is_reported_and_repaired(tmp_path: Path) -> None:
    run(tmp_path, "history", "import", str(write(tmp_path, GOOD)))
    env = {
        "INCIDENT_BOT_EMBED_BACKEND": "hash",
        "INCIDENT_BOT_EMBED_MODEL": "hash-64",
        "INCIDENT_BOT_DATA_DIR": str(tmp_path / "data"),
    }
    stats = CliRunner().invoke(main, ["stats", "--json"], env=env)
    assert "256" in json.loads(stats.stdout)["index"]["stale_reason"]
    result = CliRunner().invoke(main, ["similar", "--json", "coredns lookups"], env=env)
    assert "re-embedded 3 documents" in result.stderr
    assert json.loads(result.stdout)[0]["incident_id"] == "INC_2"


def test_bad_backend_setting_exits_2(tmp_path: Path) -> None:
    env = {"INCIDENT_BOT_EMBED_BACKEND": "tensorflow", "INCIDENT_BOT_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["similar", "x"], env=env)
    assert result.exit_code == 2 and "INCIDENT_BOT_EMBED_BACKEND" in result.stderr


def test_help_texts() -> None:
    for args in (["--help"], ["history", "import", "--help"], ["similar", "--help"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0
    top = CliRunner().invoke(main, ["--help"]).stdout
    assert all(name in top for name in ("history", "similar", "reindex", "stats"))
    assert "--backend" not in CliRunner().invoke(main, ["similar", "--help"]).stdout


def test_cli_start_up_imports_no_model_code(tmp_path: Path) -> None:
    code = (
        "import sys, bot.cli; "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'faiss', 'rag.memory') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_real_process_import_and_similar(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "INCIDENT_BOT_EMBED_BACKEND": "hash",
        "INCIDENT_BOT_DATA_DIR": str(tmp_path / "data"),
    }
    path = write(tmp_path, GOOD)
    bot = [sys.executable, "-m", "bot.cli"]
    done = subprocess.run(
        [*bot, "history", "import", str(path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    args = ["similar", "--json", "certificate expired"]
    out = subprocess.run([*bot, *args], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[0]["incident_id"] == "INC_3"
