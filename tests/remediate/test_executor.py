"""The executor against the sandbox API server, through the real ``kubernetes`` client.

Each test starts a :class:`KubeSandbox` on loopback holding a Deployment ``shop/cart`` with
two revisions of history, its pods, a Node, a CronJob and an HPA, and drives
:class:`Executor` with small verification timeouts; the sandbox's rollout simulation
decides whether a change becomes healthy or breaks.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes.client import ApiClient, Configuration

from bot.config import Settings
from bot.errors import ConfigError
from bot.rca.actions import build_action
from bot.remediate.executor import ExecutionResult, Executor
from bot.remediate.kube_write import KubeWriter, remediation_api_client
from bot.targets import ObjectRef
from sandbox.kube import KubeSandbox

NS = "shop"
OWNER_DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "name": "cart",
    "uid": "uid-deploy-cart",
    "controller": True,
}


def template(image: str, pod_hash: str | None = None) -> dict[str, Any]:
    labels = {"app": "cart"} | ({"pod-template-hash": pod_hash} if pod_hash else {})
    return {
        "metadata": {"labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "cart",
                    "image": image,
                    "resources": {"limits": {"memory": "256Mi"}, "requests": {"memory": "128Mi"}},
                }
            ]
        },
    }


def replicaset(
    name: str, pod_hash: str, image: str, revision: int, replicas: int
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "labels": {"app": "cart", "pod-template-hash": pod_hash},
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [OWNER_DEPLOY],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "cart", "pod-template-hash": pod_hash}},
            "template": template(image, pod_hash),
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }


def pod(name: str, rs: str, pod_hash: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "labels": {"app": "cart", "pod-template-hash": pod_hash},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs,
                    "uid": f"uid-{rs}",
                    "controller": True,
                }
            ],
        },
        "spec": {"nodeName": "node-a", "containers": [{"name": "cart", "image": "shop/cart:1.5"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": "cart",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {}},
                    "image": "shop/cart:1.5",
                }
            ],
        },
    }


def objects() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "cart",
                "namespace": NS,
                "uid": "uid-deploy-cart",
                "generation": 2,
                "labels": {"app": "cart"},
                "annotations": {"deployment.kubernetes.io/revision": "2"},
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "cart"}},
                "template": template("shop/cart:1.5"),
                "strategy": {"type": "RollingUpdate"},
                "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": 2,
                "replicas": 2,
                "updatedReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                ],
            },
        },
        replicaset("cart-6b7c9", "6b7c9", "shop/cart:1.4", 1, 0),
        replicaset("cart-7d9f8", "7d9f8", "shop/cart:1.5", 2, 2),
        pod("cart-7d9f8-abcde", "cart-7d9f8", "7d9f8"),
        pod("cart-7d9f8-fghjk", "cart-7d9f8", "7d9f8"),
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}, "spec": {}},
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "report", "namespace": NS},
            "spec": {
                "schedule": "0 * * * *",
                "suspend": False,
                "jobTemplate": {
                    "spec": {"template": {"spec": {"containers": [{"name": "r", "image": "r:1"}]}}}
                },
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "cart", "namespace": NS},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart"},
                "minReplicas": 2,
                "maxReplicas": 4,
            },
        },
    ]


@pytest.fixture
async def sandbox() -> AsyncIterator[KubeSandbox]:
    async with KubeSandbox(objects()) as server:
        yield server


@pytest.fixture
def writer(sandbox: KubeSandbox) -> Iterator[KubeWriter]:
    kube = KubeWriter(ApiClient(Configuration(host=sandbox.base_url)), timeout=5)
    yield kube
    kube.close()


@pytest.fixture
def executor(writer: KubeWriter) -> Executor:
    return Executor(writer, verify_timeout=15.0, poll_interval=0.05)


class Recorder:
    """on_step / on_snapshot callbacks that remember what they saw and when."""

    def __init__(self, sandbox: KubeSandbox) -> None:
        self.sandbox = sandbox
        self.steps: list[tuple[str, str]] = []
        self.snapshots: list[tuple[int, dict[str, Any]]] = []  # (requests seen so far, snapshot)

    async def on_step(self, step: str, ok: bool, text: str) -> None:
        self.steps.append((step, text))

    async def on_snapshot(self, snapshot: dict[str, Any]) -> None:
        self.snapshots.append((len(self.sandbox.requests), snapshot))


def writes(sandbox: KubeSandbox, *, since: int = 0) -> list[tuple[str, str, bool]]:
    """(method, path, dry run?) of every non-GET request."""
    out = []
    for method, path_qs in sandbox.requests[since:]:
        if method == "GET":
            continue
        url = urlsplit(path_qs)
        out.append((method, url.path, parse_qs(url.query).get("dryRun") == ["All"]))
    return out


def step_names(result: ExecutionResult) -> list[tuple[str, bool]]:
    return [(name, ok) for name, ok, _ in result.steps]


def deployment(sandbox: KubeSandbox) -> dict[str, Any]:
    found = sandbox.get_object("Deployment", NS, "cart")
    assert found is not None
    return found


# --- the happy path ---------------------------------------------------------------------------


async def test_rollout_restart_dry_runs_snapshots_applies_and_verifies(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    before = deployment(sandbox)
    sandbox.script_rollout(NS, "Deployment", "cart", outcome="healthy", steps=2, step_seconds=0.02)
    seen = Recorder(sandbox)
    action = build_action("rollout_restart", "shop/Deployment/cart")
    result = await executor.execute(action, on_step=seen.on_step, on_snapshot=seen.on_snapshot)

    assert result.status == "succeeded", result
    assert step_names(result) == [
        ("plan", True),
        ("dry-run", True),
        ("snapshot", True),
        ("apply", True),
        ("verify", True),
    ]
    assert [name for name, _ in seen.steps] == [name for name, _ in step_names(result)]
    annotations = deployment(sandbox)["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    (line,) = result.dry_run_diff
    assert line.startswith(
        'spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]'
    )
    assert result.changed and result.changed[0].startswith(line.split(":")[0])
    assert "2/2 replicas ready" in result.detail

    path = "/apis/apps/v1/namespaces/shop/deployments/cart"
    assert writes(sandbox) == [("PATCH", path, True), ("PATCH", path, False)]
    # The snapshot was handed over before the real PATCH, and is the object as it was.
    ((requests_then, snapshot),) = seen.snapshots
    real_patch = next(
        i for i, (m, p) in enumerate(sandbox.requests) if m == "PATCH" and "dryRun" not in p
    )
    assert requests_then <= real_patch
    assert snapshot == result.snapshot
    assert snapshot["spec"] == before["spec"]
    assert snapshot["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_broken_set_resources_is_rolled_back_to_the_snapshot(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    sandbox.script_rollout(NS, "Deployment", "cart", outcome="broken", steps=2, step_seconds=0.02)
    action = build_action(
        "set_resources",
        "shop/Deployment/cart",
        {"container": "cart", "limits": {"memory": "512Mi"}},
    )
    result = await executor.execute(action)

    assert result.status == "rolled_back", result
    assert step_names(result) == [
        ("plan", True),
        ("dry-run", True),
        ("snapshot", True),
        ("apply", True),
        ("verify", False),
        ("rollback", True),
        ("verify-rollback", True),
    ]
    assert result.dry_run_diff == [
        "spec.template.spec.containers[cart].resources.limits.memory: 256Mi → 512Mi"
    ]
    assert result.changed == result.dry_run_diff
    assert "verify failed" in result.detail and "rolled back" in result.detail
    verify_text = next(text for name, _, text in result.steps if name == "verify")
    assert "ProgressDeadlineExceeded" in verify_text or "CrashLoopBackOff" in verify_text
    now = deployment(sandbox)
    assert now["spec"]["template"] == result.snapshot["spec"]["template"]
    assert (
        now["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "256Mi"
    )
    assert ("PUT", "/apis/apps/v1/namespaces/shop/deployments/cart", False) in writes(sandbox)


# --- each kind of action ----------------------------------------------------------------------


async def test_scale_goes_through_the_scale_subresource(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    sandbox.script_rollout(NS, "Deployment", "cart", outcome="healthy", steps=1, step_seconds=0.02)
    result = await executor.execute(build_action("scale", "shop/Deployment/cart", {"replicas": 3}))
    assert result.status == "succeeded", result
    assert result.dry_run_diff == ["spec.replicas: 2 → 3"]
    scale = "/apis/apps/v1/namespaces/shop/deployments/cart/scale"
    assert writes(sandbox) == [("PATCH", scale, True), ("PATCH", scale, False)]
    assert deployment(sandbox)["spec"]["replicas"] == 3
    assert "3/3 replicas ready" in result.detail


async def test_hpa_max_replicas(sandbox: KubeSandbox, executor: Executor) -> None:
    action = build_action("scale", "shop/HorizontalPodAutoscaler/cart", {"max_replicas": 8})
    result = await executor.execute(action)
    assert result.status == "succeeded", result
    assert result.dry_run_diff == ["spec.maxReplicas: 4 → 8"]
    hpa = sandbox.get_object("HorizontalPodAutoscaler", NS, "cart")
    assert hpa is not None and hpa["spec"]["maxReplicas"] == 8


async def test_rollout_undo_restores_the_previous_template(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    sandbox.script_rollout(NS, "Deployment", "cart", outcome="healthy", steps=1, step_seconds=0.02)
    result = await executor.execute(build_action("rollout_undo", "shop/Deployment/cart"))
    assert result.status == "succeeded", result
    assert (
        "spec.template.spec.containers[cart].image: shop/cart:1.5 → shop/cart:1.4"
        in result.dry_run_diff
    )
    template_now = deployment(sandbox)["spec"]["template"]
    assert template_now["spec"]["containers"][0]["image"] == "shop/cart:1.4"
    assert "pod-template-hash" not in template_now["metadata"]["labels"]  # as kubectl strips it
    assert ("plan", True, "json patch of shop/Deployment/cart (to revision 1)") in result.steps


async def test_rollout_undo_to_a_missing_revision_fails_before_writing(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    action = build_action("rollout_undo", "shop/Deployment/cart", {"to_revision": 9})
    result = await executor.execute(action)
    assert result.status == "failed"
    assert result.detail == "shop/Deployment/cart has no revision 9 (it has: 1, 2)"
    assert writes(sandbox) == []


async def test_cordon_then_uncordon(sandbox: KubeSandbox, executor: Executor) -> None:
    result = await executor.execute(build_action("cordon", "Node/node-a"))
    assert result.status == "succeeded", result
    assert result.dry_run_diff == ["spec.unschedulable: (none) → true"]
    node = sandbox.get_object("Node", None, "node-a")
    assert node is not None and node["spec"]["unschedulable"] is True
    result = await executor.execute(build_action("uncordon", "Node/node-a"))
    assert result.status == "succeeded", result
    node = sandbox.get_object("Node", None, "node-a")
    assert node is not None and not node["spec"].get("unschedulable")


async def test_suspend_cronjob(sandbox: KubeSandbox, executor: Executor) -> None:
    result = await executor.execute(build_action("suspend_cronjob", "shop/CronJob/report"))
    assert result.status == "succeeded", result
    assert result.changed == ["spec.suspend: false → true"]
    cronjob = sandbox.get_object("CronJob", NS, "report")
    assert cronjob is not None and cronjob["spec"]["suspend"] is True


async def test_delete_pod_is_replaced(sandbox: KubeSandbox, executor: Executor) -> None:
    result = await executor.execute(build_action("delete_pod", "shop/Pod/cart-7d9f8-abcde"))
    assert result.status == "succeeded", result
    assert result.dry_run_diff == [
        "shop/Pod/cart-7d9f8-abcde (uid uid-cart-7d9f8-abcde) deleted; "
        "ReplicaSet/cart-7d9f8 replaces it"
    ]
    pod_path = "/api/v1/namespaces/shop/pods/cart-7d9f8-abcde"
    assert writes(sandbox) == [("DELETE", pod_path, True), ("DELETE", pod_path, False)]
    assert sandbox.get_object("Pod", NS, "cart-7d9f8-abcde") is None
    assert "Deployment/cart" in result.detail and "2/2 replicas ready" in result.detail


def statefulset() -> dict[str, Any]:
    labels = {"app": "db"}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": NS, "generation": 1},
        "spec": {
            "replicas": 2,
            "serviceName": "db",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "db", "image": "pg:16"}]},
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": 2,
            "readyReplicas": 2,
            "updatedReplicas": 2,
        },
    }


def daemonset() -> dict[str, Any]:
    labels = {"app": "agent"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": NS, "generation": 1},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "agent", "image": "agent:1"}]},
            },
        },
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 1, "numberReady": 1},
    }


async def test_statefulset_broken_image_rolls_back_and_daemonset_restarts(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    sandbox.add_object(statefulset())
    sandbox.add_object(daemonset())
    # A restart first: the simulated controller then has real pods and revisions.
    result = await executor.execute(build_action("rollout_restart", "shop/StatefulSet/db"))
    assert result.status == "succeeded", result
    assert result.detail.startswith("2/2 replicas ready on revision db-")
    revision = result.detail.rsplit(" ", 1)[1]
    sandbox.script_rollout(NS, "StatefulSet", "db", outcome="broken", steps=2, step_seconds=0.02)
    action = build_action("set_image", "shop/StatefulSet/db", {"container": "db", "image": "pg:17"})
    result = await executor.execute(action)
    assert result.status == "rolled_back", result
    assert "new pods failing: 1 pod CrashLoopBackOff" in result.detail
    assert result.detail.endswith("rolled back: 2/2 replicas ready on revision " + revision)
    sts = sandbox.get_object("StatefulSet", NS, "db")
    assert sts is not None and sts["spec"]["template"]["spec"]["containers"][0]["image"] == "pg:16"

    result = await executor.execute(build_action("rollout_restart", "shop/DaemonSet/agent"))
    assert result.status == "succeeded", result
    assert result.detail == "1/1 pods ready on every scheduled node"


# --- failures before anything changes --------------------------------------------------------


async def test_server_side_dry_run_rejection_applies_nothing(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    # requests above the 256Mi limit: the API server's validation says 422.
    action = build_action(
        "set_resources",
        "shop/Deployment/cart",
        {"container": "cart", "requests": {"memory": "1Gi"}},
    )
    result = await executor.execute(action)
    assert result.status == "failed"
    assert step_names(result) == [("plan", True), ("dry-run", False)]
    assert "422" in result.detail and "must be less than or equal to memory limit" in result.detail
    assert [dry for _, _, dry in writes(sandbox)] == [True]  # only the dry run was sent
    assert result.snapshot == {}


async def test_missing_object_and_missing_container_fail_at_plan(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    result = await executor.execute(build_action("rollout_restart", "shop/Deployment/ghost"))
    assert result.status == "failed" and "404" in result.detail
    action = build_action(
        "set_image", "shop/Deployment/cart", {"container": "sidecar", "image": "x:1"}
    )
    result = await executor.execute(action)
    assert result.status == "failed"
    assert result.detail == "no container 'sidecar' in the pod template (it has: cart)"
    assert writes(sandbox) == []


async def test_snapshot_not_stored_means_not_applied(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    async def broken_store(snapshot: dict[str, Any]) -> None:
        raise OSError("disk full")

    result = await executor.execute(build_action("cordon", "Node/node-a"), on_snapshot=broken_store)
    assert result.status == "failed"
    assert "snapshot not stored, nothing applied: disk full" in result.detail
    assert [dry for _, _, dry in writes(sandbox)] == [True]


async def test_conflict_on_apply_is_retried_once_with_a_fresh_snapshot(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    seen = Recorder(sandbox)

    async def conflict_once(snapshot: dict[str, Any]) -> None:
        await seen.on_snapshot(snapshot)
        if len(seen.snapshots) == 1:
            sandbox.fail_next(1, 409)  # the next request is the real PATCH

    result = await executor.execute(
        build_action("suspend_cronjob", "shop/CronJob/report"), on_snapshot=conflict_once
    )
    assert result.status == "succeeded", result
    assert len(seen.snapshots) == 2
    assert ("apply", False) in step_names(result) and step_names(result)[-2:] == [
        ("apply", True),
        ("verify", True),
    ]
    cronjob = sandbox.get_object("CronJob", NS, "report")
    assert cronjob is not None and cronjob["spec"]["suspend"] is True


async def test_stale_snapshot_makes_the_apply_conflict(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    """The apply carries the snapshot's resourceVersion: a change in between is a 409."""
    calls = 0

    async def change_in_between(snapshot: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            node = sandbox.get_object("Node", None, "node-a")
            assert node is not None
            node["metadata"].setdefault("labels", {})["touched"] = "yes"
            sandbox.add_object(node)  # someone else writes: new resourceVersion

    result = await executor.execute(
        build_action("cordon", "Node/node-a"), on_snapshot=change_in_between
    )
    assert result.status == "succeeded", result
    assert calls == 2
    assert result.snapshot["metadata"]["labels"] == {"touched": "yes"}


async def test_error_on_apply_with_the_object_unchanged_is_failed(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    async def fail_the_apply(snapshot: dict[str, Any]) -> None:
        sandbox.fail_next(1, 500)

    result = await executor.execute(
        build_action("cordon", "Node/node-a"), on_snapshot=fail_the_apply
    )
    assert result.status == "failed"
    assert "500" in result.detail and result.detail.endswith("the object is unchanged")
    node = sandbox.get_object("Node", None, "node-a")
    assert node is not None and "unschedulable" not in node["spec"]


async def test_failed_restore_is_rollback_failed(sandbox: KubeSandbox, executor: Executor) -> None:
    sandbox.script_rollout(NS, "Deployment", "cart", outcome="broken", steps=2, step_seconds=0.02)

    async def break_the_restore(step: str, ok: bool, text: str) -> None:
        if step == "verify":
            sandbox.fail_next(1, 503)  # the restore's read of the current object

    action = build_action(
        "set_image", "shop/Deployment/cart", {"container": "cart", "image": "shop/cart:2.0"}
    )
    result = await executor.execute(action, on_step=break_the_restore)
    assert result.status == "rollback_failed", result
    assert step_names(result)[-2:] == [("verify", False), ("rollback", False)]
    assert "restore failed: " in result.detail and "503" in result.detail
    image = deployment(sandbox)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "shop/cart:2.0"  # not restored: that is what the status says


async def test_deleted_pod_whose_replacement_crashes_cannot_be_rolled_back(
    sandbox: KubeSandbox, executor: Executor
) -> None:
    sandbox.script_rollout(NS, "Deployment", "cart", outcome="broken", steps=2, step_seconds=0.02)
    result = await executor.execute(build_action("delete_pod", "shop/Pod/cart-7d9f8-abcde"))
    assert result.status == "rollback_failed", result
    assert "CrashLoopBackOff" in result.detail
    assert result.detail.endswith("a deleted pod cannot be restored")


async def test_helm_without_a_binary_is_copy_only(sandbox: KubeSandbox, executor: Executor) -> None:
    action = build_action(
        "helm_rollback", "shop/Deployment/cart", {"release": "cart", "revision": 3}
    )
    result = await executor.execute(action)
    assert result.status == "failed"
    assert result.detail.startswith(
        "helm_rollback is copy-only: INCIDENT_BOT_HELM_BINARY is not set"
    )
    assert "helm rollback cart 3 -n shop" in result.detail
    assert sandbox.requests == []


async def test_helm_with_a_binary_runs_it_without_a_shell(
    sandbox: KubeSandbox, writer: KubeWriter, tmp_path: Path
) -> None:
    log = tmp_path / "argv.log"
    helm = tmp_path / "helm"
    helm.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if sys.argv[1] == 'history':\n"
        "    print(json.dumps([{'revision': 4, 'status': 'deployed'}]))\n"
    )
    helm.chmod(helm.stat().st_mode | stat.S_IEXEC)
    executor = Executor(writer, verify_timeout=5.0, poll_interval=0.05, helm_binary=str(helm))
    action = build_action(
        "helm_rollback", "shop/Deployment/cart", {"release": "cart", "revision": 3}
    )
    result = await executor.execute(action)
    assert result.status == "succeeded", result
    assert result.snapshot["revision"] == 4
    calls = [line for line in log.read_text().splitlines()]
    assert calls == [
        '["history", "cart", "-n", "shop", "--max", "1", "-o", "json"]',
        '["rollback", "cart", "3", "-n", "shop", "--dry-run"]',
        '["rollback", "cart", "3", "-n", "shop", "--wait", "--timeout", "5s"]',
    ]


# --- the remediation client -------------------------------------------------------------------


async def test_writer_refuses_what_the_table_does_not_grant(
    sandbox: KubeSandbox, writer: KubeWriter
) -> None:
    with pytest.raises(ValueError, match="not in REMEDIATION_PERMISSIONS"):
        await writer.patch(ObjectRef("ConfigMap", "x", NS), {"data": {}})
    with pytest.raises(ValueError, match="not known"):
        await writer.get(ObjectRef("Secret", "x", NS))
    with pytest.raises(ValueError, match="not in REMEDIATION_PERMISSIONS"):
        await writer.replace(ObjectRef("Node", "node-a"), {})
    assert sandbox.requests == []


def test_remediation_client_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="INCIDENT_BOT_REMEDIATION_MODE"):
        remediation_api_client(Settings())
    api = remediation_api_client(
        Settings(remediation_mode="url", remediation_url="http://127.0.0.1:1/")
    )
    assert api.configuration.host == "http://127.0.0.1:1"

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: reader\n"
        "clusters:\n- name: c\n  cluster: {server: 'https://10.0.0.1:6443'}\n"
        "users:\n- name: reader\n  user: {token: r}\n- name: fixer\n  user: {token: f}\n"
        "contexts:\n- name: reader\n  context: {cluster: c, user: reader}\n"
        "- name: fixer\n  context: {cluster: c, user: fixer}\n"
    )
    default_host = Configuration.get_default_copy().host
    settings = Settings(
        remediation_mode="kubeconfig",
        remediation_kubeconfig=str(kubeconfig),
        remediation_context="fixer",
    )
    api = remediation_api_client(settings)
    assert api.configuration.host == "https://10.0.0.1:6443"
    assert api.configuration.auth_settings()["BearerToken"]["value"] == "Bearer f"
    assert Configuration.get_default_copy().host == default_host  # the global is untouched


def test_in_cluster_token_is_reread_on_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    api = remediation_api_client(
        Settings(remediation_mode="in-cluster", remediation_token_file=str(token))
    )
    config = api.configuration
    assert config.host == "https://10.96.0.1:443"
    assert config.ssl_ca_cert == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    assert config.auth_settings()["BearerToken"]["value"] == "Bearer first"
    token.write_text("rotated")
    assert config.auth_settings()["BearerToken"]["value"] == "Bearer rotated"
    os.remove(token)
    with pytest.raises(ConfigError, match="INCIDENT_BOT_REMEDIATION_TOKEN_FILE"):
        remediation_api_client(
            Settings(remediation_mode="in-cluster", remediation_token_file=str(token))
        )
