"""The controllers behind the sandbox API server, simulated on its event loop.

After a write is stored, :class:`RolloutController` reacts the way kube-controller-manager,
the scheduler and the kubelet would, one *step* at a time (a step is ``step_seconds`` of
real time; tests wait for :meth:`RolloutController.settle`):

- a Deployment whose pod template changes gets a new ReplicaSet ``<name>-<template hash>``
  (or, when a ReplicaSet already has that template, e.g. after ``kubectl rollout undo``,
  that one) with the next ``deployment.kubernetes.io/revision``; new pods replace old ones
  in batches; old ReplicaSets stay, scaled to 0, as the rollout history. The Deployment's
  status and its ``Progressing``/``Available`` conditions follow, ending in
  ``NewReplicaSetAvailable`` or, for a broken rollout, ``ProgressDeadlineExceeded``;
- StatefulSets replace pods from the highest ordinal down and DaemonSets node by node,
  waiting for each updated pod to be ready (a broken one stalls the rollout);
- replica changes scale ReplicaSets and pods; a deleted pod of a controller is replaced
  (a new random suffix, or the same name for a StatefulSet);
- deleting an owner deletes what it owns (garbage collection); a cordoned Node gets the
  ``node.kubernetes.io/unschedulable`` taint and new pods avoid it.

Whether a rollout is healthy is scripted per object (:meth:`RolloutController.script`);
unscripted rollouts are healthy. A broken rollout's pods go ``CrashLoopBackOff``, and so do
later pods of the same ReplicaSet or revision.
"""

from __future__ import annotations

import asyncio
import copy
import math
import random
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from sandbox.kube_pods import PodLife, is_ready, pod_phase
from sandbox.kube_registry import ResourceType
from sandbox.kube_store import ObjectStore
from sandbox.kube_workloads import WorkloadRounds, controller_of

__all__ = ["RolloutController", "RolloutScript", "max_surge_unavailable"]

_REVISION = "deployment.kubernetes.io/revision"
_HASH = "pod-template-hash"
_UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True, slots=True)
class RolloutScript:
    """How the next rollout of one object goes.

    Attributes:
        outcome: ``healthy`` (new pods become ready) or ``broken`` (they crash-loop).
        steps: Simulated steps the rollout takes; a broken Deployment reports
            ``ProgressDeadlineExceeded`` after them.
        step_seconds: Real seconds per step.
    """

    outcome: Literal["healthy", "broken"] = "healthy"
    steps: int = 3
    step_seconds: float = 0.05


