"""Learning metrics over the incident memory: how fast, what worked, was the RCA right.

Pure functions over rows (``docs`` rows and ``feedback`` rows of :mod:`rag.docstore`, or any
mappings with the same keys), so they are tested on hand-made data:

- **MTTR** per category: seconds from ``timestamp`` to ``resolved_at``; p50 and p90 by linear
  interpolation between closest ranks (numpy's default method). Documents without both
  times are left out.
- **Action success** per action kind (:func:`action_kind`): ``success / (success + partial +
  failed)``; ``unknown`` results are counted but left out of the rate.
- **RCA acceptance**: 👍 / (👍 + 👎) per category and overall. Only each person's latest vote
  on an incident counts (a changed mind is one vote, not two); corrections are not votes.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.text import parse_time

# Flags that sit between kubectl's verb and its object; they are dropped before matching.
_FLAGS = re.compile(r"(?:^|\s)(?:-n|--namespace|--context|-c|--container)(?:\s+|=)\S+")
_CRONJOB = r"\b(?:cronjobs?|cj)\b"
# (kind, pattern) in the order they are tried; the first match wins.
_ACTION_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("helm_rollback", r"\bhelm\s+rollback\b"),
        ("rollout_restart", r"\brollout\s+restart\b"),
        ("rollout_undo", r"\brollout\s+undo\b"),
        ("set_resources", r"\bset\s+resources\b"),
        ("set_image", r"\bset\s+image\b"),
        ("uncordon", r"\buncordon\b"),
        ("cordon", r"\bcordon\b"),
        ("resume_cronjob", rf"suspend\W*:\W*false|\bresume\b.*{_CRONJOB}|{_CRONJOB}.*\bresume\b"),
        ("suspend_cronjob", rf"suspend\W*:\W*true|\bsuspend\b.*{_CRONJOB}|{_CRONJOB}.*\bsuspend\b"),
        ("patch_cronjob", rf"\bpatch\s+{_CRONJOB}"),
        ("scale", r"\bscale\b"),
        ("delete_pod", r"\bdelete\s+(?:pods?|po)\b"),
    )
)


def action_kind(action: str) -> str:
    """The kind of remediation an action string describes.

    Rules, on the lower-cased text with ``-n/--namespace/--context/-c/--container`` flags
    removed, first match wins:

    ``helm rollback`` → helm_rollback; ``rollout restart`` → rollout_restart;
    ``rollout undo`` → rollout_undo; ``set resources`` → set_resources; ``set image`` →
    set_image; ``uncordon`` → uncordon; ``cordon`` → cordon; a cron job with
    ``"suspend": false`` or the word ``resume`` → resume_cronjob; with ``"suspend": true``
    or the word ``suspend`` → suspend_cronjob; any other ``patch cronjob`` →
    patch_cronjob; the word ``scale`` (not ``autoscale``) → scale; ``delete pod|pods|po``
    → delete_pod; an empty action → none; anything else → other.
    """
    text = _FLAGS.sub(" ", action.lower())
    if not text.strip():
        return "none"
    for kind, pattern in _ACTION_RULES:
        if pattern.search(text):
            return kind
    return "other"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks.

    Raises:
        ValueError: for no values or ``q`` outside 0–100.
    """
    if not values:
        raise ValueError("values: empty")
    if not 0 <= q <= 100:
        raise ValueError(f"q: must be within 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Mttr:
    """Time to resolve of one category."""

    count: int
    p50: float
    p90: float

    def to_dict(self) -> dict[str, Any]:
        """``{"count", "p50_seconds", "p90_seconds"}``."""
        return {"count": self.count, "p50_seconds": self.p50, "p90_seconds": self.p90}


@dataclass
class ActionOutcomes:
    """Results of one action kind."""

    success: int = 0
    partial: int = 0
    failed: int = 0
    unknown: int = 0

    @property
    def count(self) -> int:
        """Every action of this kind."""
        return self.success + self.partial + self.failed + self.unknown

    @property
    def success_rate(self) -> float | None:
        """success / (success + partial + failed); None when no result is known."""
        known = self.success + self.partial + self.failed
        return self.success / known if known else None

    def to_dict(self) -> dict[str, Any]:
        """Counts, total and rate."""
        return {
            "count": self.count,
            "success": self.success,
            "partial": self.partial,
            "failed": self.failed,
            "unknown": self.unknown,
            "success_rate": self.success_rate,
        }


@dataclass
class Acceptance:
    """👍/👎 votes on RCAs."""

    up: int = 0
    down: int = 0

    @property
    def rate(self) -> float | None:
        """up / (up + down); None without votes."""
        votes = self.up + self.down
        return self.up / votes if votes else None

    def to_dict(self) -> dict[str, Any]:
        """``{"up", "down", "rate"}``."""
        return {"up": self.up, "down": self.down, "rate": self.rate}


@dataclass(frozen=True)
class LearningStats:
    """Every learning metric at once (:func:`compute_learning`)."""

    mttr: dict[str, Mttr] = field(default_factory=dict)
    mttr_overall: Mttr | None = None
    actions: dict[str, ActionOutcomes] = field(default_factory=dict)
    acceptance: dict[str, Acceptance] = field(default_factory=dict)
    acceptance_overall: Acceptance = field(default_factory=Acceptance)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (keys sorted for stable output)."""
        return {
            "mttr": {k: self.mttr[k].to_dict() for k in sorted(self.mttr)},
            "mttr_overall": self.mttr_overall.to_dict() if self.mttr_overall else None,
            "actions": {k: self.actions[k].to_dict() for k in sorted(self.actions)},
            "acceptance": {k: self.acceptance[k].to_dict() for k in sorted(self.acceptance)},
            "acceptance_overall": self.acceptance_overall.to_dict(),
        }


def mttr_by_category(rows: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Mttr], Mttr | None]:
    """Per-category and overall MTTR from rows with category, timestamp, resolved_at."""
    by_category: dict[str, list[float]] = defaultdict(list)
    every: list[float] = []
    for row in rows:
        if not row.get("timestamp") or not row.get("resolved_at"):
            continue
        seconds = (parse_time(row["resolved_at"]) - parse_time(row["timestamp"])).total_seconds()
        by_category[row.get("category") or "unknown"].append(seconds)
        every.append(seconds)
    return {c: _mttr(v) for c, v in by_category.items()}, _mttr(every) if every else None


def action_success(rows: Iterable[Mapping[str, Any]]) -> dict[str, ActionOutcomes]:
    """Outcomes per :func:`action_kind` from rows with action and result."""
    out: dict[str, ActionOutcomes] = defaultdict(ActionOutcomes)
    for row in rows:
        outcome = out[action_kind(row.get("action") or "")]
        result = row.get("result") or "unknown"
        if result not in ("success", "partial", "failed"):
            result = "unknown"
        setattr(outcome, result, getattr(outcome, result) + 1)
    return dict(out)


def rca_acceptance(
    feedback: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, Acceptance], Acceptance]:
    """Per-category and overall acceptance from feedback rows (oldest first).

    Rows have ``incident_id``, ``user_id``, ``kind`` (up | down | correction) and
    ``category`` (None counts as ``unknown``).
    """
    latest: dict[tuple[str, str], tuple[str, str]] = {}
    for row in feedback:
        if row.get("kind") in ("up", "down"):
            key = (str(row["incident_id"]), str(row["user_id"]))
            latest[key] = (str(row["kind"]), str(row.get("category") or "unknown"))
    by_category: dict[str, Acceptance] = defaultdict(Acceptance)
    overall = Acceptance()
    for kind, category in latest.values():
        for tally in (by_category[category], overall):
            if kind == "up":
                tally.up += 1
            else:
                tally.down += 1
    return dict(by_category), overall


def compute_learning(
    doc_rows: Iterable[Mapping[str, Any]], feedback_rows: Iterable[Mapping[str, Any]]
) -> LearningStats:
    """Every metric from live document rows and feedback rows."""
    docs = list(doc_rows)
    mttr, mttr_overall = mttr_by_category(docs)
    acceptance, acceptance_overall = rca_acceptance(feedback_rows)
    return LearningStats(
        mttr=mttr,
        mttr_overall=mttr_overall,
        actions=action_success(docs),
        acceptance=acceptance,
        acceptance_overall=acceptance_overall,
    )


def _mttr(values: Sequence[float]) -> Mttr:
    return Mttr(count=len(values), p50=percentile(values, 50), p90=percentile(values, 90))
