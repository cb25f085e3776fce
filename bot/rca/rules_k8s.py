"""Rules that read Kubernetes state: scheduling, nodes, storage, quotas, autoscaling, jobs.

Each rule returns a :class:`Hypothesis` or None. Confidence says how directly the evidence
shows the mechanism (an explicit kubelet/scheduler reason is near-certain; an inference from
absence is not). Which hypothesis wins is decided in ``analyzer.py``, not here.
"""

from __future__ import annotations

import re
from datetime import timedelta

from bot.rca.actions import build_action
from bot.rca.facts import Facts, condition, mebibytes, quantity, recent
from bot.rca.model import Action, EvidenceItem, Hypothesis
from bot.targets import ObjectRef

NOT_INCIDENT_ALERTS = {"Watchdog", "InfoInhibitor", "DeadMansSwitch"}
_INSUFFICIENT = re.compile(r"(\d+) Insufficient ([\w./-]+)")
_CONSTRAINT_HINTS = (
    "didn't match Pod's node affinity",
    "didn't match node selector",
    "node affinity/selector",
    "untolerated taint",
    "didn't tolerate",
    "topology spread",
    "didn't match pod anti-affinity",
    "didn't match pod affinity",
    "volume node affinity conflict",
    "didn't have free ports",
)


def _ev(source: str, text: str, ref: str | ObjectRef | None) -> EvidenceItem:
    return EvidenceItem(source, text.strip()[:400], str(ref) if ref is not None else "")


def _event_ref(event: dict[str, object]) -> str:
    inv = event.get("involvedObject")
    if not isinstance(inv, dict):
        return ""
    return str(
        ObjectRef(
            str(inv.get("kind", "")), str(inv.get("name", "")), str(inv.get("namespace") or "")
        )
    )


def _event_item(event: dict[str, object]) -> EvidenceItem:
    count = event.get("count") or 1
    return _ev(
        "events", f"{event.get('reason')} x{count}: {event.get('message', '')}", _event_ref(event)
    )


def _safe(kind: str, target: str, params: dict[str, object], why: str) -> list[Action]:
    try:
        return [build_action(kind, target, params, why=why)]
    except ValueError:
        return []


def not_an_incident(f: Facts) -> Hypothesis | None:
    name = f.bundle.alertname
    if name not in NOT_INCIDENT_ALERTS:
        return None
    what = {
        "Watchdog": "the always-firing heartbeat that proves the alerting pipeline works",
        "InfoInhibitor": "a helper alert that inhibits info-level alerts; it fires by design",
        "DeadMansSwitch": "the always-firing heartbeat of the alerting pipeline",
    }[name]
    return Hypothesis(
        category="not_an_incident",
        object=None,
        summary=f"{name} is not an incident: {what}",
        root_cause=(
            f"{name} is {what}. Nothing in the cluster is at fault; route it to a dead man's "
            "switch (or silence it) rather than to people."
        ),
        confidence=0.99,
        evidence=[
            _ev(
                "alert", f"alertname={name}, severity={f.bundle.labels.get('severity', 'none')}", ""
            )
        ],
        rule="not_an_incident",
    )


