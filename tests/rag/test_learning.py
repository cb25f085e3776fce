"""Learning metrics (rag.learning) on hand-made rows whose answers are worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from rag.learning import (
    action_kind,
    action_success,
    compute_learning,
    mttr_by_category,
    percentile,
    rca_acceptance,
)


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        ("kubectl rollout restart deployment backend", "rollout_restart"),
        ("kubectl -n shop rollout restart deployment/cart", "rollout_restart"),
        ("kubectl rollout undo deployment/cart --to-revision=6", "rollout_undo"),
        ("kubectl -n shop scale deployment/api --replicas=5", "scale"),
        ("kubectl scale --replicas=0 statefulset/db", "scale"),
        ("kubectl autoscale deployment api --max=10", "other"),
        (
            "kubectl -n shop set resources deployment/cart -c cart --limits=memory=512Mi",
            "set_resources",
        ),
        ("kubectl set image deployment/cart cart=shop/cart:v1.2.3", "set_image"),
        ("kubectl delete pod cart-7d9f-x2x9q", "delete_pod"),
        ("kubectl -n shop delete pods -l app=cart", "delete_pod"),
        ("kubectl delete po/cart-1", "delete_pod"),
        ("kubectl delete deployment cart", "other"),
        ("kubectl cordon node-3", "cordon"),
        ("kubectl uncordon node-3", "uncordon"),
        ('kubectl patch cronjob backup -p \'{"spec":{"suspend":true}}\'', "suspend_cronjob"),
        ('kubectl patch cronjob/backup -p \'{"spec": {"suspend": false}}\'', "resume_cronjob"),
        (
            'kubectl -n ops patch cronjob backup -p \'{"spec":{"schedule":"0 3 * * *"}}\'',
            "patch_cronjob",
        ),
        ("suspended the cronjob nightly-export", "other"),  # "suspended" is not the word
        ("suspend cronjob nightly-export", "suspend_cronjob"),
        ("helm rollback payments 41", "helm_rollback"),
        ("HELM   ROLLBACK payments", "helm_rollback"),
        (
            "kubectl scale deployment/a --replicas=3 && kubectl rollout restart deployment/a",
            "rollout_restart",
        ),
        ("restarted the database by hand", "other"),
        ("", "none"),
        ("   ", "none"),
    ],
)
def test_action_kind(action: str, kind: str) -> None:
    assert action_kind(action) == kind


def test_percentile_interpolates_linearly() -> None:
    values = [600.0, 60.0, 1200.0, 300.0]  # sorted: 60, 300, 600, 1200
    assert percentile(values, 50) == 450.0  # halfway between 300 and 600
    assert percentile(values, 90) == pytest.approx(600 + 0.7 * 600)  # position 2.7
    assert percentile(values, 0) == 60.0 and percentile(values, 100) == 1200.0
    assert percentile([42.0], 90) == 42.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def row(
    category: str, minutes: float | None, action: str = "", result: str = "success"
) -> dict[str, Any]:
    resolved = None
    if minutes is not None:
        hours, mins = divmod(int(minutes), 60)
        resolved = f"2025-01-01T{10 + hours:02d}:{mins:02d}:00Z"
    return {
        "category": category,
        "timestamp": "2025-01-01T10:00:00Z",
        "resolved_at": resolved,
        "action": action,
        "result": result,
    }


def test_mttr_per_category_and_overall() -> None:
    rows = [
        row("oom_killed", 10),
        row("oom_killed", 20),
        row("oom_killed", 30),
        row("oom_killed", 100),
        row("dns_failure", 5),
        row("dns_failure", None),  # not resolved: left out
        {**row("disk_full", 1), "timestamp": None},  # no start: left out
    ]
    by_category, overall = mttr_by_category(rows)
    assert set(by_category) == {"oom_killed", "dns_failure"}
    oom = by_category["oom_killed"]  # minutes 10, 20, 30, 100
    assert oom.count == 4
    assert oom.p50 == 25 * 60  # between 20 and 30
    assert oom.p90 == pytest.approx((30 + 0.7 * 70) * 60)  # position 2.7
    assert by_category["dns_failure"].p50 == 300 and by_category["dns_failure"].count == 1
    assert overall is not None and overall.count == 5 and overall.p50 == 20 * 60
    assert mttr_by_category([]) == ({}, None)


def test_action_success_rates() -> None:
    restart = "kubectl rollout restart deployment/a"
    rows = [
        row("x", 1, restart, "success"),
        row("x", 1, restart, "success"),
        row("x", 1, restart, "failed"),
        row("x", 1, restart, "partial"),
        row("x", 1, restart, "unknown"),  # counted, not in the rate
        row("x", 1, "kubectl scale deployment/a --replicas=3", "unknown"),
        row("x", 1, "", "success"),
    ]
    outcomes = action_success(rows)
    assert outcomes["rollout_restart"].count == 5
    assert outcomes["rollout_restart"].success_rate == 0.5  # 2 / (2 + 1 + 1)
    assert outcomes["scale"].success_rate is None
    assert outcomes["none"].success_rate == 1.0


def test_rca_acceptance_counts_latest_vote_per_person() -> None:
    feedback = [
        {"incident_id": "A", "user_id": "U1", "kind": "down", "category": "oom_killed"},
        {"incident_id": "A", "user_id": "U1", "kind": "up", "category": "oom_killed"},  # changed
        {"incident_id": "A", "user_id": "U2", "kind": "up", "category": "oom_killed"},
        {"incident_id": "A", "user_id": "U3", "kind": "correction", "category": "oom_killed"},
        {"incident_id": "B", "user_id": "U1", "kind": "down", "category": "dns_failure"},
        {"incident_id": "C", "user_id": "U1", "kind": "up", "category": None},
    ]
    by_category, overall = rca_acceptance(feedback)
    assert (overall.up, overall.down) == (3, 1) and overall.rate == 0.75
    assert by_category["oom_killed"].rate == 1.0
    assert by_category["dns_failure"].rate == 0.0
    assert by_category["unknown"].up == 1
    empty, nothing = rca_acceptance([])
    assert empty == {} and nothing.rate is None


def test_learning_stats_to_dict() -> None:
    stats = compute_learning(
        [row("oom_killed", 20, "kubectl rollout restart deployment/a")],
        [{"incident_id": "A", "user_id": "U1", "kind": "up", "category": "oom_killed"}],
    )
    assert stats.to_dict() == {
        "mttr": {"oom_killed": {"count": 1, "p50_seconds": 1200.0, "p90_seconds": 1200.0}},
        "mttr_overall": {"count": 1, "p50_seconds": 1200.0, "p90_seconds": 1200.0},
        "actions": {
            "rollout_restart": {
                "count": 1,
                "success": 1,
                "partial": 0,
                "failed": 0,
                "unknown": 0,
                "success_rate": 1.0,
            }
        },
        "acceptance": {"oom_killed": {"up": 1, "down": 0, "rate": 1.0}},
        "acceptance_overall": {"up": 1, "down": 0, "rate": 1.0},
    }
