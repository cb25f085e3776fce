"""The command line: start-up errors, investigate's contract, the demo."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from sandbox.kube import KubeSandbox
from sandbox.scenario import load_scenario

ROOT = Path(__file__).parents[2]


def test_serve_without_settings_fails_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "incident-bot: configuration error: SLACK_BOT_TOKEN: required (the bot token, xoxb-…)"
    ]


def test_investigate_prints_the_contract_shape() -> None:
    result = CliRunner().invoke(
        main, ["investigate", "--scenario", str(ROOT / "scenarios/cart-oomkilled.yaml"), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {
        "incident",
        "category",
        "summary",
        "root_cause",
        "trigger",
        "confidence",
        "evidence",
        "actions",
        "similar",
        "missing_data",
        "analyzer",
    }
    assert report["incident"] == {
        "alertname": "KubePodCrashLooping",
        "severity": "warning",
        "namespace": "shop",
        "object": "shop/Deployment/cart",
    }
    assert report["analyzer"] == "rules" and report["category"] == "oom_killed"
    assert report["trigger"] and "revision 7" in report["trigger"]
    assert [a["kind"] for a in report["actions"]][:2] == ["rollout_undo", "set_resources"]
    # Every suggestion is judged by the default policy, as `policy check` would.
    assert all(a["verdict"] == "allowed" and a["risk"] == "medium" for a in report["actions"])
    assert 0.0 < report["confidence"] <= 1.0
    texts = [e["text"] for e in report["evidence"]]
    assert any("OOMKilled (exit 137)" in t for t in texts)
    assert all(set(e) == {"source", "text", "ref"} for e in report["evidence"])


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("name: x\nnow: soon\nwebhook: {alerts: []}\n", "now"),
        ("- not a mapping\n", "<root>"),
        (
            "name: x\nnow: '2026-11-20T10:00:00Z'\n"
            "webhook: {status: firing, alerts: [{status: firing}]}\n",
            "webhook.alerts[0]",
        ),
    ],
)
def test_investigate_bad_scenario_exits_2_naming_the_field(
    tmp_path: Path, content: str, field: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = CliRunner().invoke(main, ["investigate", "--scenario", str(path), "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert field in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_demo_prints_every_scenario_thread() -> None:
    result = CliRunner().invoke(main, ["demo", "--once", "--port", "0"])
    assert result.exit_code == 0, result.output
    scenarios = list((ROOT / "scenarios").glob("*.yaml"))
    assert result.stdout.count("Root cause") >= len(scenarios)
    assert "KubePodCrashLooping" in result.stdout
    assert "shop/Deployment/cart" in result.stdout


@pytest.fixture
def live_cluster() -> Iterator[str]:
    """The cart scenario, moved to the wall clock, served from a thread of its own."""
    scenario = load_scenario(ROOT / "scenarios/cart-oomkilled.yaml").rebased(datetime.now(UTC))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, str] = {}
    sandbox = KubeSandbox.from_scenario(scenario)

    async def serve() -> None:
        holder["url"] = await sandbox.start()
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop)
    assert ready.wait(10)
    yield holder["url"]
    asyncio.run_coroutine_threadsafe(sandbox.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _live_env(url: str) -> dict[str, str]:
    return {"INCIDENT_BOT_KUBE_MODE": "url", "INCIDENT_BOT_KUBE_URL": url}


def test_investigate_live_object(live_cluster: str) -> None:
    result = CliRunner().invoke(
        main,
        ["investigate", "--namespace", "shop", "--object", "Deployment/cart", "--json"],
        env=_live_env(live_cluster),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["category"], report["incident"]["object"]) == (
        "oom_killed",
        "shop/Deployment/cart",
    )


def test_investigate_live_alert(live_cluster: str, tmp_path: Path) -> None:
    webhook = (
        load_scenario(ROOT / "scenarios/cart-oomkilled.yaml").rebased(datetime.now(UTC)).webhook
    )
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(webhook))
    result = CliRunner().invoke(
        main, ["investigate", "--alert", str(path), "--json"], env=_live_env(live_cluster)
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["category"] == "oom_killed"


@pytest.mark.parametrize(
    "args",
    [
        ["investigate"],
        ["investigate", "--object", "Deployment/cart"],
        ["investigate", "--namespace", "shop", "--object", "Secret/db"],
        ["investigate", "--alert", "/nonexistent.json"],
    ],
)
def test_investigate_usage_errors_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("incident-bot: ")


def test_investigate_bad_alert_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "alert.json"
    path.write_text('{"status": "firing", "alerts": [{"status": "firing", "labels": {}}]}')
    result = CliRunner().invoke(main, ["investigate", "--alert", str(path), "--json"])
    assert result.exit_code == 2
    assert "alerts[0]" in result.stderr


def test_investigate_with_a_stricter_policy(tmp_path: Path) -> None:
    policy = tmp_path / "strict.json"
    policy.write_text('{"allowed_commands": ["kubectl scale"], "forbidden_keywords": ["undo"]}')
    result = CliRunner().invoke(
        main,
        ["investigate", "--scenario", str(ROOT / "scenarios/cart-oomkilled.yaml"), "--json"],
        env={"INCIDENT_BOT_POLICY": str(policy)},
    )
    assert result.exit_code == 0, result.output
    verdicts = {a["kind"]: a["verdict"] for a in json.loads(result.stdout)["actions"]}
    assert verdicts == {"rollout_undo": "denied", "set_resources": "denied"}


def test_invalid_policy_file_is_a_one_line_config_error(tmp_path: Path) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text("allowed_commands: 5\n")
    result = CliRunner().invoke(
        main,
        ["investigate", "--scenario", str(ROOT / "scenarios/cart-oomkilled.yaml"), "--json"],
        env={"INCIDENT_BOT_POLICY": str(policy)},
    )
    assert result.exit_code == 2
    assert "INCIDENT_BOT_POLICY" in result.stderr and len(result.stderr.strip().splitlines()) == 1
