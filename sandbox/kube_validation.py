"""What the API server's registry strategies do to a write before it is stored.

:func:`prepare_create` and :func:`prepare_update` play ``PrepareForCreate`` /
``PrepareForUpdate``: system metadata comes from the stored object, a spec write keeps the
stored status and a status write keeps the stored spec, and ``metadata.generation`` starts at
1 and goes up when the spec changes (for Deployments also when annotations change).
:func:`validate` plays ``Validate`` / ``ValidateUpdate`` for the fields a remediation touches:
workload selectors (immutable, must match the template's labels), replica counts, containers,
resource requests against limits, HPA bounds, immutable Pod specs and ConfigMaps. Messages
are worded, and values printed, the way the Go validation code prints them.
"""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.kube_registry import ResourceType
from sandbox.kube_store import invalid_cause

__all__ = ["go_labels", "prepare_create", "prepare_update", "tracks_generation", "validate"]

_GENERATION_KINDS = frozenset(
    {
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("", "ReplicationController"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("policy", "PodDisruptionBudget"),
        ("networking.k8s.io", "Ingress"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
    }
)
_WORKLOADS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})
_STATEFULSET_MUTABLE = frozenset(
    {
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    }
)
_SYSTEM_METADATA = ("creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_SUFFIXES = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}

Causes = list[dict[str, str]]


def tracks_generation(rtype: ResourceType) -> bool:
    """Whether the API server maintains ``metadata.generation`` for this resource."""
    return not rtype.builtin or (rtype.group, rtype.kind) in _GENERATION_KINDS


def prepare_create(obj: dict[str, Any], rtype: ResourceType) -> None:
    """Clear what a create may not set: status of kinds with a status subresource; set
    generation 1 where generations are kept."""
    if "status" in rtype.subresources and rtype.kind != "Pod":
        obj.pop("status", None)
    if rtype.kind == "Pod":
        obj["status"] = {"phase": "Pending"}
    if tracks_generation(rtype):
        obj["metadata"]["generation"] = 1


def prepare_update(
    rtype: ResourceType,
    current: dict[str, Any],
    new: dict[str, Any],
    *,
    status_write: bool,
) -> dict[str, Any]:
    """The object an update would store (without its new resourceVersion).

    Args:
        rtype: The resource.
        current: The stored object.
        new: The object the client sent (or the patched object).
        status_write: The write came through the ``status`` subresource.

    Returns:
        A new object: system metadata and generation from ``current``; for a status write the
        spec (and labels) of ``current``; for a spec write of a kind with a status
        subresource, the status of ``current``; generation bumped when the spec changed.
    """
    result = copy.deepcopy(new)
    metadata = result.setdefault("metadata", {})
    old_metadata = current["metadata"]
    for field in _SYSTEM_METADATA:
        _copy_field(old_metadata, metadata, field)
    metadata["resourceVersion"] = old_metadata.get("resourceVersion")
    if not metadata.get("uid"):
        metadata["uid"] = old_metadata.get("uid")
    metadata.pop("selfLink", None)
    _copy_field(old_metadata, metadata, "generation")
    if status_write:
        # A status write may change status and annotations, nothing else.
        kept = copy.deepcopy(current)
        kept["status"] = copy.deepcopy(result.get("status"))
        kept["metadata"]["annotations"] = copy.deepcopy(metadata.get("annotations"))
        kept["metadata"]["uid"] = metadata["uid"]
        return _drop_nones(kept)
    if "status" in rtype.subresources or not rtype.builtin:
        _copy_field(current, result, "status")
    if tracks_generation(rtype) and _spec_changed(rtype, current, result):
        metadata["generation"] = int(old_metadata.get("generation") or 1) + 1
    return result


def _copy_field(source: dict[str, Any], target: dict[str, Any], field: str) -> None:
    if field in source:
        target[field] = copy.deepcopy(source[field])
    else:
        target.pop(field, None)


def _drop_nones(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"] = {k: v for k, v in obj["metadata"].items() if v is not None}
    return {k: v for k, v in obj.items() if v is not None}


def _spec_changed(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> bool:
    if not rtype.builtin:  # custom resources: anything but metadata and status
        skip = {"metadata", "status"}
        return {k: v for k, v in old.items() if k not in skip} != {
            k: v for k, v in new.items() if k not in skip
        }
    if old.get("spec") != new.get("spec"):
        return True
    # Deployment annotations are copied to ReplicaSets, so they count as spec.
    annotations = [(obj.get("metadata") or {}).get("annotations") or {} for obj in (old, new)]
    return rtype.kind == "Deployment" and annotations[0] != annotations[1]


# --- validation --------------------------------------------------------------------------------


def validate(rtype: ResourceType, new: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    """The validation errors of an object being created (``old`` None) or updated."""
    causes: Causes = []
    spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    if old is not None:
        causes += _immutable_metadata(old, new)
    if rtype.group == "apps" and rtype.kind in _WORKLOADS:
        causes += _workload(rtype.kind, spec, (old or {}).get("spec"))
    elif rtype.kind == "Pod" and rtype.group == "":
        if old is None:
            causes += _pod_spec(spec, "spec")
        else:
            causes += _pod_update(old.get("spec") or {}, spec)
    elif rtype.kind == "HorizontalPodAutoscaler":
        causes += _hpa(spec)
    elif rtype.kind == "ConfigMap" and old is not None and old.get("immutable") is True:
        for field in ("data", "binaryData"):
            if old.get(field) != new.get(field):
                message = "Forbidden: field is immutable when `immutable` is set"
                causes.append(_cause("FieldValueForbidden", field, message))
    elif rtype.kind == "Job" and old is not None:
        old_spec = old.get("spec") or {}
        for field in ("selector", "template"):
            if old_spec.get(field) != spec.get(field):
                shown = (
                    go_selector(spec.get(field))
                    if field == "selector"
                    else "core.PodTemplateSpec{...}"
                )
                causes.append(_immutable(f"spec.{field}", shown))
    return causes


def _cause(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def _required(field: str) -> dict[str, str]:
    return _cause("FieldValueRequired", field, "Required value")


def _immutable(field: str, shown: str) -> dict[str, str]:
    return _cause("FieldValueInvalid", field, f"Invalid value: {shown}: field is immutable")


def _immutable_metadata(old: dict[str, Any], new: dict[str, Any]) -> Causes:
    old_uid, new_uid = old["metadata"].get("uid"), new["metadata"].get("uid")
    if old_uid and new_uid and old_uid != new_uid:
        return [_immutable("metadata.uid", json.dumps(new_uid))]
    return []


def _workload(kind: str, spec: dict[str, Any], old_spec: Any) -> Causes:
    causes: Causes = []
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if isinstance(old_spec, dict):
        if old_spec.get("selector") != selector:
            causes.append(_immutable("spec.selector", go_selector(selector)))
        if kind == "StatefulSet":
            changed = {k for k in {*spec, *old_spec} if spec.get(k) != old_spec.get(k)}
            if changed - _STATEFULSET_MUTABLE:
                message = (
                    "Forbidden: updates to statefulset spec for fields other than 'replicas', "
                    "'ordinals', 'template', 'updateStrategy', "
                    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
                )
                causes.append(_cause("FieldValueForbidden", "spec", message))
    if not isinstance(selector, dict):
        causes.append(_required("spec.selector"))
    elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
        message = (
            f"Invalid value: {go_selector(selector)}: empty selector is invalid for deployment"
        )
        causes.append(_cause("FieldValueInvalid", "spec.selector", message))
    elif not selector_matches(selector, labels):
        message = f"Invalid value: {go_labels(labels)}: `selector` does not match template `labels`"
        causes.append(_cause("FieldValueInvalid", "spec.template.metadata.labels", message))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        causes.append(
            invalid_cause("spec.replicas", replicas, "must be greater than or equal to 0")
        )
    template_spec = (spec.get("template") or {}).get("spec") or {}
    causes += _pod_spec(template_spec, "spec.template.spec")
    return causes


def _pod_spec(spec: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append(_required(f"{path}.containers"))
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{index}]"
            for field in ("name", "image"):
                if not container.get(field):
                    causes.append(_required(f"{where}.{field}"))
            causes += _resources(container.get("resources") or {}, f"{where}.resources")
    return causes


def _resources(resources: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    for name, request in requests.items():
        if name not in limits:
            continue
        wanted, limit = parse_quantity(str(request)), parse_quantity(str(limits[name]))
        if wanted is not None and limit is not None and wanted > limit:
            problem = f"must be less than or equal to {name} limit of {limits[name]}"
            causes.append(invalid_cause(f"{path}.requests", str(request), problem))
    return causes


def _pod_update(old_spec: dict[str, Any], spec: dict[str, Any]) -> Causes:
    # Only images, activeDeadlineSeconds, tolerations and the grace period may change.
    mutable = copy.deepcopy(old_spec)
    for group in ("containers", "initContainers"):
        for mine, theirs in zip(mutable.get(group) or [], spec.get(group) or [], strict=False):
            mine["image"] = theirs.get("image")
    for field in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        _copy_field(spec, mutable, field)
    if mutable == spec:
        return []
    message = (
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
        "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
        "(allow it to be set to 1 if it was previously negative)"
    )
    return [_cause("FieldValueForbidden", "spec", message)]


def _hpa(spec: dict[str, Any]) -> Causes:
    causes: Causes = []
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    if isinstance(low, int) and low < 1:
        causes.append(invalid_cause("spec.minReplicas", low, "must be greater than or equal to 1"))
    if not isinstance(high, int):
        causes.append(_required("spec.maxReplicas"))
    elif high < 1:
        causes.append(invalid_cause("spec.maxReplicas", high, "must be greater than 0"))
    elif isinstance(low, int) and high < low:
        problem = "must be greater than or equal to `minReplicas`"
        causes.append(invalid_cause("spec.maxReplicas", high, problem))
    return causes


# --- helpers shared with the simulated controllers ---------------------------------------------


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, Any] | None) -> bool:
    """Whether a LabelSelector object selects these labels (an empty selector: nothing)."""
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    labels = labels or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, values = expression.get("key"), expression.get("values") or []
        present = key in labels
        operator = expression.get("operator")
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if (operator == "Exists") != present and operator in ("Exists", "DoesNotExist"):
            return False
    return True


def parse_quantity(text: str) -> Decimal | None:
    """A resource quantity (``256Mi``, ``200m``, ``1.5``) as a number, or None if malformed."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
    except InvalidOperation:
        return None


def go_labels(labels: dict[str, Any]) -> str:
    """A label map as Go's ``%#v`` prints it: ``map[string]string{"app":"cart"}``."""
    inner = ", ".join(f"{json.dumps(k)}:{json.dumps(str(v))}" for k, v in sorted(labels.items()))
    return f"map[string]string{{{inner}}}"


def go_selector(selector: Any) -> str:
    """A LabelSelector as Go's ``%#v`` prints it in validation messages."""
    if not isinstance(selector, dict):
        return "null"
    labels = selector.get("matchLabels")
    shown_labels = go_labels(labels) if labels else "map[string]string(nil)"
    expressions = selector.get("matchExpressions")
    if expressions:
        items = ", ".join(
            "v1.LabelSelectorRequirement{"
            f"Key:{json.dumps(e.get('key', ''))}, Operator:{json.dumps(e.get('operator', ''))}, "
            f"Values:{_go_strings(e.get('values'))}}}"
            for e in expressions
        )
        shown_expressions = f"[]v1.LabelSelectorRequirement{{{items}}}"
    else:
        shown_expressions = "[]v1.LabelSelectorRequirement(nil)"
    return f"v1.LabelSelector{{MatchLabels:{shown_labels}, MatchExpressions:{shown_expressions}}}"


def _go_strings(values: Any) -> str:
    if not values:
        return "[]string(nil)"
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in values) + "}"
