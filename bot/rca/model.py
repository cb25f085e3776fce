"""What an analyzer concludes: hypotheses with evidence, trigger and suggested actions.

``Analysis.to_report`` renders the CONTRACTS §3 object. Actions are *proposals*: structured
(kind, target, parameters), rendered as kubectl for people, judged by the policy engine
before anything could run. No analyzer — rules or Claude — ever executes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CATEGORIES = (
    "oom_killed",
    "app_crash",
    "missing_config",
    "config_error",
    "image_pull",
    "unschedulable_resources",
    "unschedulable_constraints",
    "pvc_pending",
    "volume_mount",
    "liveness_probe",
    "readiness_probe",
    "service_no_endpoints",
    "node_not_ready",
    "node_pressure",
    "evicted",
    "cpu_throttling",
    "hpa_maxed",
    "quota_exceeded",
    "dependency_unavailable",
    "dns_failure",
    "certificate_expired",
    "permission_denied",
    "disk_full",
    "init_container_failed",
    "job_failed",
    "cronjob_not_scheduling",
    "resource_contention",
    "not_an_incident",
    "unknown",
)


@dataclass(frozen=True)
class EvidenceItem:
    """One observation backing (or weakening) a hypothesis."""

    source: str  # kubernetes | events | logs | prometheus | alert
    text: str
    ref: str  # the object it is about: "<ns>/<Kind>/<name>" or "<Kind>/<name>"

    def to_dict(self) -> dict[str, str]:
        """The §3 evidence item."""
        return {"source": self.source, "text": self.text, "ref": self.ref}


@dataclass(frozen=True)
class Action:
    """A suggested remediation, structured. Never free-form shell.

    ``kind`` is one of the remediation catalogue's kinds: rollout_restart, scale,
    rollout_undo, set_resources, set_image, delete_pod, cordon, uncordon, suspend_cronjob,
    resume_cronjob, helm_rollback.
    """

    kind: str
    target: str  # "<ns>/<Kind>/<name>" or "Node/<name>"
    kubectl: str  # canonical rendering for people
    params: dict[str, Any] = field(default_factory=dict)
    rollback: str | None = None  # kubectl that undoes it, when one exists
    why: str = ""


@dataclass
class Hypothesis:
    """A candidate root cause with everything needed to present it."""

    category: str
    object: str | None
    summary: str
    root_cause: str
    confidence: float
    evidence: list[EvidenceItem] = field(default_factory=list)
    trigger: str | None = None
    actions: list[Action] = field(default_factory=list)
    against: list[str] = field(default_factory=list)  # evidence that weakens it
    rule: str = ""  # which rule produced it (for tests and the benchmark)


@dataclass
class Analysis:
    """The outcome of an investigation."""

    primary: Hypothesis
    alternatives: list[Hypothesis] = field(default_factory=list)
    missing_data: list[str] = field(default_factory=list)
    analyzer: str = "rules"  # rules | claude | none

    def to_report(
        self,
        incident: dict[str, Any],
        *,
        judged_actions: list[dict[str, Any]] | None = None,
        similar: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The CONTRACTS §3 object.

        Args:
            incident: ``{"alertname", "severity", "namespace", "object"}``.
            judged_actions: the actions with policy ``risk``/``verdict``/``reasons`` added;
                when omitted, actions are listed as needing review.
            similar: similar past incidents (incident memory), when available.
        """
        p = self.primary
        actions = judged_actions
        if actions is None:
            actions = [
                {
                    "kind": a.kind,
                    "kubectl": a.kubectl,
                    "risk": "medium",
                    "verdict": "needs_review",
                    "reasons": ["no policy engine configured: every action needs review"],
                    "rollback": a.rollback,
                }
                for a in p.actions
            ]
        report: dict[str, Any] = {
            "incident": {**incident, "object": p.object if p.object else incident.get("object")},
            "category": p.category,
            "summary": p.summary,
            "root_cause": p.root_cause,
            "trigger": p.trigger,
            "confidence": round(p.confidence, 2),
            "evidence": [e.to_dict() for e in p.evidence],
            "actions": actions,
            "similar": similar or [],
            "missing_data": list(self.missing_data),
            "analyzer": self.analyzer,
        }
        if p.category == "not_an_incident":
            report["incident"]["object"] = None
        if self.alternatives:
            alt = self.alternatives[0]
            report["alternative"] = {
                "category": alt.category,
                "object": alt.object,
                "summary": alt.summary,
                "confidence": round(alt.confidence, 2),
            }
        return report
