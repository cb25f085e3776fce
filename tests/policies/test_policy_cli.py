"""``incident-bot policy check`` / ``policy show`` (CONTRACTS §4) through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.cli_policy import policy

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"


def run(*args: str) -> Result:
    return CliRunner().invoke(policy, list(args))


def test_allowed_exits_0_with_the_contract_json() -> None:
    result = run(
        "check", "--json", "--", "kubectl", "-n", "shop", "scale", "deploy/cart", "--replicas=3"
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert list(body) == ["verdict", "risk", "reasons", "action"]
    assert body["verdict"] == "allowed" and body["risk"] == "medium"
    assert set(body["action"]) == {"kind", "target", "kubectl", "params", "rollback"}
    assert body["action"]["kubectl"] == "kubectl -n shop scale deployment/cart --replicas=3"


def test_one_string_and_separate_words_agree() -> None:
    words = ["kubectl", "-n", "shop", "rollout", "restart", "deploy/cart"]
    one = run("check", "--json", "--", " ".join(words))
    many = run("check", "--json", "--", *words)
    assert json.loads(one.stdout)["action"] == json.loads(many.stdout)["action"]
    assert one.exit_code == many.exit_code == 0


@pytest.mark.parametrize(
    "command",
    [
        "kubectl -n kube-system delete pod coredns-1",
        "kubectl -n shop get pods | sh",
        "kubectl --as=admin -n shop rollout restart deploy/cart",
        "kubectl -n shop frobnicate deploy/cart",
    ],
)
def test_denied_exits_1(command: str) -> None:
    result = run("check", "--json", "--", command)
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["verdict"] == "denied" and body["reasons"]


def test_refused_command_has_null_action() -> None:
    body = json.loads(run("check", "--json", "--", "kubectl apply -f x.yaml").stdout)
    assert body["action"] is None


def test_needs_review_exits_1() -> None:
    result = run(
        "check",
        "--policy", "default",
        "--policy", str(EXAMPLES / "freeze.yaml"),
        "--at", "2026-11-28T10:00:00Z",
        "--json",
        "--", "kubectl -n shop rollout restart deploy/cart",
    )  # fmt: skip
    assert result.exit_code == 1
    assert json.loads(result.stdout)["verdict"] == "needs_review"


def test_seed_example_policy() -> None:
    seed = str(EXAMPLES / "seed.json")
    ok = run(
        "check", "--policy", seed, "--json", "--", "kubectl -n shop scale deploy/x --replicas=2"
    )
    assert ok.exit_code == 0, ok.output
    bad = run("check", "--policy", seed, "--json", "--", "kubectl -n shop delete pod x")
    assert bad.exit_code == 1
    assert "keyword 'delete' is forbidden" in json.loads(bad.stdout)["reasons"]


def test_labels_raise_risk() -> None:
    cmd = "kubectl -n shop rollout restart deploy/cart"
    plain = json.loads(run("check", "--json", "--", cmd).stdout)
    prod = json.loads(run("check", "--label", "env=prod", "--json", "--", cmd).stdout)
    assert (plain["risk"], prod["risk"]) == ("low", "medium")


def test_human_output() -> None:
    result = run("check", "--", "kubectl -n shop scale deploy/cart --replicas=3")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "allowed (risk medium)"
    assert "approval: 1 of @sre-oncall" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check"], "usage: policy check"),
        (["check", "--", "  "], "usage: policy check"),
        (["check", "--policy", "missing.yaml", "--", "kubectl get pods"], "cannot read"),
        (["check", "--label", "nolabel", "--", "kubectl get pods"], "--label wants"),
        (["check", "--at", "yesterday", "--", "kubectl get pods"], "--at wants"),
        (["show", "--policy", "missing.json"], "cannot read"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_invalid_policy_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("replicas: {max: lots}\n")
    result = run("check", "--policy", str(bad), "--", "kubectl get pods")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"incident-bot: bad policy: {bad}: replicas.max: must be an integer from 0 to 500"
    )


def test_show_prints_effective_rules() -> None:
    result = run("show", "--namespace", "shop-prod")
    assert result.exit_code == 0
    assert "# effective for: namespace shop-prod" in result.stdout
    assert "min: 1" in result.stdout  # the default's "*-prod" override
    body = json.loads(run("show", "--json", "--policy", str(EXAMPLES / "seed.json")).stdout)
    assert body["rules"]["allowed_commands"] == ["kubectl scale", "helm upgrade"]
    assert body["rules"]["approvals_required"] == {"low": 1, "medium": 1, "high": 2}
