"""The sandbox API server, driven by the official ``kubernetes`` client over loopback HTTP.

The client is synchronous, so every call runs in a worker thread (``asyncio.to_thread``)
while the test's event loop serves it.
"""

from __future__ import annotations

import json
import re
import time
from asyncio import to_thread
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import urllib3
from kubernetes import client
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from sandbox.kube import KubeSandbox
from sandbox.scenario import load_scenario

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))


def pod(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    node: str | None = "node-a",
    phase: str = "Running",
    containers: tuple[str, ...] = ("app",),
    waiting: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if waiting:
        status["containerStatuses"] = [
            {
                "name": containers[0],
                "image": "registry.example.com/app:1",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": waiting}},
            }
        ]
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "app:1"} for c in containers]}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
        "status": status,
    }


def event(name: str, kind: str, target: str, reason: str, type_: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "shop"},
        "involvedObject": {
            "kind": kind,
            "name": target,
            "namespace": "shop",
            "uid": f"uid-{target}",
        },
        "reason": reason,
        "type": type_,
        "message": f"{reason} for {target}",
    }


OBJECTS: list[dict[str, Any]] = [
    pod("web-1", "shop", {"app": "web", "tier": "frontend"}),
    pod(
        "web-2",
        "shop",
        {"app": "web", "tier": "frontend", "canary": "true"},
        node="node-b",
        phase="Pending",
        waiting="ImagePullBackOff",
    ),
    pod(
        "db-0",
        "shop",
        {"app": "db", "tier": "backend", "shard": "3"},
        containers=("postgres", "exporter"),
    ),
    pod("report-x", "batch", {"app": "report"}, node=None, phase="Pending"),
    event("web-1.1", "Pod", "web-1", "BackOff", "Warning"),
    event("web.2", "Deployment", "web", "ScalingReplicaSet", "Normal"),
    event("web-2.3", "Pod", "web-2", "Failed", "Warning"),
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}},
        },
        "status": {"replicas": 2, "readyReplicas": 1},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-5d4f", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"replicas": 2},
    },
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}, "spec": {}},
    {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-b"},
        "spec": {"unschedulable": True},
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-db-0", "namespace": "shop"},
        "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"]},
        "status": {"phase": "Pending"},
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv-1"},
        "spec": {"capacity": {"storage": "1Gi"}},
    },
    {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "slow"},
        "provisioner": "ebs.csi.aws.com",
    },
    {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
        "status": {
            "currentReplicas": 4,
            "desiredReplicas": 4,
            "conditions": [
                {"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas"}
            ],
        },
    },
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "batch"},
        "spec": {
            "schedule": "0 * * * *",
            "suspend": True,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
        },
    },
    {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "web-tls", "namespace": "shop"},
        "spec": {"secretName": "web-tls"},
    },
]
LOGS = {
    "shop/web-1/app": {"current": "one\ntwo\nthree\n", "previous": "panic: boom\n"},
    "shop/db-0/postgres": {"current": "2026-11-20T10:00:00Z ready\nplain line\n", "previous": ""},
}


@pytest.fixture
async def sandbox() -> AsyncIterator[KubeSandbox]:
    async with KubeSandbox(OBJECTS, LOGS) as server:
        yield server


@pytest.fixture
def api(sandbox: KubeSandbox) -> Iterator[ApiClient]:
    with ApiClient(Configuration(host=sandbox.base_url)) as api_client:
        yield api_client


