"""Slack messages of an incident thread, built with ``slack_sdk.models.blocks``.

Each builder returns a ``{"text": …, "blocks": […]}`` payload: ``text`` is the notification
fallback, ``blocks`` are validated by slack_sdk (lengths, counts) when converted to dicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    SectionBlock,
)

if TYPE_CHECKING:
    from bot.silence_store import IncidentSilence

SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "error": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":large_blue_circle:",
}
SEVERITY_RANK = {"critical": 4, "error": 3, "warning": 2, "info": 1}
Payload = dict[str, Any]

_SECTION_LIMIT = 2900  # Slack allows 3000 characters in a section; keep a margin


def severity_emoji(severity: str) -> str:
    """The emoji shown for a severity label."""
    return SEVERITY_EMOJI.get(severity.lower(), ":white_circle:")


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int = _SECTION_LIMIT) -> str:
    """Shorten ``text`` to ``limit`` characters, saying so."""
    return text if len(text) <= limit else text[: limit - 12] + "… (cut)"


def human_duration(seconds: float) -> str:
    """``3h 5m``, ``12m``, ``40s``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def alertmanager_link(external_url: str, alertname: str, namespace: str) -> str:
    """A link to the alert in Alertmanager's UI, filtered to this incident's alerts."""
    if not external_url:
        return ""
    matchers = f'alertname="{alertname}"' + (f',namespace="{namespace}"' if namespace else "")
    return f"{external_url.rstrip('/')}/#/alerts?filter={quote('{' + matchers + '}')}"


def parent_message(
    incident: Mapping[str, Any],
    first: Mapping[str, Any],
    count: int,
    silence: IncidentSilence | None = None,
) -> Payload:
    """The incident's parent message (firing or resolved).

    While the incident fires and no silence covers it, the message offers "Silence 1h / 4h /
    24h" buttons; while ``silence`` is in force it says until when, by whom and why, with an
    "Expire silence" button instead.

    Args:
        incident: The incident row.
        first: Its earliest alert row (annotations and links come from it).
        count: How many alerts the incident holds.
        silence: The incident's silence in force, if any
            (:func:`bot.silence_store.active_silence`).
    """
    resolved = incident["status"] == "resolved"
    emoji = ":white_check_mark:" if resolved else severity_emoji(incident["severity"])
    target = incident["object"] or incident["namespace"] or "cluster"
    title = f"{emoji} *{escape(incident['alertname'])}* — `{escape(target)}`"
    annotations = _annotations(first)
    summary = annotations.get("summary") or annotations.get("message") or ""
    description = annotations.get("description", "")
    status = _status_line(incident, count)

    lines = [title]
    if summary:
        lines.append(escape(summary))
    if description and description != summary:
        lines.append(f"_{escape(description)}_")
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=clip("\n".join(lines))))]
    fields = [
        MarkdownTextObject(text=f"*Status*\n{status}"),
        MarkdownTextObject(text=f"*Severity*\n{escape(incident['severity'] or 'none')}"),
        MarkdownTextObject(text=f"*Namespace*\n{escape(incident['namespace'] or '—')}"),
        MarkdownTextObject(text=f"*Incident*\n`{incident['id']}`"),
    ]
    blocks.append(SectionBlock(fields=fields))
    links = _links(incident, first, annotations)
    if links:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=" · ".join(links))]))
    if silence is not None:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=silence_line(silence))]))
        blocks.append(expire_silence_button(incident["id"], silence.silence_id))
    elif not resolved:
        blocks.append(silence_buttons(incident["id"]))
    text = f"{'Resolved' if resolved else 'Firing'}: {incident['alertname']} {target}"
    return {"text": text, "blocks": [b.to_dict() for b in blocks]}


# Button action IDs: one per duration ("silence_4h"), and the expiry.
SILENCE_ACTION_PREFIX = "silence_"
SILENCE_EXPIRE = "silence_expire"
SILENCE_DURATIONS = ("1h", "4h", "24h")  # the buttons; bot.silences.DURATIONS agrees


def silence_value(incident_id: str, duration: str) -> str:
    """A silence button's value: ``"INC_20261120_001|4h"``."""
    return f"{incident_id}|{duration}"


