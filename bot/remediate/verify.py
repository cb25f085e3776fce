"""Did the change work? Health checks on API objects, and a poller that waits for a verdict.

The pure functions judge one reading: :func:`workload_health` (Deployment, StatefulSet,
DaemonSet, ReplicaSet) says ``healthy``, ``progressing`` or ``failed`` from the status the
controllers write, and :func:`pod_failures` names pods of the *new* template that are
crash-looping or cannot pull their image, so a broken rollout fails in seconds instead of
after the progress deadline. :class:`Verifier` reads through the remediation client and
polls them until a verdict or the time budget is spent; read errors count as "not yet".

Conditions and counters are trusted only once the controller has observed the object's
current generation: right after a PATCH, the status still describes the old spec.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.collect.k8s_objects import (
    annotation,
    as_dict,
    as_list,
    container_statuses,
    controller_of,
    meta,
    owned_by,
    selector_query,
)
from bot.errors import KubeError
from bot.remediate.diff import object_diff
from bot.remediate.kube_write import KubeWriter
from bot.targets import ObjectRef

State = Literal["healthy", "progressing", "failed"]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

REVISION = "deployment.kubernetes.io/revision"
# A new pod's container waiting for one of these will not get better by waiting.
FAILING_WAITING = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
# Restarts after which a not-ready container of a fresh pod counts as crash-looping.
CRASH_RESTARTS = 2


@dataclass(frozen=True)
class Health:
    """One reading's verdict and what was seen."""

    state: State
    detail: str


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _observed(obj: Mapping[str, Any]) -> Health | None:
    """``progressing`` while the controller has not seen the current generation."""
    generation = _int(meta(obj).get("generation"))
    observed = _int(as_dict(obj.get("status")).get("observedGeneration"))
    if generation and observed < generation:
        return Health(
            "progressing", f"waiting for the controller to observe generation {generation}"
        )
    return None


def pod_failures(pods: list[dict[str, Any]]) -> list[str]:
    """Failing pods counted by reason: ``["2 pods CrashLoopBackOff", "1 pod ErrImagePull"]``."""
    counts: dict[str, int] = {}
    for pod in pods:
        reason = _pod_failure(pod)
        if reason:
            counts[reason] = counts.get(reason, 0) + 1
    return [f"{n} pod{'s' if n > 1 else ''} {reason}" for reason, n in sorted(counts.items())]


def _pod_failure(pod: Mapping[str, Any]) -> str | None:
    for status in container_statuses(pod):
        state = as_dict(status.get("state"))
        reason = str(as_dict(state.get("waiting")).get("reason") or "")
        if reason in FAILING_WAITING:
            return reason
        if _int(status.get("restartCount")) >= CRASH_RESTARTS and not status.get("ready"):
            last = as_dict(as_dict(status.get("lastState")).get("terminated"))
            return reason or str(last.get("reason") or "restarting")
    return None


