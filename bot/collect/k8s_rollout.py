"""What a Deployment's latest rollout changed: the current vs the previous pod template.

A Deployment keeps one ReplicaSet per revision (annotation
``deployment.kubernetes.io/revision``); the current one carries the Deployment's own revision,
the previous one the next lower. Their pod templates are compared field by field, one
:class:`~bot.rca.bundle.TemplateChange` per difference, so a rule can say "CACHE_MAX_ITEMS
100000 → 500000" instead of "the template changed".

Values are rendered as short strings. Environment variables taken from a ConfigMap or Secret
appear as their reference (``secretKeyRef db-creds/password``): the template never holds a
secret's value, and neither does the diff. Pod-level fields other than volumes (nodeSelector,
affinity, tolerations, serviceAccountName) and containers added or removed are reported with
field ``other`` and the API field's name leading ``before``/``after``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.collect.k8s_objects import annotation, as_dict, as_list, created_at, name_of
from bot.rca.bundle import KubeObject, RolloutDiff, TemplateChange
from bot.targets import ObjectRef

REVISION = "deployment.kubernetes.io/revision"
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_POD_FIELDS = ("nodeSelector", "affinity", "tolerations", "serviceAccountName")


def deployment_rollout(
    deployment: Mapping[str, Any], replicasets: Sequence[KubeObject]
) -> RolloutDiff | None:
    """The diff between a Deployment's current and previous ReplicaSet.

    Args:
        deployment: The Deployment.
        replicasets: ReplicaSets it owns (any order).

    Returns:
        The diff; ``previous`` is None (and no changes) when only one revision exists; None
        when no ReplicaSet carries a revision.
    """
    revisions = [(_revision(rs), rs) for rs in replicasets if _revision(rs) is not None]
    if not revisions:
        return None
    wanted = annotation(deployment, REVISION)
    current = next((rs for _, rs in revisions if annotation(rs, REVISION) == wanted), None)
    if current is None:  # the Deployment's annotation is missing or ahead of its ReplicaSets
        current = max(revisions, key=lambda pair: pair[0] or 0)[1]
    current_rev = _revision(current) or 0
    older = [(rev, rs) for rev, rs in revisions if rev is not None and rev < current_rev]
    previous = max(older, key=lambda pair: pair[0])[1] if older else None
    namespace = str(as_dict(deployment.get("metadata")).get("namespace") or "")
    changes = template_changes(_template(previous), _template(current)) if previous else ()
    return RolloutDiff(
        workload=ObjectRef("Deployment", name_of(deployment), namespace),
        current=ObjectRef("ReplicaSet", name_of(current), namespace),
        previous=ObjectRef("ReplicaSet", name_of(previous), namespace) if previous else None,
        current_revision=annotation(current, REVISION),
        previous_revision=annotation(previous, REVISION) if previous else "",
        rolled_out_at=created_at(current),
        changes=changes,
    )


def template_changes(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[TemplateChange, ...]:
    """Every difference between two pod templates (``spec.template`` objects)."""
    old_spec, new_spec = as_dict(before.get("spec")), as_dict(after.get("spec"))
    old_containers, new_containers = _containers(old_spec), _containers(new_spec)
    changes: list[TemplateChange] = []
    for name, new in new_containers.items():
        old = old_containers.get(name)
        if old is None:
            added = f"container added: {new.get('image', '')}"
            changes.append(TemplateChange("other", name, "", added))
        else:
            changes.extend(_container_changes(name, old, new))
    for name, old in old_containers.items():
        if name not in new_containers:
            removed = f"container removed: {old.get('image', '')}"
            changes.append(TemplateChange("other", name, removed, ""))
    changes.extend(_keyed("volumes", "", _volumes(old_spec), _volumes(new_spec)))
    for key in _POD_FIELDS:
        if old_spec.get(key) != new_spec.get(key):
            changes.append(
                TemplateChange(
                    "other",
                    "",
                    _labelled(key, old_spec.get(key)),
                    _labelled(key, new_spec.get(key)),
                )
            )
    return tuple(changes)


def _container_changes(
    name: str, old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[TemplateChange]:
    changes: list[TemplateChange] = []
    if old.get("image") != new.get("image"):
        changes.append(
            TemplateChange("image", name, str(old.get("image", "")), str(new.get("image", "")))
        )
    changes.extend(_keyed("env", name, _env(old), _env(new)))
    changes.extend(_listed("env_from", name, _env_from(old), _env_from(new)))
    changes.extend(_keyed("resources", name, _resources(old), _resources(new)))
    for key in ("command", "args"):
        if as_list(old.get(key)) != as_list(new.get(key)):
            changes.append(
                TemplateChange(key, name, _compact(old.get(key)), _compact(new.get(key)))
            )
    for probe in _PROBES:
        if old.get(probe) != new.get(probe):
            changes.append(
                TemplateChange(
                    "probes",
                    name,
                    _labelled(probe, old.get(probe)),
                    _labelled(probe, new.get(probe)),
                )
            )
    return changes


def _keyed(
    field: str, container: str, old: Mapping[str, str], new: Mapping[str, str]
) -> list[TemplateChange]:
    """One change per key whose value differs, rendered ``key=value`` ("" when absent)."""
    changes = []
    for key in [*new, *(k for k in old if k not in new)]:
        if old.get(key) != new.get(key):
            before = f"{key}={old[key]}" if key in old else ""
            after = f"{key}={new[key]}" if key in new else ""
            changes.append(TemplateChange(field, container, before, after))
    return changes


def _listed(field: str, container: str, old: list[str], new: list[str]) -> list[TemplateChange]:
    """One change per entry removed or added."""
    removed = [TemplateChange(field, container, item, "") for item in old if item not in new]
    added = [TemplateChange(field, container, "", item) for item in new if item not in old]
    return removed + added


def _containers(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Init and regular containers by name (names are unique across both in a pod)."""
    return {
        str(c.get("name")): c
        for key in ("initContainers", "containers")
        for c in map(as_dict, as_list(spec.get(key)))
        if c.get("name")
    }