def silence_buttons(incident_id: str) -> ActionsBlock:
    """ "Silence 1h", "Silence 4h", "Silence 24h" for an incident's parent message."""
    return ActionsBlock(
        block_id=f"silence:{incident_id}",
        elements=[
            ButtonElement(
                text=f"Silence {duration}",
                action_id=SILENCE_ACTION_PREFIX + duration,
                value=silence_value(incident_id, duration),
            )
            for duration in SILENCE_DURATIONS
        ],
    )


def expire_silence_button(incident_id: str, silence_id: str) -> ActionsBlock:
    """ "Expire silence" (the value names the incident and the silence: ``INC_…|<uuid>``)."""
    return ActionsBlock(
        block_id=f"silence:{incident_id}",
        elements=[
            ButtonElement(
                text="Expire silence",
                action_id=SILENCE_EXPIRE,
                value=f"{incident_id}|{silence_id}",
                style="danger",
            )
        ],
    )


def silence_line(silence: IncidentSilence) -> str:
    """``:no_bell: Silenced until 14:05 UTC by <@U0ALICE>: deploying a fix``."""
    line = f":no_bell: Silenced until {silence_until(silence)} by <@{silence.created_by}>"
    if silence.reason:
        line += f": {escape(silence.reason)}"
    return clip(line, 1900)


def silence_until(silence: IncidentSilence) -> str:
    """When the silence ends: ``14:05 UTC``, with the day when that is not the day it began."""
    until = silence.until.astimezone(UTC)
    if until.date() == silence.at.astimezone(UTC).date():
        return f"{until:%H:%M} UTC"
    return f"{until:%a %d %b %H:%M} UTC"