def deployment_health(obj: Mapping[str, Any], new_pods: list[dict[str, Any]]) -> Health:
    """A Deployment's rollout: ``kubectl rollout status`` semantics, plus pods of the new RS."""
    waiting = _observed(obj)
    if waiting:
        return waiting
    spec, status = as_dict(obj.get("spec")), as_dict(obj.get("status"))
    failures = pod_failures(new_pods)
    for condition in as_list(status.get("conditions")):
        condition = as_dict(condition)
        if (
            condition.get("type") == "Progressing"
            and condition.get("status") == "False"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            detail = f"ProgressDeadlineExceeded: {condition.get('message') or 'no progress'}"
            return Health("failed", "; ".join([detail, *failures]))
    want = _int(spec.get("replicas", 1))
    updated, ready = _int(status.get("updatedReplicas")), _int(status.get("readyReplicas"))
    available, total = _int(status.get("availableReplicas")), _int(status.get("replicas"))
    if updated == ready == available == total == want:
        revision = annotation(obj, REVISION)
        return Health(
            "healthy",
            f"{ready}/{want} replicas ready" + (f" on revision {revision}" if revision else ""),
        )
    if failures:
        return Health("failed", "new pods failing: " + ", ".join(failures))
    detail = f"{updated}/{want} updated, {ready} ready, {available} available"
    if total > updated:
        detail += f", {total - updated} old pending termination"
    return Health("progressing", detail)


def statefulset_health(obj: Mapping[str, Any], new_pods: list[dict[str, Any]]) -> Health:
    """A StatefulSet: updated and ready replicas, and currentRevision caught up."""
    waiting = _observed(obj)
    if waiting:
        return waiting
    spec, status = as_dict(obj.get("spec")), as_dict(obj.get("status"))
    want = _int(spec.get("replicas", 1))
    strategy = as_dict(spec.get("updateStrategy"))
    partition = _int(as_dict(strategy.get("rollingUpdate")).get("partition"))
    on_delete = strategy.get("type") == "OnDelete"
    ready, updated = _int(status.get("readyReplicas")), _int(status.get("updatedReplicas"))
    revision = str(status.get("updateRevision") or "")
    caught_up = on_delete or partition > 0 or status.get("currentRevision") == revision
    if ready == want and (on_delete or updated >= want - partition) and caught_up:
        return Health("healthy", f"{ready}/{want} replicas ready on revision {revision}")
    failures = pod_failures(new_pods)
    if failures:
        return Health("failed", "new pods failing: " + ", ".join(failures))
    return Health("progressing", f"{updated}/{want} updated, {ready} ready")


def daemonset_health(obj: Mapping[str, Any]) -> Health:
    """A DaemonSet: every scheduled pod updated, ready and available."""
    waiting = _observed(obj)
    if waiting:
        return waiting
    spec, status = as_dict(obj.get("spec")), as_dict(obj.get("status"))
    want = _int(status.get("desiredNumberScheduled"))
    ready, available = _int(status.get("numberReady")), _int(status.get("numberAvailable"))
    updated = _int(status.get("updatedNumberScheduled"))
    on_delete = as_dict(spec.get("updateStrategy")).get("type") == "OnDelete"
    if ready == available == want and (on_delete or updated == want):
        return Health("healthy", f"{ready}/{want} pods ready on every scheduled node")
    return Health("progressing", f"{updated}/{want} updated, {ready} ready, {available} available")


def replicaset_health(obj: Mapping[str, Any]) -> Health:
    """A bare ReplicaSet: ready replicas equal the wanted ones."""
    want = _int(as_dict(obj.get("spec")).get("replicas", 1))
    ready = _int(as_dict(obj.get("status")).get("readyReplicas"))
    state: State = "healthy" if ready == want else "progressing"
    return Health(state, f"{ready}/{want} replicas ready")


def workload_health(kind: str, obj: Mapping[str, Any], new_pods: list[dict[str, Any]]) -> Health:
    """Dispatch on ``kind``.

    Raises:
        ValueError: for a kind that is not a workload.
    """
    if kind == "Deployment":
        return deployment_health(obj, new_pods)
    if kind == "StatefulSet":
        return statefulset_health(obj, new_pods)
    if kind == "DaemonSet":
        return daemonset_health(obj)
    if kind == "ReplicaSet":
        return replicaset_health(obj)
    raise ValueError(f"{kind} is not a workload")


def newest_replicaset(
    deployment: Mapping[str, Any], replicasets: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The Deployment's ReplicaSet with the highest revision (its current template)."""
    owned = [rs for rs in replicasets if owned_by(rs, deployment, "Deployment")]
    if not owned:
        return None
    return max(owned, key=lambda rs: (_int(annotation(rs, REVISION)), meta(rs).get("name", "")))


def field_value(obj: Mapping[str, Any], path: tuple[str, ...], default: Any = None) -> Any:
    """``obj[path[0]][path[1]]…``, or ``default`` when any step is missing."""
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return default if node is None else node


class Verifier:
    """Polls the cluster until a change is healthy, failed, or out of time.

    Args:
        writer: The remediation client (it holds the reads verification needs).
        poll_interval: Seconds between readings.
        clock: Monotonic seconds (injectable so tests do not wait).
        sleep: Awaitable sleep matching ``clock``.
    """

    def __init__(
        self,
        writer: KubeWriter,
        *,
        poll_interval: float = 2.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._writer = writer
        self._interval = poll_interval
        self._clock = clock
        self._sleep = sleep

    async def poll(self, probe: Callable[[], Awaitable[Health]], budget: float) -> tuple[bool, str]:
        """Read until ``probe`` says healthy (True) or failed (False), or ``budget`` s pass."""
        deadline = self._clock() + budget
        while True:
            try:
                health = await probe()
            except KubeError as exc:
                health = Health("progressing", f"cannot read: {exc}")
            if health.state != "progressing":
                return health.state == "healthy", health.detail
            if self._clock() >= deadline:
                return False, f"not healthy after {budget:g}s: {health.detail}"
            await self._sleep(self._interval)

    async def workload(self, ref: ObjectRef, budget: float) -> tuple[bool, str]:
        """Wait for a workload's rollout to finish; fail early on a broken new template."""
        return await self.poll(lambda: self.workload_reading(ref), budget)

    async def workload_reading(self, ref: ObjectRef) -> Health:
        """One reading of a workload's health, looking at its new pods when it is not done."""
        obj = await self._writer.get(ref)
        health = workload_health(ref.kind, obj, [])
        if health.state != "healthy" and not _observed(obj):
            pods = await self._new_pods(ref, obj)
            if pods:
                health = workload_health(ref.kind, obj, pods)
        return health

    async def _new_pods(self, ref: ObjectRef, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
        selector = selector_query(as_dict(obj.get("spec")).get("selector"))
        if not selector:
            return []
        if ref.kind == "Deployment":
            replicasets = await self._writer.list_replicasets(ref.namespace, selector)
            newest = newest_replicaset(obj, replicasets)
            hash_ = as_dict(meta(newest or {}).get("labels")).get("pod-template-hash")
            if not hash_:
                return []
            return await self._writer.list_pods(
                ref.namespace, f"{selector},pod-template-hash={hash_}"
            )
        if ref.kind == "StatefulSet":
            revision = as_dict(obj.get("status")).get("updateRevision")
            if not revision:
                return []
            selector += f",controller-revision-hash={revision}"
            return await self._writer.list_pods(ref.namespace, selector)
        return []  # DaemonSet status names no update revision: counters only

    async def field(
        self, ref: ObjectRef, path: tuple[str, ...], expected: Any, default: Any, budget: float
    ) -> tuple[bool, str]:
        """Wait until ``path`` of the object reads ``expected`` (``default`` when absent)."""
        where = ".".join(path)

        async def probe() -> Health:
            value = field_value(await self._writer.get(ref), path, default)
            state: State = "healthy" if value == expected else "progressing"
            return Health(state, f"{ref} {where} is {value!r}")

        return await self.poll(probe, budget)

    async def pod_replaced(
        self, pod: Mapping[str, Any], namespace: str, budget: float
    ) -> tuple[bool, str]:
        """Wait until a deleted pod is gone (or back with a new uid) and its owner is healthy."""
        start = self._clock()
        name, uid = str(meta(pod).get("name")), meta(pod).get("uid")
        ref = ObjectRef("Pod", name, namespace)

        async def gone() -> Health:
            try:
                current = await self._writer.get(ref)
            except KubeError as exc:
                if exc.status == 404:
                    return Health("healthy", f"pod {name} is gone")
                raise
            if uid and meta(current).get("uid") != uid:
                return Health("healthy", f"pod {name} was recreated (new uid)")
            return Health("progressing", f"pod {name} still exists")

        ok, detail = await self.poll(gone, budget)
        if not ok:
            return ok, detail
        owner = await self._owner(pod, namespace)
        if owner is None:
            return True, f"{detail}; it had no controller, so nothing replaces it"
        if owner.kind not in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
            return True, f"{detail}; its owner {owner.kind}/{owner.name} is not a workload"
        remaining = max(0.0, budget - (self._clock() - start))
        ok, health = await self.workload(owner, remaining)
        return ok, f"{detail}; {owner.kind}/{owner.name}: {health}"

    async def _owner(self, pod: Mapping[str, Any], namespace: str) -> ObjectRef | None:
        owner = controller_of(pod)
        if owner is None:
            return None
        ref = ObjectRef(owner[0], owner[1], namespace)
        if ref.kind == "ReplicaSet":
            try:
                parent = controller_of(await self._writer.get(ref))
            except KubeError:
                return ref
            if parent is not None and parent[0] == "Deployment":
                return ObjectRef("Deployment", parent[1], namespace)
        return ref

    async def restored(
        self, ref: ObjectRef, snapshot: Mapping[str, Any], budget: float
    ) -> tuple[bool, str]:
        """Wait until a restored workload is as it was before the change.

        When the snapshot was healthy, that means healthy again. When it was not (the change
        was meant to fix it), the spec must equal the snapshot's and be observed by the
        controller: waiting for health it never had would call a good restore a failure.
        """
        if workload_health(ref.kind, snapshot, []).state == "healthy":
            return await self.workload(ref, budget)

        async def probe() -> Health:
            obj = await self._writer.get(ref)
            differs = object_diff(as_dict(snapshot.get("spec")), as_dict(obj.get("spec")))
            if differs:
                return Health("progressing", "spec differs from the snapshot: " + differs[0])
            waiting = _observed(obj)
            if waiting:
                return waiting
            now = workload_health(ref.kind, obj, []).detail
            return Health("healthy", f"spec restored (it was not healthy before either: {now})")

        return await self.poll(probe, budget)