@pytest.fixture
def core(api: ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


def names(items: list[Any]) -> list[str]:
    return [item.metadata.name for item in items]


# --- reads ------------------------------------------------------------------------------------


async def test_lists_pods_as_typed_objects(core: client.CoreV1Api) -> None:
    pods = await to_thread(core.list_namespaced_pod, "shop")

    assert isinstance(pods, client.V1PodList)
    assert names(pods.items) == ["db-0", "web-1", "web-2"]
    assert pods.kind == "PodList" and pods.api_version == "v1"
    assert int(pods.metadata.resource_version) > 0
    first = pods.items[0]
    assert first.metadata.namespace == "shop" and first.metadata.uid
    assert first.spec.containers[0].name == "postgres"


async def test_lists_across_namespaces_and_gets_one(core: client.CoreV1Api) -> None:
    everywhere = await to_thread(core.list_pod_for_all_namespaces)
    one = await to_thread(core.read_namespaced_pod, "report-x", "batch")

    assert names(everywhere.items) == ["report-x", "db-0", "web-1", "web-2"]
    assert one.status.phase == "Pending" and one.metadata.labels == {"app": "report"}


async def test_missing_object_is_a_not_found_status(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        await to_thread(core.read_namespaced_pod, "nope", "shop")

    assert caught.value.status == 404
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "pods"},
        "code": 404,
    }