def reply(text: str, *, context: str | None = None) -> Payload:
    """A simple thread reply: one mrkdwn section plus an optional context line."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=clip(text)))]
    if context:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=clip(context, 1900))]))
    return {"text": _plain(text), "blocks": [b.to_dict() for b in blocks]}


def _status_line(incident: Mapping[str, Any], alert_count: int) -> str:
    opened = _parse_time(incident["opened_at"])
    if incident["status"] == "resolved" and incident["resolved_at"]:
        took = human_duration((_parse_time(incident["resolved_at"]) - opened).total_seconds())
        line = f":white_check_mark: Resolved after {took}"
    else:
        line = f"Firing since {opened:%H:%M} UTC"
        if alert_count > 1:
            line += f" ({alert_count} alerts)"
    if incident["flapping"]:
        line += " · :warning: flapping"
    return line


def _links(
    incident: Mapping[str, Any], alert: Mapping[str, Any], annotations: Mapping[str, str]
) -> list[str]:
    links = []
    if alert.get("generator_url"):
        links.append(f"<{alert['generator_url']}|Prometheus>")
    if annotations.get("runbook_url"):
        links.append(f"<{annotations['runbook_url']}|Runbook>")
    am = alertmanager_link(incident["external_url"], incident["alertname"], incident["namespace"])
    if am:
        links.append(f"<{am}|Alertmanager>")
    return links


def _annotations(alert: Mapping[str, Any]) -> dict[str, str]:
    raw = alert.get("annotations")
    if isinstance(raw, str):
        loaded = json.loads(raw)
        return loaded if isinstance(loaded, dict) else {}
    return dict(raw) if isinstance(raw, Mapping) else {}


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _plain(text: str) -> str:
    return clip(text.replace("*", "").replace("`", ""), 3000)


def rca_message(
    report: Mapping[str, Any], *, pending_claude: bool = False, incident_id: str | None = None
) -> Payload:
    """The RCA reply: summary, cause, confidence, evidence, trigger, alternative, actions.

    Args:
        report: The CONTRACTS §3 object (already masked).
        pending_claude: Say that a deeper Claude analysis will update this message.
        incident_id: Adds the feedback buttons (👍/👎, "Correct the root cause").
    """
    category = str(report.get("category", "unknown"))
    confidence = float(report.get("confidence") or 0.0)
    analyzer = str(report.get("analyzer", "rules"))
    source = "Claude" if analyzer == "claude" else "rules"
    summary = escape(str(report.get("summary", "")))
    head = (
        f":mag: *Root cause* — `{escape(category)}` · confidence {confidence:.0%} · {source}\n"
        f"*{summary}*"
    )
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=clip(head)))]
    if report.get("root_cause"):
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text=clip(escape(str(report["root_cause"])))))
        )
    if report.get("trigger"):
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text=clip(f"*Trigger*: {escape(str(report['trigger']))}"))
            )
        )
    evidence = report.get("evidence") or []
    if evidence:
        bullets = "\n".join(
            f"• `{escape(str(e.get('ref') or e.get('source')))}` {escape(str(e.get('text', '')))}"
            for e in evidence[:12]
        )
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip("*Evidence*\n" + bullets))))
    alternative = report.get("alternative")
    if alternative:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=clip(
                            f"Alternative: `{escape(str(alternative.get('category')))}` — "
                            f"{escape(str(alternative.get('summary', '')))}",
                            1900,
                        )
                    )
                ]
            )
        )
    actions = report.get("actions") or []
    if actions:
        lines = []
        for action in actions[:5]:
            line = f"• `{escape(str(action.get('kubectl', '')))}`"
            if action.get("verdict"):
                line += f" — risk {action.get('risk')}, {str(action['verdict']).replace('_', ' ')}"
            if action.get("rollback"):
                line += f"\n   rollback: `{escape(str(action['rollback']))}`"
            lines.append(line)
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text=clip("*Suggested actions*\n" + "\n".join(lines)))
            )
        )
    similar = report.get("similar") or []
    if similar:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=similar_text(similar))))
    notes = []
    missing = list(report.get("missing_data") or [])
    if missing:
        notes.append(":warning: Missing data: " + "; ".join(escape(str(m)) for m in missing))
    if pending_claude:
        notes.append(":hourglass: Claude is investigating further; this message will be updated.")
    if notes:
        blocks.append(DividerBlock())
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text=clip(n, 1900)) for n in notes])
        )
    if incident_id:
        blocks.append(feedback_buttons(incident_id))
    text = f"Root cause ({category}, {confidence:.0%}): {report.get('summary', '')}"
    return {"text": clip(text, 3000), "blocks": [b.to_dict() for b in blocks]}


FEEDBACK_UP = "rca_feedback_up"
FEEDBACK_DOWN = "rca_feedback_down"
FEEDBACK_CORRECT = "rca_correct"


def feedback_buttons(incident_id: str) -> ActionsBlock:
    """ "Was this right?" 👍 / 👎 and "Correct the root cause" (the value is the incident id)."""
    return ActionsBlock(
        block_id=f"rca:{incident_id}",
        elements=[
            ButtonElement(text=":+1: Right", action_id=FEEDBACK_UP, value=incident_id),
            ButtonElement(text=":-1: Wrong", action_id=FEEDBACK_DOWN, value=incident_id),
            ButtonElement(
                text="Correct the root cause", action_id=FEEDBACK_CORRECT, value=incident_id
            ),
        ],
    )


def thread_link(channel: str, ts: str) -> str:
    """A permalink-style link to a Slack message (resolved by Slack for workspace members)."""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def similar_text(similar: Sequence[Mapping[str, Any]], limit: int = 5) -> str:
    """The "similar past incidents" section: title, similarity, cause, action, result, link."""
    lines = ["*Similar past incidents*"]
    for item in similar[:limit]:
        score = float(item.get("score") or 0.0)
        title = escape(str(item.get("title") or item.get("incident_id") or "?"))
        channel, ts = str(item.get("channel") or ""), str(item.get("thread_ts") or "")
        if channel and ts:
            title = f"<{thread_link(channel, ts)}|{title}>"
        result = str(item.get("result") or "unknown")
        mark = {"success": ":white_check_mark:", "failed": ":x:"}.get(result, ":grey_question:")
        line = f"• {title} ({escape(str(item.get('incident_id', '')))}) — {score:.0%} similar"
        line += f"\n   cause: {escape(str(item.get('root_cause') or '?'))[:300]}"
        if item.get("action"):
            line += f"\n   action: `{escape(str(item['action']))[:200]}` → {mark} {escape(result)}"
        lines.append(line)
    return clip("\n".join(lines))
