"""Writes against the sandbox API server, driven by the official ``kubernetes`` client.

Patches of all three kinds, replace with optimistic concurrency, dry runs, the scale and
status subresources, validation, and the simulated controllers that roll workloads out
afterwards. The client is synchronous, so every call runs in a worker thread while the
test's event loop serves it; ``sandbox.settle()`` waits for the simulated controllers.
"""

from __future__ import annotations

import json
from asyncio import to_thread
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from sandbox.kube import KubeSandbox
from sandbox.scenario import load_scenario

SCENARIOS = Path(__file__).parents[2] / "scenarios"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"


def node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": f"10.0.0.{len(name)}"}],
        },
    }


def template(app: str, image: str) -> dict[str, Any]:
    containers = [
        {
            "name": app,
            "image": image,
            "env": [{"name": "MODE", "value": "prod"}, {"name": "CACHE", "value": "on"}],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "resources": {"limits": {"memory": "256Mi"}, "requests": {"memory": "128Mi"}},
        },
        {"name": "proxy", "image": "envoy:1.29"},
    ]
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": containers}}


def workload(kind: str, name: str, replicas: int | None = 3, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, f"registry.example.com/{name}:1.0"),
            **spec,
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


STATIC: list[dict[str, Any]] = [
    node("node-a"),
    node("node-b"),
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "shop", "generation": 1},
        "spec": {
            "schedule": "0 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
        },
    },
    {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "cart", "namespace": "shop", "generation": 1},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart"},
            "minReplicas": 2,
            "maxReplicas": 4,
        },
        "status": {"currentReplicas": 4, "desiredReplicas": 4},
    },
    {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "web-tls", "namespace": "shop"},
        "spec": {"secretName": "web-tls", "dnsNames": ["a.example.com"]},
    },
]


@pytest.fixture
async def sandbox() -> AsyncIterator[KubeSandbox]:
    async with KubeSandbox(STATIC) as server:
        yield server


@pytest.fixture
def api(sandbox: KubeSandbox) -> Iterator[ApiClient]:
    with ApiClient(Configuration(host=sandbox.base_url)) as api_client:
        yield api_client


@pytest.fixture
def apps(api: ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture
def core(api: ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
async def cart(sandbox: KubeSandbox, apps: client.AppsV1Api) -> client.V1Deployment:
    """A Deployment created through the API and rolled out by the simulated controller."""
    await to_thread(apps.create_namespaced_deployment, "shop", workload("Deployment", "cart"))
    await sandbox.settle()
    deployment: client.V1Deployment = await to_thread(
        apps.read_namespaced_deployment, "cart", "shop"
    )
    return deployment


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


def containers(deployment: client.V1Deployment) -> dict[str, client.V1Container]:
    return {c.name: c for c in deployment.spec.template.spec.containers}


async def pods_of(core: client.CoreV1Api, app: str) -> list[client.V1Pod]:
    listed = await to_thread(core.list_namespaced_pod, "shop", label_selector=f"app={app}")
    items: list[client.V1Pod] = listed.items
    return items


def restart_patch(when: str) -> dict[str, Any]:
    """What ``kubectl rollout restart`` sends (a strategic merge patch)."""
    annotations = {RESTARTED_AT: when}
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def condition(deployment: client.V1Deployment, kind: str) -> client.V1DeploymentCondition:
    return next(c for c in deployment.status.conditions if c.type == kind)


def rollout_undo(api: ApiClient, name: str, to_revision: int) -> None:
    """What ``kubectl rollout undo --to-revision`` does, client-side, with kubectl 1.x."""
    apps = client.AppsV1Api(api)
    deployment = apps.read_namespaced_deployment(name, "shop")
    listed = apps.list_namespaced_replica_set("shop", label_selector=f"app={name}")
    owned = [
        rs
        for rs in listed.items
        if any(
            ref.controller and ref.uid == deployment.metadata.uid
            for ref in rs.metadata.owner_references or []
        )
    ]
    chosen = next(rs for rs in owned if rs.metadata.annotations[REVISION] == str(to_revision))
    restored = api.sanitize_for_serialization(chosen.spec.template)
    del restored["metadata"]["labels"]["pod-template-hash"]
    skip = {
        REVISION,
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
    }
    annotations = {
        k: v for k, v in (deployment.metadata.annotations or {}).items() if k not in skip
    }
    patch = [
        {"op": "replace", "path": "/spec/template", "value": restored},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    apps.patch_namespaced_deployment(name, "shop", patch)


# --- patch types ------------------------------------------------------------------------------


async def test_strategic_merge_merges_containers_and_env_by_name(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    patch = {
        "metadata": {"labels": {"app": None, "team": "payments"}},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "cart",
                            "image": "registry.example.com/cart:1.1",
                            "env": [
                                {"name": "CACHE", "$patch": "delete"},
                                {"name": "NEW", "value": "1"},
                            ],
                            "resources": {"limits": {"memory": "512Mi"}},
                        }
                    ]
                }
            }
        },
    }
    patched = await to_thread(apps.patch_namespaced_deployment, "cart", "shop", patch)

    by_name = containers(patched)
    assert list(by_name) == ["cart", "proxy"]  # merged by name: the sidecar is untouched
    assert by_name["cart"].image == "registry.example.com/cart:1.1"
    assert by_name["proxy"].image == "envoy:1.29"
    assert [(e.name, e.value) for e in by_name["cart"].env] == [("MODE", "prod"), ("NEW", "1")]
    assert by_name["cart"].ports[0].container_port == 8080
    assert by_name["cart"].resources.limits == {"memory": "512Mi"}
    assert by_name["cart"].resources.requests == {"memory": "128Mi"}
    assert patched.metadata.labels == {"team": "payments"}  # null deleted the key
    assert patched.metadata.generation == cart.metadata.generation + 1


