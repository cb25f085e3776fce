"""KubeCollector against the sandbox API server, through the real ``kubernetes`` client.

Scenario tests use the repository's frozen incidents; the hand-built clusters below each
isolate one part of the collection (PVCs, Services, HPAs, CronJobs, node requests, events,
logs) or one failure mode. Every sandbox test also checks that the collector only sent GETs
and never came near a Secret.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.collect.k8s_objects import rank_pods
from bot.collect.k8s_rollout import template_changes
from bot.collect.kubernetes import KubeCollector
from bot.config import Settings
from bot.kube import KubeReader, make_api_client
from bot.rca.bundle import Bundle, TemplateChange
from bot.targets import ObjectRef, WorkloadResolver
from bot.webhook import parse_webhook
from sandbox.kube import KubeSandbox
from sandbox.scenario import load_scenario

SCENARIOS = Path(__file__).parents[2] / "scenarios"
NOW = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)


# --- harness ----------------------------------------------------------------------------------


def assert_read_only(sandbox: KubeSandbox) -> None:
    """Only GETs, and no path that names Secrets."""
    assert {method for method, _ in sandbox.requests} <= {"GET"}
    assert not [path for _, path in sandbox.requests if "secret" in path.lower()]


@asynccontextmanager
async def cluster(
    objects: list[dict[str, Any]],
    logs: dict[str, dict[str, str]] | None = None,
    *,
    now: datetime = NOW,
) -> AsyncIterator[tuple[KubeSandbox, KubeReader]]:
    """A sandbox API server and a real read-only client pointed at it."""
    async with KubeSandbox(objects, logs, clock=lambda: now) as sandbox:
        api = make_api_client(Settings(kube_mode="url", kube_url=sandbox.base_url))
        assert api is not None
        kube = KubeReader(api, timeout=5.0)
        try:
            yield sandbox, kube
        finally:
            kube.close()
        assert_read_only(sandbox)


async def collect(
    kube: KubeReader | None,
    target: ObjectRef | None,
    labels: dict[str, str] | None = None,
    *,
    namespace: str = "shop",
    **options: Any,
) -> Bundle:
    return await KubeCollector(kube, **options).collect(
        {"namespace": namespace, **(labels or {})} if namespace else dict(labels or {}),
        {"summary": "test"},
        alertname="TestAlert",
        namespace=namespace,
        target=target,
        now=NOW,
    )


async def collect_scenario(name: str) -> tuple[Bundle, list[tuple[str, str]]]:
    """The bundle for a scenario's first firing alert, the way ``investigate`` wires it."""
    scenario = load_scenario(SCENARIOS / name)
    payload = parse_webhook(scenario.webhook)
    alert = next(a for a in payload.alerts if a.status == "firing")
    async with KubeSandbox.from_scenario(scenario) as sandbox:
        api = make_api_client(Settings(kube_mode="url", kube_url=sandbox.base_url))
        assert api is not None
        kube = KubeReader(api, timeout=5.0)
        try:
            target = await WorkloadResolver(kube).resolve(alert.labels)
            bundle = await KubeCollector(kube).collect(
                alert.labels,
                alert.annotations,
                alertname=alert.labels.get("alertname", ""),
                namespace=alert.labels.get("namespace", ""),
                target=target,
                now=scenario.now,
            )
        finally:
            kube.close()
        assert_read_only(sandbox)
        return bundle, list(sandbox.requests)


# --- builders ---------------------------------------------------------------------------------


def obj(
    kind: str, name: str, namespace: str | None = "shop", *, api: str = "v1", **fields: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "uid": f"uid-{kind.lower()}-{name}"}
    if namespace:
        metadata["namespace"] = namespace
    metadata.update(fields.pop("metadata", {}))
    return {"apiVersion": api, "kind": kind, "metadata": metadata, **fields}


def owner(kind: str, name: str) -> dict[str, Any]:
    api = {"ReplicaSet": "apps/v1", "Deployment": "apps/v1", "Job": "batch/v1"}.get(kind)
    return {
        "apiVersion": api or "batch/v1",
        "kind": kind,
        "name": name,
        "uid": f"uid-{kind.lower()}-{name}",
        "controller": True,
    }