async def test_workloads_and_scale(api: ApiClient) -> None:
    apps = client.AppsV1Api(api)

    deployment = await to_thread(apps.read_namespaced_deployment, "web", "shop")
    replica_sets = await to_thread(apps.list_namespaced_replica_set, "shop", label_selector="app")
    scale = await to_thread(apps.read_namespaced_deployment_scale, "web", "shop")
    with pytest.raises(ApiException) as caught:
        await to_thread(apps.read_namespaced_deployment, "api", "shop")

    assert deployment.spec.selector.match_labels == {"app": "web"}
    assert names(replica_sets.items) == ["web-5d4f"]
    assert (scale.spec.replicas, scale.status.selector) == (2, "app=web")
    assert status_of(caught.value)["message"] == 'deployments.apps "api" not found'
    assert status_of(caught.value)["details"]["group"] == "apps"


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("involvedObject.name=web-1", ["web-1.1"]),
        ("involvedObject.kind=Pod,type=Warning", ["web-1.1", "web-2.3"]),
        ("involvedObject.kind==Deployment", ["web.2"]),
        ("type!=Warning", ["web.2"]),
        ("reason=Failed,involvedObject.namespace=shop", ["web-2.3"]),
        ("involvedObject.uid=uid-web-2", ["web-2.3"]),
        ("metadata.name=web.2", ["web.2"]),
    ],
)
async def test_events_by_field_selector(
    core: client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    events = await to_thread(core.list_namespaced_event, "shop", field_selector=selector)

    assert names(events.items) == expected
    assert all(isinstance(item, client.CoreV1Event) for item in events.items)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("spec.nodeName=node-a", ["db-0", "web-1"]),
        ("spec.nodeName=", ["report-x"]),
        ("status.phase!=Running", ["report-x", "web-2"]),
        ("metadata.namespace=batch", ["report-x"]),
        ("metadata.name=web-1,status.phase=Running", ["web-1"]),
    ],
)
async def test_pods_by_field_selector(
    core: client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    pods = await to_thread(core.list_pod_for_all_namespaces, field_selector=selector)

    assert names(pods.items) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", ["report-x", "db-0", "web-1", "web-2"]),
        ("app=web", ["web-1", "web-2"]),
        ("app==web", ["web-1", "web-2"]),
        (" app = web ", ["web-1", "web-2"]),
        ("app!=web", ["report-x", "db-0"]),
        ("app in (web,db)", ["db-0", "web-1", "web-2"]),
        ("app notin (web)", ["report-x", "db-0"]),
        ("tier notin (frontend)", ["report-x", "db-0"]),
        ("canary", ["web-2"]),
        ("!canary", ["report-x", "db-0", "web-1"]),
        ("app=web,!canary", ["web-1"]),
        ("tier,app in (db, web),canary=true", ["web-2"]),
        ("shard>2", ["db-0"]),
        ("shard<3", []),
    ],
)
async def test_pods_by_label_selector(
    core: client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    pods = await to_thread(core.list_pod_for_all_namespaces, label_selector=selector)

    assert names(pods.items) == expected


@pytest.mark.parametrize(
    ("label_selector", "field_selector", "message"),
    [
        ("app in web", "", "unable to parse requirement"),
        ("app in ()", "", "values set can't be empty"),
        ("app=web,", "", "unable to parse requirement"),
        ("=web", "", "unable to parse requirement"),
        ("bad key=x", "", "unable to parse requirement"),
        ("app=(web)", "", "unable to parse requirement"),
        ("", "spec.containers=x", "field label not supported: spec.containers"),
        ("", "phase", "invalid selector: 'phase'; can't understand 'phase'"),
    ],
)
async def test_invalid_selectors_are_bad_requests(
    core: client.CoreV1Api, label_selector: str, field_selector: str, message: str
) -> None:
    with pytest.raises(ApiException) as caught:
        await to_thread(
            core.list_namespaced_pod,
            "shop",
            label_selector=label_selector,
            field_selector=field_selector,
        )

    assert caught.value.status == 400
    assert status_of(caught.value)["reason"] == "BadRequest"
    assert message in status_of(caught.value)["message"]


async def test_limit_and_continue_page_through_a_list(core: client.CoreV1Api) -> None:
    first = await to_thread(core.list_pod_for_all_namespaces, limit=3)
    second = await to_thread(
        core.list_pod_for_all_namespaces, limit=3, _continue=first.metadata._continue
    )

    assert names(first.items) == ["report-x", "db-0", "web-1"]
    assert first.metadata.remaining_item_count == 1
    assert names(second.items) == ["web-2"]
    assert second.metadata._continue is None


async def test_cluster_scoped_and_storage_kinds(api: ApiClient, core: client.CoreV1Api) -> None:
    nodes = await to_thread(core.list_node, field_selector="spec.unschedulable=false")
    node = await to_thread(core.read_node, "node-b")
    pvcs = await to_thread(core.list_namespaced_persistent_volume_claim, "shop")
    pvs = await to_thread(core.list_persistent_volume)
    classes = await to_thread(client.StorageV1Api(api).list_storage_class)
    namespaces = await to_thread(core.list_namespace)

    assert names(nodes.items) == ["node-a"]
    assert node.spec.unschedulable is True and node.metadata.namespace is None
    assert pvcs.items[0].spec.storage_class_name == "fast"
    assert names(pvs.items) == ["pv-1"]
    assert classes.items[0].provisioner == "ebs.csi.aws.com"
    # Namespaces are synthesized for every namespace the objects use, plus "default".
    assert names(namespaces.items) == ["batch", "default", "shop"]
    assert namespaces.items[0].status.phase == "Active"


async def test_hpa_is_served_as_v2_and_converted_to_v1(api: ApiClient) -> None:
    v2 = await to_thread(
        client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler, "web", "shop"
    )
    v1 = await to_thread(
        client.AutoscalingV1Api(api).list_namespaced_horizontal_pod_autoscaler, "shop"
    )

    assert v2.spec.metrics[0].resource.target.average_utilization == 70
    assert v2.status.conditions[0].reason == "TooManyReplicas"
    assert v1.api_version == "autoscaling/v1"
    assert v1.items[0].spec.target_cpu_utilization_percentage == 70
    assert v1.items[0].spec.max_replicas == 4
    # autoscaling/v1 has no conditions field; the API server keeps them in an annotation.
    annotations = v1.items[0].metadata.annotations
    assert "TooManyReplicas" in annotations["autoscaling.alpha.kubernetes.io/conditions"]


async def test_objects_stored_in_another_version_are_converted() -> None:
    hpa_v1 = {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "maxReplicas": 3,
            "targetCPUUtilizationPercentage": 80,
        },
        "status": {
            "currentReplicas": 3,
            "desiredReplicas": 3,
            "currentCPUUtilizationPercentage": 95,
        },
    }
    policy = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "require-labels"},
    }
    async with KubeSandbox([hpa_v1, policy]) as sandbox:
        with ApiClient(Configuration(host=sandbox.base_url)) as api_client:
            v2 = await to_thread(
                client.AutoscalingV2Api(api_client).read_namespaced_horizontal_pod_autoscaler,
                "api",
                "shop",
            )
            policies = await to_thread(
                client.CustomObjectsApi(api_client).list_cluster_custom_object,
                "kyverno.io",
                "v1",
                "clusterpolicies",  # guessed the way the CRD would name it
            )

    assert v2.api_version == "autoscaling/v2"
    assert v2.spec.metrics[0].resource.target.average_utilization == 80
    assert v2.status.current_metrics[0].resource.current.average_utilization == 95
    assert [item["metadata"]["name"] for item in policies["items"]] == ["require-labels"]