async def test_strategic_merge_directives_replace_and_delete(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    patch = {
        "spec": {
            "template": {
                "metadata": {"labels": {"$patch": "replace", "app": "cart", "tier": "web"}},
                "spec": {"containers": [{"name": "proxy", "$patch": "delete"}]},
            },
        }
    }
    patched = await to_thread(apps.patch_namespaced_deployment, "cart", "shop", patch)

    assert list(containers(patched)) == ["cart"]
    assert patched.spec.template.metadata.labels == {"app": "cart", "tier": "web"}


async def test_merge_patch_replaces_lists_whole(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "cart", "image": "c:2"}]}}}}
    patched = await to_thread(
        apps.patch_namespaced_deployment,
        "cart",
        "shop",
        patch,
        _content_type="application/merge-patch+json",
    )

    only = containers(patched)
    assert list(only) == ["cart"] and only["cart"].env is None and only["cart"].image == "c:2"


async def test_json_patch_applies_operations_in_order(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    operations = [  # a list body makes the client send application/json-patch+json
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/annotations/owner", "value": "team-a"},
        {"op": "copy", "from": "/metadata/annotations/owner", "path": "/metadata/labels/owner"},
        {"op": "remove", "path": "/spec/template/spec/containers/1"},
        {"op": "move", "from": "/metadata/labels/owner", "path": "/metadata/labels/team"},
    ]
    patched = await to_thread(apps.patch_namespaced_deployment, "cart", "shop", operations)

    assert patched.spec.replicas == 5
    assert patched.metadata.annotations["owner"] == "team-a"
    assert patched.metadata.labels == {"app": "cart", "team": "team-a"}
    assert list(containers(patched)) == ["cart"]


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "test", "path": "/spec/replicas", "value": 7}],
        [{"op": "test", "path": "/spec/paused", "value": False}],
        [{"op": "replace", "path": "/spec/nope", "value": 1}],
        [{"op": "remove", "path": "/spec/template/spec/containers/9"}],
        [{"op": "add", "path": "/spec/missing/deeper", "value": 1}],
        [{"op": "frobnicate", "path": "/spec/replicas"}],
    ],
)
async def test_json_patch_that_does_not_apply_is_unprocessable(
    sandbox: KubeSandbox,
    apps: client.AppsV1Api,
    cart: client.V1Deployment,
    operations: list[dict[str, Any]],
) -> None:
    with pytest.raises(ApiException) as caught:
        await to_thread(apps.patch_namespaced_deployment, "cart", "shop", operations)

    assert caught.value.status == 422
    # The real server drops the patch library's message: every failure reads the same.
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server rejected our request due to an error in our request",
        "reason": "Invalid",
        "details": {},
        "code": 422,
    }
    stored = sandbox.get_object("Deployment", "shop", "cart")
    assert (
        stored is not None
        and stored["metadata"]["resourceVersion"] == cart.metadata.resource_version
    )


async def test_unsupported_patch_content_types_are_415(
    api: ApiClient, apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    with pytest.raises(ApiException) as plain:
        await to_thread(
            apps.patch_namespaced_deployment,
            "cart",
            "shop",
            {"spec": {"replicas": 1}},
            _content_type="application/yaml",  # a YAML body is no patch type
        )
    with pytest.raises(ApiException) as custom:  # custom resources take no strategic merge
        await to_thread(
            client.CustomObjectsApi(api).patch_namespaced_custom_object,
            "cert-manager.io",
            "v1",
            "shop",
            "certificates",
            "web-tls",
            {"spec": {"secretName": "other"}},
            _content_type="application/strategic-merge-patch+json",
        )

    assert (plain.value.status, status_of(plain.value)["reason"]) == (415, "UnsupportedMediaType")
    assert status_of(plain.value)["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml"
    )
    assert custom.value.status == 415
    assert "strategic" not in status_of(custom.value)["message"]


async def test_custom_resources_take_merge_patches(api: ApiClient) -> None:
    objects = client.CustomObjectsApi(api)
    patched = await to_thread(
        objects.patch_namespaced_custom_object,
        "cert-manager.io",
        "v1",
        "shop",
        "certificates",
        "web-tls",
        {"spec": {"dnsNames": ["b.example.com"]}},
    )

    assert patched["spec"] == {"secretName": "web-tls", "dnsNames": ["b.example.com"]}
    assert patched["metadata"]["generation"] == 2


async def test_strategic_list_element_without_merge_key_is_a_server_error(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"image": "x:1"}]}}}}
    with pytest.raises(ApiException) as caught:
        await to_thread(apps.patch_namespaced_deployment, "cart", "shop", patch)

    assert caught.value.status == 500
    assert status_of(caught.value)["message"] == (
        "map: map[image:x:1] does not contain declared merge key: name"
    )


