"""Incident slash commands: ``/rca``, ``/incidents``, ``/incident``, ``/similar``, ``/approvals``.

Every answer is ephemeral (only the person who typed the command sees it) except what
``/rca <namespace>/<kind>/<name>`` starts: an RCA *thread* in the channel, opened by
:class:`bot.ondemand.OnDemand` through the outbox. Errors are answered with the usage hint
of :data:`handlers.commands.COMMANDS`. The answer builders are public: a mention of the bot
outside an incident thread (:mod:`handlers.events`) answers with the same ones.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.messages import Payload, clip, escape, human_duration, severity_emoji, thread_link
from bot.ondemand import (
    OnDemand,
    Request,
    TargetError,
    is_ref_shaped,
    parse_target,
    related,
)
from bot.overview import (
    action_message_refs,
    approvals_for,
    report_of,
    search_incidents,
    thread_refs,
    words,
)
from bot.remediate.approvals import ActionRecord
from bot.runtime import Runtime
from handlers.commands import answer_soon, usage

log = logging.getLogger(__name__)

LIST_LIMIT = 15
SIMILAR_TOP = 5
SIMILAR_MIN_SCORE = 0.3
SECTION_CHARS = 2900  # Slack allows 3000 characters per section
RCA_HINT = (
    "To investigate an object now: `/rca <namespace>/<kind>/<name>` "
    "(e.g. `/rca shop/Deployment/cart`)."
)

_runners: weakref.WeakKeyDictionary[Runtime, OnDemand] = weakref.WeakKeyDictionary()


def ondemand_for(runtime: Runtime) -> OnDemand:
    """The runtime's one on-demand runner (shared by commands and mentions)."""
    runner = _runners.get(runtime)
    if runner is None:
        runner = _runners[runtime] = OnDemand.from_runtime(runtime)
    return runner