def container(name: str, cpu: str = "100m", memory: str = "128Mi") -> dict[str, Any]:
    return {
        "name": name,
        "image": f"registry.example.com/{name}:1",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }


def pod(
    name: str,
    *,
    namespace: str = "shop",
    labels: dict[str, str] | None = None,
    node: str | None = "node-a",
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    owners: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers or [container("app")]}
    if node:
        spec["nodeName"] = node
    if init:
        spec["initContainers"] = init
    if volumes:
        spec["volumes"] = volumes
    status: dict[str, Any] = {"phase": phase}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    metadata: dict[str, Any] = {"labels": labels or {}}
    if owners:
        metadata["ownerReferences"] = owners
    return obj("Pod", name, namespace, metadata=metadata, spec=spec, status=status)


def cstatus(
    name: str,
    *,
    ready: bool = True,
    restarts: int = 0,
    state: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"registry.example.com/{name}:1",
        "ready": ready,
        "restartCount": restarts,
        "state": state or {"running": {"startedAt": "2026-11-20T09:00:00Z"}},
        "lastState": {"terminated": last} if last else {},
    }


def event(
    name: str,
    kind: str,
    target: str,
    *,
    ago: timedelta,
    reason: str = "BackOff",
    type_: str = "Warning",
    namespace: str = "shop",
    first_ago: timedelta | None = None,
) -> dict[str, Any]:
    return obj(
        "Event",
        name,
        namespace,
        involvedObject={"kind": kind, "name": target, "namespace": namespace},
        reason=reason,
        message=f"{reason} of {target}",
        type=type_,
        count=1,
        firstTimestamp=_ts(NOW - (first_ago or ago)),
        lastTimestamp=_ts(NOW - ago),
    )


def deployment(name: str, *, labels: dict[str, str]) -> dict[str, Any]:
    return obj(
        "Deployment",
        name,
        api="apps/v1",
        spec={"replicas": 1, "selector": {"matchLabels": labels}},
        metadata={"annotations": {"deployment.kubernetes.io/revision": "1"}},
    )


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- scenarios --------------------------------------------------------------------------------


async def test_cart_oomkilled_collects_rollout_logs_node_and_events() -> None:
    bundle, _ = await collect_scenario("cart-oomkilled.yaml")

    assert bundle.missing == []
    assert bundle.target == ObjectRef("Deployment", "cart", "shop")
    assert bundle.get(bundle.target) is not None
    pods = [ref.name for ref, _ in bundle.pods()]
    assert pods == ["cart-7d9f8b6c4-x2x9q", "cart-7d9f8b6c4-q7m2k"]  # the alerted pod first
    replicasets = {ref.name for ref, _ in bundle.of_kind("ReplicaSet")}
    assert replicasets == {"cart-7d9f8b6c4", "cart-5b8c7d9f6"}

    rollout = bundle.rollout
    assert rollout is not None
    assert rollout.workload == ObjectRef("Deployment", "cart", "shop")
    assert rollout.current == ObjectRef("ReplicaSet", "cart-7d9f8b6c4", "shop")
    assert rollout.previous == ObjectRef("ReplicaSet", "cart-5b8c7d9f6", "shop")
    assert (rollout.current_revision, rollout.previous_revision) == ("7", "6")
    assert rollout.rolled_out_at == "2026-11-20T10:01:55Z"
    assert rollout.changes == (
        TemplateChange(
            "image",
            "cart",
            "registry.example.com/shop/cart:3.7.2",
            "registry.example.com/shop/cart:3.8.0",
        ),
        TemplateChange("env", "cart", "CACHE_MAX_ITEMS=100000", "CACHE_MAX_ITEMS=500000"),
    )

    logs = bundle.logs["cart-7d9f8b6c4-x2x9q/cart"]
    assert logs.current == ""
    assert "cache_max_items=500000" in logs.previous
    # node-b is in the scenario, node-a is not: a 404 is absence, not missing data.
    node = bundle.get(ObjectRef("Node", "node-b"))
    assert node is not None
    assert node["x-incident-bot"] == {"requested": {"cpu": "200m", "memory": "192Mi"}, "pods": 1}
    assert bundle.get(ObjectRef("Node", "node-a")) is None

    reasons = [e["reason"] for e in bundle.events]
    assert reasons == ["BackOff", "Pulled", "ScalingReplicaSet"]  # newest first


