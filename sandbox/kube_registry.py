"""Which resources the sandbox API server knows, and the discovery documents describing them.

A :class:`ResourceType` is one REST resource (``pods``, ``deployments.apps``): its kind,
group, the versions it is served under, its plural and whether it is namespaced. The
:class:`ResourceRegistry` starts with the built-in kinds a cluster normally has and learns
unknown kinds (custom resources) from the objects it is given.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "VERSION_INFO",
    "ResourceRegistry",
    "ResourceType",
    "Target",
    "convert",
    "guess_plural",
    "split_api_version",
]

#: What ``GET /version`` answers. The commit and dates are made up but well-formed.
VERSION_INFO: dict[str, str] = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.6",
    "gitCommit": "00f20d443ba0cd1b2b6f7e2b5e5d4c3b2a190817",
    "gitTreeState": "clean",
    "buildDate": "2024-10-22T20:28:14Z",
    "goVersion": "go1.22.8",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"]}


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One REST resource.

    Attributes:
        kind: The object kind, e.g. ``Deployment``.
        group: The API group, ``""`` for the core group.
        versions: Versions it is served under, the preferred one first.
        plural: The resource name in URLs, e.g. ``deployments``.
        namespaced: Whether objects live in a namespace.
        short_names: kubectl short names, for discovery only.
        subresources: Served subresources (``status``, ``scale``, ``log``).
        returns_deleted_object: DELETE answers the object rather than a success Status.
        builtin: A kind the API server compiles in; False for custom resources, which take
            no strategic merge patch and need a resourceVersion on update.
    """

    kind: str
    group: str
    versions: tuple[str, ...]
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    returns_deleted_object: bool = False
    builtin: bool = True

    def api_version(self, version: str | None = None) -> str:
        """The ``apiVersion`` string for ``version`` (default: the preferred version)."""
        version = version or self.versions[0]
        return f"{self.group}/{version}" if self.group else version

    @property
    def qualified(self) -> str:
        """The group-qualified resource as API errors spell it: ``deployments.apps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """The group-qualified kind as validation errors spell it: ``Deployment.apps``."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


@dataclass(frozen=True, slots=True)
class Target:
    """What a resource URL addresses.

    Attributes:
        rtype: The resource.
        version: The version in the URL.
        namespace: The namespace; None for cluster-scoped kinds and for lists across
            namespaces.
        name: The object's name; None for a collection.
        subresource: ``status``, ``scale``, ``log`` or None.
    """

    rtype: ResourceType
    version: str
    namespace: str | None
    name: str | None = None
    subresource: str | None = None


