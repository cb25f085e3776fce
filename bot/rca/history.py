"""What happened last time: similar past incidents re-rank the suggested actions.

An action whose kind resolved similar incidents moves up (weighted by similarity); one whose
kind failed on a similar incident is flagged, and moves down unless it also succeeded more
often than it failed. The order of actions with no history is kept (the rules' order). The
note is shown with the action so an approver sees why it is first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.rca.model import Action
from rag.learning import action_kind


@dataclass
class ActionHistory:
    """Outcomes of an action kind among the similar incidents."""

    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    weight: float = 0.0  # Σ similarity × (+1 success, −1 failure)

    def note(self) -> str | None:
        """``"resolved 2 similar incidents (INC_1, INC_2)"`` and/or a failure flag."""
        parts = []
        if self.succeeded:
            ids = ", ".join(self.succeeded[:3])
            count = len(self.succeeded)
            parts.append(f"resolved {count} similar incident{'s' * (count > 1)} ({ids})")
        if self.failed:
            ids = ", ".join(self.failed[:3])
            parts.append(f"⚠ failed on similar incident {ids}")
        return "; ".join(parts) or None


def history_of(
    actions: Sequence[Action], similar: Sequence[Mapping[str, Any]]
) -> list[ActionHistory]:
    """Per action (same order), what the similar incidents say about its kind."""
    out = []
    for action in actions:
        history = ActionHistory()
        for item in similar:
            if action_kind(str(item.get("action") or "")) != action.kind:
                continue
            score = float(item.get("score") or 0.0)
            result = str(item.get("result") or "unknown")
            incident = str(item.get("incident_id") or "?")
            if result == "success":
                history.succeeded.append(incident)
                history.weight += score
            elif result == "failed":
                history.failed.append(incident)
                history.weight -= score
        out.append(history)
    return out


def rerank(
    actions: Sequence[Action], similar: Sequence[Mapping[str, Any]]
) -> list[tuple[Action, ActionHistory]]:
    """Actions best first by their history weight; ties keep the analyzer's order."""
    pairs = list(zip(actions, history_of(actions, similar), strict=True))
    order = sorted(range(len(pairs)), key=lambda i: (-pairs[i][1].weight, i))
    return [pairs[i] for i in order]
