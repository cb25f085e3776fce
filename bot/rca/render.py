"""How evidence reads in the prompt: compact, human-readable text, not full dumps.

* :func:`summarize_object` — one Kubernetes object (Pod, workload, Node, ConfigMap …);
* :func:`event_line` — one event, with :func:`event_time` for ordering;
* :func:`describe_rollout` — the latest rollout and what it changed in the pod template;
* :func:`describe_series` — one Prometheus series, peak, last value and a few points.

Nothing here fences or masks beyond env/config values: the caller
(:mod:`bot.rca.prompt`) wraps every result in an untrusted-data fence.
"""

from __future__ import annotations

import json
from typing import Any, Final

from bot.masking import mask_env
from bot.rca.bundle import KubeObject, MetricSeries, RolloutDiff

_FENCED_SNIPPET: Final = 300  # characters per annotation / env value / config value
_LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------- events, rollout, metrics


def event_time(event: KubeObject) -> str:
    """The most recent timestamp an event carries (RFC 3339 text, "" when none)."""
    return str(
        event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or ""
    )


def event_line(event: KubeObject) -> str:
    """``<time> <type> <reason> <Kind>/<name> x<count>: <message>``."""
    inv = event.get("involvedObject") or {}
    count = event.get("count") or (event.get("series") or {}).get("count") or 1
    return (
        f"{event_time(event)} {event.get('type', '')} {event.get('reason', '')} "
        f"{inv.get('kind', '')}/{inv.get('name', '')} x{count}: "
        f"{clip(str(event.get('message', '')).strip(), 500)}"
    )


def describe_rollout(rollout: RolloutDiff) -> str:
    """The latest rollout and what it changed in the pod template."""
    previous = f" from revision {rollout.previous_revision}" if rollout.previous_revision else ""
    lines = [
        f"{rollout.workload}: revision {rollout.current_revision}{previous} "
        f"(ReplicaSet {rollout.current.name}) created {rollout.rolled_out_at}"
    ]
    for c in rollout.changes:
        where = f" container {c.container}" if c.container else ""
        before, after = clip(c.before, 300) or "∅", clip(c.after, 300) or "∅"
        lines.append(f"changed {c.field}{where}: {before} → {after}")
    if not rollout.changes:
        lines.append("no pod template change found")
    return "\n".join(lines)