def node_not_ready(f: Facts) -> Hypothesis | None:
    for ref, node in f.bundle.of_kind("Node"):
        ready = condition(node, "Ready")
        if ready is None or ready.get("status") == "True":
            continue
        status = ready.get("status")
        evidence = [
            _ev(
                "kubernetes",
                f"condition Ready={status} ({ready.get('reason', '')}): {ready.get('message', '')}",
                ref,
            )
        ]
        taints = [t.get("key", "") for t in (node.get("spec") or {}).get("taints") or []]
        if taints:
            evidence.append(_ev("kubernetes", "taints: " + ", ".join(taints), ref))
        affected = [
            str(p)
            for p, pod in f.bundle.pods()
            if (pod.get("spec") or {}).get("nodeName") == ref.name
        ]
        if affected:
            evidence.append(
                _ev("kubernetes", f"{len(affected)} affected pod(s) on it", affected[0])
            )
        evidence += [_event_item(e) for e in f.bundle.events_for(ref)[:3]]
        return Hypothesis(
            category="node_not_ready",
            object=str(ref),
            summary=f"node {ref.name} is NotReady (Ready={status}: {ready.get('reason', '')})",
            root_cause=(
                f"Node {ref.name} reports Ready={status} ({ready.get('reason', '')}: "
                f"{ready.get('message', '')}). Its pods cannot run or report status until the "
                "kubelet is back; check the node's kubelet, container runtime and network, and "
                "cordon it so nothing new lands there."
            ),
            confidence=0.92,
            evidence=evidence,
            actions=_safe("cordon", str(ref), {}, "stop scheduling onto the broken node"),
            rule="node_not_ready",
        )
    return None


def node_pressure(f: Facts) -> Hypothesis | None:
    for ref, node in f.bundle.of_kind("Node"):
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            cond = condition(node, kind)
            if cond and cond.get("status") == "True":
                evidence = [
                    _ev(
                        "kubernetes",
                        f"condition {kind}=True ({cond.get('reason', '')}): "
                        f"{cond.get('message', '')}",
                        ref,
                    )
                ]
                evictions = [
                    e for e in f.events("Evicted") if "low on resource" in str(e.get("message", ""))
                ]
                evidence += [_event_item(e) for e in evictions[:3]]
                evidence += [_event_item(e) for e in f.bundle.events_for(ref)[:3]]
                return _pressure(ref, kind, evidence)
    # Evictions caused by the node running low, even when the condition has cleared since.
    for event in f.events("Evicted"):
        message = str(event.get("message", ""))
        match = re.search(r"The node was low on resource: \[?([\w-]+)", message)
        if match:
            node_name = _node_of(f, event)
            if node_name:
                kind = "DiskPressure" if "storage" in match.group(1) else "MemoryPressure"
                return _pressure(ObjectRef("Node", node_name), kind, [_event_item(event)], 0.8)
    return None


def _node_of(f: Facts, event: dict[str, object]) -> str | None:
    source = event.get("source")
    if isinstance(source, dict) and source.get("host"):
        return str(source["host"])
    inv = event.get("involvedObject")
    name = inv.get("name") if isinstance(inv, dict) else None
    for ref, pod in f.bundle.pods():
        if ref.name == name:
            node = (pod.get("spec") or {}).get("nodeName")
            return str(node) if node else None
    return None


def _pressure(
    ref: ObjectRef, kind: str, evidence: list[EvidenceItem], confidence: float = 0.88
) -> Hypothesis:
    resource = {"MemoryPressure": "memory", "DiskPressure": "disk", "PIDPressure": "PIDs"}[kind]
    return Hypothesis(
        category="node_pressure",
        object=str(ref),
        summary=f"node {ref.name} is under {kind}: the kubelet evicts pods to reclaim {resource}",
        root_cause=(
            f"Node {ref.name} ran low on {resource} ({kind}). The kubelet evicts pods and "
            "refuses new ones until usage drops below its threshold; the pods suffer because "
            "of the node, not their own limits. Find the consumer on the node, and cordon it "
            "while you do."
        ),
        confidence=confidence,
        evidence=evidence,
        actions=_safe("cordon", str(ref), {}, "keep new pods off the node under pressure"),
        rule="node_pressure",
    )


