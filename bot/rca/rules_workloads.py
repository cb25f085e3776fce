"""Rules about controllers and routing: autoscalers, Jobs, CronJobs, Services.

Same contract as ``rules_k8s.py``: each rule returns a :class:`Hypothesis` or None; the
ranking lives in ``analyzer.py``.
"""

from __future__ import annotations

import math

from bot.rca.facts import Facts, condition, owner
from bot.rca.model import Hypothesis
from bot.rca.rules_k8s import _ev, _event_item, _safe
from bot.targets import ObjectRef


def hpa_maxed(f: Facts) -> Hypothesis | None:
    for ref, hpa in f.bundle.of_kind("HorizontalPodAutoscaler"):
        spec = hpa.get("spec") or {}
        status = hpa.get("status") or {}
        maximum = int(spec.get("maxReplicas") or 0)
        current = int(status.get("currentReplicas") or 0)
        desired = int(status.get("desiredReplicas") or current)
        limited = condition(hpa, "ScalingLimited")
        if not maximum or current < maximum:
            continue
        evidence = [
            _ev(
                "kubernetes",
                f"currentReplicas {current} = maxReplicas {maximum} (desired {desired})",
                ref,
            )
        ]
        if limited and limited.get("status") == "True":
            evidence.append(
                _ev(
                    "kubernetes",
                    f"ScalingLimited: {limited.get('reason')}: {limited.get('message', '')}",
                    ref,
                )
            )
        new_max = max(maximum + 1, math.ceil(maximum * 1.5))
        return Hypothesis(
            category="hpa_maxed",
            object=str(ref),
            summary=f"HPA {ref.name} is pinned at maxReplicas {maximum} while load wants more",
            root_cause=(
                f"The HorizontalPodAutoscaler {ref.name} has scaled to its ceiling ({maximum} "
                "replicas) and cannot add capacity; the remaining pods carry more load than they "
                "were sized for."
            ),
            confidence=0.9 if limited and limited.get("status") == "True" else 0.8,
            evidence=evidence,
            actions=_safe(
                "scale",
                str(ref),
                {"max_replicas": new_max, "from_max_replicas": maximum},
                f"raise maxReplicas {maximum} → {new_max}",
            ),
            rule="hpa_maxed",
        )
    return None


def job_failed(f: Facts) -> Hypothesis | None:
    jobs = list(f.bundle.of_kind("Job"))
    for ref, job in sorted(
        jobs,
        key=lambda j: str((j[1].get("metadata") or {}).get("creationTimestamp", "")),
        reverse=True,
    ):
        failed = condition(job, "Failed")
        if not failed or failed.get("status") != "True":
            continue
        up = owner(job)
        obj = ObjectRef("CronJob", up[1], ref.namespace) if up and up[0] == "CronJob" else ref
        evidence = [
            _ev(
                "kubernetes",
                f"condition Failed: {failed.get('reason')}: {failed.get('message', '')}",
                ref,
            )
        ]
        why = ""
        for container in f.failing():
            term = container.terminated
            line = f.crash_lines.get(container.key)
            if term:
                evidence.append(
                    _ev(
                        "kubernetes",
                        f"container {container.name} exited {term.get('exitCode')} "
                        f"({term.get('reason', '')})",
                        container.pod,
                    )
                )
            if line:
                evidence.append(_ev("logs", line, container.pod))
                why = why or f" Its pods fail with: {line}"
            if len(evidence) > 4:
                break
        return Hypothesis(
            category="job_failed",
            object=str(obj),
            summary=f"Job {ref.name} failed: {failed.get('reason')}",
            root_cause=(
                f"Job {ref.name} gave up ({failed.get('reason')}: "
                f"{failed.get('message', '')}).{why}"
            ),
            confidence=0.9,
            evidence=evidence,
            rule="job_failed",
        )
    return None


def cronjob_not_scheduling(f: Facts) -> Hypothesis | None:
    for ref, cron in f.bundle.of_kind("CronJob"):
        spec = cron.get("spec") or {}
        events = [e for e in f.bundle.events_for(ref) if e.get("type") == "Warning"]
        if spec.get("suspend"):
            return Hypothesis(
                category="cronjob_not_scheduling",
                object=str(ref),
                summary=f"CronJob {ref.name} is suspended (spec.suspend: true)",
                root_cause=(
                    f"CronJob {ref.name} has spec.suspend set, so no Job has been started since "
                    f"{(cron.get('status') or {}).get('lastScheduleTime', 'it was suspended')}."
                ),
                confidence=0.9,
                evidence=[_ev("kubernetes", "spec.suspend: true", ref)]
                + [_event_item(e) for e in events[:2]],
                actions=_safe("resume_cronjob", str(ref), {}, "resume the schedule"),
                rule="cronjob_not_scheduling",
            )
        for event in events:
            message = str(event.get("message", ""))
            if any(
                k in message
                for k in (
                    "missed start times",
                    "unparseable",
                    "invalid schedule",
                    "Cannot determine",
                )
            ) or event.get("reason") in (
                "FailedNeedsStart",
                "InvalidSchedule",
                "UnparseableSchedule",
            ):
                return Hypothesis(
                    category="cronjob_not_scheduling",
                    object=str(ref),
                    summary=f"CronJob {ref.name} is not scheduling: {event.get('reason')}",
                    root_cause=(
                        f"The CronJob controller does not start Jobs for {ref.name}: {message}"
                    ),
                    confidence=0.88,
                    evidence=[
                        _event_item(event),
                        _ev("kubernetes", f"schedule {spec.get('schedule')!r}", ref),
                    ],
                    rule="cronjob_not_scheduling",
                )
    return None


def service_no_endpoints(f: Facts) -> Hypothesis | None:
    services = list(f.bundle.of_kind("Service"))
    alert_service = f.bundle.labels.get("service")
    for ref, svc in services:
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            continue
        endpoints = f.bundle.get(ObjectRef("Endpoints", ref.name, ref.namespace))
        ready = sum(len(s.get("addresses") or []) for s in (endpoints or {}).get("subsets") or [])
        if ready:
            continue
        matching = [
            p
            for p, pod in f.bundle.pods()
            if all(
                ((pod.get("metadata") or {}).get("labels") or {}).get(k) == v
                for k, v in selector.items()
            )
        ]
        named = alert_service == ref.name or any(
            word in f.bundle.alertname for word in ("Endpoint", "TargetDown", "Probe", "Service")
        )
        if matching and not named:
            # pods exist but are unready: a readiness problem, unless the alert is the Service's
            continue
        sel = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        cause = "selects no pods (selector/label mismatch)" if not matching else "has no ready pods"
        return Hypothesis(
            category="service_no_endpoints",
            object=str(ref),
            summary=f"Service {ref.name} has no endpoints: its selector {sel} {cause}",
            root_cause=(
                f"Service {ref.name} routes to pods matching {sel}, but it {cause}; every request "
                "to it fails."
            ),
            confidence=0.88 if not matching else 0.75,
            evidence=[
                _ev("kubernetes", f"selector {sel}", ref),
                _ev(
                    "kubernetes",
                    "Endpoints have no ready addresses",
                    ObjectRef("Endpoints", ref.name, ref.namespace),
                ),
            ],
            rule="service_no_endpoints",
        )
    return None


RULES = (
    hpa_maxed,
    job_failed,
    cronjob_not_scheduling,
    service_no_endpoints,
)
