"""The App Home tab: what needs attention now, and how the last week went.

Published with ``views.publish`` for the person who opened it (``app_home_opened``):

* open incidents, grouped by severity (most severe first), linked to their threads;
* remediations waiting for this person's approval, linked to their messages;
* the last 7 days: incidents opened and resolved, MTTR p50/p90, action success rate (from
  the store), and the incident memory's all-time figures when it is available;
* the most frequent alerts of the last 7 days (top 5 alertnames).

The view is built with ``slack_sdk.models`` (which checks Block Kit's limits) and kept
under Slack's 100 blocks by capping each list.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.messages import SEVERITY_RANK, clip, escape, human_duration, severity_emoji
from bot.overview import (
    WeekStats,
    action_message_refs,
    approvals_for,
    thread_refs,
    week_stats,
)
from bot.remediate.approvals import ActionRecord
from bot.runtime import Runtime
from handlers.commands_incidents import approval_line, incident_line

log = logging.getLogger(__name__)

WINDOW = timedelta(days=7)
OPEN_LIMIT = 50  # open incidents read for the view
PER_SEVERITY = 10  # lines shown per severity before "+N more"
APPROVALS_SHOWN = 10
TOP_ALERTS = 5


async def publish(runtime: Runtime, client: AsyncWebClient, user_id: str) -> None:
    """Build the Home tab for ``user_id`` and publish it."""
    view = await build(runtime, user_id)
    await client.views_publish(user_id=user_id, view=view)


async def build(runtime: Runtime, user_id: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The Home tab view (a ``views.publish`` ``view`` object) for ``user_id``."""
    now = now or datetime.now(UTC)
    store = runtime.store
    incidents = await store.call(store.incidents, status="firing", limit=OPEN_LIMIT)
    threads = await store.call(thread_refs, store, [i["id"] for i in incidents])
    try:
        pending = await approvals_for(runtime.remediation, user_id)
    except Exception:  # the rest of the tab is still worth showing
        log.exception("listing approvals for %s failed", user_id)
        pending = []
    refs = await store.call(action_message_refs, store, [r.id for r in pending])
    week = await store.call(week_stats, store, now - WINDOW, top=TOP_ALERTS)
    memory_line = await _memory_line(runtime)
    blocks: list[Block] = [HeaderBlock(text="incident-bot")]
    blocks += open_section(incidents, threads, now)
    blocks.append(DividerBlock())
    blocks += approvals_section(pending, refs)
    blocks.append(DividerBlock())
    blocks += week_section(week, memory_line)
    blocks.append(DividerBlock())
    blocks += top_alerts_section(week.top_alerts)
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Updated {now:%Y-%m-%d %H:%M} UTC · `/incidents` · `/incident <id>` · "
                    "`/rca <namespace>/<kind>/<name>` · `/similar <text>` · `/approvals`"
                )
            ]
        )
    )
    return View(type="home", blocks=blocks).to_dict()


def _title(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=text))


def open_section(
    incidents: Sequence[dict[str, Any]], threads: dict[str, tuple[str, str]], now: datetime
) -> list[Block]:
    """Open incidents by severity, most severe first."""
    if not incidents:
        return [_title("*Open incidents*\nNone. :tada:")]
    by_severity: dict[str, list[dict[str, Any]]] = {}
    for incident in incidents:
        by_severity.setdefault(str(incident.get("severity") or "none").lower(), []).append(incident)
    order = sorted(by_severity, key=lambda s: (-SEVERITY_RANK.get(s, 0), s))
    blocks: list[Block] = [_title(f"*Open incidents* ({len(incidents)})")]
    for severity in order:
        group = by_severity[severity]
        lines = [incident_line(i, threads.get(i["id"]), now) for i in group[:PER_SEVERITY]]
        if len(group) > PER_SEVERITY:
            lines.append(f"… and {len(group) - PER_SEVERITY} more (`/incidents open`)")
        head = f"{severity_emoji(severity)} *{escape(severity)}* ({len(group)})"
        blocks.append(_title(clip("\n".join([head, *lines]))))
    return blocks


def approvals_section(
    records: Sequence[ActionRecord], refs: dict[str, tuple[str, str]]
) -> list[Block]:
    """Remediations waiting for this person's approval."""
    if not records:
        return [_title("*Waiting for your approval*\nNothing right now.")]
    lines = [approval_line(r, refs.get(r.id)) for r in records[:APPROVALS_SHOWN]]
    if len(records) > APPROVALS_SHOWN:
        lines.append(f"… and {len(records) - APPROVALS_SHOWN} more (`/approvals`)")
    return [_title(clip("\n".join([f"*Waiting for your approval* ({len(records)})", *lines])))]


def _duration(seconds: float | None) -> str:
    return human_duration(seconds) if seconds is not None else "—"


