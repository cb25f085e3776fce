"""Pure helpers over Kubernetes API dicts, shared by the Kubernetes collector.

Nothing here talks to the API: these functions read objects exactly as the API returned them
(camelCase keys) and tolerate missing or malformed fields, because scenario files and real
clusters both omit what they consider defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils import parse_quantity

from bot.rca.bundle import KubeObject
from bot.targets import ObjectRef

# The bot's own computed numbers, kept inside the Node dict so Bundle's fields stay unchanged
# (see the module docstring of bot.collect.kubernetes).
PRIVATE_KEY = "x-incident-bot"

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})
# Controllers whose ownerReferences the collector follows upward from a pod.
OWNER_KINDS = frozenset({"ReplicaSet", *WORKLOAD_KINDS})
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
# A container waiting for these reasons is just starting, not failing.
_BENIGN_WAITING = frozenset({"ContainerCreating", "PodInitializing"})


def as_dict(value: object) -> dict[str, Any]:
    """``value`` when it is a mapping, else an empty dict (malformed or absent fields)."""
    return dict(value) if isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    """``value`` when it is a list, else an empty list."""
    return value if isinstance(value, list) else []


def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object's ``metadata``."""
    return as_dict(obj.get("metadata"))


def name_of(obj: Mapping[str, Any]) -> str:
    """``metadata.name`` ("" when absent)."""
    return str(meta(obj).get("name") or "")


def ref_of(obj: Mapping[str, Any], kind: str, namespace: str = "") -> ObjectRef:
    """The ObjectRef of an API object, its own namespace winning over ``namespace``."""
    return ObjectRef(kind, name_of(obj), str(meta(obj).get("namespace") or namespace))


def annotation(obj: Mapping[str, Any], key: str) -> str:
    """One annotation's value ("" when absent)."""
    return str(as_dict(meta(obj).get("annotations")).get(key) or "")


def created_at(obj: Mapping[str, Any]) -> str:
    """``metadata.creationTimestamp`` as sent (RFC 3339 sorts as text)."""
    return str(meta(obj).get("creationTimestamp") or "")


def controller_of(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the object's controlling owner, if it has one."""
    for owner in as_list(meta(obj).get("ownerReferences")):
        owner = as_dict(owner)
        if owner.get("controller") and owner.get("kind") and owner.get("name"):
            return str(owner["kind"]), str(owner["name"])
    return None


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any], kind: str) -> bool:
    """Whether ``obj`` lists ``owner`` in its ownerReferences (by uid, else kind and name)."""
    uid = meta(owner).get("uid")
    for ref in as_list(meta(obj).get("ownerReferences")):
        ref = as_dict(ref)
        if uid and ref.get("uid"):
            if ref["uid"] == uid:
                return True
        elif ref.get("kind") == kind and ref.get("name") == name_of(owner):
            return True
    return False


# --- selectors --------------------------------------------------------------------------------