def evicted(f: Facts) -> Hypothesis | None:
    for ref, pod in f.bundle.pods():
        status = pod.get("status") or {}
        message = str(status.get("message", ""))
        if status.get("reason") != "Evicted" or "low on resource" in message:
            continue
        resource = (
            "ephemeral-storage" if "ephemeral" in message or "storage" in message else "memory"
        )
        evidence = [
            _ev("kubernetes", f"phase {status.get('phase')} reason Evicted: {message}", ref)
        ]
        evidence += [_event_item(e) for e in f.bundle.events_for(ref)[:2]]
        obj = f.fault_object()
        container = next((c for c in f.containers if c.pod == ref and not c.init), None)
        actions: list[Action] = []
        if obj and container:
            current = container.limit(resource)
            if resource == "ephemeral-storage" and current:
                size = quantity(current)
                if size:
                    actions = _safe(
                        "set_resources",
                        obj,
                        {
                            "container": container.name,
                            "limits": {resource: mebibytes(size * 2)},
                            "from_limits": {resource: current},
                        },
                        f"double the {resource} limit",
                    )
        return Hypothesis(
            category="evicted",
            object=obj,
            summary=f"pod {ref.name} was evicted for exceeding its own {resource} limit",
            root_cause=(
                f"The kubelet evicted {ref.name} because the pod itself used more {resource} than "
                f"its limit allows ({message}). The node was fine; the workload writes or holds "
                "more than it declares."
            ),
            confidence=0.88,
            evidence=evidence,
            actions=actions,
            rule="evicted",
        )
    return None


def quota_exceeded(f: Facts) -> Hypothesis | None:
    events = [
        e for e in f.warnings("FailedCreate") if "exceeded quota" in str(e.get("message", ""))
    ]
    quotas = list(f.bundle.of_kind("ResourceQuota"))
    name = None
    if events:
        match = re.search(r"exceeded quota: ([\w.-]+)", str(events[0].get("message", "")))
        name = match.group(1) if match else None
    elif f.bundle.alertname.startswith("KubeQuota") and f.bundle.labels.get("resourcequota"):
        name = f.bundle.labels["resourcequota"]
    if name is None:
        return None
    ref = next(
        (r for r, _ in quotas if r.name == name),
        ObjectRef("ResourceQuota", name, f.bundle.namespace),
    )
    quota = f.bundle.get(ref) or {}
    hard = (quota.get("status") or {}).get("hard") or {}
    used = (quota.get("status") or {}).get("used") or {}
    full = [f"{k} {used.get(k)}/{v}" for k, v in hard.items() if str(used.get(k)) == str(v)]
    evidence = [_event_item(e) for e in events[:2]]
    if full:
        evidence.append(_ev("kubernetes", "at its hard limit: " + ", ".join(full), ref))
    return Hypothesis(
        category="quota_exceeded",
        object=str(ref),
        summary=f"ResourceQuota {name} forbids new pods" + (f" ({full[0]})" if full else ""),
        root_cause=(
            f"The namespace's ResourceQuota {name} is used up, so the controller cannot create "
            "pods (FailedCreate: exceeded quota). Raise the quota, or lower the requests/limits "
            "or replica counts in the namespace."
        ),
        confidence=0.92 if events else 0.75,
        evidence=evidence,
        rule="quota_exceeded",
    )


def pvc_pending(f: Facts) -> Hypothesis | None:
    for ref, pvc in f.bundle.of_kind("PersistentVolumeClaim"):
        if (pvc.get("status") or {}).get("phase") != "Pending":
            continue
        spec = pvc.get("spec") or {}
        sc_name = spec.get("storageClassName")
        evidence = [
            _ev("kubernetes", f"phase Pending, storageClassName {sc_name or '(default)'}", ref)
        ]
        evidence += [_event_item(e) for e in f.bundle.events_for(ref)[:3]]
        cause = "no PersistentVolume can be bound or provisioned"
        if sc_name and ObjectRef("StorageClass", sc_name) not in f.bundle.objects:
            cause = f'StorageClass "{sc_name}" does not exist'
        elif any(e.get("reason") == "ProvisioningFailed" for e in f.bundle.events_for(ref)):
            cause = "the provisioner failed to create the volume"
        return Hypothesis(
            category="pvc_pending",
            object=str(ref),
            summary=f"PVC {ref.name} is Pending: {cause}",
            root_cause=(
                f"PersistentVolumeClaim {ref.name} is not bound ({cause}), so the pods that "
                "mount it "
                "cannot be scheduled."
            ),
            confidence=0.9,
            evidence=evidence,
            rule="pvc_pending",
        )
    for event in f.warnings("FailedScheduling"):
        if "unbound immediate PersistentVolumeClaims" in str(event.get("message", "")):
            return Hypothesis(
                category="pvc_pending",
                object=f.fault_object(),
                summary="pod waits for an unbound PersistentVolumeClaim",
                root_cause="The scheduler reports unbound immediate PersistentVolumeClaims.",
                confidence=0.6,
                evidence=[_event_item(event)],
                rule="pvc_pending",
            )
    return None