async def test_server_side_apply_needs_a_field_manager_and_merges(
    api: ApiClient, core: client.CoreV1Api
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "flags"},
        "data": {"a": "1"},
    }
    apply_type = "application/apply-patch+yaml"
    with pytest.raises(ApiException) as missing:
        await to_thread(
            core.patch_namespaced_config_map, "flags", "shop", body, _content_type=apply_type
        )
    created = await to_thread(
        core.patch_namespaced_config_map,
        "flags",
        "shop",
        body,
        field_manager="bot",
        _content_type=apply_type,
    )
    body["data"] = {"b": "2"}
    updated = await to_thread(
        core.patch_namespaced_config_map,
        "flags",
        "shop",
        body,
        field_manager="bot",
        _content_type=apply_type,
    )

    assert missing.value.status == 422
    assert status_of(missing.value)["details"]["causes"][0]["field"] == "fieldManager"
    assert created.data == {"a": "1"}
    assert updated.data == {"a": "1", "b": "2"}


# --- replace and optimistic concurrency ------------------------------------------------------


async def test_replace_needs_the_current_resource_version(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    stale = cart
    fresh = await to_thread(
        apps.patch_namespaced_deployment, "cart", "shop", {"metadata": {"labels": {"v": "2"}}}
    )
    stale.spec.replicas = 1
    with pytest.raises(ApiException) as caught:
        await to_thread(apps.replace_namespaced_deployment, "cart", "shop", stale)
    fresh.spec.replicas = 2
    replaced = await to_thread(apps.replace_namespaced_deployment, "cart", "shop", fresh)

    assert caught.value.status == 409
    status = status_of(caught.value)
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on deployments.apps "cart": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    assert status["details"] == {"name": "cart", "group": "apps", "kind": "deployments"}
    assert replaced.spec.replicas == 2
    assert int(replaced.metadata.resource_version) > int(fresh.metadata.resource_version)
    assert replaced.metadata.generation == fresh.metadata.generation + 1


async def test_patch_carrying_a_stale_resource_version_conflicts(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    await to_thread(apps.patch_namespaced_deployment, "cart", "shop", {"spec": {"replicas": 4}})
    body = {
        "metadata": {"resourceVersion": cart.metadata.resource_version},
        "spec": {"replicas": 1},
    }
    with pytest.raises(ApiException) as caught:
        await to_thread(
            apps.patch_namespaced_deployment,
            "cart",
            "shop",
            body,
            _content_type="application/merge-patch+json",
        )

    assert caught.value.status == 409


async def test_replace_without_resource_version(api: ApiClient, core: client.CoreV1Api) -> None:
    # Built-in kinds allow unconditional updates; custom resources do not.
    config = {"metadata": {"name": "flags"}, "data": {"a": "1"}}
    await to_thread(core.create_namespaced_config_map, "shop", config)
    config["data"] = {"a": "2"}
    replaced = await to_thread(core.replace_namespaced_config_map, "flags", "shop", config)
    certificate = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "web-tls"},
        "spec": {"secretName": "x"},
    }
    with pytest.raises(ApiException) as caught:
        await to_thread(
            client.CustomObjectsApi(api).replace_namespaced_custom_object,
            "cert-manager.io",
            "v1",
            "shop",
            "certificates",
            "web-tls",
            certificate,
        )

    assert replaced.data == {"a": "2"}
    assert caught.value.status == 422
    assert status_of(caught.value)["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "message": "Invalid value: 0x0: must be specified for an update",
        "field": "metadata.resourceVersion",
    }


