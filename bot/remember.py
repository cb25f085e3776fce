"""The learning loop: resolved incidents and people's feedback feed the incident memory.

* When an incident resolves, its §5 document — root cause (as corrected by people, if it
  was), category, evidence, the executed action and its outcome, MTTR, and the link to its
  Slack thread — is written to the memory, so the next similar incident is answered with it.
* 👍/👎 on the RCA reply are votes (RCA acceptance); "Correct the root cause" replaces the
  stored root cause: in the incident's report right away, and in the memory document (or
  the document it becomes when the incident resolves). Who said what is recorded.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from bot import messages
from bot.masking import mask
from bot.store import Store

if TYPE_CHECKING:
    from bot.remediate.approvals import ActionBook
    from rag.memory import IncidentMemory

log = logging.getLogger(__name__)

# Executed-action states → the §5 result vocabulary.
_RESULTS = {
    "succeeded": "success",
    "rolled_back": "failed",
    "rollback_failed": "failed",
    "failed": "failed",
}


async def remember_incident(
    store: Store, memory: IncidentMemory, book: ActionBook | None, incident_id: str
) -> bool:
    """Write a resolved incident's document to the memory. False when there is nothing to add."""
    incident = await store.call(store.get_incident, incident_id)
    if incident is None or incident["status"] != "resolved":
        return False
    report: dict[str, Any] = json.loads(incident["rca"]) if incident.get("rca") else {}
    if report.get("category") == "not_an_incident":
        return False  # a Watchdog teaches nothing
    action, result = "", "unknown"
    if book is not None:
        executed = [r for r in await book.for_incident(incident_id) if r.state in _RESULTS]
        if executed:
            last = executed[-1]
            action, result = last.kubectl, _RESULTS[last.state]
    if not action:
        suggested = report.get("actions") or []
        # Nothing was executed by the bot: the incident resolved by itself or by hand.
        action = str(suggested[0].get("kubectl", "")) if suggested else ""
        result = "unknown"
    thread = await store.call(store.thread_of, incident_id)
    channel, ts = thread if thread else ("", "")
    await memory.afrom_incident(
        incident_id,
        alertname=incident["alertname"],
        namespace=incident["namespace"],
        object=incident["object"],
        report=report,
        action=action,
        result=result,
        opened_at=incident["opened_at"],
        resolved_at=incident["resolved_at"],
        channel=channel,
        thread_ts=ts,
        title=str(report.get("summary") or incident.get("summary") or incident["alertname"]),
    )
    return True


async def record_vote(
    store: Store, memory: IncidentMemory | None, incident_id: str, user_id: str, up: bool
) -> str:
    """A 👍/👎 on an RCA. Returns the answer for the voter."""
    incident = await store.call(store.get_incident, incident_id)
    if incident is None:
        return "This incident is unknown."
    if memory is None:
        return "Incident memory is off, so votes cannot be recorded here."
    report = json.loads(incident["rca"]) if incident.get("rca") else {}
    await memory.afeedback(
        incident_id, user_id, "up" if up else "down", category=report.get("category")
    )
    if up:
        return "Thanks — recorded that this root cause was right."
    return "Thanks — recorded that it was wrong. Use “Correct the root cause” to say what it was."


async def correct_root_cause(
    store: Store,
    memory: IncidentMemory | None,
    incident_id: str,
    user_id: str,
    text: str,
) -> str | None:
    """Replace the incident's root cause with a person's correction.

    Updates the stored report (so the resolved incident's memory document carries it),
    the memory document when it exists already, and tells the thread who corrected it.
    Returns an error for the person, or None.
    """
    fixed = mask(text.strip())
    if len(fixed) < 3:
        return "Write the root cause in a few words."
    incident = await store.call(store.get_incident, incident_id)
    if incident is None:
        return "This incident is unknown."
    report = json.loads(incident["rca"]) if incident.get("rca") else {}
    report["root_cause"] = fixed
    report["corrected_by"] = user_id
    if memory is not None:
        exists = await memory.acorrect(incident_id, fixed, user_id)
        if not exists:  # not a document yet: keep who said what until it becomes one
            await memory.afeedback(
                incident_id, user_id, "correction", text=fixed, category=report.get("category")
            )
    reply = messages.reply(f":pencil2: Root cause corrected by <@{user_id}>: {fixed}")
    await store.call(_save_correction, store, incident_id, incident["channel"], report, reply)
    return None


def _save_correction(
    store: Store,
    incident_id: str,
    channel: str,
    report: dict[str, Any],
    reply: messages.Payload,
) -> None:
    with store.transaction():
        store.update_incident(incident_id, {"rca": json.dumps(report)})
        store.enqueue(incident_id, channel, "reply", reply, time.time())
