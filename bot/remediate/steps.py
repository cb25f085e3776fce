"""What one execution is made of: its plan, its steps as they happen, and its result.

Shared by :class:`bot.remediate.executor.Executor` and the Helm path
(:mod:`bot.remediate.helm`): both record their steps on a :class:`Run` and end early by
raising :class:`RunStopped`, which the executor turns into the :class:`ExecutionResult`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NoReturn

from bot.errors import IncidentBotError
from bot.rca.model import Action
from bot.remediate.kube_write import WriteRequest
from bot.remediate.verify import Clock
from bot.targets import ObjectRef

log = logging.getLogger(__name__)

Status = Literal["succeeded", "rolled_back", "rollback_failed", "failed"]
OnStep = Callable[[str, bool, str], Awaitable[None]]  # (step, ok, text)
OnSnapshot = Callable[[dict[str, Any]], Awaitable[None]]


class PlanError(IncidentBotError):
    """The action cannot be turned into a request for this object (no container `x`…)."""


@dataclass(frozen=True)
class Plan:
    """The concrete request(s) for an action against the object as it was read."""

    action: Action
    ref: ObjectRef
    current: dict[str, Any]
    request: WriteRequest | None = None
    command: tuple[str, ...] = ()  # helm_rollback: helm's arguments (run without a shell)
    summary: str = ""


@dataclass
class ExecutionResult:
    """What happened. ``status``: succeeded | rolled_back | rollback_failed | failed."""

    action: Action
    status: Status = "failed"
    detail: str = ""
    dry_run_diff: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the audit log and the Slack thread."""
        out = asdict(self)
        out["steps"] = [list(step) for step in self.steps]
        return out


class RunStopped(Exception):
    """Ends a run early with a status and detail (caught by the executor, never escapes)."""

    def __init__(self, status: Status, detail: str) -> None:
        super().__init__(detail)
        self.status: Status = status
        self.detail = detail


class Run:
    """The steps of one execution and the progress callback.

    Args:
        result: The result the steps are recorded in.
        on_step: Awaited as ``on_step(step, ok, text)`` after each step; its errors are logged.
        clock: Monotonic seconds; :attr:`start` is read from it now.
    """

    def __init__(self, result: ExecutionResult, on_step: OnStep | None, clock: Clock) -> None:
        self.result = result
        self._on_step = on_step
        self.start = clock()

    async def step(self, name: str, ok: bool, text: str) -> None:
        """Record a step and report it to ``on_step``."""
        self.result.steps.append((name, ok, text))
        if self._on_step is not None:
            try:
                await self._on_step(name, ok, text)
            except Exception:  # progress display must not stop a rollout half-way
                log.exception("on_step failed for step %s", name)

    async def snapshot(
        self, snapshot: dict[str, Any], on_snapshot: OnSnapshot | None, text: str
    ) -> None:
        """Keep the snapshot and hand it to ``on_snapshot``; if that fails, stop here."""
        self.result.snapshot = snapshot
        if on_snapshot is not None:
            try:
                await on_snapshot(copy.deepcopy(snapshot))
            except Exception as exc:
                log.exception("on_snapshot failed: not applying %s", self.result.action.kubectl)
                await self.fail("snapshot", f"snapshot not stored, nothing applied: {exc}")
        await self.step("snapshot", True, text)

    async def fail(self, name: str, text: str, status: Status = "failed") -> NoReturn:
        """Record a failed step and stop the run with ``status``."""
        await self.step(name, False, text)
        raise RunStopped(status, text)