async def test_name_in_body_must_match_the_url(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    cart.metadata.name = "other"
    with pytest.raises(ApiException) as put:
        await to_thread(apps.replace_namespaced_deployment, "cart", "shop", cart)
    with pytest.raises(ApiException) as patched:
        await to_thread(
            apps.patch_namespaced_deployment, "cart", "shop", {"metadata": {"name": "renamed"}}
        )

    assert (put.value.status, status_of(put.value)["reason"]) == (400, "BadRequest")
    assert status_of(put.value)["message"] == (
        "the name of the object (other) does not match the name on the URL (cart)"
    )
    assert patched.value.status == 400


# --- validation ------------------------------------------------------------------------------


async def test_immutable_fields_are_invalid(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    new_selector = {
        "spec": {
            "selector": {"matchLabels": {"app": "cart", "v": "2"}},
            "template": {"metadata": {"labels": {"v": "2"}}},
        }
    }
    with pytest.raises(ApiException) as selector:
        await to_thread(apps.patch_namespaced_deployment, "cart", "shop", new_selector)
    with pytest.raises(ApiException) as uid:
        await to_thread(
            apps.patch_namespaced_deployment,
            "cart",
            "shop",
            {"metadata": {"uid": "00000000-0000-0000-0000-000000000000"}},
        )

    status = status_of(selector.value)
    assert (selector.value.status, status["reason"]) == (422, "Invalid")
    assert status["message"].startswith('Deployment.apps "cart" is invalid: spec.selector: ')
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":'
            '"cart", "v":"2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
            "field is immutable",
            "field": "spec.selector",
        }
    ]
    assert status_of(uid.value)["details"]["causes"][0]["field"] == "metadata.uid"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"spec": {"replicas": -1}}, "spec.replicas"),
        (
            {"spec": {"template": {"metadata": {"labels": {"app": "shop"}}}}},
            "spec.template.metadata.labels",
        ),
        (
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "cart", "resources": {"requests": {"memory": "1Gi"}}}
                            ]
                        }
                    }
                }
            },
            "spec.template.spec.containers[0].resources.requests",
        ),
    ],
)
async def test_invalid_specs_are_rejected(
    apps: client.AppsV1Api, cart: client.V1Deployment, patch: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as caught:
        await to_thread(apps.patch_namespaced_deployment, "cart", "shop", patch)

    assert caught.value.status == 422
    assert [c["field"] for c in status_of(caught.value)["details"]["causes"]] == [field]


# --- generation and the status/spec split ----------------------------------------------------


async def test_generation_follows_spec_changes_only(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    labelled = await to_thread(
        apps.patch_namespaced_deployment, "cart", "shop", {"metadata": {"labels": {"tier": "web"}}}
    )
    annotated = await to_thread(
        apps.patch_namespaced_deployment,
        "cart",
        "shop",
        {"metadata": {"annotations": {"note": "x"}}},
    )
    unchanged = await to_thread(
        apps.patch_namespaced_deployment,
        "cart",
        "shop",
        {"metadata": {"annotations": {"note": "x"}}},
    )
    scaled = await to_thread(
        apps.patch_namespaced_deployment,
        "cart",
        "shop",
        {"spec": {"replicas": 3, "minReadySeconds": 5}, "status": {"replicas": 99}},
    )

    assert cart.metadata.generation == 1
    assert labelled.metadata.generation == 1  # labels are not spec
    assert int(labelled.metadata.resource_version) > int(cart.metadata.resource_version)
    # Deployment annotations are copied to ReplicaSets, so they count as spec.
    assert annotated.metadata.generation == 2
    assert unchanged.metadata.resource_version == annotated.metadata.resource_version
    assert scaled.metadata.generation == 3
    assert scaled.status.replicas == 3  # a spec write leaves status alone


async def test_status_subresource_writes_status_only(
    apps: client.AppsV1Api, cart: client.V1Deployment
) -> None:
    patch = {
        "spec": {"replicas": 9},
        "metadata": {"labels": {"x": "y"}},
        "status": {"observedGeneration": 42},
    }
    patched = await to_thread(apps.patch_namespaced_deployment_status, "cart", "shop", patch)
    cart.status.ready_replicas = 1
    replaced = await to_thread(apps.replace_namespaced_deployment_status, "cart", "shop", patched)

    assert patched.status.observed_generation == 42
    assert patched.spec.replicas == 3 and patched.metadata.labels == {"app": "cart"}
    assert patched.metadata.generation == cart.metadata.generation
    assert replaced.status.observed_generation == 42


# --- dry run ---------------------------------------------------------------------------------


async def test_dry_run_validates_and_answers_without_storing(
    sandbox: KubeSandbox,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
    cart: client.V1Deployment,
) -> None:
    before = sandbox.get_object("Deployment", "shop", "cart")
    first_request = len(sandbox.requests)
    patched = await to_thread(
        apps.patch_namespaced_deployment, "cart", "shop", {"spec": {"replicas": 7}}, dry_run="All"
    )
    cart.spec.replicas = 8
    replaced = await to_thread(
        apps.replace_namespaced_deployment, "cart", "shop", cart, dry_run="All"
    )
    scaled = await to_thread(
        apps.patch_namespaced_deployment_scale,
        "cart",
        "shop",
        {"spec": {"replicas": 6}},
        dry_run="All",
    )
    victim = (await pods_of(core, "cart"))[0].metadata.name
    deleted = await to_thread(core.delete_namespaced_pod, victim, "shop", dry_run="All")
    with pytest.raises(ApiException) as invalid:
        await to_thread(
            apps.patch_namespaced_deployment,
            "cart",
            "shop",
            {"spec": {"replicas": -1}},
            dry_run="All",
        )
    real = await to_thread(
        apps.patch_namespaced_deployment, "cart", "shop", {"spec": {"replicas": 7}}
    )
    await sandbox.settle()

    assert (patched.spec.replicas, replaced.spec.replicas, scaled.spec.replicas) == (7, 8, 6)
    assert patched.metadata.generation == 2
    assert patched.metadata.resource_version == cart.metadata.resource_version
    assert deleted.metadata.name == victim
    assert invalid.value.status == 422
    assert before is not None and before["spec"]["replicas"] == 3
    assert sandbox.get_object("Pod", "shop", victim) is not None
    assert real.metadata.generation == 2
    writes = [r for r in sandbox.requests[first_request:] if r[0] != "GET"]
    assert writes[0] == ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/cart?dryRun=All")
    assert writes[-1] == ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/cart")
    assert len(await pods_of(core, "cart")) == 7


@pytest.mark.parametrize("verb", ["patch", "delete", "create"])
async def test_invalid_dry_run_value_is_rejected(core: client.CoreV1Api, verb: str) -> None:
    config = {"metadata": {"name": "flags"}, "data": {"a": "1"}}
    await to_thread(core.create_namespaced_config_map, "shop", config)
    calls = {
        "patch": (core.patch_namespaced_config_map, ("flags", "shop", {"data": {}})),
        "delete": (core.delete_namespaced_config_map, ("flags", "shop")),
        "create": (core.create_namespaced_config_map, ("shop", {"metadata": {"name": "x"}})),
    }
    method, args = calls[verb]
    with pytest.raises(ApiException) as caught:
        await to_thread(method, *args, dry_run="Everything")

    # kube-apiserver validates the options object: a 422 naming it, not a 400.
    kind = {"patch": "PatchOptions", "delete": "DeleteOptions", "create": "CreateOptions"}[verb]
    assert caught.value.status == 422
    status = status_of(caught.value)
    assert status["message"] == (
        f'{kind}.meta.k8s.io "" is invalid: dryRun: Unsupported value: '
        '[]string{"Everything"}: supported values: "All"'
    )
    assert status["details"]["causes"][0]["reason"] == "FieldValueNotSupported"


# --- the scale subresource -------------------------------------------------------------------


async def test_scale_subresource_of_deployments_statefulsets_and_replicasets(
    sandbox: KubeSandbox, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    await to_thread(apps.create_namespaced_deployment, "shop", workload("Deployment", "cart", 2))
    await to_thread(
        apps.create_namespaced_stateful_set,
        "shop",
        workload("StatefulSet", "db", 1, serviceName="db"),
    )
    await to_thread(apps.create_namespaced_replica_set, "shop", workload("ReplicaSet", "legacy", 1))
    await sandbox.settle()

    scale = await to_thread(apps.read_namespaced_deployment_scale, "cart", "shop")
    scale.spec.replicas = 4
    replaced = await to_thread(apps.replace_namespaced_deployment_scale, "cart", "shop", scale)
    scale.spec.replicas = 1  # the resourceVersion is stale now
    with pytest.raises(ApiException) as conflict:
        await to_thread(apps.replace_namespaced_deployment_scale, "cart", "shop", scale)
    db = await to_thread(
        apps.patch_namespaced_stateful_set_scale, "db", "shop", {"spec": {"replicas": 3}}
    )
    legacy = await to_thread(
        apps.patch_namespaced_replica_set_scale,
        "legacy",
        "shop",
        [{"op": "replace", "path": "/spec/replicas", "value": 2}],
    )
    with pytest.raises(ApiException) as negative:
        await to_thread(
            apps.patch_namespaced_deployment_scale, "cart", "shop", {"spec": {"replicas": -2}}
        )
    await sandbox.settle()

    assert (scale.kind, scale.api_version, scale.status.selector) == (
        "Scale",
        "autoscaling/v1",
        "app=cart",
    )
    assert replaced.spec.replicas == 4 and conflict.value.status == 409
    assert (db.spec.replicas, legacy.spec.replicas) == (3, 2)
    assert status_of(negative.value)["message"] == (
        'Scale.autoscaling "cart" is invalid: spec.replicas: Invalid value: -2: '
        "must be greater than or equal to 0"
    )
    deployment = await to_thread(apps.read_namespaced_deployment, "cart", "shop")
    assert deployment.spec.replicas == 4 and deployment.status.ready_replicas == 4
    assert sorted(p.metadata.name for p in await pods_of(core, "db")) == ["db-0", "db-1", "db-2"]
    assert len(await pods_of(core, "legacy")) == 2


# --- rollouts --------------------------------------------------------------------------------


async def test_rollout_restart_rolls_a_new_replica_set_out(
    sandbox: KubeSandbox,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
    cart: client.V1Deployment,
) -> None:
    old_pods = {p.metadata.name for p in await pods_of(core, "cart")}
    sandbox.script_rollout(
        "shop", "Deployment", "cart", outcome="healthy", steps=3, step_seconds=0.02
    )
    patched = await to_thread(
        apps.patch_namespaced_deployment, "cart", "shop", restart_patch("2026-11-20T10:20:00Z")
    )
    await sandbox.settle()

    deployment = await to_thread(apps.read_namespaced_deployment, "cart", "shop")
    sets = await to_thread(apps.list_namespaced_replica_set, "shop", label_selector="app=cart")
    pods = await pods_of(core, "cart")
    revisions = {rs.metadata.annotations[REVISION]: rs for rs in sets.items}
    assert cart.metadata.annotations[REVISION] == "1"
    assert patched.metadata.generation == 2 and deployment.metadata.annotations[REVISION] == "2"
    assert sorted(revisions) == ["1", "2"]
    new, old = revisions["2"], revisions["1"]
    assert new.metadata.name == f"cart-{new.metadata.labels['pod-template-hash']}"
    assert new.metadata.owner_references[0].uid == cart.metadata.uid
    assert new.spec.template.metadata.annotations[RESTARTED_AT] == "2026-11-20T10:20:00Z"
    assert (old.spec.replicas, new.spec.replicas, new.status.ready_replicas) == (0, 3, 3)
    assert len(pods) == 3 and not old_pods & {p.metadata.name for p in pods}
    assert all(p.metadata.name.startswith(new.metadata.name + "-") for p in pods)
    assert all(p.status.phase == "Running" and p.status.container_statuses[0].ready for p in pods)
    status = deployment.status
    assert status.observed_generation == 2
    assert (
        status.replicas,
        status.updated_replicas,
        status.ready_replicas,
        status.available_replicas,
        status.unavailable_replicas,
    ) == (3, 3, 3, 3, None)
    assert condition(deployment, "Progressing").reason == "NewReplicaSetAvailable"
    assert condition(deployment, "Available").status == "True"
    events = await to_thread(
        core.list_namespaced_event, "shop", field_selector="involvedObject.name=cart"
    )
    assert f"Scaled up replica set {new.metadata.name} from 0 to 1" in {
        e.message for e in events.items
    }


async def test_broken_rollout_then_undo(
    sandbox: KubeSandbox,
    api: ApiClient,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
) -> None:
    await to_thread(apps.create_namespaced_deployment, "shop", workload("Deployment", "web", 4))
    await sandbox.settle()
    sandbox.script_rollout(
        "shop", "Deployment", "web", outcome="broken", steps=3, step_seconds=0.02
    )
    bad_image = [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": "registry.example.com/web:2.0-bad",
        }
    ]
    await to_thread(apps.patch_namespaced_deployment, "web", "shop", bad_image)
    await sandbox.settle()

    broken = await to_thread(apps.read_namespaced_deployment, "web", "shop")
    crashing = [
        p for p in await pods_of(core, "web") if p.spec.containers[0].image.endswith("2.0-bad")
    ]
    assert condition(broken, "Progressing").status == "False"
    assert condition(broken, "Progressing").reason == "ProgressDeadlineExceeded"
    # maxUnavailable 25% of 4: one old pod went, so one replica short, never restored.
    assert (broken.status.ready_replicas, broken.status.unavailable_replicas) == (3, 1)
    assert broken.status.updated_replicas == 2 and len(crashing) == 2
    for pod in crashing:
        state = pod.status.container_statuses[0]
        assert state.state.waiting.reason == "CrashLoopBackOff" and not state.ready
        assert state.restart_count == 3 and state.last_state.terminated.exit_code == 1

    await to_thread(rollout_undo, api, "web", 1)
    await sandbox.settle()

    restored = await to_thread(apps.read_namespaced_deployment, "web", "shop")
    pods = await pods_of(core, "web")
    sets = await to_thread(apps.list_namespaced_replica_set, "shop", label_selector="app=web")
    by_revision = {rs.metadata.annotations[REVISION]: rs for rs in sets.items}
    assert restored.metadata.annotations[REVISION] == "3"
    assert sorted(by_revision) == ["2", "3"]  # revision 1's ReplicaSet is revision 3 now
    assert by_revision["3"].metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert by_revision["2"].spec.replicas == 0
    assert condition(restored, "Progressing").reason == "NewReplicaSetAvailable"
    assert restored.status.ready_replicas == 4 and restored.status.unavailable_replicas is None
    assert len(pods) == 4 and all(p.status.container_statuses[0].ready for p in pods)


async def test_broken_recreate_rollout_is_unavailable(
    sandbox: KubeSandbox, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    body = workload("Deployment", "api", 2, strategy={"type": "Recreate"})
    await to_thread(apps.create_namespaced_deployment, "shop", body)
    await sandbox.settle()
    sandbox.script_rollout(
        "shop", "Deployment", "api", outcome="broken", steps=2, step_seconds=0.01
    )
    await to_thread(apps.patch_namespaced_deployment, "api", "shop", restart_patch("now"))
    await sandbox.settle()

    deployment = await to_thread(apps.read_namespaced_deployment, "api", "shop")
    assert condition(deployment, "Available").status == "False"
    assert condition(deployment, "Available").reason == "MinimumReplicasUnavailable"
    assert deployment.status.ready_replicas is None
    waiting = [
        p.status.container_statuses[0].state.waiting.reason for p in await pods_of(core, "api")
    ]
    assert waiting == ["CrashLoopBackOff", "CrashLoopBackOff"]


async def test_deleted_pod_is_replaced_by_its_replica_set(
    sandbox: KubeSandbox, core: client.CoreV1Api, cart: client.V1Deployment
) -> None:
    before = {p.metadata.name for p in await pods_of(core, "cart")}
    victim = sorted(before)[0]
    await to_thread(core.delete_namespaced_pod, victim, "shop")
    await sandbox.settle()

    after = {p.metadata.name for p in await pods_of(core, "cart")}
    assert len(after) == 3 and victim not in after
    (replacement,) = after - before
    assert replacement.rsplit("-", 1)[0] == victim.rsplit("-", 1)[0]
    pod = await to_thread(core.read_namespaced_pod, replacement, "shop")
    assert pod.status.container_statuses[0].ready


async def test_statefulset_and_daemonset_roll_pod_by_pod(
    sandbox: KubeSandbox, apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    await to_thread(
        apps.create_namespaced_stateful_set,
        "shop",
        workload("StatefulSet", "db", 2, serviceName="db"),
    )
    await to_thread(apps.create_namespaced_daemon_set, "shop", workload("DaemonSet", "agent", None))
    await sandbox.settle()
    first = {p.metadata.name: p.metadata.uid for p in await pods_of(core, "db")}
    image = {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "pg:16"}]}}}}
    await to_thread(apps.patch_namespaced_stateful_set, "db", "shop", image)
    agent = {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "a:2"}]}}}}
    await to_thread(apps.patch_namespaced_daemon_set, "agent", "shop", agent)
    await sandbox.settle()

    db = await to_thread(apps.read_namespaced_stateful_set, "db", "shop")
    pods = {p.metadata.name: p for p in await pods_of(core, "db")}
    assert sorted(pods) == ["db-0", "db-1"]  # same names, new pods
    assert all(pods[name].metadata.uid != uid for name, uid in first.items())
    assert {p.spec.containers[0].image for p in pods.values()} == {"pg:16"}
    assert db.status.current_revision == db.status.update_revision
    assert (db.status.updated_replicas, db.status.ready_replicas) == (2, 2)
    daemons = await pods_of(core, "agent")
    assert sorted(p.spec.node_name for p in daemons) == ["node-a", "node-b"]
    assert {p.spec.containers[0].image for p in daemons} == {"a:2"}
    daemon_set = await to_thread(apps.read_namespaced_daemon_set, "agent", "shop")
    assert daemon_set.status.updated_number_scheduled == daemon_set.status.number_ready == 2


