"""object_diff: human lines for what a change does to an API object."""

from __future__ import annotations

import copy
from typing import Any

from bot.remediate.diff import object_diff


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "cart",
            "namespace": "shop",
            "resourceVersion": "41",
            "generation": 7,
            "uid": "u-1",
            "creationTimestamp": "2026-11-20T09:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"deployment.kubernetes.io/revision": "7"},
        },
        "spec": {
            "replicas": 3,
            "template": {
                "metadata": {"labels": {"app": "cart"}},
                "spec": {
                    "containers": [
                        {
                            "name": "cart",
                            "image": "shop/cart:1.4",
                            "resources": {"limits": {"memory": "256Mi"}},
                            "env": [{"name": "DB_PASSWORD", "value": "hunter2-secret"}],
                        },
                        {"name": "proxy", "image": "envoy:1.30"},
                    ]
                },
            },
        },
        "status": {"replicas": 3, "readyReplicas": 3},
    }


def test_equal_objects_have_no_diff() -> None:
    assert object_diff(deployment(), deployment()) == []


def test_server_managed_metadata_and_status_are_ignored() -> None:
    after = deployment()
    after["metadata"].update(resourceVersion="42", generation=8, managedFields=[])
    after["metadata"]["creationTimestamp"] = "2030-01-01T00:00:00Z"
    after["status"] = {"replicas": 1}
    assert object_diff(deployment(), after) == []


def test_container_fields_are_keyed_by_name() -> None:
    after = deployment()
    containers = after["spec"]["template"]["spec"]["containers"]
    containers[0]["resources"]["limits"]["memory"] = "512Mi"
    containers.insert(0, {"name": "init-ish", "image": "busybox"})  # shifts every index
    lines = object_diff(deployment(), after)
    assert "spec.template.spec.containers[cart].resources.limits.memory: 256Mi → 512Mi" in lines
    assert any(
        line.startswith("spec.template.spec.containers[init-ish]: (none) → ") for line in lines
    )
    assert not any("[proxy]" in line for line in lines)  # unchanged, whatever its index
    assert len(lines) == 2


def test_added_map_is_shown_leaf_by_leaf_with_quoted_keys() -> None:
    after = deployment()
    after["spec"]["template"]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/restartedAt": "2026-11-20T10:00:00Z"
    }
    assert object_diff(deployment(), after) == [
        'spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]: '
        "(none) → 2026-11-20T10:00:00Z"
    ]


def test_removed_field_and_scalars() -> None:
    after = deployment()
    del after["spec"]["template"]["spec"]["containers"][0]["resources"]
    after["spec"]["replicas"] = 5
    lines = object_diff(deployment(), after)
    assert lines == [
        "spec.replicas: 3 → 5",
        "spec.template.spec.containers[cart].resources.limits.memory: 256Mi → (none)",
    ]


def test_unnamed_lists_compare_by_index() -> None:
    before = {"spec": {"args": ["--a", "--b"]}}
    after = {"spec": {"args": ["--a", "--c", "--d"]}}
    assert object_diff(before, after) == ["spec.args[1]: --b → --c", "spec.args[2]: (none) → --d"]


def test_empty_and_absent_are_the_same() -> None:
    assert object_diff({"spec": {"tolerations": []}}, {"spec": {}}) == []
    assert object_diff({"metadata": {"labels": {}}}, {"metadata": {}}) == []


def test_secret_env_values_are_masked() -> None:
    after = deployment()
    env = after["spec"]["template"]["spec"]["containers"][0]["env"][0]
    env["value"] = "new-secret-value"
    (line,) = object_diff(deployment(), after)
    assert line.startswith("spec.template.spec.containers[cart].env[DB_PASSWORD].value: ")
    assert "hunter2" not in line and "new-secret-value" not in line
    assert "REDACTED" in line


def test_output_is_clipped() -> None:
    before = {"data": {f"k{i:02d}": "a" for i in range(50)}}
    after = {"data": {f"k{i:02d}": "b" for i in range(50)}}
    lines = object_diff(before, after)
    assert len(lines) == 30
    assert lines[-1] == "… and 21 more changes"
    assert lines[0] == "data.k00: a → b"


def test_long_values_are_shortened_and_objects_rendered_compactly() -> None:
    before: dict[str, Any] = {"metadata": {"annotations": {"note": "x" * 300}}}
    after = copy.deepcopy(before)
    after["metadata"]["annotations"]["note"] = "y" * 300
    (line,) = object_diff(before, after)
    assert len(line) < 250 and line.endswith("…")
    lines = object_diff({"spec": {"ports": [1]}}, {"spec": {"ports": [{"port": 80}]}})
    assert lines == ['spec.ports[0]: 1 → {"port":80}']


def test_none_means_the_object_is_absent() -> None:
    assert object_diff(None, {"spec": {"replicas": 1}}) == ["spec.replicas: (none) → 1"]
