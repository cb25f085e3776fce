"""What an alert is about in Kubernetes terms, and the grouping rule for incidents.

Grouping rule (README "Incidents"): alerts belong to the same incident when they share
``alertname``, ``namespace`` and the *owning workload* while that incident is open. The
workload is found, in order:

1. a ``pod`` label → the pod's controller chain from the API (Pod → ReplicaSet →
   Deployment, Pod → StatefulSet/DaemonSet, Pod → Job → CronJob);
   when the API cannot say, the pod name's shape (``<deploy>-<rs-hash>-<5>``,
   ``<sts>-<ordinal>``); failing that, the Pod itself;
2. a workload label set by kube-state-metrics (``deployment``, ``statefulset``,
   ``daemonset``, ``job_name``, ``cronjob``, ``horizontalpodautoscaler``,
   ``persistentvolumeclaim``);
3. a ``node`` label on an alert without a namespace → the Node;
4. otherwise no object: such alerts group by alertname + namespace alone.

The ``job`` and ``service`` labels are not used: in kube-prometheus they name the *scrape*
job/service (``kube-state-metrics``), not the workload.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.errors import KubeError

if TYPE_CHECKING:
    from bot.kube import KubeReader

log = logging.getLogger(__name__)

_LABEL_KINDS = (
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("job_name", "Job"),
    ("cronjob", "CronJob"),
    ("horizontalpodautoscaler", "HorizontalPodAutoscaler"),
    ("persistentvolumeclaim", "PersistentVolumeClaim"),
)
_CLUSTER_KINDS = {"Node", "PersistentVolume", "StorageClass", "Namespace"}
# <deployment>-<pod-template-hash>-<5 random>; the hash alphabet is "bcdfghjklmnpqrstvwxz2456789"
_DEPLOY_POD = re.compile(
    r"^(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$"
)
_STS_POD = re.compile(r"^(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<ordinal>\d+)$")


@dataclass(frozen=True)
class ObjectRef:
    """A Kubernetes object: ``namespace/Kind/name`` or ``Kind/name`` when cluster-scoped."""

    kind: str
    name: str
    namespace: str = ""

    def __str__(self) -> str:
        if self.kind in _CLUSTER_KINDS or not self.namespace:
            return f"{self.kind}/{self.name}"
        return f"{self.namespace}/{self.kind}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ObjectRef:
        """Parse the string form back."""
        parts = text.split("/")
        if len(parts) == 3:
            return cls(parts[1], parts[2], parts[0])
        if len(parts) == 2:
            return cls(parts[0], parts[1])
        raise ValueError(f"not an object reference: {text!r}")


def label_object(labels: Mapping[str, str]) -> ObjectRef | None:
    """The object named by an alert's labels alone (rules 1–3 without the API)."""
    namespace = labels.get("namespace", "")
    pod = labels.get("pod")
    if pod and namespace:
        return ObjectRef("Pod", pod, namespace)
    for label, kind in _LABEL_KINDS:
        if labels.get(label) and namespace:
            return ObjectRef(kind, labels[label], namespace)
    if labels.get("node") and not namespace:
        return ObjectRef("Node", labels["node"])
    return None


def owner_from_name(pod: ObjectRef) -> ObjectRef:
    """Guess a pod's controller from the shape of its name (when the API cannot tell)."""
    deploy = _DEPLOY_POD.match(pod.name)
    if deploy:
        return ObjectRef("Deployment", deploy.group("name"), pod.namespace)
    sts = _STS_POD.match(pod.name)
    if sts:
        return ObjectRef("StatefulSet", sts.group("name"), pod.namespace)
    return pod


def group_key(alertname: str, namespace: str, obj: ObjectRef | None) -> str:
    """The grouping key of an alert (see module docstring)."""
    return f"{alertname}|{namespace}|{obj or ''}"


class WorkloadResolver:
    """Finds the top-level controller of a pod through the API, with a small cache."""

    def __init__(self, kube: KubeReader | None, *, cache_size: int = 4096) -> None:
        self._kube = kube
        self._cache: dict[ObjectRef, ObjectRef] = {}
        self._cache_size = cache_size

    async def resolve(self, labels: Mapping[str, str]) -> ObjectRef | None:
        """The object an alert's incident is about (see module docstring)."""
        obj = label_object(labels)
        if obj is None or obj.kind not in ("Pod", "Job"):
            return obj
        if obj in self._cache:
            return self._cache[obj]
        top = await self._walk(obj)
        if top is None:
            top = owner_from_name(obj) if obj.kind == "Pod" else obj
        else:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[obj] = top
        return top

    async def _walk(self, obj: ObjectRef) -> ObjectRef | None:
        """Follow controller ownerReferences up to the top; None if the API cannot say."""
        if self._kube is None:
            return None
        current = obj
        for _ in range(4):  # Pod → ReplicaSet → Deployment is the longest chain we follow
            try:
                body = await self._kube.get(current.kind, current.namespace, current.name)
            except KubeError as exc:
                log.info("owner lookup for %s failed: %s", current, exc)
                return None
            if body is None:
                return current if current != obj else None
            owner = _controller(body)
            if owner is None or owner[0] not in (
                "ReplicaSet",
                "Deployment",
                "StatefulSet",
                "DaemonSet",
                "Job",
                "CronJob",
            ):
                return current
            current = ObjectRef(owner[0], owner[1], obj.namespace)
        return current


def _controller(body: Mapping[str, object]) -> tuple[str, str] | None:
    meta = body.get("metadata")
    refs = meta.get("ownerReferences") if isinstance(meta, dict) else None
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, dict) and ref.get("controller") and ref.get("kind") and ref.get("name"):
            return str(ref["kind"]), str(ref["name"])
    return None