async def test_cronjobs_and_custom_resources(api: ApiClient) -> None:
    cronjobs = await to_thread(client.BatchV1Api(api).list_cron_job_for_all_namespaces)
    certificates = await to_thread(
        client.CustomObjectsApi(api).list_namespaced_custom_object,
        "cert-manager.io",
        "v1",
        "shop",
        "certificates",
    )

    assert cronjobs.items[0].spec.suspend is True
    assert certificates["kind"] == "CertificateList"
    assert [item["metadata"]["name"] for item in certificates["items"]] == ["web-tls"]


async def test_raw_responses_with_preload_content_false(core: client.CoreV1Api) -> None:
    response = await to_thread(core.list_namespaced_pod, "shop", _preload_content=False)

    body = json.loads(response.data)
    assert response.status == 200
    assert body["kind"] == "PodList" and body["items"][0]["kind"] == "Pod"
    assert set(body["metadata"]) == {"resourceVersion"}


# --- pod logs ---------------------------------------------------------------------------------


async def test_logs_default_container_tail_and_previous(core: client.CoreV1Api) -> None:
    read = core.read_namespaced_pod_log

    assert await to_thread(read, "web-1", "shop") == "one\ntwo\nthree\n"
    assert await to_thread(read, "web-1", "shop", tail_lines=2) == "two\nthree\n"
    assert await to_thread(read, "web-1", "shop", tail_lines=0) == ""
    assert await to_thread(read, "web-1", "shop", limit_bytes=5) == "one\nt"
    assert await to_thread(read, "web-1", "shop", previous=True) == "panic: boom\n"
    stamped = await to_thread(read, "db-0", "shop", container="postgres", timestamps=True)
    # A line's own leading timestamp is reused; others get the sandbox clock's.
    first, second = stamped.splitlines()
    assert first == "2026-11-20T10:00:00Z 2026-11-20T10:00:00Z ready"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ plain line", second)


@pytest.mark.parametrize(
    ("name", "options", "code", "message"),
    [
        (
            "db-0",
            {},
            400,
            "a container name must be specified for pod db-0, choose one of: [postgres exporter]",
        ),
        ("db-0", {"container": "nginx"}, 400, "container nginx is not valid for pod db-0"),
        (
            "db-0",
            {"container": "postgres", "previous": True},
            400,
            'previous terminated container "postgres" in pod "db-0" not found',
        ),
        (
            "web-2",
            {},
            400,
            'container "app" in pod "web-2" is waiting to start: trying and failing to pull image',
        ),
        ("report-x", {}, 400, "pod report-x does not have a host assigned"),
        ("web-1", {"tail_lines": -1}, 422, "tailLines: Invalid value: -1"),
        ("ghost", {}, 404, 'pods "ghost" not found'),
    ],
)
async def test_log_errors_match_a_real_cluster(
    core: client.CoreV1Api, name: str, options: dict[str, Any], code: int, message: str
) -> None:
    namespace = "batch" if name == "report-x" else "shop"
    with pytest.raises(ApiException) as caught:
        await to_thread(core.read_namespaced_pod_log, name, namespace, **options)

    assert caught.value.status == code
    assert message in status_of(caught.value)["message"]


# --- writes -----------------------------------------------------------------------------------


def config_map(name: str | None, **extra: Any) -> dict[str, Any]:
    metadata = {"name": name} if name else {}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {"k": "v"},
        **extra,
    }