def selector_query(selector: object) -> str:
    """A ``LabelSelector`` object rendered as the ``labelSelector`` query parameter.

    Returns "" for an empty or absent selector; callers must not list with it, since an
    empty selector matches every pod in the namespace.
    """
    sel = as_dict(selector)
    terms = [f"{k}={v}" for k, v in sorted(as_dict(sel.get("matchLabels")).items())]
    for expr in as_list(sel.get("matchExpressions")):
        expr = as_dict(expr)
        key, op = str(expr.get("key") or ""), str(expr.get("operator") or "")
        values = ",".join(sorted(str(v) for v in as_list(expr.get("values"))))
        if not key:
            continue
        if op == "In":
            terms.append(f"{key} in ({values})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({values})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """Whether a Service-style selector (a plain map) selects an object with ``labels``.

    An empty selector selects nothing here: a Service without one has hand-made Endpoints.
    """
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --- pods -------------------------------------------------------------------------------------


def container_statuses(pod: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Statuses of init containers, then regular containers."""
    status = as_dict(pod.get("status"))
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in as_list(status.get(key)):
            if isinstance(cs, Mapping):
                yield dict(cs)


def pod_unhealthy(pod: Mapping[str, Any]) -> bool:
    """Not Running/Succeeded, a container not ready, or a container that restarted."""
    phase = as_dict(pod.get("status")).get("phase")
    if phase == "Succeeded":
        return False
    if phase != "Running":
        return True
    regular = as_list(as_dict(pod.get("status")).get("containerStatuses"))
    if any(not as_dict(cs).get("ready") for cs in regular):
        return True
    return any(int(cs.get("restartCount") or 0) > 0 for cs in container_statuses(pod))


def rank_pods(pods: Iterable[KubeObject], alerted: str | None) -> list[KubeObject]:
    """The alerted pod first, then unhealthy pods, then the rest; by name within each group."""
    unique = {name_of(p): p for p in pods if name_of(p)}
    return sorted(
        unique.values(),
        key=lambda p: (name_of(p) != alerted, not pod_unhealthy(p), name_of(p)),
    )


def log_containers(pod: Mapping[str, Any], labelled: str | None) -> list[tuple[str, bool]]:
    """Containers worth reading logs of, each with whether its previous log is wanted.

    Chosen: init and regular containers that restarted, wait for a reason other than a
    normal start, terminated with an error, or that the alert's ``container`` label names.
    When none of those exist, running containers that are not ready are chosen: a failing
    readiness probe usually has its reason in the current log (a refused peer, an expired
    certificate).
    """
    spec = as_dict(pod.get("spec"))
    declared = [
        str(as_dict(c).get("name"))
        for key in ("initContainers", "containers")
        for c in as_list(spec.get(key))
    ]
    statuses = {str(cs.get("name")): cs for cs in container_statuses(pod)}
    chosen: list[tuple[str, bool]] = []
    for name in declared:
        cs = statuses.get(name, {})
        state = as_dict(cs.get("state"))
        waiting = as_dict(state.get("waiting"))
        terminated = as_dict(state.get("terminated"))
        last = as_dict(as_dict(cs.get("lastState")).get("terminated"))
        restarts = int(cs.get("restartCount") or 0)
        failing = (
            restarts > 0
            or ("waiting" in state and waiting.get("reason") not in _BENIGN_WAITING)
            or ("terminated" in state and terminated.get("exitCode", 0) != 0)
        )
        if failing or name == labelled:
            chosen.append((name, restarts > 0 or bool(last)))
    if not chosen:
        for name in declared:
            cs = statuses.get(name, {})
            if "running" in as_dict(cs.get("state")) and not cs.get("ready"):
                chosen.append((name, False))
    return chosen


def claim_names(pod: Mapping[str, Any]) -> list[str]:
    """PersistentVolumeClaims a pod's volumes mount."""
    names = []
    for volume in as_list(as_dict(pod.get("spec")).get("volumes")):
        claim = as_dict(as_dict(volume).get("persistentVolumeClaim")).get("claimName")
        if claim:
            names.append(str(claim))
    return names


def statefulset_claims(sts: Mapping[str, Any], ordinals: Iterable[int]) -> list[str]:
    """``<template>-<statefulset>-<ordinal>`` claim names of a StatefulSet's pods."""
    templates = as_list(as_dict(sts.get("spec")).get("volumeClaimTemplates"))
    return [
        f"{name_of(as_dict(t))}-{name_of(sts)}-{ordinal}"
        for ordinal in ordinals
        for t in templates
        if name_of(as_dict(t))
    ]


# --- nodes and jobs ---


def node_ready(node: Mapping[str, Any]) -> bool:
    """Whether a node's Ready condition is True (or it reports none)."""
    for cond in as_list(as_dict(node.get("status")).get("conditions")):
        cond = as_dict(cond)
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return True  # no condition reported: assume reachable rather than skip its logs


def job_failed(job: Mapping[str, Any]) -> bool:
    """Whether a Job failed (condition Failed, or failed pods and no success)."""
    status = as_dict(job.get("status"))
    conditions = [as_dict(c) for c in as_list(status.get("conditions"))]
    if any(c.get("type") == "Failed" and c.get("status") == "True" for c in conditions):
        return True
    return int(status.get("failed") or 0) > 0 and not int(status.get("succeeded") or 0)


def job_active(job: Mapping[str, Any]) -> bool:
    """Whether a Job still has running pods."""
    return int(as_dict(job.get("status")).get("active") or 0) > 0


# --- node requests ----------------------------------------------------------------------------


def _quantity(value: object) -> Decimal:
    try:
        return Decimal(parse_quantity(value))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, InvalidOperation):
        return Decimal(0)