async def test_pod_target_walks_the_owner_chain_up_and_the_workload_down() -> None:
    scenario = load_scenario(SCENARIOS / "cart-oomkilled.yaml")
    async with cluster(scenario.objects, scenario.logs) as (_, kube):
        bundle = await collect(
            kube, ObjectRef("Pod", "cart-7d9f8b6c4-x2x9q", "shop"), {"container": "cart"}
        )
    assert bundle.get(ObjectRef("ReplicaSet", "cart-7d9f8b6c4", "shop")) is not None
    assert bundle.get(ObjectRef("Deployment", "cart", "shop")) is not None
    assert bundle.rollout is not None and len(bundle.rollout.changes) == 2
    assert [ref.name for ref, _ in bundle.pods()][0] == "cart-7d9f8b6c4-x2x9q"


async def test_checkout_imagepull_log_of_a_waiting_container_is_empty_not_missing() -> None:
    bundle, requests = await collect_scenario("checkout-imagepull.yaml")

    assert bundle.missing == []
    assert any("/log?" in path for _, path in requests)
    waiting = bundle.logs["checkout-6c9d7f5b8-vk2lp/checkout"]
    assert (waiting.current, waiting.previous) == ("", "")
    assert bundle.rollout is not None
    assert [c.field for c in bundle.rollout.changes] == ["image"]
    assert bundle.rollout.changes[0].after.endswith(":2.14.l")


async def test_search_pending_reads_no_logs_and_no_nodes_for_unscheduled_pods() -> None:
    bundle, requests = await collect_scenario("search-pending.yaml")

    assert bundle.missing == []
    assert not any("/log" in path for _, path in requests)
    assert list(bundle.of_kind("Node")) == []
    phases = {p["status"]["phase"] for _, p in bundle.pods()}
    assert phases == {"Pending"}
    assert "FailedScheduling" in {e["reason"] for e in bundle.events}


async def test_node_not_ready_collects_its_pods_but_not_their_logs() -> None:
    bundle, requests = await collect_scenario("node-kubelet-stopped-posting.yaml")

    assert bundle.target is not None and bundle.target.kind == "Node"
    node = bundle.get(bundle.target)
    assert node is not None and node["x-incident-bot"]["pods"] >= 1
    assert bundle.pods()
    assert {p["spec"]["nodeName"] for _, p in bundle.pods()} == {bundle.target.name}
    assert not any("/log" in path for _, path in requests)  # its kubelet is gone
    assert "NodeNotReady" in {e["reason"] for e in bundle.events}


async def test_hpa_target_leads_to_the_scaled_deployment_and_its_pods() -> None:
    bundle, _ = await collect_scenario("web-hpa-maxed-black-friday.yaml")

    assert bundle.target == ObjectRef("HorizontalPodAutoscaler", "web", "storefront")
    assert bundle.get(ObjectRef("Deployment", "web", "storefront")) is not None
    assert len(bundle.pods()) == 5  # max_pods
    assert "SuccessfulRescale" in {e["reason"] for e in bundle.events}


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
async def test_every_scenario_collects_without_missing_data(path: Path) -> None:
    bundle, _ = await collect_scenario(path.name)
    assert bundle.missing == []
    assert len(bundle.events) <= 60
    if bundle.target is not None and any(
        o["kind"] == bundle.target.kind and o["metadata"]["name"] == bundle.target.name
        for o in load_scenario(path).objects
    ):
        assert bundle.get(bundle.target) is not None


# --- hand-built clusters ----------------------------------------------------------------------