async def test_scenario_deployment_restarts_onto_revision_8() -> None:
    scenario = load_scenario(SCENARIOS / "cart-oomkilled.yaml")
    async with KubeSandbox.from_scenario(scenario) as cluster:
        with ApiClient(Configuration(host=cluster.base_url)) as api_client:
            apps = client.AppsV1Api(api_client)
            await to_thread(
                apps.patch_namespaced_deployment,
                "cart",
                "shop",
                restart_patch("2026-11-20T10:16:00Z"),
            )
            await cluster.settle()
            deployment = await to_thread(apps.read_namespaced_deployment, "cart", "shop")
            pods = await to_thread(
                client.CoreV1Api(api_client).list_namespaced_pod, "shop", label_selector="app=cart"
            )

    assert deployment.metadata.annotations[REVISION] == "8"
    assert deployment.metadata.generation == 8 and deployment.status.observed_generation == 8
    assert condition(deployment, "Available").reason == "MinimumReplicasAvailable"
    assert len(pods.items) == 2 and all(p.status.container_statuses[0].ready for p in pods.items)
    # The scenario clock stamps what the controllers create.
    assert {p.metadata.creation_timestamp for p in pods.items} == {scenario.now}


async def test_scaling_a_scenario_deployment_keeps_its_revision() -> None:
    scenario = load_scenario(SCENARIOS / "cart-oomkilled.yaml")
    async with KubeSandbox.from_scenario(scenario) as cluster:
        with ApiClient(Configuration(host=cluster.base_url)) as api_client:
            apps = client.AppsV1Api(api_client)
            await to_thread(
                apps.patch_namespaced_deployment_scale, "cart", "shop", {"spec": {"replicas": 3}}
            )
            await cluster.settle()
            deployment = await to_thread(apps.read_namespaced_deployment, "cart", "shop")
            current = await to_thread(apps.read_namespaced_replica_set, "cart-7d9f8b6c4", "shop")

    assert deployment.metadata.annotations[REVISION] == "7"
    assert current.spec.replicas == 3
    # Two pods of the scenario still crash-loop (OOMKilled); the new one is ready.
    assert (deployment.status.replicas, deployment.status.ready_replicas) == (3, 1)


