"""Read-only Kubernetes evidence for one incident, gathered into a :class:`Bundle`.

:class:`KubeCollector` starts from the object the :class:`~bot.targets.WorkloadResolver`
found and the alert's labels, and reads in three stages, each stage's independent reads
concurrently (``asyncio.gather``):

1. the target and its controller chain upward (Pod → ReplicaSet → Deployment, Pod → Job →
   CronJob, HPA → its scale target), the alerted pod, the namespace's ResourceQuotas and
   LimitRanges (and its Warning events when the alert names no object, or a quota: the
   FailedCreate events that explain those sit on ReplicaSets nobody named);
2. the workload's pods: a Deployment's ReplicaSets (and the rollout diff between the current
   and previous revision) and pods, a StatefulSet's/DaemonSet's/Job's pods, a CronJob's
   newest failed or active Jobs and their pods, a Node's, PVC's or Service's pods; at most
   ``max_pods``, the alerted pod first, then unhealthy ones;
3. around those pods: container logs (current and previous), their nodes with the requests
   already placed on them, PVCs with their PV and StorageClass, Services selecting them with
   their Endpoints, HPAs scaling the workload, and the recent events of all of these.

Objects are stored exactly as the API returned them, with one exception. The summed
requests of the pods on a collected Node are added to that Node's dict under a private key,
so rules can compare allocatable with requested without a new Bundle field::

    node["x-incident-bot"] == {"requested": {"cpu": "1850m", "memory": "6Gi"}, "pods": 31}

(non-terminated pods only; requests as the scheduler counts them, init containers and pod
overhead included).

Failure modes: an API error becomes a ``missing`` line (``kubernetes: events of
shop/Pod/x: 500 …``) and the rest goes on; the whole collection is bounded by ``timeout`` and
returns what it had, plus a ``missing`` line, when it runs out. A 404 is not missing data but
evidence (a StorageClass that does not exist, a deleted pod): nothing is stored and the rules
see the absence. Secrets are never read (:mod:`bot.kube` has no path for them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.collect.k8s_objects import (
    DEFAULT_CLASS_ANNOTATIONS,
    OWNER_KINDS,
    PRIVATE_KEY,
    WORKLOAD_KINDS,
    annotation,
    as_dict,
    claim_names,
    controller_of,
    created_at,
    job_active,
    job_failed,
    log_containers,
    meta,
    node_ready,
    node_usage,
    owned_by,
    rank_pods,
    recent_events,
    ref_of,
    selector_query,
    selects,
    statefulset_claims,
)
from bot.collect.k8s_reads import Reads
from bot.collect.k8s_rollout import deployment_rollout
from bot.kube import KubeReader
from bot.rca.bundle import Bundle, ContainerLogs, KubeObject
from bot.targets import ObjectRef

__all__ = ["KubeCollector"]

log = logging.getLogger(__name__)

MAX_EVENTS = 60
MAX_REPLICASETS = 5  # current, previous, and any older one still holding pods
MAX_JOBS = 5
MAX_SERVICES = 5
MAX_POLICIES = 10  # ResourceQuotas, LimitRanges
MAX_NAMESPACE_WARNINGS = 200  # when the alert names no object (see stage 1)


@dataclass(frozen=True)
class _Limits:
    log_tail_lines: int
    log_bytes: int
    max_pods: int
    event_window: timedelta


class KubeCollector:
    """Collects read-only Kubernetes evidence for an incident (see the module docstring).

    Args:
        kube: The read-only API reader; None when no cluster access is configured.
        timeout: Seconds allowed for the whole collection.
        log_tail_lines: Lines of each container log to read.
        log_bytes: Bytes of each container log to keep (the newest).
        max_pods: Pods collected (and whose logs are read) per incident.
        event_window: Events last seen longer ago than this before ``now`` are dropped.
    """

    def __init__(
        self,
        kube: KubeReader | None,
        *,
        timeout: float = 8.0,
        log_tail_lines: int = 200,
        log_bytes: int = 64_000,
        max_pods: int = 5,
        event_window: timedelta = timedelta(hours=2),
    ) -> None:
        self._kube = kube
        self._timeout = timeout
        self._limits = _Limits(log_tail_lines, log_bytes, max_pods, event_window)

    async def collect(
        self,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        *,
        alertname: str,
        namespace: str,
        target: ObjectRef | None,
        now: datetime,
    ) -> Bundle:
        """Everything the API holds about one alert's incident. Never raises for API trouble.

        Args:
            labels: The alert's labels (``pod``, ``container``, ``node``,
                ``persistentvolumeclaim``, ``horizontalpodautoscaler``, ``service`` are used).
            annotations: The alert's annotations, copied into the bundle.
            alertname: The alert's name.
            namespace: The alert's namespace ("" for cluster-level alerts).
            target: The top-level object the WorkloadResolver found, if any.
            now: The investigation's wall clock; the event window ends here.

        Returns:
            The bundle; ``missing`` names every read that failed or did not happen.
        """
        bundle = Bundle(
            alertname=alertname,
            labels=dict(labels),
            annotations=dict(annotations),
            namespace=namespace,
            now=now,
            target=target,
        )
        if self._kube is None:
            bundle.missing.append("kubernetes: no cluster access configured")
            return bundle
        run = _Run(self._kube, self._limits, bundle)
        try:
            async with asyncio.timeout(self._timeout):
                await run.collect()
        except TimeoutError:
            bundle.missing.append(
                f"kubernetes: timed out after {self._timeout:g}s, evidence is incomplete"
            )
        except Exception as exc:  # a malformed object must cost evidence, never the reply
            log.exception("kubernetes evidence collection failed")
            bundle.missing.append(f"kubernetes: collection failed: {type(exc).__name__}: {exc}")
        bundle.events = recent_events(run.reads.events, now, self._limits.event_window, MAX_EVENTS)
        return bundle


class _Run:
    """One collection: the reads of :meth:`KubeCollector.collect` and what they found."""

    def __init__(self, kube: KubeReader, limits: _Limits, bundle: Bundle) -> None:
        self.reads = Reads(
            kube, bundle, log_tail_lines=limits.log_tail_lines, log_bytes=limits.log_bytes
        )
        self.limits = limits
        self.bundle = bundle
        labels = bundle.labels
        target = bundle.target
        self.ns = (
            bundle.namespace or labels.get("namespace") or (target.namespace if target else "")
        )
        self.alerted = labels.get("pod") or None
        self._chain: list[tuple[ObjectRef, KubeObject]] = []  # target and its owners, upward
        self._node_pods: dict[str, list[KubeObject] | None] = {}  # None: the list failed

    # --- the stages ------------------------------------------------------------------------

    async def collect(self) -> None:
        """The three stages of the module docstring, writing into the bundle as they go."""
        await asyncio.gather(self._target(), self._alerted_pod(), self._policies())
        pods = await self._pods()
        await asyncio.gather(
            self.reads.events_of(
                [ref for ref, _ in self._chain] + [ref_of(p, "Pod", self.ns) for p in pods]
            ),
            self._logs(pods),
            self._nodes(pods),
            self._claims(pods),
            self._services(pods),
            self._autoscalers(),
        )

    async def _target(self) -> None:
        """The target and its controllers upward (a HPA's scale target counts as one)."""
        ref = self.bundle.target
        if ref is None:
            return
        obj = await self.reads.get(ref)
        if obj is None:
            # A deleted object's events may still say why it went; read them anyway.
            await self.reads.events_of([ref])
            return
        self._chain.append((ref, obj))
        for _ in range(4):  # Pod → ReplicaSet → Deployment is the longest chain
            owner = controller_of(obj)
            if ref.kind == "HorizontalPodAutoscaler":
                scale = as_dict(as_dict(obj.get("spec")).get("scaleTargetRef"))
                owner = (str(scale.get("kind") or ""), str(scale.get("name") or ""))
            if owner is None or owner[0] not in OWNER_KINDS or not owner[1]:
                return
            ref = ObjectRef(owner[0], owner[1], ref.namespace)
            found = await self.reads.get(ref)
            if found is None:
                return
            obj = found
            self._chain.append((ref, obj))

    async def _alerted_pod(self) -> None:
        """The pod the alert names, read early so it is the first pod in the bundle."""
        target = self.bundle.target
        if self.alerted and self.ns and not (target and target.kind == "Pod"):
            ref = ObjectRef("Pod", self.alerted, self.ns)
            if await self.reads.get(ref) is None:
                await self.reads.events_of([ref])

    async def _policies(self) -> None:
        """The namespace's ResourceQuotas and LimitRanges (they forbid pods being created)."""
        if not self.ns:
            return
        target = self.bundle.target
        quotas, limit_ranges, warnings = await asyncio.gather(
            self.reads.listing(f"ResourceQuotas in {self.ns}", "ResourceQuota", self.ns),
            self.reads.listing(f"LimitRanges in {self.ns}", "LimitRange", self.ns),
            self.reads.listing(
                f"Warning events in {self.ns}",
                "Event",
                self.ns,
                fields="type=Warning",
                limit=MAX_NAMESPACE_WARNINGS,
            )
            if target is None or target.kind == "ResourceQuota"
            else _nothing(),
        )
        for kind, items in (("ResourceQuota", quotas), ("LimitRange", limit_ranges)):
            for item in items[:MAX_POLICIES]:
                self.bundle.objects[ref_of(item, kind, self.ns)] = item
        self.reads.events.extend(warnings)

    async def _pods(self) -> list[KubeObject]:
        """The affected pods, ranked and capped, stored in the bundle in that order."""
        candidates = await self._candidate_pods()
        alerted = self.bundle.get(ObjectRef("Pod", self.alerted or "", self.ns))
        if alerted is not None:
            candidates.append(alerted)
        if self.bundle.target and self.bundle.target.kind == "Pod":
            candidates.extend(obj for ref, obj in self._chain if ref.kind == "Pod")
        pods = rank_pods(candidates, self.alerted)[: self.limits.max_pods]
        for pod in pods:
            self.bundle.objects[ref_of(pod, "Pod", self.ns)] = pod
        return pods

    async def _candidate_pods(self) -> list[KubeObject]:
        """Pods of the workload (the lowest controller in the chain), or of the target."""
        workload = next(((r, o) for r, o in self._chain if r.kind in WORKLOAD_KINDS), None)
        if workload is not None:
            ref, obj = workload
            if ref.kind == "Deployment":
                return await self._deployment(ref, obj)
            if ref.kind == "CronJob":
                return await self._cronjob(ref, obj)
            if ref.kind == "Job":
                return await self._pods_of_job(ref, obj)
            return await self._pods_by(ref, as_dict(obj.get("spec")).get("selector"))
        target = self.bundle.target
        if target is None or self.bundle.get(target) is None:
            return []
        if target.kind == "Node":
            return await self._pods_on(target.name) or []
        if target.kind == "Service":
            selector = as_dict(as_dict(self.bundle.objects[target].get("spec")).get("selector"))
            return await self._pods_by(target, {"matchLabels": selector})
        if target.kind == "PersistentVolumeClaim":
            pods = await self.reads.listing(f"pods in {target.namespace}", "Pod", target.namespace)
            return [p for p in pods if target.name in claim_names(p)]
        return []

    async def _deployment(self, ref: ObjectRef, deploy: KubeObject) -> list[KubeObject]:
        """ReplicaSets (with the rollout diff) and pods of a Deployment."""
        selector = as_dict(deploy.get("spec")).get("selector")
        query = selector_query(selector)
        replicasets, pods = await asyncio.gather(
            self.reads.listing(f"ReplicaSets of {ref}", "ReplicaSet", ref.namespace, labels=query)
            if query
            else _nothing(),
            self._pods_by(ref, selector),
        )
        owned = [rs for rs in replicasets if owned_by(rs, deploy, "Deployment")]
        rollout = deployment_rollout(deploy, owned)
        self.bundle.rollout = rollout
        keep = {rollout.current, rollout.previous} if rollout else set()
        newest = sorted(owned, key=created_at, reverse=True)
        chosen = [rs for rs in newest if ref_of(rs, "ReplicaSet", ref.namespace) in keep]
        chosen += [
            rs
            for rs in newest
            if rs not in chosen and int(as_dict(rs.get("status")).get("replicas") or 0) > 0
        ]
        for rs in chosen[:MAX_REPLICASETS]:
            rs_ref = ref_of(rs, "ReplicaSet", ref.namespace)
            self.bundle.objects[rs_ref] = rs
            if rs_ref in keep:
                self._chain.append((rs_ref, rs))  # their events: FailedCreate lives there
        return pods

    async def _cronjob(self, ref: ObjectRef, cronjob: KubeObject) -> list[KubeObject]:
        """A CronJob's Jobs, and the pods of its newest failed or active ones."""
        jobs = await self.reads.listing(f"Jobs of {ref}", "Job", ref.namespace)
        owned = sorted(
            (job for job in jobs if owned_by(job, cronjob, "CronJob")),
            key=created_at,
            reverse=True,
        )[:MAX_JOBS]
        for job in owned:
            self.bundle.objects[ref_of(job, "Job", ref.namespace)] = job
        troubled = [job for job in owned if job_failed(job) or job_active(job)][:2]
        picked = troubled or owned[:1]
        batches = await asyncio.gather(
            *(self._pods_of_job(ref_of(job, "Job", ref.namespace), job) for job in picked)
        )
        for job in picked:
            self._chain.append((ref_of(job, "Job", ref.namespace), job))
        return [pod for batch in batches for pod in batch]

    async def _pods_of_job(self, ref: ObjectRef, job: KubeObject) -> list[KubeObject]:
        """A Job's pods, by its own selector (controller-uid) or else the job-name label."""
        selector = as_dict(job.get("spec")).get("selector")
        if not selector_query(selector):
            selector = {"matchLabels": {"job-name": ref.name}}
        return await self._pods_by(ref, selector)

    async def _pods_by(self, owner: ObjectRef, selector: object) -> list[KubeObject]:
        query = selector_query(selector)
        if not query:  # an empty selector would list every pod in the namespace
            return []
        return await self.reads.listing(f"pods of {owner}", "Pod", owner.namespace, labels=query)

    async def _pods_on(self, node: str) -> list[KubeObject] | None:
        """Every pod on a node, all namespaces, read once per node; None if the read failed."""
        if node not in self._node_pods:
            # Not Reads.listing: a failed list must stay None, not look like an empty node.
            call = self.reads.kube.list_objects("Pod", None, field_selector=f"spec.nodeName={node}")
            self._node_pods[node] = await self.reads.attempt(f"pods on Node/{node}", call)
        return self._node_pods[node]

    # --- around the pods --------------------------------------------------------------------

    async def _logs(self, pods: list[KubeObject]) -> None:
        """Logs of the containers that fail, restarted, or that the alert names."""
        down = {ref.name for ref, obj in self._chain if ref.kind == "Node" and not node_ready(obj)}
        reads = []
        for pod in pods:
            node = str(as_dict(pod.get("spec")).get("nodeName") or "")
            # No node, no log; a dead node's kubelet would only make us wait for the timeout.
            if not node or node in down:
                continue
            pod_ref = ref_of(pod, "Pod", self.ns)
            for container, previous in log_containers(pod, self.bundle.labels.get("container")):
                reads.append(self._container_logs(pod_ref, container, previous))
        await asyncio.gather(*reads)

    async def _container_logs(self, pod: ObjectRef, container: str, previous: bool) -> None:
        current_text, previous_text = await asyncio.gather(
            self.reads.log(pod, container, previous=False),
            self.reads.log(pod, container, previous=True) if previous else _empty(),
        )
        self.bundle.logs[f"{pod.name}/{container}"] = ContainerLogs(
            pod.name, container, current_text, previous_text
        )

    async def _nodes(self, pods: list[KubeObject]) -> None:
        """The pods' nodes and the alert's node, each with the requests placed on it."""
        names = [str(as_dict(p.get("spec")).get("nodeName") or "") for p in pods]
        names.append(self.bundle.labels.get("node", ""))
        if self.bundle.target and self.bundle.target.kind == "Node":
            names.append(self.bundle.target.name)
        unique = [n for n in dict.fromkeys(names) if n]
        await asyncio.gather(*(self._node(name) for name in unique[: self.limits.max_pods + 1]))

    async def _node(self, name: str) -> None:
        ref = ObjectRef("Node", name)
        node, on_node, _ = await asyncio.gather(
            self.reads.get(ref), self._pods_on(name), self.reads.events_of([ref])
        )
        if node is not None and on_node is not None:  # a failed list is not an empty node
            node[PRIVATE_KEY] = node_usage(on_node)

    async def _claims(self, pods: list[KubeObject]) -> None:
        """PVCs the pods mount (or a StatefulSet's pods would), with PV and StorageClass."""
        names = [claim for pod in pods for claim in claim_names(pod)]
        for ref, obj in self._chain:
            if ref.kind == "StatefulSet":
                replicas = int(as_dict(obj.get("spec")).get("replicas") or 0)
                names += statefulset_claims(obj, range(min(replicas, self.limits.max_pods)))
        names.append(self.bundle.labels.get("persistentvolumeclaim", ""))
        target = self.bundle.target
        if target and target.kind == "PersistentVolumeClaim":
            names.append(target.name)
        unique = [n for n in dict.fromkeys(names) if n][: self.limits.max_pods * 2]
        if not self.ns or not unique:
            return
        refs = [ObjectRef("PersistentVolumeClaim", n, self.ns) for n in unique]
        found = await asyncio.gather(*(self.reads.get(ref) for ref in refs))
        claims = [(ref, pvc) for ref, pvc in zip(refs, found, strict=True) if pvc is not None]
        specs = [as_dict(pvc.get("spec")) for _, pvc in claims]
        volumes = {str(s["volumeName"]) for s in specs if s.get("volumeName")}
        classes = {str(s["storageClassName"]) for s in specs if s.get("storageClassName")}
        # An absent storageClassName means "the default class"; "" means "no class at all".
        wants_default = any("storageClassName" not in s for s in specs)
        await asyncio.gather(
            *(self.reads.get(ObjectRef("PersistentVolume", v)) for v in sorted(volumes)),
            *(self.reads.get(ObjectRef("StorageClass", c)) for c in sorted(classes)),
            self._default_storage_class() if wants_default else _nothing(),
            self.reads.events_of([ref for ref, _ in claims]),
        )

    async def _default_storage_class(self) -> list[KubeObject]:
        classes = await self.reads.listing("StorageClasses", "StorageClass", None)
        for sc in classes:
            if any(annotation(sc, key) == "true" for key in DEFAULT_CLASS_ANNOTATIONS):
                self.bundle.objects[ref_of(sc, "StorageClass")] = sc
        return classes

    async def _services(self, pods: list[KubeObject]) -> None:
        """Services selecting the pods, the alert's Service, and their Endpoints."""
        found: dict[ObjectRef, KubeObject] = {}
        target = self.bundle.target
        if target and target.kind == "Service" and self.bundle.get(target) is not None:
            found[target] = self.bundle.objects[target]
        if self.ns and pods:
            services = await self.reads.listing(f"Services in {self.ns}", "Service", self.ns)
            pod_labels = [as_dict(meta(pod).get("labels")) for pod in pods]
            for svc in services:
                selector = as_dict(as_dict(svc.get("spec")).get("selector"))
                if any(selects(selector, labels) for labels in pod_labels):
                    found.setdefault(ref_of(svc, "Service", self.ns), svc)
        await self._labelled(found, "Service", "service")
        chosen = list(found.items())[:MAX_SERVICES]
        for ref, svc in chosen:
            self.bundle.objects[ref] = svc
        await asyncio.gather(
            *(self.reads.get(ObjectRef("Endpoints", ref.name, ref.namespace)) for ref, _ in chosen),
            self.reads.events_of([ref for ref, _ in chosen]),
        )

    async def _autoscalers(self) -> None:
        """HPAs whose scaleTargetRef names the workload, and the alert's HPA."""
        found: dict[ObjectRef, KubeObject] = {
            ref: obj for ref, obj in self._chain if ref.kind == "HorizontalPodAutoscaler"
        }
        workloads = {(ref.kind, ref.name) for ref, _ in self._chain if ref.kind in WORKLOAD_KINDS}
        if self.ns and workloads:
            hpas = await self.reads.listing(
                f"HorizontalPodAutoscalers in {self.ns}", "HorizontalPodAutoscaler", self.ns
            )
            for hpa in hpas:
                scale = as_dict(as_dict(hpa.get("spec")).get("scaleTargetRef"))
                if (scale.get("kind"), scale.get("name")) in workloads:
                    found.setdefault(ref_of(hpa, "HorizontalPodAutoscaler", self.ns), hpa)
        await self._labelled(found, "HorizontalPodAutoscaler", "horizontalpodautoscaler")
        for ref, hpa in found.items():
            self.bundle.objects[ref] = hpa
        await self.reads.events_of(list(found))

    async def _labelled(self, found: dict[ObjectRef, KubeObject], kind: str, label: str) -> None:
        """Add the object an alert label names to ``found``, when it exists."""
        name = self.bundle.labels.get(label)
        if name and self.ns:
            ref = ObjectRef(kind, name, self.ns)
            obj = found.get(ref) or await self.reads.get(ref)
            if obj is not None:
                found[ref] = obj


async def _nothing() -> list[KubeObject]:
    return []


async def _empty() -> str:
    return ""