def volume_mount(f: Facts) -> Hypothesis | None:
    events = [
        e
        for e in f.warnings("FailedMount", "FailedAttachVolume", "FailedMapVolume")
        if not re.search(r'(configmap|secret)s? "[^"]+" not found', str(e.get("message", "")), re.I)
    ]
    if not events:
        return None
    message = str(events[0].get("message", ""))
    return Hypothesis(
        category="volume_mount",
        object=f.fault_object(),
        summary=f"volume cannot be mounted: {events[0].get('reason')}",
        root_cause=(
            f"The kubelet cannot attach or mount a volume ({message[:300]}), so the pod stays in "
            "ContainerCreating."
        ),
        confidence=0.85,
        evidence=[_event_item(e) for e in events[:3]],
        rule="volume_mount",
    )


def unschedulable(f: Facts) -> Hypothesis | None:
    messages: list[tuple[str, str]] = []
    for event in f.warnings("FailedScheduling"):
        messages.append((str(event.get("message", "")), _event_ref(event)))
    for ref, pod in f.bundle.pods():
        cond = condition(pod, "PodScheduled")
        if cond and cond.get("status") == "False" and cond.get("message"):
            messages.append((str(cond["message"]), str(ref)))
    messages = [(m, r) for m, r in messages if "unbound immediate PersistentVolumeClaims" not in m]
    if not messages:
        return None
    message, where = messages[0]
    insufficient = _INSUFFICIENT.findall(message)
    evidence = [_ev("events", f"FailedScheduling: {message}", where)]
    if insufficient:
        wanted = ", ".join(f"{res} on {n} node(s)" for n, res in insufficient)
        return Hypothesis(
            category="unschedulable_resources",
            object=f.fault_object(),
            summary=f"pod cannot be scheduled: insufficient {wanted}",
            root_cause=(
                f"No node has room for the pod's requests ({message}). Add capacity to the node "
                "pool the pod may use, or lower its requests."
            ),
            confidence=0.9,
            evidence=evidence,
            rule="unschedulable_resources",
        )
    if any(hint in message for hint in _CONSTRAINT_HINTS):
        return Hypothesis(
            category="unschedulable_constraints",
            object=f.fault_object(),
            summary="pod cannot be scheduled: no node satisfies its selector/affinity/taints",
            root_cause=(
                f"Every node is excluded by the pod's placement rules ({message}). Check its "
                "nodeSelector, affinity, tolerations and topology spread against the nodes' labels "
                "and taints."
            ),
            confidence=0.88,
            evidence=evidence,
            rule="unschedulable_constraints",
        )
    return None


def recent_warnings(f: Facts, limit: int = 3) -> list[EvidenceItem]:
    """Up to ``limit`` Warning events of the last hour, newest first."""
    events = recent(f.warnings(), f.bundle.now, timedelta(hours=1))
    return [_event_item(e) for e in events[:limit]]


RULES = (
    not_an_incident,
    node_not_ready,
    node_pressure,
    evicted,
    quota_exceeded,
    pvc_pending,
    volume_mount,
    unschedulable,
)