async def test_same_seed_same_simulation() -> None:
    names = []
    for _ in range(2):
        async with KubeSandbox(STATIC, seed=7) as cluster:
            with ApiClient(Configuration(host=cluster.base_url)) as api_client:
                apps = client.AppsV1Api(api_client)
                await to_thread(
                    apps.create_namespaced_deployment, "shop", workload("Deployment", "cart", 2)
                )
                await cluster.settle()
                listed = await to_thread(client.CoreV1Api(api_client).list_namespaced_pod, "shop")
        names.append([p.metadata.name for p in listed.items])

    assert names[0] == names[1] and len(names[0]) == 2


async def test_deleting_a_deployment_collects_its_replica_sets_and_pods(
    sandbox: KubeSandbox,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
    cart: client.V1Deployment,
) -> None:
    await to_thread(apps.delete_namespaced_deployment, "cart", "shop")
    await sandbox.settle()

    sets = await to_thread(apps.list_namespaced_replica_set, "shop")
    assert sets.items == [] and await pods_of(core, "cart") == []


async def test_bare_pod_is_scheduled_and_runs(sandbox: KubeSandbox, core: client.CoreV1Api) -> None:
    body = {
        "metadata": {"name": "debug"},
        "spec": {"containers": [{"name": "sh", "image": "busybox"}]},
        "status": {"phase": "Succeeded"},
    }
    created = await to_thread(core.create_namespaced_pod, "shop", body)
    await sandbox.settle()

    pod = await to_thread(core.read_namespaced_pod, "debug", "shop")
    assert created.status.phase == "Pending"  # a create does not set status
    assert pod.status.phase == "Running" and pod.spec.node_name in ("node-a", "node-b")
    assert pod.status.pod_ip and pod.status.container_statuses[0].ready


