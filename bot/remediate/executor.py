"""Run one approved action: dry-run → snapshot → apply → verify → automatic rollback.

:meth:`Executor.plan` turns a catalogue :class:`~bot.rca.model.Action` into the concrete
API request — the same one ``kubectl`` would send (a strategic-merge patch of the pod
template for ``rollout restart``/``set resources``/``set image``, the ``scale``
subresource, a JSON patch of the template back to an older ReplicaSet's for
``rollout undo``…). :meth:`Executor.execute` then:

1. sends it with ``dryRun=All`` and diffs the answer against the live object; an error
   stops here, nothing changed;
2. reads the object again — the snapshot — and awaits ``on_snapshot`` (the caller stores
   it durably) before anything is applied;
3. applies the request, conditional on the snapshot's ``resourceVersion`` so the snapshot
   is exactly what was changed; a 409 re-reads, re-snapshots and retries once;
4. verifies (:mod:`bot.remediate.verify`) until healthy, failed or ``verify_timeout``;
5. on failure restores the snapshot — a PUT of its spec, labels and annotations for
   workloads, the inverse patch of the one field for nodes, CronJobs and HPAs — and
   verifies the restore. A deleted pod cannot be restored.

``helm_rollback`` takes its own path (:mod:`bot.remediate.helm`). The plan, the steps and
the result are :mod:`bot.remediate.steps`' types. Cluster-side failures never raise: they
become an :class:`ExecutionResult`.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.collect.k8s_objects import annotation, as_dict, as_list, meta, owned_by, selector_query
from bot.errors import KubeError
from bot.rca.model import Action
from bot.remediate.diff import object_diff
from bot.remediate.helm import HelmRollback
from bot.remediate.kube_write import KubeWriter, WriteRequest
from bot.remediate.steps import (
    ExecutionResult,
    OnSnapshot,
    OnStep,
    Plan,
    PlanError,
    Run,
    RunStopped,
    Status,
)
from bot.remediate.verify import REVISION, Clock, Sleep, Verifier, field_value
from bot.targets import ObjectRef

# Re-exported: callers import the result types from here.
__all__ = [
    "ExecutionResult",
    "Executor",
    "OnSnapshot",
    "OnStep",
    "Plan",
    "PlanError",
    "Status",
]

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Deployment annotations `kubectl rollout undo` keeps from the Deployment, not the ReplicaSet.
_UNDO_KEEP = (
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
)
# Written by controllers: a restore keeps their current values.
_CONTROLLER_ANNOTATIONS = ("deployment.kubernetes.io/",)
# Actions that set one field: its path, the value set, and what an absent field reads as.
_FIELDS: dict[str, tuple[tuple[str, ...], Any, Any]] = {
    "cordon": (("spec", "unschedulable"), True, False),
    "uncordon": (("spec", "unschedulable"), False, False),
    "suspend_cronjob": (("spec", "suspend"), True, False),
    "resume_cronjob": (("spec", "suspend"), False, False),
}


class Executor:
    """Executes approved actions through the remediation identity.

    Args:
        writer: The remediation client.
        verify_timeout: Seconds a change (and a restore) has to become healthy.
        poll_interval: Seconds between verification readings.
        helm_binary: Path of ``helm``; empty makes ``helm_rollback`` copy-only.
        clock: Monotonic seconds; ``sleep`` must match it (tests inject both).
        now: Wall-clock time for ``restartedAt``.
    """

    def __init__(
        self,
        writer: KubeWriter,
        *,
        verify_timeout: float,
        poll_interval: float = 2.0,
        helm_binary: str = "",
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._writer = writer
        self._timeout = verify_timeout
        self._clock = clock
        self._now = now
        self.verifier = Verifier(writer, poll_interval=poll_interval, clock=clock, sleep=sleep)
        self._helm = HelmRollback(helm_binary, writer, self.verifier, timeout=verify_timeout)

    # --- planning ----------------------------------------------------------------------------

    async def plan(self, action: Action) -> Plan:
        """Read the target and build the request the action needs.

        Raises:
            ValueError: an action kind outside the catalogue (a programming error).
            PlanError: the action does not fit the object (no such container, no previous
                revision, an unsupported kind, no helm binary).
            KubeError: the target cannot be read.
        """
        ref = ObjectRef.parse(action.target)
        if action.kind == "helm_rollback":
            return await self._helm.plan(action, ref)
        current = await self._writer.get(ref)
        return await self._build(action, ref, current)

    async def _build(self, action: Action, ref: ObjectRef, current: dict[str, Any]) -> Plan:
        kind, params = action.kind, action.params
        rv = str(meta(current).get("resourceVersion") or "")
        lock = {"metadata": {"resourceVersion": rv}} if rv else {}
        if kind == "rollout_restart":
            stamp = self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = _template({"metadata": {"annotations": {RESTARTED_AT: stamp}}}, lock)
            return Plan(action, ref, current, WriteRequest("patch", ref, body), summary="restart")
        if kind in ("set_resources", "set_image"):
            key = _container_key(current, str(params["container"]))
            if kind == "set_image":
                change: dict[str, Any] = {"image": params["image"]}
            else:
                wanted = {"limits": params.get("limits"), "requests": params.get("requests")}
                change = {"resources": {k: v for k, v in wanted.items() if v}}
            entry = {"name": params["container"], **change}
            body = _template({"spec": {key: [entry]}}, lock)
            return Plan(action, ref, current, WriteRequest("patch", ref, body))
        if kind == "scale" and ref.kind != "HorizontalPodAutoscaler":
            body = {**lock, "spec": {"replicas": params["replicas"]}}
            request = WriteRequest("patch", ref, body, "merge", subresource="scale")
            return Plan(action, ref, current, request)
        if kind == "rollout_undo":
            return await self._plan_undo(action, ref, current)
        if kind == "delete_pod":
            precondition = {"uid": meta(current).get("uid")}
            return Plan(action, ref, current, WriteRequest("delete", ref, precondition))
        if kind in ("cordon", "uncordon", "suspend_cronjob", "resume_cronjob", "scale"):
            one = _field(action)
            body = {**lock, **_nested(one.path, one.value)}
            return Plan(action, ref, current, WriteRequest("patch", ref, body, "merge"))
        raise ValueError(f"unknown action kind {kind!r}")

    async def _plan_undo(self, action: Action, ref: ObjectRef, current: dict[str, Any]) -> Plan:
        if ref.kind != "Deployment":
            raise PlanError(
                f"rollout_undo of a {ref.kind} is not supported by the executor (its history "
                f"is in ControllerRevisions); run `{action.kubectl}` yourself"
            )
        spec = as_dict(current.get("spec"))
        if spec.get("paused"):
            raise PlanError(f"{ref} is paused: resume it before rolling back")
        selector = selector_query(spec.get("selector"))
        if not selector:
            raise PlanError(f"{ref} has no selector to find its ReplicaSets by")
        replicasets = await self._writer.list_replicasets(ref.namespace, selector)
        history = {
            int(annotation(rs, REVISION)): rs
            for rs in replicasets
            if owned_by(rs, current, "Deployment") and annotation(rs, REVISION).isdigit()
        }
        revisions = sorted(history)
        wanted = action.params.get("to_revision")
        if wanted:
            if wanted not in history:
                have = ", ".join(map(str, revisions)) or "none"
                raise PlanError(f"{ref} has no revision {wanted} (it has: {have})")
            target = history[wanted]
        elif len(revisions) < 2:
            raise PlanError(f"{ref} has no previous revision to roll back to")
        else:
            target = history[revisions[-2]]
        template = copy.deepcopy(as_dict(as_dict(target.get("spec")).get("template")))
        labels = as_dict(as_dict(template.get("metadata")).get("labels"))
        labels.pop("pod-template-hash", None)
        template.setdefault("metadata", {})["labels"] = labels
        annotations = {k: v for k, v in as_dict(meta(current).get("annotations")).items()}
        kept = {k: v for k, v in annotations.items() if k in _UNDO_KEEP}
        from_rs = {
            k: v for k, v in as_dict(meta(target).get("annotations")).items() if k not in _UNDO_KEEP
        }
        body = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "add", "path": "/metadata/annotations", "value": {**kept, **from_rs}},
        ]
        rv = meta(current).get("resourceVersion")
        if rv:
            body.insert(0, {"op": "replace", "path": "/metadata/resourceVersion", "value": rv})
        revision = annotation(target, REVISION)
        request = WriteRequest("patch", ref, body, "json")
        return Plan(action, ref, current, request, summary=f"to revision {revision}")

    # --- execution ---------------------------------------------------------------------------

    async def execute(
        self,
        action: Action,
        *,
        on_step: OnStep | None = None,
        on_snapshot: OnSnapshot | None = None,
    ) -> ExecutionResult:
        """Run the action end to end; see the module docstring for the steps.

        Args:
            action: An approved catalogue action.
            on_step: Awaited as ``on_step(step, ok, text)`` after each step (progress in Slack).
            on_snapshot: Awaited with the snapshot before the apply (persist it there); if it
                raises, nothing is applied. Awaited again after a 409 re-read.

        Raises:
            ValueError: only for an action kind outside the catalogue.
        """
        result = ExecutionResult(action)
        run = Run(result, on_step, self._clock)
        try:
            if action.kind == "helm_rollback":
                await self._helm.execute(action, run, on_snapshot)
            else:
                await self._run(action, run, on_snapshot)
        except RunStopped as stop:
            result.status, result.detail = stop.status, stop.detail
        result.duration_s = round(self._clock() - run.start, 3)
        return result

    async def _run(self, action: Action, run: Run, on_snapshot: OnSnapshot | None) -> None:
        result = run.result
        try:
            plan = await self.plan(action)
        except (PlanError, KubeError) as exc:
            await run.fail("plan", str(exc))
        assert plan.request is not None
        summary = f" ({plan.summary})" if plan.summary else ""
        await run.step("plan", True, plan.request.describe() + summary)
        try:
            preview = await self._writer.send(plan.request, dry_run=True)
        except KubeError as exc:
            await run.fail("dry-run", f"rejected, nothing applied: {exc}")
        result.dry_run_diff = _diff(plan, plan.current, preview)
        lines = result.dry_run_diff
        await run.step("dry-run", True, lines[0] if len(lines) == 1 else f"{len(lines)} changes")
        snapshot, applied = await self._apply(action, run, on_snapshot)
        result.changed = _diff(plan, snapshot, applied)
        ok, detail = await self._verify(plan, snapshot)
        await run.step("verify", ok, detail)
        if ok:
            no_change = "" if result.changed else " (no change: it was already so)"
            result.status, result.detail = "succeeded", detail + no_change
            return
        await self._rollback(plan, snapshot, run, f"verify failed: {detail}")

    async def _apply(
        self, action: Action, run: Run, on_snapshot: OnSnapshot | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        ref = ObjectRef.parse(action.target)
        for attempt in (1, 2):
            try:
                snapshot = await self._writer.get(ref)
                request = (await self._build(action, ref, snapshot)).request
            except (PlanError, KubeError) as exc:
                await run.fail("snapshot", f"cannot read the object before applying: {exc}")
            assert request is not None
            rv = meta(snapshot).get("resourceVersion")
            await run.snapshot(snapshot, on_snapshot, f"{ref} at resourceVersion {rv}")
            try:
                applied = await self._writer.send(request, dry_run=False)
            except KubeError as exc:
                if exc.status == 409 and attempt == 1:
                    await run.step("apply", False, "conflict: changed since read; retrying")
                    continue
                if exc.status is not None and exc.status < 500:
                    await run.fail("apply", f"rejected, nothing applied: {exc}")
                return snapshot, await self._after_unknown_apply(request, snapshot, run, exc)
            await run.step("apply", True, request.describe())
            return snapshot, applied
        raise AssertionError("unreachable")  # pragma: no cover

    async def _after_unknown_apply(
        self, request: WriteRequest, snapshot: dict[str, Any], run: Run, exc: KubeError
    ) -> dict[str, Any]:
        """A timeout or 5xx: find out whether the change landed before going on."""
        try:
            now = await self._writer.get(request.ref)
        except KubeError as read_error:
            if request.verb == "delete" and read_error.status == 404:
                await run.step("apply", True, f"{exc}; but the pod is gone")
                return {}
            await run.fail("apply", f"{exc}; and the object cannot be read: {read_error}")
        landed = (
            meta(now).get("uid") != meta(snapshot).get("uid")
            if request.verb == "delete"
            else bool(object_diff(as_dict(snapshot.get("spec")), as_dict(now.get("spec"))))
        )
        if not landed:
            await run.fail("apply", f"{exc}; the object is unchanged")
        await run.step("apply", True, f"{exc}; but the change is in place")
        return now

    async def _verify(self, plan: Plan, snapshot: dict[str, Any]) -> tuple[bool, str]:
        kind, ref = plan.action.kind, plan.ref
        if kind == "delete_pod":
            return await self.verifier.pod_replaced(snapshot, ref.namespace, self._timeout)
        if ref.kind in WORKLOADS:
            return await self.verifier.workload(ref, self._timeout)
        one = _field(plan.action)
        return await self.verifier.field(ref, one.path, one.value, one.default, self._timeout)

    async def _rollback(self, plan: Plan, snapshot: dict[str, Any], run: Run, why: str) -> None:
        ref = plan.ref
        if plan.action.kind == "delete_pod":
            await run.fail(
                "rollback", f"{why}; a deleted pod cannot be restored", "rollback_failed"
            )
        try:
            if ref.kind in WORKLOADS:
                restored = await self._restore_workload(ref, snapshot)
            else:
                one = _field(plan.action)
                old = field_value(snapshot, one.path)
                restored = await self._writer.patch(ref, _nested(one.path, old), patch_type="merge")
        except KubeError as exc:
            await run.fail("rollback", f"{why}; restore failed: {exc}", "rollback_failed")
        lines = object_diff(as_dict(snapshot.get("spec")), as_dict(restored.get("spec")))
        still = f"; spec still differs: {lines[0]}" if lines else ""
        await run.step("rollback", True, "snapshot restored" + still)
        if ref.kind in WORKLOADS:
            ok, detail = await self.verifier.restored(ref, snapshot, self._timeout)
        else:
            one = _field(plan.action)
            old = field_value(snapshot, one.path, one.default)
            ok, detail = await self.verifier.field(ref, one.path, old, one.default, self._timeout)
        await run.step("verify-rollback", ok, detail)
        if not ok:
            raise RunStopped("rollback_failed", f"{why}; restore not verified: {detail}")
        raise RunStopped("rolled_back", f"{why}; rolled back: {detail}")

    async def _restore_workload(self, ref: ObjectRef, snapshot: dict[str, Any]) -> dict[str, Any]:
        """PUT the snapshot's spec, labels and annotations over the current object."""
        for attempt in range(3):
            current = await self._writer.get(ref)
            body = copy.deepcopy(current)
            body["spec"] = copy.deepcopy(snapshot.get("spec"))
            metadata = body.setdefault("metadata", {})
            metadata.pop("managedFields", None)
            metadata["labels"] = copy.deepcopy(meta(snapshot).get("labels") or {})
            annotations = dict(meta(snapshot).get("annotations") or {})
            for key, value in as_dict(meta(current).get("annotations")).items():
                if key.startswith(_CONTROLLER_ANNOTATIONS):
                    annotations[key] = value
            metadata["annotations"] = annotations
            try:
                return await self._writer.replace(ref, body)
            except KubeError as exc:
                if exc.status != 409 or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def _template(change: dict[str, Any], lock: dict[str, Any]) -> dict[str, Any]:
    return {**lock, "spec": {"template": change}}


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {path[-1]: value}
    for key in reversed(path[:-1]):
        body = {key: body}
    return body


