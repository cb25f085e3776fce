"""The first look at an incident: what the Kubernetes API says about its object.

Every read is time-boxed; a failing or slow API never raises out of :meth:`collect` — it
becomes a ``missing`` line, so the thread still gets its reply and says what it lacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.errors import KubeError
from bot.kube import KubeReader
from bot.targets import ObjectRef

log = logging.getLogger(__name__)

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet")
MAX_PODS = 5
EVENT_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Fact:
    """One statement backed by an object."""

    source: str
    text: str
    ref: str

    def to_dict(self) -> dict[str, str]:
        """The contract's evidence item."""
        return {"source": self.source, "text": self.text, "ref": self.ref}


@dataclass
class Evidence:
    """What was found and what could not be looked at."""

    facts: list[Fact] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class EvidenceCollector:
    """Collects read-only Kubernetes evidence for an incident's object."""

    def __init__(self, kube: KubeReader | None, *, timeout: float = 8.0) -> None:
        self._kube = kube
        self._timeout = timeout

    async def collect(
        self, obj: ObjectRef | None, labels: Mapping[str, str], *, now: datetime | None = None
    ) -> Evidence:
        """Evidence about ``obj`` (and the pod named in ``labels``, if any)."""
        evidence = Evidence()
        if self._kube is None:
            evidence.missing.append("kubernetes: no cluster access configured")
            return evidence
        if obj is None and not labels.get("pod"):
            evidence.missing.append("kubernetes: the alert names no object")
            return evidence
        when = now or datetime.now(UTC)
        try:
            await asyncio.wait_for(self._collect(obj, labels, when, evidence), self._timeout)
        except TimeoutError:
            evidence.missing.append(f"kubernetes: timed out after {self._timeout:g}s")
        return evidence

    async def _collect(
        self, obj: ObjectRef | None, labels: Mapping[str, str], now: datetime, ev: Evidence
    ) -> None:
        assert self._kube is not None
        namespace = labels.get("namespace", obj.namespace if obj else "")
        pods: list[dict[str, Any]] = []
        refs: list[ObjectRef] = []
        if obj is not None and obj.kind != "Pod":
            body = await self._read(obj, ev)
            if body is not None:
                ev.facts.extend(describe_object(obj, body))
                refs.append(obj)
                if obj.kind in WORKLOAD_KINDS:
                    pods = await self._pods_of(body, namespace, ev)
        pod_name = labels.get("pod")
        if pod_name and namespace:
            # The pod the alert names is read first, whatever the workload's order.
            named = [p for p in pods if p["metadata"]["name"] == pod_name]
            if not named:
                body = await self._read(ObjectRef("Pod", pod_name, namespace), ev)
                named = [body] if body is not None else []
            pods = named + [p for p in pods if p["metadata"]["name"] != pod_name]
        for pod in pods[:MAX_PODS]:
            ref = ObjectRef("Pod", pod["metadata"]["name"], namespace)
            ev.facts.extend(describe_pod(ref, pod))
            refs.append(ref)
        events = await asyncio.gather(*(self._warnings(ref, now, ev) for ref in refs))
        for batch in events:
            ev.facts.extend(batch)

    async def _read(self, obj: ObjectRef, ev: Evidence) -> dict[str, Any] | None:
        assert self._kube is not None
        try:
            body = await self._kube.get(obj.kind, obj.namespace or None, obj.name)
        except KubeError as exc:
            ev.missing.append(f"kubernetes: {obj}: {exc.problem}")
            return None
        if body is None:
            ev.facts.append(Fact("kubernetes", "not found in the API (deleted?)", str(obj)))
        return body

    async def _pods_of(
        self, workload: Mapping[str, Any], namespace: str, ev: Evidence
    ) -> list[dict[str, Any]]:
        assert self._kube is not None
        selector = (workload.get("spec") or {}).get("selector") or {}
        match = selector.get("matchLabels") or {}
        if not match:
            return []
        text = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        try:
            pods = await self._kube.list_objects("Pod", namespace, label_selector=text)
        except KubeError as exc:
            ev.missing.append(f"kubernetes: pods of {namespace}: {exc.problem}")
            return []
        # Unhealthy pods first: they are the ones worth reading about.
        return sorted(pods, key=lambda p: (pod_healthy(p), p["metadata"]["name"]))

    async def _warnings(self, ref: ObjectRef, now: datetime, ev: Evidence) -> list[Fact]:
        assert self._kube is not None
        selector = f"involvedObject.name={ref.name},involvedObject.kind={ref.kind}"
        try:
            events = await self._kube.list_objects(
                "Event", ref.namespace or None, field_selector=selector
            )
        except KubeError as exc:
            ev.missing.append(f"kubernetes: events of {ref}: {exc.problem}")
            return []
        return describe_events(ref, events, now)