async def test_create_then_conflict(sandbox: KubeSandbox, core: client.CoreV1Api) -> None:
    created = await to_thread(core.create_namespaced_config_map, "shop", config_map("settings"))
    read = await to_thread(core.read_namespaced_config_map, "settings", "shop")
    with pytest.raises(ApiException) as caught:
        await to_thread(core.create_namespaced_config_map, "shop", config_map("settings"))

    assert created.metadata.uid == read.metadata.uid and read.data == {"k": "v"}
    assert created.metadata.creation_timestamp is not None
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "AlreadyExists"
    assert status_of(caught.value)["message"] == 'configmaps "settings" already exists'
    assert sandbox.get_object("ConfigMap", "shop", "settings") is not None


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (config_map(None), ["metadata.name"]),
        (config_map("Bad_Name"), ["metadata.name"]),
        (config_map("ok", kind="Secret"), ["kind"]),
        (config_map(None, apiVersion="apps/v1"), ["apiVersion", "metadata.name"]),
    ],
)
async def test_invalid_create_is_unprocessable(
    core: client.CoreV1Api, body: dict[str, Any], fields: list[str]
) -> None:
    with pytest.raises(ApiException) as caught:
        await to_thread(core.create_namespaced_config_map, "shop", body)

    status = status_of(caught.value)
    assert caught.value.status == 422 and status["reason"] == "Invalid"
    assert [cause["field"] for cause in status["details"]["causes"]] == fields
    assert status["details"]["kind"] == "ConfigMap"
    assert re.match(r'ConfigMap ".*" is invalid: ', status["message"])


async def test_create_with_generate_name_stamps_the_scenario_clock() -> None:
    scenario = load_scenario(SCENARIOS[0])
    async with KubeSandbox.from_scenario(scenario) as sandbox:
        with ApiClient(Configuration(host=sandbox.base_url)) as api_client:
            body = {"metadata": {"generateName": "note-"}, "data": {"k": "v"}}
            created = await to_thread(
                client.CoreV1Api(api_client).create_namespaced_config_map, "default", body
            )

    assert re.fullmatch(r"note-[a-z0-9]{5}", created.metadata.name)
    assert created.kind == "ConfigMap" and created.api_version == "v1"
    assert created.metadata.creation_timestamp == scenario.now