def register(bolt: AsyncApp, runtime: Runtime) -> None:
    """Add the incident command listeners to ``bolt``."""

    async def rca(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        text = str(command.get("text") or "").strip()
        if not text:
            await ack(**usage("/rca", "Name an object to investigate, or ask a question."))
            return
        if not is_ref_shaped(text):
            work = question_answer(runtime, text)
            await answer_soon(ack, command, work, client=client, respond=respond)
            return
        try:
            target = parse_target(text)
        except TargetError as exc:
            await ack(**usage("/rca", f"Cannot investigate that: {exc}."))
            return
        await ack(
            response_type="ephemeral",
            text=f"Investigating {target}… the RCA thread will appear in this channel "
            "(invite me with `/invite @incident-bot` if I am not a member).",
        )
        request = Request(
            target,
            str(command.get("user_id") or ""),
            str(command.get("channel_id") or ""),
            key=str(command.get("trigger_id") or uuid.uuid4().hex),
        )
        try:
            await ondemand_for(runtime).run(request)
        except Exception as exc:  # the incident could not even be opened: say so
            log.exception("on-demand RCA of %s failed", target)
            await respond(
                response_type="ephemeral",
                text=f":warning: The RCA of {target} failed to start ({type(exc).__name__}).",
            )

    def _no_id(text: str) -> str:
        if not text or any(c.isspace() for c in text):
            return "Give one incident id, e.g. `INC_20261120_001`."
        return ""

    incidents = _answering("/incidents", lambda text, _: incidents_answer(runtime, text))
    incident = _answering(
        "/incident", lambda text, _: incident_answer(runtime, text.upper()), check=_no_id
    )
    similar = _answering(
        "/similar",
        lambda text, _: similar_answer(runtime, text),
        check=lambda text: "" if text else "Describe what happened.",
    )
    approvals = _answering(
        "/approvals",
        lambda _, user: approvals_answer(runtime, user),
        check=lambda text: "This command takes no arguments." if text else "",
    )

    bolt.command("/rca")(rca)
    bolt.command("/incidents")(incidents)
    bolt.command("/incident")(incident)
    bolt.command("/similar")(similar)
    bolt.command("/approvals")(approvals)


Listener = Callable[[AsyncAck, dict[str, Any], AsyncWebClient, AsyncRespond], Awaitable[None]]


def _answering(
    name: str,
    build: Callable[[str, str], Awaitable[Payload]],
    *,
    check: Callable[[str], str] | None = None,
) -> Listener:
    """A listener answering with ``build(text, user_id)`` (usage when ``check`` objects)."""

    async def listener(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        text = str(command.get("text") or "").strip()
        problem = check(text) if check is not None else ""
        if problem:
            await ack(**usage(name, problem))
            return
        work = build(text, str(command.get("user_id") or ""))
        await answer_soon(ack, command, work, client=client, respond=respond)

    return listener


# -- shared pieces -----------------------------------------------------------------------


def _payload(text: str, lines: Sequence[str] = (), *, context: str = "") -> Payload:
    """A title section, body sections (split to fit), and a context line."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=clip(text)))]
    chunk: list[str] = []
    for line in lines:
        if chunk and len("\n".join([*chunk, line])) > SECTION_CHARS:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
            chunk = []
        chunk.append(clip(line))
    if chunk:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
    if context:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=clip(context, 1900))]))
    plain = text.replace("*", "")
    return {"text": clip(plain, 3000), "blocks": [b.to_dict() for b in blocks]}


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def age(incident: dict[str, Any], now: datetime) -> str:
    """How long ago the incident opened (``3h 5m``)."""
    opened = _parse(incident.get("opened_at"))
    return human_duration((now - opened).total_seconds()) if opened else "?"


def incident_line(incident: dict[str, Any], thread: tuple[str, str] | None, now: datetime) -> str:
    """``🔴 INC_… (linked to its thread) · Alertname · object · status · age``."""
    ident = f"`{incident['id']}`"
    if thread is not None:
        ident = f"<{thread_link(*thread)}|{incident['id']}>"
    target = incident.get("object") or incident.get("namespace") or "cluster"
    status = "resolved" if incident["status"] == "resolved" else "open"
    return (
        f"{severity_emoji(str(incident.get('severity') or ''))} {ident} "
        f"*{escape(str(incident['alertname']))}* · `{escape(str(target))}` · {status} · "
        f"{age(incident, now)} ago"
    )


def similar_lines(found: Sequence[Any]) -> str:
    """The "similar past incidents" text for ``Similar`` results."""
    return messages.similar_text([s.to_dict() for s in found], limit=len(found))


# -- /incidents ----------------------------------------------------------------------------


async def incidents_answer(runtime: Runtime, text: str, *, now: datetime | None = None) -> Payload:
    """``/incidents [open|recent|<search>]``: newest first, at most 15."""
    store = runtime.store
    now = now or datetime.now(UTC)
    mode = text.strip().lower() or "open"
    if mode == "open":
        found = await store.call(store.incidents, status="firing", limit=LIST_LIMIT)
        title, empty = "Open incidents", "No open incidents. :tada:"
    elif mode == "recent":
        found = await store.call(store.incidents, limit=LIST_LIMIT)
        title, empty = "Recent incidents", "No incidents yet."
    else:
        terms = words(text)
        found = await store.call(search_incidents, store, terms, limit=LIST_LIMIT, require_all=True)
        title = f"Incidents matching “{escape(text.strip()[:80])}”"
        empty = f"No incident matches “{escape(text.strip()[:80])}”."
    if not found:
        return _payload(empty, context="`/incidents recent` lists the latest ones.")
    threads = await store.call(thread_refs, store, [i["id"] for i in found])
    lines = [incident_line(i, threads.get(i["id"]), now) for i in found]
    more = " (the newest 15)" if len(found) == LIST_LIMIT else ""
    return _payload(f"*{title}*{more}", lines, context="`/incident <id>` shows one in detail.")


# -- /incident <id> ------------------------------------------------------------------------


async def incident_answer(
    runtime: Runtime, incident_id: str, *, now: datetime | None = None
) -> Payload:
    """``/incident <id>``: status, object, times, RCA, actions and their states, thread."""
    store = runtime.store
    now = now or datetime.now(UTC)
    incident = await store.call(store.get_incident, incident_id)
    if incident is None:
        return _payload(
            f"No incident `{escape(incident_id[:60])}` is known here.",
            context="`/incidents recent` lists the latest incidents and their ids.",
        )
    thread = await store.call(store.thread_of, incident_id)
    total, firing = await store.call(store.alert_counts, incident_id)
    records = await runtime.remediation.book.for_incident(incident_id)
    target = incident.get("object") or incident.get("namespace") or "cluster"
    status = "Resolved" if incident["status"] == "resolved" else "Open"
    head = (
        f"{severity_emoji(str(incident['severity'] or ''))} *{escape(incident['alertname'])}* — "
        f"`{escape(str(target))}` (`{incident['id']}`)"
    )
    lines = [
        f"*Status*: {status}"
        + (f" · {firing} of {total} alerts firing" if total else "")
        + (" · :warning: flapping" if incident.get("flapping") else ""),
        f"*Severity*: {escape(incident['severity'] or 'none')} · "
        f"*Namespace*: {escape(incident['namespace'] or '—')}",
        f"*Opened*: {_when(incident.get('opened_at'))} ({age(incident, now)} ago)",
    ]
    if incident.get("resolved_at"):
        lines.append(f"*Resolved*: {_when(incident['resolved_at'])}")
    report = report_of(incident)
    if report is not None:
        lines.append(
            f"*Root cause*: `{escape(str(report.get('category', 'unknown')))}` · "
            f"confidence {float(report.get('confidence') or 0):.0%}\n"
            f"{escape(str(report.get('summary', '')))}"
        )
    else:
        lines.append("*Root cause*: no RCA stored yet.")
    if records:
        refs = await store.call(action_message_refs, store, [r.id for r in records])
        lines.append("*Actions*\n" + "\n".join(_action_line(r, refs.get(r.id)) for r in records))
    else:
        lines.append("*Actions*: none proposed.")
    context = f"<{thread_link(*thread)}|Open the thread>" if thread else "No thread posted yet."
    return _payload(head, lines, context=context)


def _when(text: str | None) -> str:
    moment = _parse(text)
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "—"


def _action_line(record: ActionRecord, ref: tuple[str, str] | None) -> str:
    state = record.state.replace("_", " ")
    line = f"• `{escape(record.kubectl)}` — *{state}* (risk {record.risk}"
    if record.state == "pending":
        line += f", {len(record.approvals)}/{record.approvals_required} approvals"
    line += ")"
    if ref is not None:
        line += f" · <{thread_link(*ref)}|message>"
    return line


# -- /similar --------------------------------------------------------------------------------


async def similar_answer(runtime: Runtime, text: str) -> Payload:
    """``/similar <text>``: the closest past incidents from the incident memory."""
    memory = runtime.memory
    if memory is None:
        return _payload("The incident memory is not available on this bot.")
    if await memory.docs.call(memory.count) == 0:
        return _payload(
            "The incident memory is empty: nothing to compare with yet.",
            context="Import past incidents with `incident-bot history import <file.jsonl>`; "
            "resolved incidents are added as they close.",
        )
    found = await memory.asearch(text, top=SIMILAR_TOP, min_score=SIMILAR_MIN_SCORE)
    if not found:
        return _payload(f"No past incident is similar to “{escape(text[:120])}”.")
    return _payload(f"*Past incidents similar to* “{escape(text[:120])}”", [similar_lines(found)])


# -- /approvals ------------------------------------------------------------------------------


async def approvals_answer(runtime: Runtime, user_id: str) -> Payload:
    """``/approvals``: pending actions this person may approve, with links to their messages."""
    remediation = runtime.remediation
    records = await approvals_for(remediation, user_id)
    if not records:
        return _payload("Nothing is waiting for your approval.")
    store = runtime.store
    refs = await store.call(action_message_refs, store, [r.id for r in records])
    lines = [approval_line(r, refs.get(r.id)) for r in records]
    return _payload(f"*Waiting for your approval* ({len(records)})", lines)


def approval_line(record: ActionRecord, ref: tuple[str, str] | None) -> str:
    """One pending action: command, risk, approvals so far, expiry, link."""
    link = f" · <{thread_link(*ref)}|open>" if ref else ""
    return (
        f"• `{escape(record.kubectl)}` — risk {record.risk}, "
        f"{len(record.approvals)}/{record.approvals_required} approvals, "
        f"expires {record.expires_at:%H:%M} UTC (`{record.incident_id}`){link}"
    )


# -- /rca <question> -------------------------------------------------------------------------


async def question_answer(
    runtime: Runtime, question: str, *, now: datetime | None = None
) -> Payload:
    """A free question: matching open incidents and similar past incidents, and a hint."""
    now = now or datetime.now(UTC)
    found = await related(runtime.store, runtime.memory, question)
    lines: list[str] = []
    if found.incidents:
        lines.append("*Open incidents that match*")
        lines += [incident_line(i, found.threads.get(i["id"]), now) for i in found.incidents]
    else:
        lines.append("No open incident matches those words.")
    if found.similar:
        lines.append(similar_lines(found.similar))
    else:
        lines.append(f"Past incidents: {found.memory_note}.")
    head = f"*About* “{escape(question[:150])}”"
    return _payload(head, lines, context=RCA_HINT)
