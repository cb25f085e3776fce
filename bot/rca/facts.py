"""A derived, read-only view of a bundle that every rule shares.

Rules ask the same questions (which containers are failing? what do their logs say? which
Warning events exist?); answering them once here keeps each rule short and makes "which
container counts" a single decision: a container is *in focus* when it restarts, waits or
terminated with an error, or is the one the alert names. Log signals from containers out
of focus (a healthy, chatty sidecar) are kept apart so they cannot outvote the real failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.rca.bundle import Bundle, KubeObject
from bot.rca.logpatterns import LogSignal, first_error_line, scan
from bot.targets import ObjectRef

CONTROLLER_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet")
TOP_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job")
RECENT = timedelta(hours=2)  # terminations older than this are history, not the failure


@dataclass(frozen=True)
class Container:
    """One container (or init container) of one pod, status and spec side by side."""

    pod: ObjectRef
    name: str
    init: bool
    status: KubeObject
    spec: KubeObject

    @property
    def restarts(self) -> int:
        return int(self.status.get("restartCount") or 0)

    @property
    def waiting(self) -> KubeObject:
        return (self.status.get("state") or {}).get("waiting") or {}

    @property
    def terminated(self) -> KubeObject:
        """The current or, failing that, the last termination."""
        state = self.status.get("state") or {}
        return (
            state.get("terminated") or (self.status.get("lastState") or {}).get("terminated") or {}
        )

    @property
    def ready(self) -> bool:
        return bool(self.status.get("ready"))

    @property
    def failing(self) -> bool:
        """Restarting, waiting for a bad reason, or terminated with an error."""
        if self.waiting.get("reason") not in (None, "", "ContainerCreating", "PodInitializing"):
            return True
        term = self.terminated
        if term and (term.get("exitCode") or 0) != 0:
            return True
        return self.restarts > 0

    @property
    def key(self) -> str:
        return f"{self.pod.name}/{self.name}"

    def limit(self, resource: str) -> str | None:
        limits = (self.spec.get("resources") or {}).get("limits") or {}
        value = limits.get(resource)
        return str(value) if value is not None else None

    def request(self, resource: str) -> str | None:
        requests = (self.spec.get("resources") or {}).get("requests") or {}
        value = requests.get(resource)
        return str(value) if value is not None else None


@dataclass(frozen=True)
class Signal:
    """A log signal with where it came from."""

    container: Container
    signal: LogSignal
    previous: bool
    in_focus: bool


@dataclass
class Facts:
    """Everything rules read, computed once per bundle."""

    bundle: Bundle
    controller: ObjectRef | None = None
    containers: list[Container] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    crash_lines: dict[str, str] = field(default_factory=dict)  # container key -> first error

    @classmethod
    def of(cls, bundle: Bundle) -> Facts:
        facts = cls(bundle)
        facts.controller = top_controller(bundle)
        for ref, pod in bundle.pods():
            facts.containers.extend(containers_of(ref, pod))
        alerted = bundle.labels.get("container")
        focus = {c.key for c in facts.containers if c.failing or c.name == alerted}
        if not focus:  # nothing is failing outright (e.g. unready pods): every log counts
            focus = {c.key for c in facts.containers}
        by_key = {c.key: c for c in facts.containers}
        for key, logs in bundle.logs.items():
            container = by_key.get(key)
            if container is None:
                continue
            for previous, text in ((True, logs.previous), (False, logs.current)):
                if not text:
                    continue
                for sig in scan(text):
                    facts.signals.append(Signal(container, sig, previous, key in focus))
                line = first_error_line(text)
                if line and key not in facts.crash_lines and (previous or not logs.previous):
                    facts.crash_lines[key] = line
        return facts

    def focus_signals(self, *kinds: str) -> list[Signal]:
        """Signals of these kinds from containers in focus, previous logs first."""
        found = [s for s in self.signals if s.in_focus and s.signal.kind in kinds]
        return sorted(found, key=lambda s: (not s.previous, s.container.init))

    def failing(self) -> list[Container]:
        """Containers that fail, app containers before init containers."""
        return [c for c in self.containers if c.failing]

    def warnings(self, *reasons: str) -> list[KubeObject]:
        """Warning events with one of these reasons (all Warning events when none given)."""
        return [
            e
            for e in self.bundle.events
            if e.get("type") == "Warning" and (not reasons or e.get("reason") in reasons)
        ]

    def events(self, *reasons: str) -> list[KubeObject]:
        """Events of any type with one of these reasons."""
        return [e for e in self.bundle.events if e.get("reason") in reasons]

    def happened_recently(self, terminated: KubeObject, within: timedelta = RECENT) -> bool:
        """Whether a termination finished within ``within`` of the investigation (or has
        no timestamp, so cannot be ruled out)."""
        when = terminated.get("finishedAt")
        if not isinstance(when, str) or not when:
            return True
        try:
            finished = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            return True
        return self.bundle.now - finished <= within

    def fault_object(self) -> str | None:
        """The object an engineer acts on for pod-level causes: controller, else the pod."""
        if self.controller is not None:
            return str(self.controller)
        pods = self.bundle.pods()
        if pods:
            return str(pods[0][0])
        target = self.bundle.target
        return str(target) if target is not None else None


def containers_of(ref: ObjectRef, pod: KubeObject) -> Iterator[Container]:
    """Init containers then containers, pairing each status with its spec."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    for init, spec_key, status_key in (
        (True, "initContainers", "initContainerStatuses"),
        (False, "containers", "containerStatuses"),
    ):
        specs = {c.get("name"): c for c in spec.get(spec_key) or []}
        for cs in status.get(status_key) or []:
            yield Container(ref, str(cs.get("name", "?")), init, cs, specs.get(cs.get("name"), {}))


