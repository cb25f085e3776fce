"""``helm_rollback``: planned and run with ``helm`` itself, verified through the writer.

Helm keeps its releases in Secrets, which the remediation identity may not read, so the
rollback runs the ``helm`` binary (``INCIDENT_BOT_HELM_BINARY``, with helm's own
credentials; no shell) and only the verification goes through the remediation client:
history → ``--dry-run`` → snapshot → ``rollback --wait`` → verify → on failure a rollback
to the revision it started from. Without a binary the action is copy-only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.collect.k8s_objects import as_dict, as_list
from bot.errors import KubeError
from bot.rca.model import Action
from bot.remediate.diff import object_diff
from bot.remediate.kube_write import KubeWriter
from bot.remediate.steps import OnSnapshot, Plan, PlanError, Run, RunStopped
from bot.remediate.verify import Verifier
from bot.targets import ObjectRef


class HelmRollback:
    """Plans and runs ``helm_rollback`` actions for the :class:`~bot.remediate.executor.Executor`.

    Args:
        binary: Path of ``helm``; empty makes ``helm_rollback`` copy-only.
        writer: The remediation client (reads the target).
        verifier: Checks the workload after the rollback (and after a restore).
        timeout: Seconds a rollback has to become healthy (helm's ``--timeout`` too).
    """

    def __init__(
        self, binary: str, writer: KubeWriter, verifier: Verifier, *, timeout: float
    ) -> None:
        self._binary = binary
        self._writer = writer
        self._verifier = verifier
        self._timeout = timeout

    async def plan(self, action: Action, ref: ObjectRef) -> Plan:
        """Read the target and build helm's arguments.

        Raises:
            PlanError: no helm binary is configured.
            KubeError: the target cannot be read.
        """
        if not self._binary:
            raise PlanError(
                "helm_rollback is copy-only: INCIDENT_BOT_HELM_BINARY is not set; "
                f"run `{action.kubectl}` yourself"
            )
        current = await self._writer.get(ref)
        release, revision = str(action.params["release"]), int(action.params.get("revision") or 0)
        argv = ("rollback", release, *([str(revision)] if revision else []), "-n", ref.namespace)
        return Plan(action, ref, current, command=argv, summary=release)

    async def execute(self, action: Action, run: Run, on_snapshot: OnSnapshot | None) -> None:
        """Run the rollback, recording its steps on ``run``.

        Raises:
            RunStopped: on any outcome but success (the executor turns it into the result).
        """
        result = run.result
        try:
            plan = await self.plan(action, ObjectRef.parse(action.target))
            ns, release = plan.ref.namespace, plan.summary
            history = await self._json(["history", release, "-n", ns, "--max", "1"])
        except (PlanError, KubeError) as exc:
            await run.fail("plan", str(exc))
        revisions = [_int(as_dict(entry).get("revision")) for entry in as_list(history)]
        if not revisions or max(revisions) < 1:
            await run.fail("plan", f"helm history lists no revision of release {release}")
        current = max(revisions)
        await run.step("plan", True, f"helm {' '.join(plan.command)} (now at revision {current})")
        try:
            await self._run([*plan.command, "--dry-run"])
        except PlanError as exc:
            await run.fail("dry-run", f"rejected, nothing applied: {exc}")
        to = action.params.get("revision") or "the previous one"
        result.dry_run_diff = [f"helm release {release}: revision {current} → {to}"]
        await run.step("dry-run", True, "helm accepted the rollback")
        snapshot = {"release": release, "revision": current, "object": plan.current}
        await run.snapshot(snapshot, on_snapshot, f"release {release} at revision {current}")
        wait = ["--wait", "--timeout", f"{max(1, int(self._timeout))}s"]
        try:
            await self._run([*plan.command, *wait])
        except PlanError as exc:
            await run.fail("apply", f"helm failed, the release may be partly changed: {exc}")
        await run.step("apply", True, f"helm {' '.join(plan.command)}")
        after = await self._quiet_get(plan.ref)
        result.changed = object_diff(plan.current, after) if after else []
        ok, detail = await self._verifier.workload(plan.ref, self._timeout)
        await run.step("verify", ok, detail)
        if ok:
            result.status, result.detail = "succeeded", detail
            return
        why = f"verify failed: {detail}"
        try:
            await self._run(["rollback", release, str(current), "-n", ns, *wait])
        except PlanError as exc:
            await run.fail("rollback", f"{why}; helm rollback failed: {exc}", "rollback_failed")
        await run.step("rollback", True, f"release {release} back at revision {current}")
        ok, restored = await self._verifier.restored(plan.ref, plan.current, self._timeout)
        await run.step("verify-rollback", ok, restored)
        if not ok:
            raise RunStopped("rollback_failed", f"{why}; restore not verified: {restored}")
        raise RunStopped("rolled_back", f"{why}; rolled back: {restored}")

    async def _run(self, args: list[str]) -> str:
        """Run helm with ``args`` (no shell); its stdout, or PlanError with its stderr."""
        proc = await asyncio.create_subprocess_exec(
            self._binary,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self._timeout + 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PlanError(f"helm {args[0]} timed out") from None
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip()[-300:]
            raise PlanError(f"helm {args[0]} exited {proc.returncode}: {tail}")
        return out.decode(errors="replace")

    async def _json(self, args: list[str]) -> Any:
        text = await self._run([*args, "-o", "json"])
        try:
            return json.loads(text)
        except ValueError:
            raise PlanError(f"helm {args[0]} did not answer JSON") from None

    async def _quiet_get(self, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            return await self._writer.get(ref)
        except KubeError:
            return None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
