"""Pods as the scheduler and the kubelet would move them along, for the simulated controllers.

A pod created by a controller is scheduled onto a Node (the least loaded one that is not
cordoned, not NotReady, whose taints it tolerates and whose labels match its nodeSelector),
then goes ``ContainerCreating`` -> running and ready, or -> ``CrashLoopBackOff`` with a growing
``restartCount``. :class:`PodLife` also writes the Events those components record.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import zlib
from collections import Counter
from typing import Any

from sandbox.kube_registry import ResourceType
from sandbox.kube_store import ObjectStore, rfc3339
from sandbox.kube_validation import selector_matches

__all__ = [
    "SUFFIX_ALPHABET",
    "PodLife",
    "is_ready",
    "owner_reference",
    "pod_phase",
    "safe_encode",
    "template_hash",
]

#: The characters Kubernetes builds random name suffixes from (no vowels: no words).
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_BACKOFF_CAP = 300


def safe_encode(text: str) -> str:
    """Kubernetes' ``rand.SafeEncodeString``: characters that never spell words."""
    return "".join(SUFFIX_ALPHABET[ord(char) % len(SUFFIX_ALPHABET)] for char in text)


def template_hash(template: dict[str, Any], collisions: int = 0) -> str:
    """A stable hash of a pod template (``pod-template-hash`` / ``controller-revision-hash``)."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":")) + str(collisions or "")
    return safe_encode(str(zlib.adler32(text.encode()) ^ zlib.crc32(text.encode())))


def pod_phase(pod: dict[str, Any]) -> str:
    """``pending`` (unscheduled), ``starting``, ``ready``, ``crashing`` or ``unready``."""
    status = pod.get("status") or {}
    if status.get("phase") == "Pending" and any(
        c.get("type") == "PodScheduled" and c.get("status") == "False"
        for c in status.get("conditions") or []
    ):
        return "pending"
    if is_ready(pod):
        return "ready"
    reasons = {
        ((s.get("state") or {}).get("waiting") or {}).get("reason")
        for s in status.get("containerStatuses") or []
    }
    if "CrashLoopBackOff" in reasons:
        return "crashing"
    if "ContainerCreating" in reasons:
        return "starting"
    return "unready"


def is_ready(pod: dict[str, Any]) -> bool:
    """Whether a pod counts as ready (its Ready condition, else its containers)."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    statuses = status.get("containerStatuses") or []
    return (
        status.get("phase") == "Running"
        and bool(statuses)
        and all(s.get("ready") for s in statuses)
    )


