"""The evidence bundle: everything collected about one incident, as the APIs returned it.

Collectors (``bot.collect``) fill it; analyzers (``bot.rca``) only read it. Objects stay plain
API dicts (camelCase keys, exactly as ``kubectl get -o json`` shows them) so a rule reads
the same field names an SRE would look for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.targets import ObjectRef

KubeObject = dict[str, Any]


@dataclass(frozen=True)
class ContainerLogs:
    """The tail of one container's log, current and previous instance."""

    pod: str
    container: str
    current: str = ""
    previous: str = ""


@dataclass(frozen=True)
class TemplateChange:
    """One difference between the previous and the current pod template."""

    field: str  # image | env | env_from | resources | command | args | probes | volumes | other
    container: str  # "" for pod-level fields
    before: str
    after: str


@dataclass(frozen=True)
class RolloutDiff:
    """What the latest rollout changed: current vs previous ReplicaSet (or revision)."""

    workload: ObjectRef
    current: ObjectRef
    previous: ObjectRef | None
    current_revision: str
    previous_revision: str
    rolled_out_at: str  # RFC 3339 creationTimestamp of the current ReplicaSet
    changes: tuple[TemplateChange, ...] = ()


@dataclass(frozen=True)
class MetricSeries:
    """One series of a catalogue query over the investigation window."""

    name: str  # catalogue name, e.g. "memory_working_set_bytes"
    query: str  # the PromQL that produced it
    labels: dict[str, str]
    samples: tuple[tuple[float, float], ...]  # (unix seconds, value)

    @property
    def last(self) -> float | None:
        """The latest value, if any."""
        return self.samples[-1][1] if self.samples else None

    @property
    def peak(self) -> float | None:
        """The highest value, if any."""
        return max(v for _, v in self.samples) if self.samples else None


@dataclass
class Bundle:
    """Evidence about one incident. ``missing`` names what could not be collected."""

    alertname: str
    labels: dict[str, str]
    annotations: dict[str, str]
    namespace: str
    now: datetime
    target: ObjectRef | None = None
    objects: dict[ObjectRef, KubeObject] = field(default_factory=dict)
    events: list[KubeObject] = field(default_factory=list)
    logs: dict[str, ContainerLogs] = field(default_factory=dict)  # "pod/container"
    rollout: RolloutDiff | None = None
    metrics: dict[str, list[MetricSeries]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> Iterator[tuple[ObjectRef, KubeObject]]:
        """Every collected object of ``kind``."""
        for ref, obj in self.objects.items():
            if ref.kind == kind:
                yield ref, obj

    def get(self, ref: ObjectRef | None) -> KubeObject | None:
        """One collected object."""
        return self.objects.get(ref) if ref is not None else None

    def pods(self) -> list[tuple[ObjectRef, KubeObject]]:
        """The affected pods, in collection order (the alerted pod first)."""
        return list(self.of_kind("Pod"))

    def events_for(self, ref: ObjectRef) -> list[KubeObject]:
        """Events whose involvedObject is ``ref``."""
        out = []
        for event in self.events:
            inv = event.get("involvedObject") or {}
            if (
                inv.get("kind") == ref.kind
                and inv.get("name") == ref.name
                and (not ref.namespace or inv.get("namespace", ref.namespace) == ref.namespace)
            ):
                out.append(event)
        return out

    def series(self, name: str) -> list[MetricSeries]:
        """The series of one catalogue query (empty when Prometheus had none)."""
        return self.metrics.get(name, [])