async def test_pvcs_their_volume_and_storage_class_and_a_missing_class_is_absence() -> None:
    sts = obj(
        "StatefulSet",
        "db",
        api="apps/v1",
        spec={
            "replicas": 2,
            "selector": {"matchLabels": {"app": "db"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
        },
    )
    objects = [
        sts,
        pod(
            "db-0",
            labels={"app": "db"},
            node=None,
            phase="Pending",
            owners=[owner("StatefulSet", "db")],
            volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}],
        ),
        # db-1 has no pod: its claim is found from the volumeClaimTemplate alone.
        obj(
            "PersistentVolumeClaim",
            "data-db-0",
            spec={"storageClassName": "fast-ssd"},
            status={"phase": "Pending"},
        ),
        obj(
            "PersistentVolumeClaim",
            "data-db-1",
            spec={"volumeName": "pv-1"},
            status={"phase": "Bound"},
        ),
        obj("PersistentVolume", "pv-1", None, spec={"capacity": {"storage": "10Gi"}}),
        obj(
            "StorageClass",
            "standard",
            None,
            api="storage.k8s.io/v1",
            metadata={"annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            provisioner="ebs.csi.aws.com",
        ),
        obj("StorageClass", "slow", None, api="storage.k8s.io/v1", provisioner="x"),
        event(
            "data-db-0.1",
            "PersistentVolumeClaim",
            "data-db-0",
            ago=timedelta(minutes=2),
            reason="ProvisioningFailed",
        ),
    ]
    async with cluster(objects) as (_, kube):
        bundle = await collect(kube, ObjectRef("StatefulSet", "db", "shop"))

    assert bundle.missing == []  # the 404 for StorageClass fast-ssd is evidence, not missing
    claims = {ref.name for ref, _ in bundle.of_kind("PersistentVolumeClaim")}
    assert claims == {"data-db-0", "data-db-1"}
    assert bundle.get(ObjectRef("PersistentVolume", "pv-1")) is not None
    assert {ref.name for ref, _ in bundle.of_kind("StorageClass")} == {"standard"}
    assert [e["reason"] for e in bundle.events] == ["ProvisioningFailed"]


async def test_services_selecting_the_pods_the_labelled_one_and_their_endpoints() -> None:
    def service(name: str, selector: dict[str, str] | None) -> dict[str, Any]:
        spec: dict[str, Any] = {"ports": [{"port": 80}]}
        if selector is not None:
            spec["selector"] = selector
        return obj("Service", name, spec=spec)

    objects = [
        deployment("web", labels={"app": "web"}),
        pod("web-6d4cf56db6-abcde", labels={"app": "web", "tier": "front"}),
        service("web", {"app": "web"}),
        service("other", {"app": "other"}),
        service("external", None),  # no selector: hand-made Endpoints, selects no pod
        service("metrics", {"app": "metrics"}),
        obj("Endpoints", "web", subsets=[]),
        event("web.1", "Service", "web", ago=timedelta(minutes=1), reason="FailedToUpdateEndpoint"),
    ]
    async with cluster(objects) as (_, kube):
        bundle = await collect(kube, ObjectRef("Deployment", "web", "shop"), {"service": "metrics"})

    assert bundle.missing == []
    assert {ref.name for ref, _ in bundle.of_kind("Service")} == {"web", "metrics"}
    assert {ref.name for ref, _ in bundle.of_kind("Endpoints")} == {"web"}
    assert "FailedToUpdateEndpoint" in {e["reason"] for e in bundle.events}


async def test_autoscalers_of_the_workload_and_a_hpa_target() -> None:
    def hpa(name: str, workload: str) -> dict[str, Any]:
        ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload}
        return obj(
            "HorizontalPodAutoscaler",
            name,
            api="autoscaling/v2",
            spec={"scaleTargetRef": ref, "minReplicas": 1, "maxReplicas": 3},
        )

    objects = [
        deployment("web", labels={"app": "web"}),
        pod("web-6d4cf56db6-abcde", labels={"app": "web"}),
        hpa("web", "web"),
        hpa("api", "api"),
        event("web.h", "HorizontalPodAutoscaler", "web", ago=timedelta(minutes=3), reason="X"),
    ]
    async with cluster(objects) as (_, kube):
        from_deploy = await collect(kube, ObjectRef("Deployment", "web", "shop"))
        from_hpa = await collect(kube, ObjectRef("HorizontalPodAutoscaler", "web", "shop"))

    for bundle in (from_deploy, from_hpa):
        assert bundle.missing == []
        assert {ref.name for ref, _ in bundle.of_kind("HorizontalPodAutoscaler")} == {"web"}
        assert bundle.get(ObjectRef("Deployment", "web", "shop")) is not None
        assert [ref.name for ref, _ in bundle.pods()] == ["web-6d4cf56db6-abcde"]
        assert [e["reason"] for e in bundle.events] == ["X"]


