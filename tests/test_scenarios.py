"""The scenario library (``scenarios/*.yaml``): every file is a consistent, contract-valid
incident, and the real investigation path resolves the object the file says is at fault.

Contract: /work/shared/spec/CONTRACTS.md §1 (file format) and §2 (categories, the object).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from bot.config import Settings
from bot.investigate import investigate_scenario
from sandbox.scenario import Scenario, load_scenario

SCENARIO_DIR = Path(__file__).parents[1] / "scenarios"
SCENARIOS = sorted(SCENARIO_DIR.glob("*.yaml"))

# CONTRACTS.md §2, in the table's order.
VOCABULARY = (
    "oom_killed",
    "app_crash",
    "missing_config",
    "config_error",
    "image_pull",
    "unschedulable_resources",
    "unschedulable_constraints",
    "pvc_pending",
    "volume_mount",
    "liveness_probe",
    "readiness_probe",
    "service_no_endpoints",
    "node_not_ready",
    "node_pressure",
    "evicted",
    "cpu_throttling",
    "hpa_maxed",
    "quota_exceeded",
    "dependency_unavailable",
    "dns_failure",
    "certificate_expired",
    "permission_denied",
    "disk_full",
    "init_container_failed",
    "job_failed",
    "cronjob_not_scheduling",
    "resource_contention",
    "not_an_incident",
    "unknown",
)

# Categories whose object is not the pods' top-level controller (or the Pod): finding it
# needs the RCA analyzer, so the investigation is only required to run for them.
ANALYZER_OBJECT = frozenset(
    {
        "node_not_ready",
        "node_pressure",
        "pvc_pending",
        "service_no_endpoints",
        "hpa_maxed",
        "quota_exceeded",
        "job_failed",
        "cronjob_not_scheduling",
        "not_an_incident",
    }
)

# Where §2 puts the object for the categories above (None: no object at all).
OBJECT_KIND = {
    "node_not_ready": "Node",
    "node_pressure": "Node",
    "pvc_pending": "PersistentVolumeClaim",
    "service_no_endpoints": "Service",
    "hpa_maxed": "HorizontalPodAutoscaler",
    "quota_exceeded": "ResourceQuota",
    "job_failed": ("CronJob", "Job"),
    "cronjob_not_scheduling": ("CronJob", "Job"),
    "not_an_incident": None,
}
CONTROLLER_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod")

# The official client's model for each kind a scenario may hold.
MODELS = {
    ("v1", "Pod"): "V1Pod",
    ("v1", "Event"): "CoreV1Event",
    ("v1", "Node"): "V1Node",
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "Service"): "V1Service",
    ("v1", "Endpoints"): "V1Endpoints",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("v1", "PersistentVolume"): "V1PersistentVolume",
    ("v1", "ResourceQuota"): "V1ResourceQuota",
    ("v1", "LimitRange"): "V1LimitRange",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "ReplicaSet"): "V1ReplicaSet",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("batch/v1", "Job"): "V1Job",
    ("batch/v1", "CronJob"): "V1CronJob",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
    ("storage.k8s.io/v1", "StorageClass"): "V1StorageClass",
}

# Facts that name a remedy rather than something observed; they cannot occur in the data.
# New scenarios should not add any: a fact is what the evidence shows.
REMEDY_FACTS = {"checkout-imagepull": {"rollout undo"}}

_FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")
_CLUSTER_SCOPED = {"Node", "Namespace", "PersistentVolume", "StorageClass"}


@cache
def scenario(path: Path) -> Scenario:
    """Each file is parsed once per test session."""
    return load_scenario(path)


def expected(path: Path) -> dict[str, Any]:
    value = scenario(path).expected
    assert value is not None, f"{path.name}: no expected block"
    return value


def strings(value: Any) -> Iterator[str]:
    """Every scalar in a YAML/JSON tree, as text (keys excluded)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif value is not None:
        yield str(value)


def haystack(s: Scenario) -> str:
    """All text an RCA could quote: objects, logs and the webhook."""
    return "\n".join([*strings(s.objects), *strings(s.logs), *strings(s.webhook)]).lower()


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod spec of a Pod, and the template's of a workload or CronJob."""
    spec = obj.get("spec") or {}
    if obj["kind"] == "Pod":
        yield spec
    template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get(
        "template"
    )
    if template:
        yield template.get("spec") or {}


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 13


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_loads_and_is_named_after_its_file(path: Path) -> None:
    s = scenario(path)

    assert s.name == path.stem
    assert s.webhook["alerts"]
    assert s.objects


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_expected_category_is_in_the_vocabulary(path: Path) -> None:
    assert expected(path)["category"] in VOCABULARY


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_expected_facts_occur_in_the_scenario(path: Path) -> None:
    facts = expected(path)["facts"]
    text = haystack(scenario(path))
    remedies = REMEDY_FACTS.get(path.stem, set())

    assert isinstance(facts, list) and 2 <= len(facts) <= 4
    missing = [f for f in facts if f not in remedies and str(f).lower() not in text]
    assert not missing, f"facts not found in objects/logs/webhook: {missing}"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_expected_object_follows_the_rules_and_exists(path: Path) -> None:
    exp = expected(path)
    category, obj = exp["category"], exp["object"]
    want = OBJECT_KIND.get(category, CONTROLLER_KINDS)
    if want is None:
        assert obj is None
        return
    parts = obj.split("/")
    kind, name = parts[-2], parts[-1]
    namespace = parts[0] if len(parts) == 3 else ""
    assert kind in (want if isinstance(want, tuple) else (want,))
    assert (len(parts) == 2) == (kind in _CLUSTER_SCOPED)
    present = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
        for o in scenario(path).objects
    }
    assert (kind, namespace, name) in present, f"{obj} is not among the cluster objects"


def test_names_are_unique() -> None:
    names = Counter(scenario(path).name for path in SCENARIOS)

    assert [name for name, n in names.items() if n > 1] == []


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_alert_fingerprints_are_16_hex(path: Path) -> None:
    for alert in scenario(path).webhook["alerts"]:
        assert _FINGERPRINT.match(str(alert.get("fingerprint", ""))), alert.get("fingerprint")


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_objects_are_valid_for_the_kubernetes_client(path: Path) -> None:
    api = k8s.ApiClient()
    for obj in scenario(path).objects:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        model = MODELS.get((obj["apiVersion"], obj["kind"]))
        assert model, f"{label}: no client model for {obj['apiVersion']}"
        api.deserialize(json.dumps(obj), model, "application/json")  # raises when invalid
        for spec in pod_specs(obj):
            for group in ("initContainers", "containers"):
                for container in spec.get(group) or []:
                    assert container.get("name") and container.get("image"), label


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
async def test_investigation_resolves_the_object(path: Path) -> None:
    exp = expected(path)

    result = await investigate_scenario(scenario(path), Settings())

    if exp["category"] in ANALYZER_OBJECT:
        # The object needs the analyzer (a later issue): the investigation just has to run.
        assert result["evidence"] or result["missing_data"]
    else:
        assert result["incident"]["object"] == exp["object"]
        assert result["evidence"]


def test_the_analyzer_speaks_the_contract_vocabulary() -> None:
    """The copy above is the contract's table; the code's list must equal it."""
    from bot.rca.model import CATEGORIES

    assert CATEGORIES == VOCABULARY