async def test_stopping_the_server_cancels_rollouts_in_flight() -> None:
    async with KubeSandbox(STATIC) as cluster:
        with ApiClient(Configuration(host=cluster.base_url)) as api_client:
            cluster.script_rollout("shop", "Deployment", "slow", steps=50, step_seconds=60)
            await to_thread(
                client.AppsV1Api(api_client).create_namespaced_deployment,
                "shop",
                workload("Deployment", "slow", 2),
            )
    # Leaving the block stopped the sandbox: its simulation tasks are gone, nothing pends.
    assert cluster.get_object("Deployment", "shop", "slow") is not None
    async with cluster:  # and it can serve again
        await cluster.settle()


# --- other remediations ----------------------------------------------------------------------


async def test_cordon_taints_the_node_and_new_pods_avoid_it(
    sandbox: KubeSandbox,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
    cart: client.V1Deployment,
) -> None:
    cordoned = await to_thread(core.patch_node, "node-a", {"spec": {"unschedulable": True}})
    await to_thread(apps.patch_namespaced_deployment, "cart", "shop", restart_patch("later"))
    await sandbox.settle()

    node_a = await to_thread(core.read_node, "node-a")
    listed = await to_thread(core.list_node, field_selector="spec.unschedulable=false")
    pods = await pods_of(core, "cart")
    assert cordoned.spec.unschedulable is True
    assert [(t.key, t.effect) for t in node_a.spec.taints] == [
        ("node.kubernetes.io/unschedulable", "NoSchedule")
    ]
    assert [n.metadata.name for n in listed.items] == ["node-b"]
    assert {p.spec.node_name for p in pods} == {"node-b"}

    await to_thread(core.patch_node, "node-a", {"spec": {"unschedulable": None}})
    await sandbox.settle()
    assert (await to_thread(core.read_node, "node-a")).spec.taints is None


