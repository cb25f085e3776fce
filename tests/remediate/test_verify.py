"""Health verdicts on object dicts, and the poller driven by a fake clock (no waiting)."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from bot.errors import KubeError
from bot.remediate.kube_write import KubeWriter
from bot.remediate.verify import (
    Verifier,
    daemonset_health,
    deployment_health,
    newest_replicaset,
    pod_failures,
    statefulset_health,
)
from bot.targets import ObjectRef


def deploy(
    *,
    replicas: int = 3,
    generation: int = 8,
    observed: int = 8,
    updated: int = 3,
    ready: int = 3,
    available: int = 3,
    total: int = 3,
    conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "cart",
            "namespace": "shop",
            "uid": "d-1",
            "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": "8"},
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "cart"}}},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


def pod(
    name: str, *, waiting: str | None = None, restarts: int = 0, ready: bool = False
) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": {"name": name, "labels": {"app": "cart", "pod-template-hash": "7d9f"}},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "cart", "ready": ready, "restartCount": restarts, "state": state}
            ],
        },
    }


DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "cart-7d9f" has timed out progressing.',
}


# --- pure verdicts ----------------------------------------------------------------------------


def test_deployment_healthy_names_the_revision() -> None:
    health = deployment_health(deploy(), [])
    assert health.state == "healthy"
    assert health.detail == "3/3 replicas ready on revision 8"


def test_deployment_not_observed_is_progressing_even_with_a_stale_deadline() -> None:
    health = deployment_health(deploy(generation=9, observed=8, conditions=[DEADLINE]), [])
    assert health.state == "progressing"
    assert "generation 9" in health.detail


def test_deployment_deadline_exceeded_fails_with_pods() -> None:
    pods = [
        pod("a", waiting="CrashLoopBackOff", restarts=3),
        pod("b", waiting="CrashLoopBackOff", restarts=2),
    ]
    health = deployment_health(deploy(updated=1, ready=2, conditions=[DEADLINE]), pods)
    assert health.state == "failed"
    assert health.detail == (
        'ProgressDeadlineExceeded: ReplicaSet "cart-7d9f" has timed out progressing.; '
        "2 pods CrashLoopBackOff"
    )


def test_deployment_progressing_until_old_pods_are_gone() -> None:
    health = deployment_health(deploy(updated=3, ready=3, available=3, total=4), [])
    assert health.state == "progressing"
    assert "1 old pending termination" in health.detail


def test_new_pods_failing_fail_early() -> None:
    health = deployment_health(
        deploy(updated=1, ready=2, available=2), [pod("a", waiting="ImagePullBackOff")]
    )
    assert (health.state, health.detail) == ("failed", "new pods failing: 1 pod ImagePullBackOff")


def test_one_crash_is_not_yet_a_failure() -> None:
    assert pod_failures([pod("a", waiting="CrashLoopBackOff", restarts=1)]) == []
    assert pod_failures([pod("a", restarts=5, ready=True)]) == []  # recovered and ready
    assert pod_failures([pod("a", waiting="ContainerCreating")]) == []
    assert pod_failures(
        [pod("a", waiting="CrashLoopBackOff", restarts=2), pod("b", waiting="ErrImagePull")]
    ) == [
        "1 pod CrashLoopBackOff",
        "1 pod ErrImagePull",
    ]


def test_scaled_to_zero_is_healthy() -> None:
    obj = deploy(replicas=0, updated=0, ready=0, available=0, total=0)
    assert deployment_health(obj, []).state == "healthy"


def test_statefulset_needs_current_revision_to_catch_up() -> None:
    sts: dict[str, Any] = {
        "metadata": {"generation": 4},
        "spec": {"replicas": 3},
        "status": {
            "observedGeneration": 4,
            "readyReplicas": 3,
            "updatedReplicas": 3,
            "currentRevision": "db-5c6",
            "updateRevision": "db-7f8",
        },
    }
    assert statefulset_health(sts, []).state == "progressing"
    sts["status"]["currentRevision"] = "db-7f8"
    assert statefulset_health(sts, []).detail == "3/3 replicas ready on revision db-7f8"
    sts["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    sts["status"].update(updatedReplicas=1, currentRevision="db-5c6")
    assert statefulset_health(sts, []).state == "healthy"  # partitioned: 1 of 3 updated is done


def test_daemonset_counts() -> None:
    ds = {
        "metadata": {"generation": 2},
        "status": {
            "observedGeneration": 2,
            "desiredNumberScheduled": 4,
            "numberReady": 4,
            "numberAvailable": 4,
            "updatedNumberScheduled": 3,
        },
    }
    assert daemonset_health(ds).state == "progressing"
    ds["status"]["updatedNumberScheduled"] = 4
    assert daemonset_health(ds).state == "healthy"


def test_newest_replicaset_is_the_highest_owned_revision() -> None:
    owner = {"uid": "d-1", "kind": "Deployment", "name": "cart", "controller": True}

    def rs(name: str, revision: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": owners,
            }
        }

    sets = [rs("cart-a", "7", [owner]), rs("cart-b", "10", [owner]), rs("other", "99", [])]
    newest = newest_replicaset(deploy(), sets)
    assert newest is not None and newest["metadata"]["name"] == "cart-b"
    assert newest_replicaset(deploy(), [sets[2]]) is None


# --- the poller -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeWriter:
    """Answers ``get`` from a script of readings; the last one repeats."""

    def __init__(
        self, readings: list[dict[str, Any] | KubeError], pods: list[dict[str, Any]] | None = None
    ) -> None:
        self.readings = readings
        self.pods = pods or []
        self.gets = 0

    async def get(self, ref: ObjectRef, *, subresource: str | None = None) -> dict[str, Any]:
        reading = self.readings[min(self.gets, len(self.readings) - 1)]
        self.gets += 1
        if isinstance(reading, KubeError):
            raise reading
        return copy.deepcopy(reading)

    async def list_replicasets(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        owner = {"uid": "d-1", "kind": "Deployment", "name": "cart", "controller": True}
        return [
            {
                "metadata": {
                    "name": "cart-7d9f",
                    "labels": {"app": "cart", "pod-template-hash": "7d9f"},
                    "annotations": {"deployment.kubernetes.io/revision": "8"},
                    "ownerReferences": [owner],
                }
            }
        ]

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        assert selector == "app=cart,pod-template-hash=7d9f"
        return self.pods


def verifier(writer: FakeWriter, clock: FakeClock) -> Verifier:
    return Verifier(cast(KubeWriter, writer), poll_interval=2.0, clock=clock, sleep=clock.sleep)


REF = ObjectRef("Deployment", "cart", "shop")


async def test_poll_waits_for_health() -> None:
    clock = FakeClock()
    readings: list[dict[str, Any] | KubeError] = [
        deploy(generation=9, observed=8),
        KubeError("get", "503 ServiceUnavailable", status=503),  # a blip is "not yet"
        deploy(generation=9, observed=9, updated=2, ready=2, available=2, total=4),
        deploy(generation=9, observed=9),
    ]
    ok, detail = await verifier(FakeWriter(readings), clock).workload(REF, 60)
    assert ok and detail == "3/3 replicas ready on revision 8"
    assert clock.sleeps == [2.0, 2.0, 2.0]


async def test_poll_times_out_with_the_last_reading() -> None:
    clock = FakeClock()
    writer = FakeWriter([deploy(generation=9, observed=9, updated=1, ready=1, available=1)])
    ok, detail = await verifier(writer, clock).workload(REF, 10)
    assert not ok
    assert detail == (
        "not healthy after 10s: 1/3 updated, 1 ready, 1 available, 2 old pending termination"
    )
    assert clock.now == 10.0


async def test_crashing_new_pods_fail_before_the_deadline() -> None:
    clock = FakeClock()
    writer = FakeWriter(
        [deploy(updated=1, ready=2, available=2)],
        pods=[pod("cart-7d9f-x", waiting="CrashLoopBackOff", restarts=2)],
    )
    ok, detail = await verifier(writer, clock).workload(REF, 300)
    assert not ok and detail == "new pods failing: 1 pod CrashLoopBackOff"
    assert clock.now == 0.0


async def test_field_check() -> None:
    clock = FakeClock()
    node = ObjectRef("Node", "node-a")
    writer = FakeWriter([{"spec": {}}, {"spec": {"unschedulable": True}}])
    ok, detail = await verifier(writer, clock).field(
        node, ("spec", "unschedulable"), True, False, 30
    )
    assert ok and detail == "Node/node-a spec.unschedulable is True"
    writer = FakeWriter([{"spec": {}}])
    ok, _ = await verifier(writer, clock).field(node, ("spec", "unschedulable"), False, False, 30)
    assert ok  # absent reads as the default


async def test_restore_of_a_never_healthy_workload_checks_the_spec() -> None:
    clock = FakeClock()
    snapshot = deploy(updated=1, ready=1, available=1)  # broken before the change
    changed = copy.deepcopy(snapshot)
    changed["spec"]["replicas"] = 5
    ok, detail = await verifier(FakeWriter([changed, snapshot]), clock).restored(REF, snapshot, 30)
    assert ok and detail.startswith("spec restored (it was not healthy before either")


async def test_pod_replaced_then_owner_healthy() -> None:
    clock = FakeClock()
    old = {
        "metadata": {
            "name": "cart-7d9f-x",
            "uid": "p-1",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "cart-7d9f", "controller": True}],
        }
    }
    rs = {
        "metadata": {
            "ownerReferences": [{"kind": "Deployment", "name": "cart", "controller": True}]
        }
    }
    readings: list[dict[str, Any] | KubeError] = [
        old,  # still terminating
        KubeError("get", "404 NotFound", status=404),
        rs,
        deploy(),
    ]
    ok, detail = await verifier(FakeWriter(readings), clock).pod_replaced(old, "shop", 30)
    assert ok
    assert detail == "pod cart-7d9f-x is gone; Deployment/cart: 3/3 replicas ready on revision 8"


async def test_pod_without_controller_is_just_gone() -> None:
    clock = FakeClock()
    old = {"metadata": {"name": "debug", "uid": "p-2"}}
    writer = FakeWriter([KubeError("get", "404", status=404)])
    ok, detail = await verifier(writer, clock).pod_replaced(old, "shop", 30)
    assert ok and "no controller" in detail


@pytest.mark.parametrize("status", [403, 500])
async def test_unreadable_is_never_healthy(status: int) -> None:
    clock = FakeClock()
    writer = FakeWriter([KubeError("get", "nope", status=status)])
    ok, detail = await verifier(writer, clock).workload(REF, 4)
    assert not ok and "cannot read" in detail
