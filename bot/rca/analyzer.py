"""The rule analyzer: run every rule, rank the hypotheses, add trigger and actions.

Ranking (explicit, documented in the README): hypotheses are ordered by *tier*, then by
confidence. A tier says how directly the evidence names the mechanism and how far up the
causal chain it sits:

1. not an incident (Watchdog/InfoInhibitor);
2. the node (NotReady, pressure): pods suffer *because of* it;
3. explicit Kubernetes states: quota, PVC, mounts, scheduling, pulls, init containers,
   evictions, HPA ceiling, failed Jobs, CronJobs, Services without endpoints;
4. explicit kubelet verdicts about a container: OOMKilled, missing config (CreateContainer
   ConfigError or a missing variable), liveness kills;
5. what the failing container's logs name: bad config, certificates, DNS, permissions, disk,
   contention, unreachable dependencies;
6. softer symptoms: readiness failures, CPU throttling;
7. a crash with nothing more specific;
8. unknown.

The best hypothesis is the answer; the best one of another category is the alternative.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.rca.actions import build_action
from bot.rca.bundle import Bundle, RolloutDiff
from bot.rca.facts import Facts
from bot.rca.model import Action, Analysis, EvidenceItem, Hypothesis
from bot.rca.rules_k8s import RULES as K8S_RULES
from bot.rca.rules_k8s import recent_warnings
from bot.rca.rules_pods import RULES as POD_RULES
from bot.rca.rules_pods import log_rules
from bot.rca.rules_workloads import RULES as WORKLOAD_RULES

TIERS: dict[str, int] = {
    "not_an_incident": 1,
    "node_not_ready": 2,
    "node_pressure": 2,
    "quota_exceeded": 3,
    "pvc_pending": 3,
    "volume_mount": 3,
    "unschedulable_resources": 3,
    "unschedulable_constraints": 3,
    "image_pull": 3,
    "init_container_failed": 3,
    "evicted": 3,
    "hpa_maxed": 3,
    "job_failed": 3,
    "cronjob_not_scheduling": 3,
    "service_no_endpoints": 3,
    "oom_killed": 4,
    "missing_config": 4,
    "liveness_probe": 4,
    "config_error": 5,
    "certificate_expired": 5,
    "dns_failure": 5,
    "permission_denied": 5,
    "disk_full": 5,
    "resource_contention": 5,
    "dependency_unavailable": 5,
    "readiness_probe": 6,
    "cpu_throttling": 6,
    "app_crash": 7,
    "unknown": 8,
}
# Categories a bad rollout can cause: for these the rollout is the trigger and undoing it
# is a suggested action.
ROLLOUT_CAUSED = {
    "oom_killed",
    "app_crash",
    "missing_config",
    "config_error",
    "image_pull",
    "liveness_probe",
    "readiness_probe",
    "init_container_failed",
    "dependency_unavailable",
    "dns_failure",
    "certificate_expired",
    "permission_denied",
    "cpu_throttling",
    "resource_contention",
    "disk_full",
}
ROLLOUT_WINDOW = timedelta(hours=24)

Rule = Callable[[Facts], Hypothesis | None]


def analyze(bundle: Bundle) -> Analysis:
    """Run every rule over ``bundle`` and return the ranked analysis."""
    facts = Facts.of(bundle)
    found: list[Hypothesis] = []
    for rule in (*K8S_RULES, *WORKLOAD_RULES, *POD_RULES):
        hypothesis = rule(facts)
        if hypothesis is not None:
            found.append(hypothesis)
    found.extend(log_rules(facts))
    found.sort(key=lambda h: (TIERS.get(h.category, 8), -h.confidence))
    if not found:
        found = [_unknown(facts)]
    primary = found[0]
    alternatives = []
    seen = {primary.category}
    for hypothesis in found[1:]:
        if hypothesis.category not in seen:
            seen.add(hypothesis.category)
            alternatives.append(hypothesis)
    if alternatives:
        primary.against.append(f"alternative: {alternatives[0].summary}")
    _add_trigger(primary, bundle)
    _add_context(primary, facts)
    return Analysis(
        primary=primary,
        alternatives=alternatives[:3],
        missing_data=list(bundle.missing),
        analyzer="rules",
    )


def _add_context(h: Hypothesis, facts: Facts, limit: int = 12) -> None:
    """Complete the answer's evidence with what an engineer would read next.

    The alert's own description, the first error line of each failing container and the
    recent Warning events — each only once, and never beyond ``limit`` items — so the
    thread carries the details (names, numbers, messages) without opening a terminal.
    """
    seen = {item.text for item in h.evidence}

    def add(item: EvidenceItem) -> None:
        if len(h.evidence) < limit and item.text and item.text not in seen:
            seen.add(item.text)
            h.evidence.append(item)

    ref = h.object or ""
    for key in ("description", "message", "summary"):
        text = facts.bundle.annotations.get(key)
        if text:
            add(EvidenceItem("alert", text.strip()[:400], ref))
            break
    if h.category != "not_an_incident":
        for container in facts.failing():
            line = facts.crash_lines.get(container.key)
            if line:
                add(EvidenceItem("logs", line, str(container.pod)))
        for item in recent_warnings(facts, 6):
            add(item)


def _unknown(facts: Facts) -> Hypothesis:
    bundle = facts.bundle
    return Hypothesis(
        category="unknown",
        object=facts.fault_object()
        if bundle.pods()
        else (str(bundle.target) if bundle.target else None),
        summary="the evidence does not point to a known failure mode",
        root_cause=(
            "No rule matched the collected evidence"
            + (f" (missing: {'; '.join(bundle.missing)})" if bundle.missing else "")
            + ". Read the evidence below and the alert's runbook."
        ),
        confidence=0.2,
        rule="unknown",
    )


def describe_rollout(rollout: RolloutDiff) -> str:
    """``rollout to revision 7 at 10:01 changed image 3.7.2 → 3.8.0, env CACHE_MAX_ITEMS …``."""
    when = rollout.rolled_out_at
    try:
        when = datetime.fromisoformat(when.replace("Z", "+00:00")).strftime("%H:%M UTC")
    except ValueError:
        pass
    parts = []
    for change in rollout.changes[:4]:
        where = f" ({change.container})" if change.container else ""
        parts.append(f"{change.field}{where} {change.before or '∅'} → {change.after or '∅'}")
    text = f"rollout to revision {rollout.current_revision} at {when}"
    return text + (" changed " + "; ".join(parts) if parts else "")


def _add_trigger(h: Hypothesis, bundle: Bundle) -> None:
    rollout = bundle.rollout
    if rollout is None or not rollout.changes or h.category not in ROLLOUT_CAUSED:
        return
    try:
        at = datetime.fromisoformat(rollout.rolled_out_at.replace("Z", "+00:00"))
    except ValueError:
        return
    if bundle.now - at > ROLLOUT_WINDOW:
        return
    h.trigger = describe_rollout(rollout)
    h.evidence.append(EvidenceItem("kubernetes", h.trigger, str(rollout.workload)))
    undo = _undo(rollout)
    if undo is not None and all(a.kind != "rollout_undo" for a in h.actions):
        h.actions.insert(0, undo)


def _undo(rollout: RolloutDiff) -> Action | None:
    params: dict[str, object] = {}
    if rollout.previous_revision.isdigit():
        params["to_revision"] = int(rollout.previous_revision)
    if rollout.current_revision.isdigit():
        params["current_revision"] = int(rollout.current_revision)
    try:
        return build_action(
            "rollout_undo",
            str(rollout.workload),
            params,
            why=f"return to revision {rollout.previous_revision}, before the change",
        )
    except ValueError:
        return None