async def test_pods_wait_for_a_schedulable_node(
    sandbox: KubeSandbox,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
    cart: client.V1Deployment,
) -> None:
    for name in ("node-a", "node-b"):
        await to_thread(core.patch_node, name, {"spec": {"unschedulable": True}})
    await to_thread(
        apps.patch_namespaced_deployment_scale, "cart", "shop", {"spec": {"replicas": 4}}
    )
    await sandbox.settle()

    pending = [p for p in await pods_of(core, "cart") if p.status.phase == "Pending"]
    assert len(pending) == 1 and pending[0].spec.node_name is None
    scheduled = pending[0].status.conditions[0]
    assert (scheduled.type, scheduled.status, scheduled.reason) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert scheduled.message.startswith(
        "0/2 nodes are available: 2 node(s) were unschedulable. preemption:"
    )

    await to_thread(core.patch_node, "node-b", {"spec": {"unschedulable": False}})
    await sandbox.settle()

    pod = await to_thread(core.read_namespaced_pod, pending[0].metadata.name, "shop")
    deployment = await to_thread(apps.read_namespaced_deployment, "cart", "shop")
    assert pod.spec.node_name == "node-b" and pod.status.phase == "Running"
    assert deployment.status.ready_replicas == 4


async def test_cronjob_suspend_and_hpa_max_replicas(api: ApiClient) -> None:
    batch = client.BatchV1Api(api)
    scaling = client.AutoscalingV2Api(api)

    suspended = await to_thread(
        batch.patch_namespaced_cron_job, "report", "shop", {"spec": {"suspend": True}}
    )
    raised = await to_thread(
        scaling.patch_namespaced_horizontal_pod_autoscaler,
        "cart",
        "shop",
        {"spec": {"maxReplicas": 10}},
    )
    with pytest.raises(ApiException) as caught:
        await to_thread(
            scaling.patch_namespaced_horizontal_pod_autoscaler,
            "cart",
            "shop",
            {"spec": {"maxReplicas": 1}},
        )
    v1 = await to_thread(
        client.AutoscalingV1Api(api).patch_namespaced_horizontal_pod_autoscaler,
        "cart",
        "shop",
        {"spec": {"targetCPUUtilizationPercentage": 60}},
    )

    assert suspended.spec.suspend is True and suspended.metadata.generation == 2
    assert raised.spec.max_replicas == 10 and raised.metadata.generation == 2
    assert raised.status.current_replicas == 4
    assert caught.value.status == 422
    assert status_of(caught.value)["details"]["causes"][0]["message"] == (
        "Invalid value: 1: must be greater than or equal to `minReplicas`"
    )
    assert v1.spec.target_cpu_utilization_percentage == 60
    stored = await to_thread(scaling.read_namespaced_horizontal_pod_autoscaler, "cart", "shop")
    assert stored.spec.metrics[0].resource.target.average_utilization == 60