def owner(obj: KubeObject) -> tuple[str, str] | None:
    """The controlling ownerReference as ``(kind, name)``."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") and ref.get("name"):
            return str(ref["kind"]), str(ref["name"])
    return None


def top_controller(bundle: Bundle) -> ObjectRef | None:
    """The top-level controller of the affected pods (or of the target)."""
    start: ObjectRef | None = bundle.target
    if start is not None and start.kind in TOP_KINDS:
        # A Job owned by a CronJob: the CronJob is the top.
        obj = bundle.get(start)
        up = owner(obj) if obj else None
        if up and start.kind == "Job" and up[0] == "CronJob":
            return ObjectRef("CronJob", up[1], start.namespace)
        return start
    pods = bundle.pods()
    if start is None or start.kind != "Pod":
        if not pods:
            return None
        start = pods[0][0]
    current = start
    for _ in range(4):
        obj = bundle.get(current)
        if obj is None:
            break
        up = owner(obj)
        if up is None or up[0] not in CONTROLLER_KINDS:
            break
        current = ObjectRef(up[0], up[1], current.namespace)
    if current.kind == "ReplicaSet":
        return current  # a bare ReplicaSet (its Deployment was not collected)
    return current if current != start else None


def event_time(event: KubeObject) -> datetime | None:
    """When an event last happened."""
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        value = event.get(key)
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
    return None


def recent(events: list[KubeObject], now: datetime, within: timedelta) -> list[KubeObject]:
    """Events that happened within ``within`` before ``now`` (or after it)."""
    out = []
    for event in events:
        when = event_time(event)
        if when is None or now - when <= within:
            out.append(event)
    return out


def condition(obj: KubeObject, kind: str) -> KubeObject | None:
    """A status condition by type."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def quantity(text: str | None) -> float | None:
    """A Kubernetes quantity in base units (cores, bytes)."""
    if text is None:
        return None
    units = {
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }
    raw = str(text).strip()
    for suffix in sorted(units, key=len, reverse=True):
        if raw.endswith(suffix):
            try:
                return float(raw[: -len(suffix)]) * units[suffix]
            except ValueError:
                return None
    try:
        return float(raw)
    except ValueError:
        return None


def mebibytes(value: float) -> str:
    """Bytes as a ``Mi``/``Gi`` quantity a person would write."""
    mi = value / 2**20
    if mi >= 1024 and mi % 1024 == 0:
        return f"{int(mi // 1024)}Gi"
    return f"{int(round(mi))}Mi"


def text_of(obj: Any) -> str:
    """A short string form of a value for evidence text."""
    return str(obj) if obj is not None else ""