def pod_healthy(pod: Mapping[str, Any]) -> bool:
    """Running with every container ready."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and all(c.get("ready") for c in statuses)


def describe_object(obj: ObjectRef, body: Mapping[str, Any]) -> list[Fact]:
    """One-line facts about a workload or node."""
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    ref = str(obj)
    facts: list[Fact] = []
    if obj.kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        want = spec.get("replicas", 1)
        ready = status.get("readyReplicas", 0)
        facts.append(Fact("kubernetes", f"{ready}/{want} replicas ready", ref))
        revision = (
            (body.get("metadata") or {})
            .get("annotations", {})
            .get("deployment.kubernetes.io/revision")
        )
        if revision:
            facts.append(Fact("kubernetes", f"revision {revision}", ref))
    elif obj.kind == "DaemonSet":
        facts.append(
            Fact(
                "kubernetes",
                f"{status.get('numberReady', 0)}/{status.get('desiredNumberScheduled', 0)} "
                "pods ready",
                ref,
            )
        )
    elif obj.kind == "Node":
        for cond in status.get("conditions") or []:
            bad = (cond.get("type") == "Ready") != (cond.get("status") == "True")
            if bad:
                facts.append(
                    Fact(
                        "kubernetes",
                        f"condition {cond.get('type')}={cond.get('status')} "
                        f"({cond.get('reason', '')})",
                        ref,
                    )
                )
    for cond in status.get("conditions") or []:
        if obj.kind != "Node" and cond.get("status") == "False":
            facts.append(
                Fact(
                    "kubernetes",
                    f"condition {cond.get('type')}=False: {cond.get('reason', '')} "
                    f"{cond.get('message', '')}".strip(),
                    ref,
                )
            )
    return facts


def describe_pod(ref: ObjectRef, pod: Mapping[str, Any]) -> list[Fact]:
    """Phase, container states, last terminations and restarts of one pod."""
    status = pod.get("status") or {}
    facts = [Fact("kubernetes", f"phase {status.get('phase', 'Unknown')}", str(ref))]
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            facts.append(
                Fact("kubernetes", f"unschedulable: {cond.get('message', '')}".strip(), str(ref))
            )
    groups = (("init container", "initContainerStatuses"), ("container", "containerStatuses"))
    for label, key in groups:
        for cs in status.get(key) or []:
            facts.extend(_container_facts(ref, label, cs))
    return facts


def _container_facts(ref: ObjectRef, label: str, cs: Mapping[str, Any]) -> list[Fact]:
    name = cs.get("name", "?")
    out: list[str] = []
    state = cs.get("state") or {}
    if "waiting" in state:
        waiting = state["waiting"] or {}
        out.append(f"waiting: {waiting.get('reason', '')} {_short(waiting.get('message'))}")
    elif "terminated" in state:
        term = state["terminated"] or {}
        out.append(f"terminated: {term.get('reason', '')} (exit {term.get('exitCode', '?')})")
    last = (cs.get("lastState") or {}).get("terminated")
    if last:
        out.append(
            f"last terminated: {last.get('reason', '')} (exit {last.get('exitCode', '?')}) "
            f"at {last.get('finishedAt', '?')}"
        )
    restarts = cs.get("restartCount", 0)
    if restarts:
        out.append(f"restarts: {restarts}")
    return [Fact("kubernetes", f"{label} {name} {text.strip()}", str(ref)) for text in out]


def describe_events(
    ref: ObjectRef, events: Sequence[Mapping[str, Any]], now: datetime
) -> list[Fact]:
    """Recent Warning events of one object, newest first."""
    recent = []
    for event in events:
        if event.get("type") != "Warning":
            continue
        seen = _event_time(event)
        if seen is not None and now - seen > EVENT_WINDOW:
            continue
        recent.append((seen or now, event))
    recent.sort(key=lambda pair: pair[0], reverse=True)
    facts = []
    for _, event in recent[:5]:
        count = event.get("count") or 1
        facts.append(
            Fact(
                "kubernetes",
                f"event {event.get('reason', '')} x{count}: {_short(event.get('message'), 240)}",
                str(ref),
            )
        )
    return facts


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        value = event.get(key) or (event.get("series") or {}).get("lastObservedTime")
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
    return None


def _short(text: object, limit: int = 160) -> str:
    value = str(text or "").strip().replace("\n", " ")
    return value if len(value) <= limit else value[: limit - 1] + "…"
