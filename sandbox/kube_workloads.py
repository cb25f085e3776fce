"""The ReplicaSet, StatefulSet and DaemonSet controllers' moves, one step at a time.

:class:`WorkloadRounds` finds (and adopts) what a controller owns, creates ReplicaSets and
ControllerRevisions, keeps each ReplicaSet's pods at its replica count, and runs one step of
the StatefulSet, DaemonSet, bare ReplicaSet and bare Pod simulations for
:mod:`sandbox.kube_rollout`. It also remembers which ReplicaSets and revisions are scripted
to crash.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from sandbox.kube_pods import PodLife, is_ready, owner_reference, pod_phase, template_hash
from sandbox.kube_registry import ResourceType
from sandbox.kube_store import ObjectStore
from sandbox.kube_validation import selector_matches

__all__ = ["WorkloadRounds", "controller_of"]

_REVISION_LABEL = "controller-revision-hash"
_DELETE_ORDER = {"pending": 0, "starting": 1, "crashing": 2, "unready": 2, "ready": 3}


class WorkloadRounds:
    """Controller steps shared by the rollout simulation.

    Args:
        store: The sandbox's objects.
        life: Creates and advances pods.
    """

    def __init__(self, store: ObjectStore, life: PodLife) -> None:
        self._store = store
        self._life = life
        self._broken: set[str] = set()
        registry = store.registry
        kinds: dict[str, ResourceType] = {}
        for group, kind in (
            ("apps", "Deployment"),
            ("apps", "ReplicaSet"),
            ("apps", "StatefulSet"),
            ("apps", "DaemonSet"),
            ("apps", "ControllerRevision"),
            ("", "Pod"),
            ("", "Node"),
        ):
            rtype = registry.for_kind(group, kind)
            assert rtype is not None  # built-in kinds
            kinds[kind] = rtype
        self._kinds = kinds
        self.deployments = kinds["Deployment"]
        self.replica_sets = kinds["ReplicaSet"]
        self.nodes = kinds["Node"]

    # --- lookups -----------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A stored workload or pod (not a copy)."""
        return self._store.get(self._kinds[kind], namespace, name)

    def set_broken(self, key: str, broken: bool) -> None:
        """Script the pods of a ReplicaSet (uid) or revision (name) to crash, or not."""
        if broken:
            self._broken.add(key)
        else:
            self._broken.discard(key)

    def is_broken(self, key: str) -> bool:
        """Whether pods of this ReplicaSet or revision crash."""
        return key in self._broken

    def owned(self, owner: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        """Objects of ``kind`` the owner controls, adopting orphans its selector matches."""
        uid = owner["metadata"]["uid"]
        selector = (owner.get("spec") or {}).get("selector")
        rtype = self._kinds[kind]
        found = []
        for obj in self._store.list(rtype, owner["metadata"]["namespace"]):
            controller = controller_of(obj)
            if controller is not None and controller.get("uid") == uid:
                found.append(obj)
            elif controller is None and selector_matches(selector, obj["metadata"].get("labels")):
                references = obj["metadata"].setdefault("ownerReferences", [])
                references.append(owner_reference(owner))
                self._store.commit(obj, rtype)
                found.append(obj)
        return found

    def pods_of(self, owner: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The pods a controller owns (adopting matching orphans)."""
        return self.owned(owner, "Pod") if owner is not None else []

    # --- ReplicaSets -------------------------------------------------------------------------

    def create_replica_set(
        self, deployment: dict[str, Any], template: dict[str, Any], revision: int
    ) -> dict[str, Any]:
        """A new, empty ReplicaSet for a Deployment's template: ``<name>-<hash>``."""
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        collisions = 0
        while True:
            digest = template_hash(template, collisions)
            if self.get("ReplicaSet", namespace, f"{name}-{digest}") is None:
                break
            collisions += 1
        template = copy.deepcopy(template)
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels["pod-template-hash"] = digest
        selector = copy.deepcopy(deployment["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = digest
        annotations = {"deployment.kubernetes.io/revision": str(revision)}
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{name}-{digest}",
                "namespace": namespace,
                "labels": dict(labels),
                "annotations": annotations,
                "ownerReferences": [owner_reference(deployment)],
                "generation": 1,
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
            "status": {"replicas": 0},
        }
        stamped = self._store.stamp(rs, self.replica_sets, namespace=None, created=True)
        return self._store.insert(stamped, self.replica_sets)

    def scale_replica_set(self, deployment: dict[str, Any], rs: dict[str, Any], count: int) -> None:
        """Set a ReplicaSet's replicas, recording the Deployment's ScalingReplicaSet event."""
        spec = rs.setdefault("spec", {})
        before = int(spec.get("replicas") or 0)
        if before == count:
            return
        spec["replicas"] = count
        rs["metadata"]["generation"] = int(rs["metadata"].get("generation") or 1) + 1
        self._store.commit(rs, self.replica_sets)
        direction = "up" if count > before else "down"
        message = (
            f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {count}"
        )
        self._life.event(
            deployment, "ScalingReplicaSet", message, "Normal", "deployment-controller"
        )

    def sync_replica_set(self, rs: dict[str, Any]) -> None:
        """Create or delete pods to match the ReplicaSet's replicas; update its status."""
        pods = self.pods_of(rs)
        want = int((rs.get("spec") or {}).get("replicas") or 0)
        name = rs["metadata"]["name"]
        template = (rs.get("spec") or {}).get("template") or {}
        while len(pods) < want:
            pod_name = self._unique(rs["metadata"]["namespace"], f"{name}-")
            pods.append(self._life.create(rs, template, pod_name, generate_name=f"{name}-"))
            self._life.event(
                rs,
                "SuccessfulCreate",
                f"Created pod: {pod_name}",
                "Normal",
                "replicaset-controller",
            )
        for pod in _deletion_order(pods)[: max(len(pods) - want, 0)]:
            self._delete_pod(pod)
            pods.remove(pod)
            self._life.event(
                rs,
                "SuccessfulDelete",
                f"Deleted pod: {pod['metadata']['name']}",
                "Normal",
                "replicaset-controller",
            )
        ready = sum(is_ready(pod) for pod in pods)
        status: dict[str, Any] = {"replicas": len(pods)}
        for field, value in (
            ("fullyLabeledReplicas", len(pods)),
            ("readyReplicas", ready),
            ("availableReplicas", ready),
        ):
            if value:
                status[field] = value
        status["observedGeneration"] = rs["metadata"].get("generation", 1)
        if status != rs.get("status"):
            rs["status"] = status
            self._store.commit(rs, self.replica_sets)

    # --- one step of the other controllers -----------------------------------------------------

    def run(
        self, kind: str, obj: dict[str, Any], step: int, steps: int, outcome: str | None
    ) -> bool:
        """One step of a StatefulSet, DaemonSet, ReplicaSet or Pod; True when it is settled."""
        if kind == "ReplicaSet":
            if step == 0 and outcome:
                self.set_broken(obj["metadata"]["uid"], outcome == "broken")
            pods = self.pods_of(obj)
            for pod in pods:
                self._life.advance(pod, broken=self.is_broken(obj["metadata"]["uid"]))
            self.sync_replica_set(obj)
            return not _busy(self.pods_of(obj)) or step >= steps
        if kind == "Pod":  # a bare pod: the scheduler and the kubelet only
            if step == 0:
                self._life.schedule(obj, (obj.get("spec") or {}).get("nodeName"))
            else:
                self._life.advance(obj, broken=outcome == "broken")
            return not _busy([obj]) or step >= steps
        return self._roll(kind, obj, step, steps, outcome)

    def remember_revision(self, old: dict[str, Any]) -> None:
        """Before a StatefulSet/DaemonSet rolls, record the revision it is leaving."""
        metadata = old["metadata"]
        stored = self.get(old["kind"], metadata["namespace"], metadata["name"])
        if stored is None:
            return
        template = (old.get("spec") or {}).get("template") or {}
        name = f"{metadata['name']}-{template_hash(template)}"
        self._revision(stored, template, name, bump=False)
        status = stored.setdefault("status", {})
        if old["kind"] == "StatefulSet" and not status.get("currentRevision"):
            status["currentRevision"] = name
            self._store.commit(stored, self._kinds["StatefulSet"])

    def _roll(
        self, kind: str, obj: dict[str, Any], step: int, steps: int, outcome: str | None
    ) -> bool:
        spec, metadata = obj.get("spec") or {}, obj["metadata"]
        template = spec.get("template") or {}
        digest = template_hash(template)
        revision = f"{metadata['name']}-{digest}"
        label = revision if kind == "StatefulSet" else digest
        self._revision(obj, template, revision, bump=True)
        if step == 0 and outcome:
            self.set_broken(label, outcome == "broken")
        pods = self.pods_of(obj)
        for pod in pods:
            broken = self.is_broken(str((pod["metadata"].get("labels") or {}).get(_REVISION_LABEL)))
            self._life.advance(pod, broken=broken)
        slots = self._slots(kind, obj, pods)
        by_slot = {self._slot_of(kind, pod): pod for pod in pods}
        for slot, pod in by_slot.items():
            if slot not in slots:
                self._remove(kind, obj, pod)
        for slot in slots:
            if slot not in by_slot:
                by_slot[slot] = self._add(kind, obj, slot, label)
        current = [by_slot[slot] for slot in slots]
        stale = [pod for pod in current if _revision_of(pod) != label]
        updated = [pod for pod in current if _revision_of(pod) == label]
        if stale and all(is_ready(pod) for pod in updated):
            batch = max(1, math.ceil(len(slots) / steps))
            for pod in stale[:batch]:
                slot = self._slot_of(kind, pod)
                self._remove(kind, obj, pod)
                by_slot[slot] = self._add(kind, obj, slot, label)
        current = [by_slot[slot] for slot in slots]
        complete = all(_revision_of(pod) == label and is_ready(pod) for pod in current)
        self._status(kind, obj, current, label, revision, complete)
        return not _busy(current) and (complete or step >= steps)

    def _slots(self, kind: str, obj: dict[str, Any], pods: list[dict[str, Any]]) -> list[str]:
        """Where pods should run: ordinals (highest first) or node names."""
        if kind == "StatefulSet":
            replicas = int((obj.get("spec") or {}).get("replicas", 1))
            return [str(i) for i in reversed(range(replicas))]
        nodes = [node["metadata"]["name"] for node in self._store.list(self.nodes, None)]
        return nodes or sorted({self._slot_of(kind, pod) for pod in pods})

    def _slot_of(self, kind: str, pod: dict[str, Any]) -> str:
        if kind == "StatefulSet":
            return str(pod["metadata"]["name"]).rpartition("-")[2]
        return str((pod.get("spec") or {}).get("nodeName") or "")

    def _add(self, kind: str, obj: dict[str, Any], slot: str, label: str) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        template = (obj.get("spec") or {}).get("template") or {}
        labels = {_REVISION_LABEL: label}
        if kind == "StatefulSet":
            pod_name = f"{name}-{slot}"
            labels.update(
                {
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": slot,
                }
            )
            pod = self._life.create(obj, template, pod_name, labels=labels)
            message = f"create Pod {pod_name} in StatefulSet {name} successful"
            self._life.event(obj, "SuccessfulCreate", message, "Normal", "statefulset-controller")
            return pod
        labels["pod-template-generation"] = str(obj["metadata"].get("generation", 1))
        pod_name = self._unique(obj["metadata"]["namespace"], f"{name}-")
        pod = self._life.create(
            obj, template, pod_name, labels=labels, node=slot or None, generate_name=f"{name}-"
        )
        self._life.event(
            obj, "SuccessfulCreate", f"Created pod: {pod_name}", "Normal", "daemonset-controller"
        )
        return pod

    def _remove(self, kind: str, obj: dict[str, Any], pod: dict[str, Any]) -> None:
        self._delete_pod(pod)
        name, pod_name = obj["metadata"]["name"], pod["metadata"]["name"]
        if kind == "StatefulSet":
            message = f"delete Pod {pod_name} in StatefulSet {name} successful"
            self._life.event(obj, "SuccessfulDelete", message, "Normal", "statefulset-controller")
        else:
            self._life.event(
                obj,
                "SuccessfulDelete",
                f"Deleted pod: {pod_name}",
                "Normal",
                "daemonset-controller",
            )

    def _status(
        self,
        kind: str,
        obj: dict[str, Any],
        pods: list[dict[str, Any]],
        label: str,
        revision: str,
        complete: bool,
    ) -> None:
        ready = sum(is_ready(pod) for pod in pods)
        updated = sum(_revision_of(pod) == label for pod in pods)
        status = copy.deepcopy(obj.get("status") or {})
        generation = obj["metadata"].get("generation", 1)
        if kind == "StatefulSet":
            current = revision if complete else status.get("currentRevision") or revision
            status.update(
                replicas=len(pods),
                readyReplicas=ready,
                availableReplicas=ready,
                currentReplicas=sum(_revision_of(pod) == current for pod in pods),
                updatedReplicas=updated,
                currentRevision=current,
                updateRevision=revision,
                observedGeneration=generation,
                collisionCount=0,
            )
        else:
            status.update(
                desiredNumberScheduled=len(pods),
                currentNumberScheduled=len(pods),
                updatedNumberScheduled=updated,
                numberReady=ready,
                numberAvailable=ready,
                numberUnavailable=len(pods) - ready,
                numberMisscheduled=0,
                observedGeneration=generation,
            )
        if status != obj.get("status"):
            obj["status"] = status
            self._store.commit(obj, self._kinds[kind])

    def _revision(
        self, owner: dict[str, Any], template: dict[str, Any], name: str, *, bump: bool
    ) -> None:
        """Make sure a ControllerRevision records this template; a rollback renumbers it."""
        rtype = self._kinds["ControllerRevision"]
        namespace = owner["metadata"]["namespace"]
        revisions = self.owned(owner, "ControllerRevision")
        top = max((int(r.get("revision") or 0) for r in revisions), default=0)
        existing = self._store.get(rtype, namespace, name)
        if existing is not None:
            if bump and int(existing.get("revision") or 0) < top:
                existing["revision"] = top + 1
                self._store.commit(existing, rtype)
            return
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels["controller.kubernetes.io/hash"] = name.rpartition("-")[2]
        revision = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [owner_reference(owner)],
            },
            "data": {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}},
            "revision": top + 1,
        }
        self._store.insert(self._store.stamp(revision, rtype, namespace=None, created=True), rtype)

    # --- pods ------------------------------------------------------------------------------------

    def _unique(self, namespace: str, prefix: str) -> str:
        while True:
            name = prefix + self._life.suffix()
            if self.get("Pod", namespace, name) is None:
                return name

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        self._store.delete(self._life.pods, pod["metadata"]["namespace"], pod["metadata"]["name"])


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The owner reference marked as the object's controller, if any."""
    references = obj["metadata"].get("ownerReferences") or []
    return next((ref for ref in references if ref.get("controller")), None)


def _revision_of(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get(_REVISION_LABEL, ""))


def _busy(pods: list[dict[str, Any]]) -> bool:
    """Whether a pod is about to change by itself (unschedulable ones wait for a kick)."""
    return any(pod_phase(pod) == "starting" for pod in pods)


def _deletion_order(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods a controller removes first: unscheduled, starting, unready, then the newest."""
    newest_first = sorted(
        pods, key=lambda pod: str(pod["metadata"].get("creationTimestamp", "")), reverse=True
    )
    return sorted(newest_first, key=lambda pod: _DELETE_ORDER[pod_phase(pod)])