class RolloutController:
    """The simulated controllers; the write handlers call :meth:`written` and :meth:`deleted`.

    Args:
        store: The sandbox's objects.
        rng: Source of pod names and IPs (seeded, so a scripted run repeats exactly).
    """

    def __init__(self, store: ObjectStore, rng: random.Random) -> None:
        self._store = store
        self._life = PodLife(store, rng)
        self._rounds = WorkloadRounds(store, self._life)
        self._scripts: dict[Key, RolloutScript] = {}
        self._runs: dict[Key, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors: list[Exception] = []
        self._stopped = False

    # --- the test and demo API ---------------------------------------------------------------

    def script(self, kind: str, namespace: str, name: str, script: RolloutScript) -> None:
        """Set how the next rollout (or scale-up, or pod replacement) of an object goes."""
        if script.steps < 1 or script.step_seconds < 0:
            raise ValueError("a rollout needs steps >= 1 and step_seconds >= 0")
        self._scripts[(kind, namespace, name)] = script

    async def settle(self) -> None:
        """Wait until no simulated controller has work left.

        Raises:
            RuntimeError: A controller step failed (a bug in the simulation).
        """
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.wait(pending)
        if self._errors:
            raise RuntimeError("a simulated controller failed") from self._errors[0]

    async def stop(self) -> None:
        """Cancel every simulated controller and wait for them to end."""
        self._stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runs.clear()
        self._stopped = False  # a restarted sandbox simulates again

    # --- hooks called after each stored write ------------------------------------------------

    def written(self, rtype: ResourceType, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """React to a stored create (``old`` None) or update."""
        kind, metadata = rtype.kind, new["metadata"]
        spec, old_spec = new.get("spec") or {}, (old or {}).get("spec") or {}
        if rtype.group == "apps" and kind in ("Deployment", "StatefulSet", "DaemonSet"):
            key = (kind, metadata["namespace"], metadata["name"])
            if old is None or spec.get("template") != old_spec.get("template"):
                if old is not None and kind != "Deployment":
                    self._rounds.remember_revision(old)
                self._start(key, rollout=True)
            elif spec.get("replicas") != old_spec.get("replicas") or spec.get(
                "paused"
            ) != old_spec.get("paused"):
                self._start(key, rollout=False)
        elif rtype.group == "apps" and kind == "ReplicaSet" and not controller_of(new):
            if old is None or spec.get("replicas") != old_spec.get("replicas"):
                self._start(("ReplicaSet", metadata["namespace"], metadata["name"]), rollout=False)
        elif kind == "Pod" and rtype.group == "" and old is None and not controller_of(new):
            self._start(("Pod", metadata["namespace"], metadata["name"]), rollout=False)
        elif kind == "Node" and rtype.group == "":
            if bool(spec.get("unschedulable")) != bool(old_spec.get("unschedulable")):
                self._spawn(self._taint_node(metadata["name"]))

    def deleted(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        """React to a stored delete: collect dependents, replace a controller's pod."""
        self._spawn(self._collect_garbage(obj["metadata"].get("uid")))
        if rtype.kind == "Pod" and rtype.group == "":
            owner = self._workload_of(obj)
            if owner is not None:
                self._start(owner, rollout=False)

    # --- runs ----------------------------------------------------------------------------------

    def _start(self, key: Key, *, rollout: bool) -> None:
        if self._stopped:
            return
        running = self._runs.get(key)
        if running is not None and not running.done():
            if not rollout:
                return  # the running loop reads the new state at its next step
            running.cancel()
        script = self._scripts.pop(key, None)
        task = self._spawn(self._run(key, script or RolloutScript(), script is not None, rollout))
        self._runs[key] = task

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, key: Key, script: RolloutScript, scripted: bool, rollout: bool) -> None:
        kind, namespace, name = key
        try:
            step = 0
            while not self._stopped:
                obj = self._rounds.get(kind, namespace, name)
                if obj is None:
                    return
                outcome = script.outcome if scripted else None
                if kind == "Deployment":
                    done = self._deployment_round(obj, step, script, outcome, rollout)
                else:
                    done = self._rounds.run(kind, obj, step, script.steps, outcome)
                if done:
                    return
                step += 1
                await asyncio.sleep(script.step_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # surfaced by settle(); the sandbox keeps serving
            self._errors.append(error)

    # --- Deployments ---------------------------------------------------------------------------

    def _deployment_round(
        self,
        deployment: dict[str, Any],
        step: int,
        script: RolloutScript,
        outcome: str | None,
        rollout: bool,
    ) -> bool:
        spec = deployment.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        sets = self._rounds.owned(deployment, "ReplicaSet")
        if spec.get("paused"):
            new_set = self._newest(sets)
            reason = ""
        else:
            new_set, reason = self._new_replica_set(deployment, sets, template_changed=rollout)
            sets = self._rounds.owned(deployment, "ReplicaSet")
        if new_set is not None and step == 0 and outcome:
            self._rounds.set_broken(new_set["metadata"]["uid"], outcome == "broken")
        pods = {rs["metadata"]["uid"]: self._rounds.pods_of(rs) for rs in sets}
        for rs in sets:
            broken = self._rounds.is_broken(rs["metadata"]["uid"])
            for pod in pods[rs["metadata"]["uid"]]:
                self._life.advance(pod, broken=broken)
        if new_set is not None and not spec.get("paused"):
            self._scale_for_rollout(deployment, new_set, sets, pods, replicas, script)
        for rs in sets:
            self._rounds.sync_replica_set(rs)
        all_pods = [pod for rs in sets for pod in self._rounds.pods_of(rs)]
        new_pods = self._rounds.pods_of(new_set) if new_set is not None else []
        busy = any(pod_phase(pod) == "starting" for pod in all_pods)
        complete = (
            len(new_pods) == replicas
            and len(all_pods) == replicas
            and all(is_ready(pod) for pod in new_pods)
        )
        progress = reason if step == 0 and reason else "ReplicaSetUpdated"
        if complete:
            progress = "NewReplicaSetAvailable"
        elif step >= script.steps:
            progress = "ProgressDeadlineExceeded"
        self._deployment_status(deployment, new_set, all_pods, replicas, progress)
        return not busy and (complete or step >= script.steps)

    def _newest(self, sets: list[dict[str, Any]]) -> dict[str, Any] | None:
        return max(sets, key=_revision, default=None)

    def _new_replica_set(
        self, deployment: dict[str, Any], sets: list[dict[str, Any]], *, template_changed: bool
    ) -> tuple[dict[str, Any], str]:
        """The ReplicaSet running the Deployment's template, created or re-revisioned.

        When the template did not change (a scale, a replaced pod), the ReplicaSet of the
        Deployment's current revision is taken even if its template differs in details, as
        hand-written scenarios' often do.
        """
        template = deployment["spec"].get("template") or {}
        top = max((_revision(rs) for rs in sets), default=0)
        match = next((rs for rs in sets if _same_template(rs, template)), None)
        current = (deployment["metadata"].get("annotations") or {}).get(_REVISION)
        if match is None and not template_changed and current:
            match = next((rs for rs in sets if str(_revision(rs)) == current), None)
        reason = ""
        if match is None:
            match = self._rounds.create_replica_set(deployment, template, top + 1)
            reason = "NewReplicaSetCreated"
        elif _revision(match) < top or not _revision(match):
            annotations = match["metadata"].setdefault("annotations", {})
            old = annotations.get(_REVISION)
            if old:
                history = annotations.get("deployment.kubernetes.io/revision-history")
                annotations["deployment.kubernetes.io/revision-history"] = (
                    f"{history},{old}" if history else old
                )
            annotations[_REVISION] = str(top + 1)
            self._store.commit(match, self._rounds.replica_sets)
            reason = "FoundNewReplicaSet"
        annotations = deployment["metadata"].setdefault("annotations", {})
        if annotations.get(_REVISION) != str(_revision(match)):
            # The controller writes this through the status subresource: no generation bump.
            annotations[_REVISION] = str(_revision(match))
            self._store.commit(deployment, self._rounds.deployments)
        return match, reason

    def _scale_for_rollout(
        self,
        deployment: dict[str, Any],
        new_set: dict[str, Any],
        sets: list[dict[str, Any]],
        pods: dict[str, list[dict[str, Any]]],
        replicas: int,
        script: RolloutScript,
    ) -> None:
        old_sets = sorted((rs for rs in sets if rs is not new_set), key=lambda rs: _revision(rs))
        old_total = sum(len(pods[rs["metadata"]["uid"]]) for rs in old_sets)
        new_uid = new_set["metadata"]["uid"]
        ready_new = sum(is_ready(pod) for pod in pods[new_uid])
        current = int((new_set.get("spec") or {}).get("replicas") or 0)
        surge, unavailable = max_surge_unavailable(deployment, replicas)
        strategy = ((deployment["spec"].get("strategy") or {}).get("type")) or "RollingUpdate"
        if old_total == 0 or strategy == "Recreate":
            old_target, new_target = 0, replicas
        elif self._rounds.is_broken(new_uid):
            old_target = min(old_total, max(replicas - unavailable, 0))
            new_target = max(current, min(replicas, max(surge + unavailable, 1)))
        else:
            batch = max(1, math.ceil(replicas / script.steps))
            old_target = min(old_total, max(replicas - ready_new, 0))
            new_target = max(current, min(replicas, ready_new + batch))
        new_target = min(new_target, replicas)
        remaining = old_target
        for rs in reversed(old_sets):  # the newest old ReplicaSet keeps its pods longest
            keep = min(len(pods[rs["metadata"]["uid"]]), remaining)
            remaining -= keep
            self._rounds.scale_replica_set(deployment, rs, keep)
        self._rounds.scale_replica_set(deployment, new_set, new_target)
        annotations = new_set["metadata"].setdefault("annotations", {})
        annotations["deployment.kubernetes.io/desired-replicas"] = str(replicas)
        annotations["deployment.kubernetes.io/max-replicas"] = str(replicas + surge)

    def _deployment_status(
        self,
        deployment: dict[str, Any],
        new_set: dict[str, Any] | None,
        pods: list[dict[str, Any]],
        replicas: int,
        progress: str,
    ) -> None:
        new_pods = self._rounds.pods_of(new_set) if new_set is not None else []
        ready = sum(is_ready(pod) for pod in pods)
        status = copy.deepcopy(deployment.get("status") or {})
        counts = {
            "replicas": len(pods),
            "updatedReplicas": len(new_pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(replicas - ready, 0),
        }
        for field, value in counts.items():  # Go's omitempty drops zero counts
            if value:
                status[field] = value
            else:
                status.pop(field, None)
        status["observedGeneration"] = deployment["metadata"].get("generation", 1)
        _, unavailable = max_surge_unavailable(deployment, replicas)
        conditions = status.setdefault("conditions", [])
        if ready >= replicas - unavailable:
            _set_condition(
                conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                self._life.now(),
            )
        else:
            _set_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                self._life.now(),
            )
        if new_set is not None:
            name = new_set["metadata"]["name"]
            messages = {
                "NewReplicaSetCreated": f'Created new replica set "{name}"',
                "FoundNewReplicaSet": f'Found new replica set "{name}"',
                "ReplicaSetUpdated": f'ReplicaSet "{name}" is progressing.',
                "NewReplicaSetAvailable": f'ReplicaSet "{name}" has successfully progressed.',
                "ProgressDeadlineExceeded": f'ReplicaSet "{name}" has timed out progressing.',
            }
            state = "False" if progress == "ProgressDeadlineExceeded" else "True"
            _set_condition(
                conditions, "Progressing", state, progress, messages[progress], self._life.now()
            )
        if status != deployment.get("status"):
            deployment["status"] = status
            self._store.commit(deployment, self._rounds.deployments)

    # --- pods, garbage and nodes -----------------------------------------------------------------

    def _workload_of(self, pod: dict[str, Any]) -> Key | None:
        """The object whose controller replaces this pod when it is deleted."""
        namespace = pod["metadata"].get("namespace", "")
        owner = controller_of(pod)
        if owner is None:
            return None
        if owner.get("kind") != "ReplicaSet":
            return (str(owner.get("kind")), namespace, str(owner.get("name")))
        rs = self._rounds.get("ReplicaSet", namespace, str(owner.get("name")))
        parent = controller_of(rs) if rs is not None else None
        if parent is not None and parent.get("kind") == "Deployment":
            return ("Deployment", namespace, str(parent.get("name")))
        return ("ReplicaSet", namespace, str(owner.get("name")))

    async def _collect_garbage(self, uid: Any) -> None:
        doomed = [uid]
        while doomed:
            owner = doomed.pop()
            for rtype, obj in self._store.everything():
                references = obj["metadata"].get("ownerReferences") or []
                if owner and any(ref.get("uid") == owner for ref in references):
                    self._store.delete(
                        rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"]
                    )
                    doomed.append(obj["metadata"].get("uid"))

    async def _taint_node(self, name: str) -> None:
        nodes = self._rounds.nodes
        node = self._store.get(nodes, None, name)
        if node is None:
            return
        spec = node.setdefault("spec", {})
        taints = [t for t in spec.get("taints") or [] if t.get("key") != _UNSCHEDULABLE_TAINT]
        if spec.get("unschedulable"):
            taints.append(
                {"key": _UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": self._life.now()}
            )
        if taints:
            spec["taints"] = taints
        else:
            spec.pop("taints", None)
        self._store.commit(node, nodes)
        if not spec.get("unschedulable"):  # pods waiting for a node may fit now
            for pod in self._store.list(self._life.pods, None):
                owner = self._workload_of(pod) if pod_phase(pod) == "pending" else None
                if owner is not None:
                    self._start(owner, rollout=False)


def max_surge_unavailable(deployment: dict[str, Any], replicas: int) -> tuple[int, int]:
    """maxSurge and maxUnavailable as pod counts (Recreate: 0 and 0)."""
    strategy = deployment["spec"].get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _resolve(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def _resolve(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        scaled = total * int(value[:-1]) / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(value)


def _set_condition(
    conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str, now: str
) -> None:
    existing = next((c for c in conditions if c.get("type") == kind), None)
    if existing is None:
        existing = {"type": kind, "lastTransitionTime": now}
        conditions.append(existing)
    elif existing.get("status") != status:
        existing["lastTransitionTime"] = now
    if (existing.get("reason"), existing.get("message")) != (reason, message):
        existing["lastUpdateTime"] = now
    existing.update(status=status, reason=reason, message=message)
    existing.setdefault("lastUpdateTime", now)


def _revision(rs: dict[str, Any]) -> int:
    value = (rs["metadata"].get("annotations") or {}).get(_REVISION, "0")
    return int(value) if str(value).isdigit() else 0


def _same_template(rs: dict[str, Any], template: dict[str, Any]) -> bool:
    """Templates equal once the pod-template-hash label is ignored."""
    return bool(_without_hash((rs.get("spec") or {}).get("template")) == _without_hash(template))


def _without_hash(template: Any) -> Any:
    template = copy.deepcopy(template or {})
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(_HASH, None)
    return template