def split_api_version(api_version: str) -> tuple[str, str]:
    """Split ``apps/v1`` into ``("apps", "v1")`` and ``v1`` into ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def guess_plural(kind: str) -> str:
    """The resource name for a kind the registry does not know (English plural rules).

    Custom resources declare their plural; this guess matches the common ones
    (``Certificate`` -> ``certificates``, ``ClusterPolicy`` -> ``clusterpolicies``,
    ``Gateway`` -> ``gateways``).
    """
    name = kind.lower()
    if re.search(r"(s|x|z|ch|sh)$", name):
        return name + "es"
    if re.search(r"[^aeiou]y$", name):
        return name[:-1] + "ies"
    return name + "s"


def _builtin(spec: str) -> ResourceType:
    """Parse one row of the table below: ``Kind group versions scope [key=value ...]``."""
    kind, group, versions, scope, *rest = spec.split()
    extras = dict(item.split("=", 1) for item in rest)
    return ResourceType(
        kind=kind,
        group="" if group == "core" else group,
        versions=tuple(versions.split(",")),
        plural=extras.get("plural", guess_plural(kind)),
        namespaced=scope == "ns",
        short_names=tuple(filter(None, extras.get("short", "").split(","))),
        subresources=tuple(filter(None, extras.get("sub", "").split(","))),
        returns_deleted_object=kind in ("Pod", "Service"),
    )


_BUILTINS = [
    _builtin(row)
    for row in """
    Pod core v1 ns short=po sub=status,log
    Event core v1 ns short=ev
    Node core v1 cluster short=no sub=status
    Namespace core v1 cluster short=ns sub=status
    Service core v1 ns short=svc sub=status
    Endpoints core v1 ns short=ep plural=endpoints
    ConfigMap core v1 ns short=cm
    Secret core v1 ns
    PersistentVolumeClaim core v1 ns short=pvc sub=status
    PersistentVolume core v1 cluster short=pv sub=status
    ResourceQuota core v1 ns short=quota sub=status
    LimitRange core v1 ns short=limits
    ServiceAccount core v1 ns short=sa
    ReplicationController core v1 ns short=rc sub=status,scale
    PodTemplate core v1 ns
    Deployment apps v1 ns short=deploy sub=status,scale
    ReplicaSet apps v1 ns short=rs sub=status,scale
    StatefulSet apps v1 ns short=sts sub=status,scale
    DaemonSet apps v1 ns short=ds sub=status
    ControllerRevision apps v1 ns
    Job batch v1 ns sub=status
    CronJob batch v1 ns short=cj sub=status
    HorizontalPodAutoscaler autoscaling v2,v1 ns short=hpa sub=status
    StorageClass storage.k8s.io v1 cluster short=sc
    VolumeAttachment storage.k8s.io v1 cluster sub=status
    CSIDriver storage.k8s.io v1 cluster
    Ingress networking.k8s.io v1 ns short=ing sub=status
    IngressClass networking.k8s.io v1 cluster
    NetworkPolicy networking.k8s.io v1 ns short=netpol
    PodDisruptionBudget policy v1 ns short=pdb sub=status
    Role rbac.authorization.k8s.io v1 ns
    RoleBinding rbac.authorization.k8s.io v1 ns
    ClusterRole rbac.authorization.k8s.io v1 cluster
    ClusterRoleBinding rbac.authorization.k8s.io v1 cluster
    PriorityClass scheduling.k8s.io v1 cluster short=pc
    Lease coordination.k8s.io v1 ns
    EndpointSlice discovery.k8s.io v1 ns
    CustomResourceDefinition apiextensions.k8s.io v1 cluster short=crd,crds sub=status
    MutatingWebhookConfiguration admissionregistration.k8s.io v1 cluster
    ValidatingWebhookConfiguration admissionregistration.k8s.io v1 cluster
    """.strip().splitlines()
]


class ResourceRegistry:
    """The resources served, keyed by (group, kind); learns unknown kinds from objects."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {(t.group, t.kind): t for t in _BUILTINS}

    def for_kind(self, group: str, kind: str) -> ResourceType | None:
        """The resource for a kind in a group, if known."""
        return self._types.get((group, kind))

    def find_kind(self, kind: str) -> list[ResourceType]:
        """All resources with this kind, in any group (core first)."""
        return sorted((t for t in self._types.values() if t.kind == kind), key=lambda t: t.group)

    def learn(self, obj: dict[str, Any]) -> ResourceType:
        """The resource for an object, registering its kind or version when new.

        Args:
            obj: An object with ``apiVersion`` and ``kind``; an unknown kind is namespaced
                when the object carries ``metadata.namespace``.

        Returns:
            The resource type serving the object.
        """
        group, version = split_api_version(str(obj["apiVersion"]))
        kind = str(obj["kind"])
        known = self._types.get((group, kind))
        if known is None:
            metadata = obj.get("metadata") or {}
            known = ResourceType(
                kind=kind,
                group=group,
                versions=(version,),
                plural=guess_plural(kind),
                namespaced=bool(metadata.get("namespace")),
                builtin=False,
            )
        elif version not in known.versions:
            known = replace(known, versions=(*known.versions, version))
        self._types[(group, kind)] = known
        return known

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The resource served at ``/apis/{group}/{version}/{plural}``, if any."""
        for rtype in self._types.values():
            if rtype.group == group and rtype.plural == plural and version in rtype.versions:
                return rtype
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Every served group with its versions, the preferred version first."""
        groups: dict[str, list[str]] = {}
        for rtype in self._types.values():
            versions = groups.setdefault(rtype.group, [])
            versions.extend(v for v in rtype.versions if v not in versions)
        return groups

    def serves(self, group: str, version: str) -> bool:
        """Whether ``group/version`` is a served group version."""
        return version in self.group_versions().get(group, [])

    def resource_list(self, group: str, version: str) -> dict[str, Any]:
        """The ``APIResourceList`` for one group version."""
        resources: list[dict[str, Any]] = []
        for rtype in self._types.values():
            if rtype.group != group or version not in rtype.versions:
                continue
            entry: dict[str, Any] = {
                "name": rtype.plural,
                "singularName": rtype.kind.lower(),
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": _VERBS,
            }
            if rtype.short_names:
                entry["shortNames"] = list(rtype.short_names)
            resources.append(entry)
            for sub in rtype.subresources:
                sub_entry: dict[str, Any] = {
                    "name": f"{rtype.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
                }
                if sub == "scale":
                    sub_entry.update(group="autoscaling", version="v1", kind="Scale")
                resources.append(sub_entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def api_group(self, group: str) -> dict[str, Any] | None:
        """The ``APIGroup`` document for a named group, or None when not served."""
        versions = self.group_versions().get(group)
        if not group or not versions:
            return None
        listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": listed,
            "preferredVersion": listed[0],
        }

    def api_group_list(self) -> dict[str, Any]:
        """The ``APIGroupList`` answered at ``/apis`` (named groups only)."""
        groups = [self.api_group(name) for name in self.group_versions() if name]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def convert(obj: dict[str, Any], rtype: ResourceType, version: str) -> dict[str, Any]:
    """A copy of a stored object as served under ``version`` of its resource.

    Only HorizontalPodAutoscaler changes shape between its versions (autoscaling/v1 knows
    just a CPU utilisation target); every other object only gets its ``apiVersion`` set.
    """
    result = copy.deepcopy(obj)
    _, current = split_api_version(str(obj.get("apiVersion", rtype.api_version())))
    if rtype.kind == "HorizontalPodAutoscaler" and rtype.group == "autoscaling":
        if current != "v1" and version == "v1":
            _hpa_to_v1(result)
        elif current == "v1" and version != "v1":
            _hpa_from_v1(result)
    result["apiVersion"] = rtype.api_version(version)
    return result