async def test_create_needs_an_existing_namespace(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        await to_thread(core.create_namespaced_config_map, "nowhere", config_map("settings"))

    assert status_of(caught.value)["message"] == 'namespaces "nowhere" not found'


async def test_dry_run_create_and_delete_store_nothing(
    sandbox: KubeSandbox, core: client.CoreV1Api
) -> None:
    created = await to_thread(
        core.create_namespaced_config_map, "shop", config_map("dry"), dry_run="All"
    )
    deleted = await to_thread(core.delete_namespaced_pod, "web-1", "shop", dry_run="All")

    assert created.metadata.name == "dry" and created.metadata.resource_version is None
    assert sandbox.get_object("ConfigMap", "shop", "dry") is None
    assert deleted.metadata.name == "web-1"
    assert sandbox.get_object("Pod", "shop", "web-1") is not None


async def test_delete_then_not_found(api: ApiClient, core: client.CoreV1Api) -> None:
    apps = client.AppsV1Api(api)

    deleted_pod = await to_thread(core.delete_namespaced_pod, "web-1", "shop")
    status = await to_thread(apps.delete_namespaced_deployment, "web", "shop")
    with pytest.raises(ApiException) as caught:
        await to_thread(apps.delete_namespaced_deployment, "web", "shop")

    assert isinstance(deleted_pod, client.V1Pod) and deleted_pod.metadata.name == "web-1"
    # The client leaves this answer untyped: a Status, with the deleted object's identity.
    assert status["status"] == "Success"
    assert status["details"]["name"] == "web" and status["details"]["group"] == "apps"
    assert status["details"]["kind"] == "deployments" and status["details"]["uid"]
    assert caught.value.status == 404
    assert names((await to_thread(core.list_namespaced_pod, "shop")).items) == ["db-0", "web-2"]


async def test_an_empty_patch_is_a_no_op(core: client.CoreV1Api) -> None:
    before = await to_thread(core.read_namespaced_pod, "web-1", "shop")
    patched = await to_thread(core.patch_namespaced_pod, "web-1", "shop", {"metadata": {}})

    # PATCH is served (tests/sandbox/test_kube_writes.py); one that changes nothing is not
    # written, so the resourceVersion stays, as on a real API server.
    assert patched.metadata.resource_version == before.metadata.resource_version


# --- discovery and raw HTTP -------------------------------------------------------------------


async def test_discovery(api: ApiClient) -> None:
    version = await to_thread(client.VersionApi(api).get_code)
    core_versions = await to_thread(client.CoreApi(api).get_api_versions)
    groups = await to_thread(client.ApisApi(api).get_api_versions)
    core_resources = await to_thread(client.CoreV1Api(api).get_api_resources)
    apps_resources = await to_thread(client.AppsV1Api(api).get_api_resources)

    assert version.git_version.startswith("v1.30.")
    assert core_versions.versions == ["v1"]
    by_name = {group.name: group for group in groups.groups}
    assert by_name["autoscaling"].preferred_version.version == "v2"
    assert by_name["cert-manager.io"].versions[0].group_version == "cert-manager.io/v1"
    pods = next(r for r in core_resources.resources if r.name == "pods")
    assert (pods.kind, pods.namespaced, "list" in pods.verbs) == ("Pod", True, True)
    assert {"pods/log", "nodes"} <= {r.name for r in core_resources.resources}
    scale = next(r for r in apps_resources.resources if r.name == "deployments/scale")
    assert (scale.group, scale.version, scale.kind) == ("autoscaling", "v1", "Scale")


@pytest.mark.parametrize(
    ("method", "path", "code", "reason"),
    [
        ("GET", "/apis/example.com/v1/widgets", 404, "NotFound"),
        ("GET", "/api/v2/pods", 404, "NotFound"),
        ("GET", "/api/v1/namespaces/shop/nodes", 404, "NotFound"),
        ("GET", "/api/v1/pods/web-1", 404, "NotFound"),
        ("GET", "/api/v1/namespaces/shop/pods/web-1/exec", 404, "NotFound"),
        ("GET", "/api/v1/pods?watch=true", 400, "BadRequest"),
        ("PUT", "/api/v1/namespaces/shop/pods", 405, "MethodNotAllowed"),
        ("PATCH", "/api/v1/namespaces/shop/pods/web-1/log", 405, "MethodNotAllowed"),
        ("DELETE", "/apis/apps/v1/namespaces/shop/deployments/web/scale", 405, "MethodNotAllowed"),
        ("POST", "/api/v1/pods", 405, "MethodNotAllowed"),
        ("POST", "/version", 405, "MethodNotAllowed"),
    ],
)
async def test_paths_the_server_does_not_serve(
    sandbox: KubeSandbox, method: str, path: str, code: int, reason: str
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, sandbox.base_url + path) as response:
            body = await response.json()

    assert (response.status, body["kind"], body["reason"], body["code"]) == (
        code,
        "Status",
        reason,
        code,
    )
    if path.startswith("/apis/example.com"):
        assert body["message"] == "the server could not find the requested resource"


async def test_namespace_and_status_subresource_paths(sandbox: KubeSandbox) -> None:
    async with aiohttp.ClientSession(base_url=sandbox.base_url) as session:
        async with session.get("/api/v1/namespaces/shop") as response:
            namespace = await response.json()
        async with session.get("/api/v1/namespaces/shop/status") as response:
            namespace_status = await response.json()
        async with session.get("/api/v1/nodes/node-b/status") as response:
            node = await response.json()

    assert namespace["kind"] == namespace_status["kind"] == "Namespace"
    assert node["spec"]["unschedulable"] is True


# --- fault injection and helpers --------------------------------------------------------------


async def test_fail_next_answers_injected_errors(
    sandbox: KubeSandbox, core: client.CoreV1Api
) -> None:
    sandbox.fail_next(2)
    errors = []
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            await to_thread(core.list_namespaced_pod, "shop")
        errors.append(caught.value)
    sandbox.fail_next(1, status=503)
    with pytest.raises(ApiException) as unavailable:
        await to_thread(core.list_namespaced_pod, "shop")

    assert [e.status for e in errors] == [500, 500]
    assert status_of(errors[0])["reason"] == "InternalError"
    assert status_of(unavailable.value)["reason"] == "ServiceUnavailable"
    assert len((await to_thread(core.list_namespaced_pod, "shop")).items) == 3


async def test_set_delay_makes_the_client_time_out(sandbox: KubeSandbox) -> None:
    config = Configuration(host=sandbox.base_url)
    config.retries = False
    sandbox.set_delay(5)
    started = time.monotonic()
    with ApiClient(config) as api_client:
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            await to_thread(
                client.CoreV1Api(api_client).list_namespaced_pod, "shop", _request_timeout=0.2
            )

    assert time.monotonic() - started < 2
    assert sandbox.requests == [("GET", "/api/v1/namespaces/shop/pods")]


async def test_requests_are_recorded(sandbox: KubeSandbox, core: client.CoreV1Api) -> None:
    await to_thread(core.list_namespaced_pod, "shop", label_selector="app=web")
    await to_thread(core.read_namespaced_pod_log, "web-1", "shop", tail_lines=1)

    assert sandbox.requests == [
        ("GET", "/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb"),
        ("GET", "/api/v1/namespaces/shop/pods/web-1/log?tailLines=1"),
    ]


async def test_add_and_get_object(sandbox: KubeSandbox, core: client.CoreV1Api) -> None:
    added = sandbox.add_object(pod("late", "staging", {"app": "late"}))

    listed = await to_thread(core.list_namespaced_pod, "staging")

    assert names(listed.items) == ["late"]
    assert added["metadata"]["resourceVersion"] == listed.items[0].metadata.resource_version
    assert sandbox.get_object("Namespace", None, "staging") is not None
    assert sandbox.get_object("Pod", "staging", "late") == added
    assert sandbox.get_object("Pod", "shop", "late") is None
    assert sandbox.get_object("Certificate", "shop", "web-tls", api_version="cert-manager.io/v1")


async def test_sandbox_binds_loopback_only() -> None:
    sandbox = KubeSandbox([])

    with pytest.raises(ValueError, match="loopback"):
        await sandbox.start(host="0.0.0.0")
    with pytest.raises(RuntimeError):
        sandbox.base_url  # noqa: B018 - the property is what is tested


# --- the example scenarios --------------------------------------------------------------------

_APIS = {
    "": client.CoreV1Api,
    "apps": client.AppsV1Api,
    "batch": client.BatchV1Api,
    "autoscaling": client.AutoscalingV2Api,
    "storage.k8s.io": client.StorageV1Api,
    "networking.k8s.io": client.NetworkingV1Api,
    "policy": client.PolicyV1Api,
}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
async def test_example_scenarios_are_served(path: Path) -> None:
    scenario = load_scenario(path)
    async with KubeSandbox.from_scenario(scenario) as sandbox:
        with ApiClient(Configuration(host=sandbox.base_url)) as api_client:
            for obj in scenario.objects:
                group = obj["apiVersion"].rpartition("/")[0]
                snake = re.sub(r"(?<!^)(?=[A-Z])", "_", obj["kind"]).lower()
                api = _APIS[group](api_client)
                meta = obj["metadata"]
                if "namespace" in meta:
                    read = getattr(api, f"read_namespaced_{snake}")
                    found = await to_thread(read, meta["name"], meta["namespace"])
                else:
                    found = await to_thread(getattr(api, f"read_{snake}"), meta["name"])
                assert found.metadata.name == meta["name"]
            core = client.CoreV1Api(api_client)
            for key, streams in scenario.logs.items():
                if not (streams["current"] or streams["previous"]):
                    continue  # an empty log is served as a 400 like the real API: not this test
                namespace, name, container = key.split("/")
                log = await to_thread(
                    core.read_namespaced_pod_log,
                    name,
                    namespace,
                    container=container,
                    previous=not streams["current"],
                )
                assert log == (streams["current"] or streams["previous"])
