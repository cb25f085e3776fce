"""Read-only views over the store for the Slack surfaces (commands, mentions, App Home).

The functions taking a :class:`~bot.store.Store` first run on the store's thread
(``await store.call(fn, store, …)``): they only read, so they never wait behind a
transaction for long. :func:`approvals_for` is the async part — which pending actions a
person may act on, with user-group membership resolved through Slack.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.remediate.approvals import ActionRecord
from bot.remediate.audit import rfc3339
from bot.remediate.authz import GroupLookupError, group_entries
from bot.store import Store
from rag.learning import percentile

if TYPE_CHECKING:
    from bot.remediate.service import Remediation

ONDEMAND_ALERTNAME = "OnDemandRCA"
"""The alertname of incidents opened by ``/rca`` or a mention (left out of alert statistics)."""

# Words too common in questions to say anything about an incident.
_STOP_WORDS = frozenset(
    "the why what was are how who when with for and not did does any all about this that "
    "there from into its has have had can could would should been being is it on in".split()
)
_WORD = re.compile(r"[a-z0-9][a-z0-9-]*")
_SUCCESS = ("succeeded",)
_FAILURE = ("failed", "rolled_back", "rollback_failed")


def words(text: str) -> list[str]:
    """The words of a question worth matching: lower-case, 3+ characters, no stop words."""
    return [w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in _STOP_WORDS]


def _haystack(incident: dict[str, Any]) -> str:
    fields = (incident["id"], incident["alertname"], incident["namespace"], incident["object"])
    return " ".join(str(f or "") for f in fields).lower()


def match_score(incident: dict[str, Any], terms: Sequence[str]) -> int:
    """How many of ``terms`` occur in the incident's id, alertname, namespace or object."""
    hay = _haystack(incident)
    return sum(1 for term in terms if term in hay)


def search_incidents(
    store: Store,
    terms: Sequence[str],
    *,
    status: str | None = None,
    limit: int = 15,
    scan: int = 1000,
    require_all: bool = False,
) -> list[dict[str, Any]]:
    """Incidents (newest first among the last ``scan``) matching ``terms``.

    Args:
        store: The bot's store (run on its thread).
        terms: Lower-case words (see :func:`words`); an incident matches when one of them
            (all of them with ``require_all``) occurs in its id, alertname, namespace or object.
        status: Only incidents in this status (``firing``, ``resolved``).
        limit: At most this many, best match first, then newest.
        scan: How many recent incidents are searched.
        require_all: Every term must match (a search) instead of any (a question).
    """
    if not terms:
        return []
    scored = []
    for position, incident in enumerate(store.incidents(status=status, limit=scan)):
        score = match_score(incident, terms)
        if score and (not require_all or score == len(terms)):
            scored.append((-score, position, incident))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [incident for _, _, incident in scored[:limit]]


def thread_refs(store: Store, incident_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``incident id → (channel, ts)`` of each posted parent message."""
    out: dict[str, tuple[str, str]] = {}
    for incident_id in incident_ids:
        thread = store.thread_of(incident_id)
        if thread is not None:
            out[incident_id] = thread
    return out


def incident_by_thread(store: Store, channel: str, ts: str) -> dict[str, Any] | None:
    """The incident whose thread has the parent message ``ts`` in ``channel``."""
    row = store.conn.execute(
        "SELECT incident_id FROM slack_threads WHERE channel = ? AND ts = ?", (channel, ts)
    ).fetchone()
    return store.get_incident(str(row[0])) if row else None


def report_of(incident: dict[str, Any]) -> dict[str, Any] | None:
    """The incident's latest RCA report (CONTRACTS §3), if one was stored."""
    raw = incident.get("rca")
    if not raw:
        return None
    try:
        loaded = json.loads(raw)
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None


def action_message_refs(store: Store, action_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``action id → (channel, ts)`` of each action's posted approval message.

    Reads the remediation flow's ``action_messages`` table (action → outbox row) and the
    outbox's ``ts`` once the message was sent.
    """
    out: dict[str, tuple[str, str]] = {}
    for action_id in action_ids:
        row = store.conn.execute(
            "SELECT t.channel, o.ts FROM action_messages m "
            "JOIN outbox o ON o.id = m.outbox_id "
            "JOIN slack_threads t ON t.incident_id = o.incident_id "
            "WHERE m.action_id = ? AND o.state = 'sent' AND o.ts IS NOT NULL",
            (action_id,),
        ).fetchone()
        if row:
            out[action_id] = (str(row[0]), str(row[1]))
    return out


def pending_approver_entries(store: Store) -> set[str]:
    """Every approver entry (user IDs, group IDs, @handles) of pending actions."""
    entries: set[str] = set()
    for (raw,) in store.conn.execute("SELECT approvers FROM actions WHERE state = 'pending'"):
        try:
            entries.update(str(e) for e in json.loads(raw or "[]"))
        except ValueError:
            continue
    return entries


async def approvals_for(remediation: Remediation, user_id: str) -> list[ActionRecord]:
    """Pending, unexpired actions ``user_id`` may approve and has not approved yet.

    Group membership is resolved one entry at a time: a group Slack cannot resolve is
    treated as "not a member" (fail closed), without hiding what the other entries allow.
    """
    store = remediation.store
    entries = group_entries(sorted(await store.call(pending_approver_entries, store)))
    groups: set[str] = set()
    for entry in entries:
        try:
            groups |= await remediation.groups.groups_of(user_id, [entry])
        except GroupLookupError:
            continue
    return await remediation.book.pending_for(user_id, groups)


@dataclass(frozen=True)
class WeekStats:
    """Incident figures over a window (the App Home's "last 7 days")."""

    opened: int = 0
    resolved: int = 0
    mttr_p50: float | None = None
    mttr_p90: float | None = None
    actions_succeeded: int = 0
    actions_failed: int = 0
    top_alerts: list[tuple[str, int]] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        """Succeeded / (succeeded + failed or rolled back); None without finished actions."""
        done = self.actions_succeeded + self.actions_failed
        return self.actions_succeeded / done if done else None


def week_stats(store: Store, since: datetime, *, top: int = 5) -> WeekStats:
    """Incidents opened since ``since``: count, MTTR, action outcomes, most frequent alerts.

    On-demand investigations are left out: they are not alerts, and they resolve at once.
    """
    rows = store.conn.execute(
        "SELECT alertname, opened_at, resolved_at, status FROM incidents "
        "WHERE received_at >= ? AND alertname != ?",
        (since.timestamp(), ONDEMAND_ALERTNAME),
    ).fetchall()
    durations: list[float] = []
    counts: Counter[str] = Counter()
    for alertname, opened_at, resolved_at, status in rows:
        counts[str(alertname)] += 1
        if status == "resolved" and resolved_at:
            seconds = (_time(resolved_at) - _time(opened_at)).total_seconds()
            durations.append(max(0.0, seconds))
    states = Counter(
        str(state)
        for (state,) in store.conn.execute(
            "SELECT state FROM actions WHERE created_at >= ?", (rfc3339(since),)
        )
    )
    return WeekStats(
        opened=len(rows),
        resolved=len(durations),
        mttr_p50=percentile(durations, 50) if durations else None,
        mttr_p90=percentile(durations, 90) if durations else None,
        actions_succeeded=sum(states[s] for s in _SUCCESS),
        actions_failed=sum(states[s] for s in _FAILURE),
        top_alerts=counts.most_common(top),
    )


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
