"""Slack messages of an incident thread, built with ``slack_sdk.models.blocks``.

Each builder returns a ``{"text": …, "blocks": […]}`` payload: ``text`` is the notification
fallback, ``blocks`` are validated by slack_sdk (lengths, counts) when converted to dicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    SectionBlock,
)

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


def parent_message(incident: Mapping[str, Any], first: Mapping[str, Any], count: int) -> Payload:
    """The incident's parent message (firing or resolved).

    Args:
        incident: The incident row.
        first: Its earliest alert row (annotations and links come from it).
        count: How many alerts the incident holds.
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
    text = f"{'Resolved' if resolved else 'Firing'}: {incident['alertname']} {target}"
    return {"text": text, "blocks": [b.to_dict() for b in blocks]}


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


def rca_message(report: Mapping[str, Any], *, pending_claude: bool = False) -> Payload:
    """The RCA reply: summary, cause, confidence, evidence, trigger, alternative, actions.

    Args:
        report: The CONTRACTS §3 object (already masked).
        pending_claude: Say that a deeper Claude analysis will update this message.
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
    text = f"Root cause ({category}, {confidence:.0%}): {report.get('summary', '')}"
    return {"text": clip(text, 3000), "blocks": [b.to_dict() for b in blocks]}