def pod_requests(pod: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    """(cpu cores, memory bytes) the scheduler reserves for a pod.

    As the scheduler computes it: the larger of the containers' sum and the largest init
    container, plus the pod overhead.
    """
    spec = as_dict(pod.get("spec"))

    def requests(container: object) -> tuple[Decimal, Decimal]:
        req = as_dict(as_dict(as_dict(container).get("resources")).get("requests"))
        return _quantity(req.get("cpu", 0)), _quantity(req.get("memory", 0))

    regular = [requests(c) for c in as_list(spec.get("containers"))]
    init = [requests(c) for c in as_list(spec.get("initContainers"))]
    overhead = as_dict(spec.get("overhead"))
    cpu = max([sum((r[0] for r in regular), Decimal(0)), *(r[0] for r in init)])
    mem = max([sum((r[1] for r in regular), Decimal(0)), *(r[1] for r in init)])
    return (
        cpu + _quantity(overhead.get("cpu", 0)),
        mem + _quantity(overhead.get("memory", 0)),
    )


def node_usage(pods: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``x-incident-bot`` entry of a Node: summed requests of its non-terminated pods."""
    cpu, mem, count = Decimal(0), Decimal(0), 0
    for pod in pods:
        # Terminated pods no longer hold their requests on the node.
        if as_dict(pod.get("status")).get("phase") in ("Succeeded", "Failed"):
            continue
        pod_cpu, pod_mem = pod_requests(pod)
        cpu, mem, count = cpu + pod_cpu, mem + pod_mem, count + 1
    return {"requested": {"cpu": format_cpu(cpu), "memory": format_memory(mem)}, "pods": count}


def format_cpu(cores: Decimal) -> str:
    """Cores as a millicore quantity (``1850m``), rounded up like the API rounds requests."""
    millis = int((cores * 1000).to_integral_value(rounding="ROUND_CEILING"))
    return f"{millis}m"


def format_memory(size: Decimal) -> str:
    """Bytes as the largest binary-suffixed quantity that states them exactly."""
    value = int(size.to_integral_value(rounding="ROUND_CEILING"))
    for suffix, factor in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if value and value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


# --- events -----------------------------------------------------------------------------------


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """When an event was last seen: the latest of its timestamps (a repeat refreshes it)."""
    candidates = (
        event.get("lastTimestamp"),
        as_dict(event.get("series")).get("lastObservedTime"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
    )
    times = [t for t in map(parse_time, candidates) if t is not None]
    return max(times) if times else None


def recent_events(
    events: Iterable[KubeObject], now: datetime, window: timedelta, cap: int
) -> list[KubeObject]:
    """Events seen within ``window`` before ``now`` (or after it), deduplicated, newest first.

    Older events are dropped: a week-old FailedMount is a red herring for today's crash.
    Events with no timestamp at all are kept, last, since nothing says they are stale.
    """
    oldest = now - window
    unique: dict[tuple[str, str], tuple[datetime | None, KubeObject]] = {}
    for event in events:
        seen = event_time(event)
        if seen is not None and seen < oldest:
            continue
        # Nameless events (never from a real API) must not collapse into one another.
        key = (str(meta(event).get("namespace") or ""), name_of(event) or str(id(event)))
        unique.setdefault(key, (seen, event))
    floor = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(unique.values(), key=lambda pair: pair[0] or floor, reverse=True)
    return [event for _, event in ordered[:cap]]