async def test_cronjob_to_jobs_to_pods_and_back_up() -> None:
    def job(name: str, status: dict[str, Any], created: str) -> dict[str, Any]:
        return obj(
            "Job",
            name,
            api="batch/v1",
            metadata={
                "ownerReferences": [owner("CronJob", "report")],
                "creationTimestamp": created,
            },
            spec={"backoffLimit": 1},  # no selector: found by the job-name label instead
            status=status,
        )

    failed = {"failed": 2, "conditions": [{"type": "Failed", "status": "True"}]}

    def job_pod(name: str, job_name: str, phase: str) -> dict[str, Any]:
        return pod(
            name, labels={"job-name": job_name}, phase=phase, owners=[owner("Job", job_name)]
        )

    objects = [
        obj("CronJob", "report", api="batch/v1", spec={"schedule": "0 * * * *"}),
        job("report-1", {"succeeded": 1}, "2026-11-20T07:00:00Z"),
        job("report-2", failed, "2026-11-20T08:00:00Z"),
        job("report-3", {"active": 1}, "2026-11-20T10:00:00Z"),
        obj("Job", "unrelated", api="batch/v1", status={"active": 1}),
        job_pod("report-1-aaaaa", "report-1", "Succeeded"),
        job_pod("report-2-bbbbb", "report-2", "Failed"),
        job_pod("report-3-ccccc", "report-3", "Running"),
        event("report-2.1", "Job", "report-2", ago=timedelta(minutes=60), reason="BackoffLimit"),
    ]
    async with cluster(objects) as (_, kube):
        from_cronjob = await collect(kube, ObjectRef("CronJob", "report", "shop"))
        from_job = await collect(kube, ObjectRef("Job", "report-2", "shop"))
        from_pod = await collect(kube, ObjectRef("Pod", "report-2-bbbbb", "shop"))

    assert from_cronjob.missing == []
    jobs = {ref.name for ref, _ in from_cronjob.of_kind("Job")}
    assert jobs == {"report-1", "report-2", "report-3"}
    # The newest troubled jobs' pods, the failed one first (unhealthy before running).
    assert [ref.name for ref, _ in from_cronjob.pods()] == ["report-2-bbbbb", "report-3-ccccc"]
    assert "BackoffLimit" in {e["reason"] for e in from_cronjob.events}

    assert from_job.get(ObjectRef("CronJob", "report", "shop")) is not None
    assert [ref.name for ref, _ in from_job.pods()] == ["report-2-bbbbb"]

    assert from_pod.get(ObjectRef("Job", "report-2", "shop")) is not None
    assert from_pod.get(ObjectRef("CronJob", "report", "shop")) is not None