class PodLife:
    """Creates pods for controllers and advances them; records the matching Events.

    Args:
        store: The sandbox's objects.
        rng: Source of pod name suffixes, IPs and event names (seeded: runs repeat).
    """

    def __init__(self, store: ObjectStore, rng: random.Random) -> None:
        self._store = store
        self._rng = rng
        registry = store.registry
        self.pods = _known(registry.for_kind("", "Pod"))
        self._nodes = _known(registry.for_kind("", "Node"))
        self._events = _known(registry.for_kind("", "Event"))

    def now(self) -> str:
        """The sandbox clock, as a timestamp."""
        return rfc3339(self._store.clock())

    def suffix(self) -> str:
        """A five-character random name suffix, as ``generateName`` adds."""
        return "".join(self._rng.choice(SUFFIX_ALPHABET) for _ in range(5))

    # --- creation and scheduling -------------------------------------------------------------

    def create(
        self,
        owner: dict[str, Any],
        template: dict[str, Any],
        name: str,
        *,
        labels: dict[str, str] | None = None,
        node: str | None = None,
        generate_name: str | None = None,
    ) -> dict[str, Any]:
        """Create a pod from a template, owned by ``owner``, and try to schedule it."""
        template_metadata = template.get("metadata") or {}
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": {**(template_metadata.get("labels") or {}), **(labels or {})},
            "ownerReferences": [owner_reference(owner)],
        }
        if generate_name:
            metadata["generateName"] = generate_name
        if template_metadata.get("annotations"):
            metadata["annotations"] = copy.deepcopy(template_metadata["annotations"])
        spec = copy.deepcopy(template.get("spec") or {})
        spec.setdefault("restartPolicy", "Always")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
        pod["status"] = {"phase": "Pending", "conditions": []}
        pod = self._store.insert(
            self._store.stamp(pod, self.pods, namespace=None, created=True), self.pods
        )
        self.schedule(pod, node)
        return pod

    def schedule(self, pod: dict[str, Any], node: str | None = None) -> bool:
        """Bind a pending pod to a node (``node`` when given) and start its containers.

        Returns:
            False when no node fits: the pod stays Pending with a FailedScheduling event.
        """
        spec, now = pod["spec"], self.now()
        nodes = self._store.list(self._nodes, None)
        if node is None and nodes:
            node, message = self._pick_node(pod, nodes)
            if node is None:
                condition: dict[str, Any] = {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                }
                pod["status"] = {"phase": "Pending", "conditions": [condition]}
                self._store.commit(pod, self.pods)
                self.event(pod, "FailedScheduling", message, "Warning", "default-scheduler")
                return False
        if node is not None:
            spec["nodeName"] = node
            where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            self.event(
                pod,
                "Scheduled",
                f"Successfully assigned {where} to {node}",
                "Normal",
                "default-scheduler",
            )
        self._set_status(pod, "starting")
        return True

    def _pick_node(
        self, pod: dict[str, Any], nodes: list[dict[str, Any]]
    ) -> tuple[str | None, str]:
        reasons: Counter[str] = Counter()
        fits = []
        for node in nodes:
            reason = _unfit(pod, node)
            if reason:
                reasons[reason] += 1
            else:
                fits.append(node["metadata"]["name"])
        if not fits:
            total = len(nodes)
            listed = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            message = (
                f"0/{total} nodes are available: {listed}. preemption: 0/{total} nodes are "
                f"available: {total} Preemption is not helpful for scheduling."
            )
            return None, message
        load = Counter(
            (p.get("spec") or {}).get("nodeName") for p in self._store.list(self.pods, None)
        )
        return min(fits, key=lambda name: (load[name], name)), ""

    # --- the kubelet ---------------------------------------------------------------------------

    def advance(self, pod: dict[str, Any], *, broken: bool) -> None:
        """One step of the kubelet: a starting pod runs (or crashes); a crashing one restarts."""
        phase = pod_phase(pod)
        if phase == "pending":
            self.schedule(pod)
        elif phase == "starting":
            self._set_status(pod, "crashing" if broken else "ready")
        elif phase == "crashing" and broken:
            self._set_status(pod, "crashing")

    def _set_status(self, pod: dict[str, Any], phase: str) -> None:
        now, name = self.now(), pod["metadata"]["name"]
        old = pod.get("status") or {}
        old_containers = {s.get("name"): s for s in old.get("containerStatuses") or []}
        ready = phase == "ready"
        statuses = []
        for container in pod["spec"].get("containers") or []:
            image = str(container.get("image", ""))
            status: dict[str, Any] = {
                "name": container.get("name"),
                "image": image,
                "imageID": "",
                "ready": ready,
                "started": ready,
                "restartCount": 0,
            }
            previous = old_containers.get(container.get("name")) or {}
            if phase == "starting":
                status["state"] = {"waiting": {"reason": "ContainerCreating"}}
            else:
                status["imageID"] = f"{image.split(':')[0]}@sha256:{_digest(image)}"
                status["containerID"] = f"containerd://{_digest(name + now + phase)}"
            if ready:
                status["state"] = {"running": {"startedAt": now}}
            elif phase == "crashing":
                restarts = int(previous.get("restartCount") or 0) + 1
                backoff = _go_duration(min(10 * 2 ** (restarts - 1), _BACKOFF_CAP))
                uid = pod["metadata"]["uid"]
                where = f"{name}_{pod['metadata']['namespace']}({uid})"
                status["restartCount"] = restarts
                status["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {backoff} restarting failed container="
                        f"{container.get('name')} pod={where}",
                    }
                }
                status["lastState"] = {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": now,
                        "finishedAt": now,
                        "containerID": status["containerID"],
                    }
                }
                message = (
                    f"Back-off restarting failed container {container.get('name')} in pod {where}"
                )
                self.event(pod, "BackOff", message, "Warning", "kubelet")
            statuses.append(status)
        unready = [s["name"] for s in statuses if not s["ready"]]
        conditions = [
            _condition("PodReadyToStartContainers", phase != "starting", now),
            _condition("Initialized", True, now),
            _condition("Ready", ready, now, unready),
            _condition("ContainersReady", ready, now, unready),
            _condition("PodScheduled", True, now),
        ]
        new_status: dict[str, Any] = {
            "phase": "Pending" if phase == "starting" else "Running",
            "conditions": conditions,
            "containerStatuses": statuses,
            "qosClass": old.get("qosClass") or _qos(pod["spec"]),
            "startTime": old.get("startTime") or now,
        }
        if phase != "starting":
            new_status["podIP"] = (
                old.get("podIP") or f"10.244.{self._rng.randrange(8)}.{self._rng.randrange(2, 250)}"
            )
            new_status["podIPs"] = [{"ip": new_status["podIP"]}]
        node = pod["spec"].get("nodeName")
        if node:
            new_status["hostIP"] = self._host_ip(node)
        pod["status"] = new_status
        self._store.commit(pod, self.pods)

    def _host_ip(self, node_name: str) -> str:
        node = self._store.get(self._nodes, None, node_name) or {}
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                return str(address.get("address"))
        return f"10.0.0.{zlib.crc32(node_name.encode()) % 250 + 2}"

    # --- events --------------------------------------------------------------------------------

    def event(
        self, about: dict[str, Any], reason: str, message: str, type_: str, component: str
    ) -> None:
        """Record an Event about an object, counting repeats like the event recorder."""
        metadata = about["metadata"]
        namespace = metadata.get("namespace") or "default"
        now = self.now()
        for existing in self._store.list(self._events, namespace):
            involved = existing.get("involvedObject") or {}
            if (involved.get("uid"), existing.get("reason"), existing.get("message")) == (
                metadata.get("uid"),
                reason,
                message,
            ):
                existing["count"] = int(existing.get("count") or 1) + 1
                existing["lastTimestamp"] = now
                self._store.commit(existing, self._events)
                return
        involved_object = {
            "apiVersion": about.get("apiVersion"),
            "kind": about.get("kind"),
            "name": metadata["name"],
            "namespace": namespace,
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
        }
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name']}.{self._rng.getrandbits(64):016x}",
                "namespace": namespace,
            },
            "involvedObject": involved_object,
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": "",
        }
        self._store.insert(
            self._store.stamp(event, self._events, namespace=namespace, created=True), self._events
        )


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """The controller owner reference pointing at ``owner``."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _known(rtype: ResourceType | None) -> ResourceType:
    assert rtype is not None  # built-in kinds
    return rtype


def _unfit(pod: dict[str, Any], node: dict[str, Any]) -> str:
    """Why a pod cannot go on a node, in the scheduler's words; "" when it fits."""
    spec = node.get("spec") or {}
    tolerations = pod["spec"].get("tolerations") or []
    if spec.get("unschedulable") and not _tolerates(
        tolerations, "node.kubernetes.io/unschedulable"
    ):
        return "node(s) were unschedulable"
    ready = next(
        (c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    if ready is not None and ready.get("status") != "True":
        return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    for taint in spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            tolerations, str(taint.get("key")), taint.get("value")
        ):
            if taint.get("key") == "node.kubernetes.io/unschedulable":
                continue  # counted above, from spec.unschedulable
            return (
                f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
            )
    wanted = pod["spec"].get("nodeSelector")
    labels = (node.get("metadata") or {}).get("labels")
    if wanted and not selector_matches({"matchLabels": wanted}, labels):
        return "node(s) didn't match Pod's node affinity/selector"
    return ""


def _tolerates(tolerations: list[dict[str, Any]], key: str, value: Any = None) -> bool:
    for toleration in tolerations:
        if toleration.get("operator") == "Exists" and toleration.get("key") in (None, "", key):
            return True
        if toleration.get("key") == key and toleration.get("value") == value:
            return True
    return False


def _condition(kind: str, ok: bool, now: str, unready: list[str] | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": kind, "status": "True" if ok else "False"}
    condition.update(lastProbeTime=None, lastTransitionTime=now)
    if not ok and kind in ("Ready", "ContainersReady") and unready:
        condition["reason"] = "ContainersNotReady"
        condition["message"] = f"containers with unready status: [{' '.join(unready)}]"
    return condition


def _qos(spec: dict[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("limits") or r.get("requests") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits")
        and set(r["limits"]) >= {"cpu", "memory"}
        and all(
            (r.get("requests") or r["limits"]).get(k) == r["limits"].get(k)
            for k in ("cpu", "memory")
        )
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _go_duration(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"