_HPA_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"


def _cpu_utilization(metrics: Any, field: str) -> int | None:
    for metric in metrics or []:
        resource = metric.get("resource") or {}
        if metric.get("type") == "Resource" and resource.get("name") == "cpu":
            value = (resource.get(field) or {}).get("averageUtilization")
            if isinstance(value, int):
                return value
    return None


def _hpa_to_v1(hpa: dict[str, Any]) -> None:
    spec = hpa.setdefault("spec", {})
    target = _cpu_utilization(spec.pop("metrics", None), "target")
    spec.pop("behavior", None)
    if target is not None:
        spec["targetCPUUtilizationPercentage"] = target
    status = hpa.get("status")
    if isinstance(status, dict):
        current = _cpu_utilization(status.pop("currentMetrics", None), "current")
        if current is not None:
            status["currentCPUUtilizationPercentage"] = current
        # v1 has no conditions field; the API server keeps them in an annotation.
        conditions = status.pop("conditions", None)
        if conditions:
            annotations = hpa.setdefault("metadata", {}).setdefault("annotations", {})
            annotations[_HPA_CONDITIONS] = json.dumps(conditions)


def _hpa_from_v1(hpa: dict[str, Any]) -> None:
    spec = hpa.setdefault("spec", {})
    target = spec.pop("targetCPUUtilizationPercentage", None)
    if target is not None:
        utilization = {"type": "Utilization", "averageUtilization": target}
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": utilization}}]
    status = hpa.get("status")
    if isinstance(status, dict):
        current = status.pop("currentCPUUtilizationPercentage", None)
        if current is not None:
            measured = {"averageUtilization": current}
            status["currentMetrics"] = [
                {"type": "Resource", "resource": {"name": "cpu", "current": measured}}
            ]
        annotations = (hpa.get("metadata") or {}).get("annotations") or {}
        try:
            conditions = json.loads(annotations.pop(_HPA_CONDITIONS, "[]"))
        except ValueError:  # a hand-written annotation; a real server would drop it too
            conditions = []
        if conditions:
            status["conditions"] = conditions