def _env(container: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in map(as_dict, as_list(container.get("env"))):
        if var.get("name"):
            env[str(var["name"])] = render_env_value(var)
    return env


def render_env_value(var: Mapping[str, Any]) -> str:
    """An env var's value, or its source when it comes from elsewhere (never a secret)."""
    source = as_dict(var.get("valueFrom"))
    if not source:
        return str(var.get("value", ""))
    for kind, ref in source.items():
        ref = as_dict(ref)
        if kind in ("configMapKeyRef", "secretKeyRef"):
            text = f"{kind} {ref.get('name', '')}/{ref.get('key', '')}"
        elif kind == "fieldRef":
            text = f"fieldRef {ref.get('fieldPath', '')}"
        elif kind == "resourceFieldRef":
            text = f"resourceFieldRef {ref.get('resource', '')}"
        else:
            text = f"{kind} {_compact(ref)}"
        return text + (" (optional)" if ref.get("optional") else "")
    return ""


def _env_from(container: Mapping[str, Any]) -> list[str]:
    entries = []
    for item in map(as_dict, as_list(container.get("envFrom"))):
        prefix = f" prefix={item['prefix']}" if item.get("prefix") else ""
        for kind in ("configMapRef", "secretRef"):
            if kind in item:
                entries.append(f"{kind} {as_dict(item[kind]).get('name', '')}{prefix}")
    return entries


def _resources(container: Mapping[str, Any]) -> dict[str, str]:
    resources = as_dict(container.get("resources"))
    return {
        f"{group}.{name}": str(value)
        for group in ("requests", "limits")
        for name, value in sorted(as_dict(resources.get(group)).items())
    }


def _volumes(spec: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(v["name"]): _compact({k: val for k, val in v.items() if k != "name"})
        for v in map(as_dict, as_list(spec.get("volumes")))
        if v.get("name")
    }


def _template(rs: Mapping[str, Any] | None) -> dict[str, Any]:
    return as_dict(as_dict((rs or {}).get("spec")).get("template"))


def _revision(rs: Mapping[str, Any]) -> int | None:
    text = annotation(rs, REVISION)
    return int(text) if text.isdigit() else None


def _labelled(key: str, value: object) -> str:
    return "" if value is None else f"{key}: {_compact(value)}"


def _compact(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