def _container_key(workload: Mapping[str, Any], name: str) -> str:
    """``containers`` or ``initContainers``: where the template has a container ``name``."""
    pod = as_dict(as_dict(as_dict(workload.get("spec")).get("template")).get("spec"))
    names: list[str] = []
    for key in ("containers", "initContainers"):
        for container in as_list(pod.get(key)):
            if as_dict(container).get("name") == name:
                return key
            names.append(str(as_dict(container).get("name")))
    raise PlanError(f"no container {name!r} in the pod template (it has: {', '.join(names)})")


@dataclass(frozen=True)
class _Field:
    """The one field a node, CronJob or HPA action sets."""

    path: tuple[str, ...]
    value: Any
    default: Any  # what an absent field reads as


def _field(action: Action) -> _Field:
    if action.kind == "scale" and ObjectRef.parse(action.target).kind == "HorizontalPodAutoscaler":
        return _Field(("spec", "maxReplicas"), action.params.get("max_replicas"), None)
    if action.kind not in _FIELDS:
        raise ValueError(f"{action.kind} on {action.target} sets no single field")
    return _Field(*_FIELDS[action.kind])


def _diff(plan: Plan, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What the request changes (would change, for a dry run), as human lines."""
    request = plan.request
    if request is not None and request.verb == "delete":
        owner = next(
            (
                o
                for o in as_list(meta(before).get("ownerReferences"))
                if as_dict(o).get("controller")
            ),
            None,
        )
        by = f"; {owner['kind']}/{owner['name']} replaces it" if owner else "; nothing replaces it"
        return [f"{plan.ref} (uid {meta(before).get('uid')}) deleted{by}"]
    if request is not None and request.subresource == "scale":
        before_replicas = as_dict(before.get("spec")).get("replicas", 1)
        if after.get("kind") != "Scale":
            after = {"spec": {"replicas": as_dict(after.get("spec")).get("replicas", 1)}}
        return object_diff(
            {"spec": {"replicas": before_replicas}}, {"spec": as_dict(after.get("spec"))}
        )
    return object_diff(before, after)