async def test_node_requested_sums_count_init_containers_and_skip_finished_pods() -> None:
    objects = [
        obj(
            "Node",
            "node-a",
            None,
            status={
                "allocatable": {"cpu": "1930m", "memory": "7Gi"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        ),
        pod("two", containers=[container("a", "100m", "128Mi"), container("b", "250m", "256Mi")]),
        # An init container larger than the app counts as the pod's request (scheduler rule).
        pod(
            "init-heavy",
            namespace="kube-system",
            init=[container("warmup", "1", "1Gi")],
            containers=[container("app", "200m", "512Mi")],
        ),
        pod("done", phase="Succeeded", containers=[container("a", "2", "4Gi")]),
        pod("elsewhere", node="node-b", containers=[container("a", "3", "8Gi")]),
        event("node-a.1", "Node", "node-a", ago=timedelta(minutes=5), namespace="default"),
    ]
    async with cluster(objects) as (_, kube):
        bundle = await collect(kube, ObjectRef("Node", "node-a"), {"node": "node-a"}, namespace="")

    assert bundle.missing == []
    node = bundle.get(ObjectRef("Node", "node-a"))
    assert node is not None
    assert node["x-incident-bot"] == {"requested": {"cpu": "1350m", "memory": "1408Mi"}, "pods": 2}
    assert node["status"]["allocatable"] == {"cpu": "1930m", "memory": "7Gi"}  # untouched
    assert [e["metadata"]["name"] for e in bundle.events] == ["node-a.1"]


async def test_events_outside_the_window_are_dropped_and_the_rest_deduplicated() -> None:
    name = "api-6d4cf56db6-abcde"
    objects = [
        pod(name, labels={"app": "api"}),
        event("old", "Pod", name, ago=timedelta(hours=3), reason="OldWarning"),
        event("recent", "Pod", name, ago=timedelta(minutes=30), reason="Recent", type_="Normal"),
        event("future", "Pod", name, ago=-timedelta(minutes=5), reason="AfterNow"),
        # First seen long ago, but seen again ten minutes ago: it is current.
        event(
            "repeat",
            "Pod",
            name,
            ago=timedelta(minutes=10),
            first_ago=timedelta(hours=9),
            reason="Repeat",
        ),
        *(
            event(f"spam-{i}", "Pod", name, ago=timedelta(minutes=40 + i), type_="Normal")
            for i in range(70)
        ),
    ]
    async with cluster(objects) as (_, kube):
        # No target: the pod's events and the namespace's Warning events overlap.
        bundle = await collect(kube, None, {"pod": name})

    names = [e["metadata"]["name"] for e in bundle.events]
    assert names[:3] == ["future", "repeat", "recent"]
    assert "old" not in names
    assert len(names) == len(set(names)) == 60


async def test_logs_current_previous_and_only_of_the_containers_that_matter() -> None:
    crashed = {"exitCode": 1, "reason": "Error", "finishedAt": "2026-11-20T10:10:00Z"}
    line = "x" * 99 + "\n"
    objects = [
        pod(
            "api-1",
            containers=[container("app"), container("sidecar"), container("proxy")],
            init=[container("migrate")],
            init_statuses=[
                cstatus("migrate", state={"terminated": {"exitCode": 0, "reason": "Completed"}})
            ],
            statuses=[
                cstatus("app", restarts=2, last=crashed),
                cstatus("sidecar"),
                cstatus("proxy"),
            ],
        ),
        pod(
            "api-2",
            init=[container("migrate")],
            init_statuses=[
                cstatus(
                    "migrate",
                    ready=False,
                    restarts=3,
                    state={"waiting": {"reason": "CrashLoopBackOff"}},
                    last=crashed,
                )
            ],
            statuses=[
                cstatus("app", ready=False, state={"waiting": {"reason": "PodInitializing"}})
            ],
        ),
        # Restarted, but the previous instance's log is gone: a 400 that is no error.
        pod("api-3", statuses=[cstatus("app", restarts=1)]),
    ]
    logs = {
        "shop/api-1/app": {
            "current": "".join(f"{i:03d}{line[3:]}" for i in range(300)),
            "previous": "panic: boom\n",
        },
        "shop/api-1/proxy": {"current": "proxy ok\n"},
        "shop/api-2/migrate": {"current": "", "previous": "migration 42 failed\n"},
        "shop/api-3/app": {"current": "up again\n"},
    }
    async with cluster(objects, logs) as (sandbox, kube):
        bundle = await collect(
            kube,
            None,
            {"pod": "api-1", "container": "proxy"},
            log_tail_lines=200,
            log_bytes=1000,
        )
        log_paths = [path for _, path in sandbox.requests if "/log?" in path]

    assert bundle.missing == []
    assert sorted(bundle.logs) == ["api-1/app", "api-1/proxy"]
    app = bundle.logs["api-1/app"]
    assert app.previous == "panic: boom\n"
    assert len(app.current.encode()) <= 1000
    assert app.current.endswith("299" + "x" * 96 + "\n")  # the newest line is kept
    assert app.current.startswith(tuple(f"{i:03d}" for i in range(300)))  # whole lines only
    assert bundle.logs["api-1/proxy"].current == "proxy ok\n"
    assert bundle.logs["api-1/proxy"].previous == ""
    assert not any("container=sidecar" in p or "container=migrate" in p for p in log_paths)
    assert sum("previous=true" in p for p in log_paths) == 1  # api-1/app only

    async with cluster(objects, logs) as (_, kube):
        init_failed = await collect(kube, ObjectRef("Pod", "api-2", "shop"))
        no_previous = await collect(kube, ObjectRef("Pod", "api-3", "shop"))
    assert init_failed.missing == [] and no_previous.missing == []
    assert sorted(init_failed.logs) == ["api-2/migrate"]  # not app: it waits to initialize
    assert init_failed.logs["api-2/migrate"].previous == "migration 42 failed\n"
    assert no_previous.logs["api-3/app"].current == "up again\n"
    assert no_previous.logs["api-3/app"].previous == ""


# --- failure modes ----------------------------------------------------------------------------


def _small_cluster() -> list[dict[str, Any]]:
    return [
        deployment("cart", labels={"app": "cart"}),
        pod("cart-6d4cf56db6-abcde", labels={"app": "cart"}),
        event("cart.1", "Pod", "cart-6d4cf56db6-abcde", ago=timedelta(minutes=1)),
    ]


@pytest.mark.parametrize("status", [500, 403])
async def test_a_failed_read_becomes_a_missing_line_and_the_rest_goes_on(status: int) -> None:
    objects = [
        obj("Node", "node-a", None, status={"conditions": [{"type": "Ready", "status": "True"}]}),
        event("node-a.1", "Node", "node-a", ago=timedelta(minutes=1), namespace="default"),
    ]
    async with cluster(objects) as (sandbox, kube):
        sandbox.fail_next(1, status=status)  # a Node target's first stage is one read
        bundle = await collect(kube, ObjectRef("Node", "node-a"), namespace="")

    assert len(bundle.missing) == 1
    assert bundle.missing[0].startswith(f"kubernetes: Node/node-a: {status} ")
    assert [e["metadata"]["name"] for e in bundle.events] == ["node-a.1"]


async def test_concurrent_failures_each_name_their_read() -> None:
    async with cluster(_small_cluster()) as (sandbox, kube):
        sandbox.fail_next(4)
        bundle = await collect(
            kube, ObjectRef("Deployment", "cart", "shop"), {"pod": "cart-6d4cf56db6-abcde"}
        )
    assert isinstance(bundle, Bundle)
    # Which four reads fail depends on arrival order; each failure is one well-formed line.
    assert len(bundle.missing) == 4
    assert all(re.match(r"^kubernetes: \S.*: 500 ", line) for line in bundle.missing)


async def test_an_api_that_fails_everything_still_yields_a_bundle() -> None:
    async with cluster(_small_cluster()) as (sandbox, kube):
        sandbox.fail_next(10_000)
        bundle = await collect(
            kube, ObjectRef("Deployment", "cart", "shop"), {"pod": "cart-6d4cf56db6-abcde"}
        )
    assert bundle.objects == {} and bundle.events == [] and bundle.logs == {}
    assert "kubernetes: events of shop/Pod/cart-6d4cf56db6-abcde: 500" in "\n".join(bundle.missing)
    assert all(m.startswith("kubernetes: ") for m in bundle.missing)


async def test_a_slow_api_is_cut_off_at_the_timeout_with_a_missing_line() -> None:
    async with cluster(_small_cluster()) as (sandbox, kube):
        sandbox.set_delay(3.0)
        started = time.monotonic()
        bundle = await collect(kube, ObjectRef("Deployment", "cart", "shop"), timeout=0.5)
        elapsed = time.monotonic() - started
        sandbox.set_delay(0)
    assert elapsed < 1.5
    assert bundle.missing == ["kubernetes: timed out after 0.5s, evidence is incomplete"]


async def test_no_cluster_access_is_one_missing_line() -> None:
    bundle = await collect(None, ObjectRef("Deployment", "cart", "shop"))
    assert bundle.missing == ["kubernetes: no cluster access configured"]
    assert bundle.objects == {}


# --- pure parts -------------------------------------------------------------------------------


def test_template_changes_render_every_field_without_secret_values() -> None:
    before = {
        "spec": {
            "serviceAccountName": "api",
            "nodeSelector": {"pool": "general"},
            "volumes": [{"name": "cfg", "configMap": {"name": "api-v1"}}],
            "containers": [
                {
                    "name": "api",
                    "image": "api:1",
                    "command": ["/api"],
                    "env": [
                        {"name": "MODE", "value": "safe"},
                        {"name": "GONE", "value": "1"},
                        {
                            "name": "DB_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}},
                        },
                    ],
                    "envFrom": [{"configMapRef": {"name": "api-env"}}],
                    "resources": {"limits": {"memory": "256Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                },
                {"name": "old-sidecar", "image": "side:1"},
            ],
        }
    }
    after = copy.deepcopy(before)
    spec = after["spec"]
    spec["nodeSelector"] = {"pool": "gpu"}
    spec["volumes"][0]["configMap"]["name"] = "api-v2"
    del spec["containers"][1]
    api = spec["containers"][0]
    api["args"] = ["--fast"]
    api["env"] = [
        {"name": "MODE", "value": "fast"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-v2", "key": "pw"}}},
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "level"}}},
    ]
    api["envFrom"] = [{"secretRef": {"name": "api-secrets"}}]
    api["resources"]["limits"]["memory"] = "512Mi"
    api["livenessProbe"]["httpGet"]["path"] = "/livez"
    changes = template_changes(before, after)
    by_field = {(c.field, c.before, c.after) for c in changes}
    assert ("env", "MODE=safe", "MODE=fast") in by_field
    assert (
        "env",
        "DB_PASSWORD=secretKeyRef db/pw",
        "DB_PASSWORD=secretKeyRef db-v2/pw",
    ) in by_field
    assert ("env", "", "LEVEL=configMapKeyRef cm/level") in by_field
    assert ("env", "GONE=1", "") in by_field
    assert ("env_from", "configMapRef api-env", "") in by_field
    assert ("env_from", "", "secretRef api-secrets") in by_field
    assert ("resources", "limits.memory=256Mi", "limits.memory=512Mi") in by_field
    assert ("args", "", '["--fast"]') in by_field
    assert any(c.field == "probes" and "/livez" in c.after for c in changes)
    assert any(c.field == "volumes" and "api-v2" in c.after for c in changes)
    assert ("other", 'nodeSelector: {"pool":"general"}', 'nodeSelector: {"pool":"gpu"}') in by_field
    assert ("other", "container removed: side:1", "") in by_field
    assert not [c for c in changes if c.field == "image" or c.field == "command"]
    assert all(c.container == "api" for c in changes if c.field in ("env", "resources"))


def test_rank_pods_puts_the_alerted_pod_first_then_unhealthy_ones() -> None:
    healthy = pod("a-healthy", statuses=[cstatus("app")])
    restarting = pod("b-restarting", statuses=[cstatus("app", restarts=3)])
    pending = pod("c-pending", phase="Pending", node=None)
    done = pod("d-done", phase="Succeeded")
    alerted = pod("z-alerted", statuses=[cstatus("app")])
    ranked = rank_pods([healthy, done, pending, alerted, restarting], "z-alerted")
    assert [p["metadata"]["name"] for p in ranked] == [
        "z-alerted",
        "b-restarting",
        "c-pending",
        "a-healthy",
        "d-done",
    ]