def week_section(week: WeekStats, memory_line: str) -> list[Block]:
    """Incidents, MTTR and action success over the window."""
    rate = week.success_rate
    done = week.actions_succeeded + week.actions_failed
    success = f"{rate:.0%} ({week.actions_succeeded} of {done})" if rate is not None else "—"
    blocks: list[Block] = [
        _title("*Last 7 days*"),
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*Incidents opened*\n{week.opened}"),
                MarkdownTextObject(text=f"*Resolved*\n{week.resolved}"),
                MarkdownTextObject(text=f"*MTTR p50*\n{_duration(week.mttr_p50)}"),
                MarkdownTextObject(text=f"*MTTR p90*\n{_duration(week.mttr_p90)}"),
                MarkdownTextObject(text=f"*Action success*\n{success}"),
            ]
        ),
    ]
    if memory_line:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=clip(memory_line, 1900))]))
    return blocks


def top_alerts_section(top: Sequence[tuple[str, int]]) -> list[Block]:
    """The most frequent alertnames of the window."""
    if not top:
        return [_title("*Most frequent alerts (7 days)*\nNo alerts.")]
    lines = [
        f"{rank}. `{escape(name)}` — {count} incident{'s' if count != 1 else ''}"
        for rank, (name, count) in enumerate(top, start=1)
    ]
    return [_title("\n".join(["*Most frequent alerts (7 days)*", *lines]))]


async def _memory_line(runtime: Runtime) -> str:
    """The incident memory's all-time MTTR and action success, when it has any."""
    memory = runtime.memory
    if memory is None:
        return ""
    try:
        stats = await memory.docs.call(memory.learning)
        count = await memory.docs.call(memory.count)
    except Exception:
        log.exception("reading the incident memory's learning figures failed")
        return ""
    if not count:
        return ""
    parts = [f"Incident memory, all time: {count} past incident{'s' if count != 1 else ''}"]
    if stats.mttr_overall is not None:
        parts.append(
            f"MTTR p50 {_duration(stats.mttr_overall.p50)}, p90 {_duration(stats.mttr_overall.p90)}"
        )
    succeeded = sum(a.success for a in stats.actions.values())
    known = sum(a.success + a.partial + a.failed for a in stats.actions.values())
    if known:
        parts.append(f"action success {succeeded / known:.0%} ({succeeded} of {known})")
    return " · ".join(parts)


class HomeRefresher:
    """Keeps the Home tab of recent viewers current: re-published when the state changes.

    A viewer is anyone who opened the tab in the last ``keep`` seconds (at most
    ``max_viewers``, the most recent). Every ``interval`` seconds a cheap signature of the
    store (incidents opened/resolved, actions and their versions) is compared with the last
    one; when it differs, each viewer's tab is rebuilt and published.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        interval: float = 10.0,
        keep: float = 86_400.0,
        max_viewers: int = 200,
    ) -> None:
        self._runtime = runtime
        self._interval = interval
        self._keep = keep
        self._max = max_viewers
        self._viewers: dict[str, float] = {}
        self._signature: tuple[Any, ...] | None = None
        self.started = False

    def opened(self, user_id: str) -> None:
        """``user_id`` opened the tab (it was just published for them)."""
        self._viewers[user_id] = time.monotonic()
        if len(self._viewers) > self._max:
            oldest = min(self._viewers, key=self._viewers.__getitem__)
            del self._viewers[oldest]

    async def run(self, client: AsyncWebClient) -> None:
        """Poll for changes and re-publish, until cancelled."""
        self._signature = await self.signature()
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh_if_changed(client)

    async def refresh_if_changed(self, client: AsyncWebClient) -> int:
        """Re-publish for current viewers when the state changed; how many were refreshed."""
        signature = await self.signature()
        if signature == self._signature:
            return 0
        self._signature = signature
        cutoff = time.monotonic() - self._keep
        self._viewers = {u: t for u, t in self._viewers.items() if t >= cutoff}
        done = 0
        for user_id in list(self._viewers):
            try:
                await publish(self._runtime, client, user_id)
                done += 1
            except Exception as exc:  # one viewer's failure must not stop the others
                log.warning("refreshing the Home tab of %s failed: %s", user_id, exc)
        return done

    async def signature(self) -> tuple[Any, ...]:
        """What the Home tab depends on, cheaply: changes whenever the tab would."""
        store = self._runtime.store

        def read() -> tuple[Any, ...]:
            incidents = store.conn.execute(
                "SELECT COUNT(*), SUM(status = 'resolved'), MAX(received_at), "
                "MAX(resolved_at) FROM incidents"
            ).fetchone()
            try:
                actions = store.conn.execute(
                    "SELECT COUNT(*), SUM(version) FROM actions"
                ).fetchone()
            except sqlite3.OperationalError:  # no remediation tables yet
                actions = (0, 0)
            return (*incidents, *actions)

        return await store.call(read)
