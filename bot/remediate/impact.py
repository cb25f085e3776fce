"""What a remediation would touch, derived from the cluster: pods, replicas, Services.

Shown on the approval message ("restarts 3 pods behind Service cart") and handed to the
second opinion. Read through the bot's read-only identity; a failed read is named, never
guessed around — an approver must know when the scope is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.errors import KubeError
from bot.kube import KubeReader
from bot.rca.model import Action
from bot.targets import ObjectRef

_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass
class Impact:
    """The blast radius of one action."""

    target: str
    pods: list[str] = field(default_factory=list)
    replicas: int | None = None
    ready: int | None = None
    services: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unknown: str | None = None  # why the scope could not be read

    def summary(self) -> str:
        """One line for Slack and the second opinion."""
        if self.unknown:
            return f"impact unknown: {self.unknown}"
        parts: list[str] = []
        if self.replicas is not None:
            ready = f", {self.ready} ready" if self.ready is not None else ""
            parts.append(f"{self.replicas} replicas{ready}")
        if self.pods:
            shown = ", ".join(self.pods[:4]) + (" …" if len(self.pods) > 4 else "")
            parts.append(f"{len(self.pods)} pods ({shown})")
        if self.services:
            parts.append("Services " + ", ".join(self.services[:5]))
        parts.extend(self.notes)
        return "; ".join(parts) or "no pods or Services affected"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored with the action)."""
        return {
            "target": self.target,
            "pods": self.pods,
            "replicas": self.replicas,
            "ready": self.ready,
            "services": self.services,
            "notes": self.notes,
            "unknown": self.unknown,
            "summary": self.summary(),
        }


async def impact_of(action: Action, kube: KubeReader | None) -> Impact:
    """Read the cluster and describe what ``action`` would affect."""
    impact = Impact(target=action.target)
    if kube is None:
        impact.unknown = "no cluster access configured"
        return impact
    try:
        ref = ObjectRef.parse(action.target)
    except ValueError as exc:
        impact.unknown = f"bad target: {exc}"
        return impact
    try:
        await _fill(impact, action, ref, kube)
    except KubeError as exc:
        impact.unknown = f"could not read the cluster: {exc}"
    return impact


async def _fill(impact: Impact, action: Action, ref: ObjectRef, kube: KubeReader) -> None:
    if ref.kind == "Node":
        pods = await kube.list_objects("Pod", None, field_selector=f"spec.nodeName={ref.name}")
        impact.pods = [_pod_name(p) for p in pods]
        verb = "stop receiving new pods" if action.kind == "cordon" else "accept new pods again"
        impact.notes.append(f"{len(pods)} pods run on the node; it would {verb}")
        return
    namespace = ref.namespace or "default"
    obj = await kube.get(ref.kind, namespace, ref.name)
    if obj is None:
        impact.unknown = f"{ref} not found"
        return
    if ref.kind == "Pod":
        impact.pods = [ref.name]
        labels = (obj.get("metadata") or {}).get("labels") or {}
        impact.services = await _services(kube, namespace, labels)
        return
    if ref.kind == "CronJob":
        impact.notes.append(f"schedule {(obj.get('spec') or {}).get('schedule', '?')}")
        return
    if ref.kind == "HorizontalPodAutoscaler":
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        impact.replicas = status.get("currentReplicas")
        impact.notes.append(
            f"autoscaler bounds {spec.get('minReplicas', 1)}–{spec.get('maxReplicas', '?')}"
        )
        return
    if ref.kind in _WORKLOADS:
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        impact.replicas = spec.get("replicas", status.get("desiredNumberScheduled"))
        impact.ready = status.get("readyReplicas", status.get("numberReady"))
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if selector:
            text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            pods = await kube.list_objects("Pod", namespace, label_selector=text)
            impact.pods = [_pod_name(p) for p in pods]
        template = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        impact.services = await _services(kube, namespace, template)


async def _services(kube: KubeReader, namespace: str, labels: Mapping[str, str]) -> list[str]:
    """Services in ``namespace`` whose selector matches ``labels``."""
    if not labels:
        return []
    out = []
    for svc in await kube.list_objects("Service", namespace):
        selector = (svc.get("spec") or {}).get("selector") or {}
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            out.append(str((svc.get("metadata") or {}).get("name", "?")))
    return sorted(out)


def _pod_name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", "?"))