def describe_series(series: MetricSeries, points: int = 12) -> str:
    """One series: labels, peak and last value, and a few evenly spaced points."""
    labels = ",".join(f"{k}={v}" for k, v in sorted(series.labels.items()))
    if not series.samples:
        return f"{{{labels}}}: no samples"
    step = max(1, len(series.samples) // points)
    picked = list(series.samples[::step])[-points:]
    if picked[-1] != series.samples[-1]:
        picked.append(series.samples[-1])
    values = " ".join(f"{_number(v)}@{int(t)}" for t, v in picked)
    return (
        f"{{{labels}}}: last {_number(series.last)} peak {_number(series.peak)} "
        f"({len(series.samples)} samples; value@unix-time: {values})"
    )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


# --------------------------------------------------------------------------- object summaries


def summarize_object(obj: KubeObject) -> str:
    """A compact, human-readable summary of one object (not a full dump)."""
    kind = str(obj.get("kind", ""))
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    head = f"{kind} {ns + '/' if ns else ''}{meta.get('name', '')}"
    owners = [f"{o.get('kind')}/{o.get('name')}" for o in meta.get("ownerReferences") or []]
    if owners:
        head += f" owned by {', '.join(owners)}"
    lines = [head + f" created {meta.get('creationTimestamp', '?')}"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "Pod":
        lines += _pod(spec, status)
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        lines += _workload(spec, status, meta)
    elif kind == "Node":
        lines += _node(spec, status)
    elif kind == "ConfigMap":
        data = obj.get("data") or {}
        lines += [
            f"data {k}: {clip(mask_env(str(k), str(v)), _FENCED_SNIPPET)}"
            for k, v in sorted(data.items())
        ]
    else:
        for part in ("spec", "status"):
            if obj.get(part):
                lines.append(f"{part}: {clip(_compact(obj[part]), 1200)}")
    if meta.get("labels"):
        lines.append("labels: " + ", ".join(f"{k}={v}" for k, v in sorted(meta["labels"].items())))
    for key, value in sorted((meta.get("annotations") or {}).items()):
        if key != _LAST_APPLIED:
            lines.append(f"annotation {key}: {clip(str(value), _FENCED_SNIPPET)}")
    return "\n".join(lines)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _conditions(status: KubeObject, *, all_of: bool = False) -> list[str]:
    out = []
    for c in status.get("conditions") or []:
        if all_of or c.get("status") != "True" or c.get("type") in ("Failed", "Suspended"):
            reason = (
                f" ({c.get('reason')}: {clip(str(c.get('message', '')), 200)})"
                if c.get("reason")
                else ""
            )
            out.append(f"condition {c.get('type')}={c.get('status')}{reason}")
    return out


def _state(state: KubeObject) -> str:
    for name, detail in (state or {}).items():
        detail = detail or {}
        bits = [name]
        if detail.get("reason"):
            bits.append(str(detail["reason"]))
        if "exitCode" in detail:
            bits.append(f"exit {detail['exitCode']}")
        if detail.get("finishedAt") or detail.get("startedAt"):
            bits.append(f"at {detail.get('finishedAt') or detail.get('startedAt')}")
        if detail.get("message"):
            bits.append(clip(str(detail["message"]), 300))
        return " ".join(bits)
    return "-"


def _container_spec(c: KubeObject, *, init: bool = False) -> list[str]:
    lines = [f"{'init ' if init else ''}container {c.get('name')} image={c.get('image')}"]
    res = c.get("resources") or {}
    for part in ("limits", "requests"):
        if res.get(part):
            lines.append(f"  {part}: " + ", ".join(f"{k}={v}" for k, v in res[part].items()))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if c.get(probe):
            lines.append(f"  {probe}: {clip(_compact(c[probe]), 300)}")
    for cmd in ("command", "args"):
        if c.get(cmd):
            lines.append(f"  {cmd}: {clip(_compact(c[cmd]), 300)}")
    for env in c.get("env") or []:
        if "valueFrom" in env:
            lines.append(f"  env {env.get('name')} from {_compact(env['valueFrom'])}")
        else:
            name, value = str(env.get("name")), str(env.get("value", ""))
            lines.append(f"  env {name}={clip(mask_env(name, value), 200)}")
    for src in c.get("envFrom") or []:
        lines.append(f"  envFrom {_compact(src)}")
    return lines


def _pod(spec: KubeObject, status: KubeObject) -> list[str]:
    lines = [f"phase={status.get('phase')} node={spec.get('nodeName', '-')}"]
    if status.get("reason") or status.get("message"):
        lines.append(
            f"status {status.get('reason', '')}: {clip(str(status.get('message', '')), 300)}"
        )
    lines += _conditions(status)
    statuses = {
        s.get("name"): s
        for s in (status.get("initContainerStatuses") or [])
        + (status.get("containerStatuses") or [])
    }
    for init, containers in ((True, spec.get("initContainers")), (False, spec.get("containers"))):
        for c in containers or []:
            lines += _container_spec(c, init=init)
            s = statuses.get(c.get("name"))
            if s:
                now, last = _state(s.get("state") or {}), _state(s.get("lastState") or {})
                lines.append(
                    f"  ready={s.get('ready')} restarts={s.get('restartCount', 0)} "
                    f"state: {now}; last: {last}"
                )
    return lines


def _workload(spec: KubeObject, status: KubeObject, meta: KubeObject) -> list[str]:
    keys = (
        "replicas",
        "readyReplicas",
        "updatedReplicas",
        "availableReplicas",
        "active",
        "succeeded",
        "failed",
        "currentNumberScheduled",
        "numberReady",
        "desiredNumberScheduled",
    )
    counts = " ".join(f"{k}={status[k]}" for k in keys if k in status)
    revision = (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision")
    lines = [f"spec.replicas={spec.get('replicas', '-')} {counts}".rstrip()]
    if revision:
        lines.append(f"revision {revision}")
    for key in ("backoffLimit", "activeDeadlineSeconds", "selector", "strategy"):
        if key in spec:
            lines.append(f"{key}: {clip(_compact(spec[key]), 300)}")
    lines += _conditions(status, all_of=True)
    pod_spec = ((spec.get("template") or {}).get("spec")) or {}
    for c in pod_spec.get("initContainers") or []:
        lines += _container_spec(c, init=True)
    for c in pod_spec.get("containers") or []:
        lines += _container_spec(c)
    return lines


def _node(spec: KubeObject, status: KubeObject) -> list[str]:
    lines = _conditions(status, all_of=True)
    if spec.get("unschedulable"):
        lines.append("unschedulable (cordoned)")
    for taint in spec.get("taints") or []:
        lines.append(f"taint {taint.get('key')}={taint.get('value', '')}:{taint.get('effect')}")
    for part in ("capacity", "allocatable"):
        if status.get(part):
            lines.append(f"{part}: " + ", ".join(f"{k}={v}" for k, v in status[part].items()))
    return lines
