"""Slack messages and the modal of the approval flow.

An action message shows the kubectl rendering, a risk badge, the policy's (and the second
opinion's) reasons, the impact scope, the rollback path and a short command hash, with
Approve / Reject buttons that carry only the action id — every other fact is looked up
server-side on click. Once decided, the same message is edited: the buttons give way to
who decided, when and why, then to the execution's outcome.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.messages import Payload, clip, escape

APPROVE = "remediation_approve"
REJECT = "remediation_reject"
REJECT_MODAL = "remediation_reject_modal"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")

RISK_BADGE = {"low": ":large_green_circle: low", "medium": ":large_orange_circle: medium"}
RISK_BADGE["high"] = ":red_circle: high"

STATE_LINE = {
    "pending": ":hourglass_flowing_sand: Waiting for approval",
    "needs_review": ":no_entry: *Needs Review* — not executable",
    "approved": ":white_check_mark: Approved — executing shortly",
    "executing": ":gear: Executing: dry-run → snapshot → apply → verify",
    "succeeded": ":white_check_mark: Executed and verified",
    "rolled_back": ":rewind: Failed verification — rolled back automatically",
    "rollback_failed": ":rotating_light: Failed verification and the rollback failed too",
    "failed": ":x: Failed",
    "rejected": ":no_entry_sign: Rejected",
    "expired": ":alarm_clock: Expired without a decision",
    "cancelled": ":heavy_multiplication_x: Cancelled",
}


def _field(record: Any, name: str, default: Any = None) -> Any:
    return getattr(record, name, default)


def action_message(
    record: Any,
    *,
    impact: str,
    executable: bool,
    approvals: Sequence[str] = (),
) -> Payload:
    """The message for one proposed action, in its current state.

    Args:
        record: The stored action (:class:`bot.remediate.approvals.ActionRecord`).
        impact: The impact scope summary.
        executable: False when execution is off (no remediation identity configured).
        approvals: User IDs that approved so far.
    """
    state = str(record.state)
    risk = str(record.risk)
    reasons = list(record.reasons or [])
    opinion = _field(record, "second_opinion") or {}
    head = f"*Proposed remediation* · risk {RISK_BADGE.get(risk, risk)} · `{record.short_hash}`"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=head)),
        SectionBlock(text=MarkdownTextObject(text=clip(f"```{escape(record.kubectl)}```"))),
    ]
    fields = [
        MarkdownTextObject(text=f"*Target*\n{escape(record.target)}"),
        MarkdownTextObject(text=f"*Rollback path*\n{escape(record.rollback or 'none')}"[:1900]),
        MarkdownTextObject(text=clip(f"*Impact*\n{escape(impact)}", 1900)),
        MarkdownTextObject(
            text=f"*Approvals*\n{len(approvals)} of {record.approvals_required}"
            + (" (distinct people)" if int(record.approvals_required) > 1 else "")
        ),
    ]
    blocks.append(SectionBlock(fields=fields))
    why = [f"• {escape(r)}" for r in reasons[:6]]
    if opinion:
        verdict = "veto" if opinion.get("veto") else f"risk {opinion.get('risk')}"
        why.append(f"• second opinion ({verdict}): " + "; ".join(opinion.get("reasons", [])[:3]))
    if why:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=clip("\n".join(why), 1900))]))
    blocks.append(SectionBlock(text=MarkdownTextObject(text=_state_text(record, approvals))))
    if state == "pending" and executable:
        blocks.append(_buttons(record))
    elif state == "pending":
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text="Execution is off (INCIDENT_BOT_REMEDIATION_MODE=none): "
                        "run the command yourself if you agree."
                    )
                ]
            )
        )
    result = _field(record, "result") or {}
    if result:
        blocks.extend(_result_blocks(result))
    text = f"Proposed remediation ({risk} risk): {record.kubectl}"
    return {"text": clip(text, 3000), "blocks": [b.to_dict() for b in blocks]}


def _state_text(record: Any, approvals: Sequence[str]) -> str:
    state = str(record.state)
    line = STATE_LINE.get(state, state)
    decided_by = _field(record, "decided_by")
    decided_at = _field(record, "decided_at")
    reason = _field(record, "reason")
    if state == "pending":
        expires = _field(record, "expires_at")
        if approvals:
            line += " — approved by " + ", ".join(f"<@{u}>" for u in approvals)
        if expires:
            line += f" · expires {_hhmm(expires)}"
    elif decided_by:
        who = ", ".join(_mention(u) for u in approvals) if approvals else _mention(decided_by)
        verb = "Rejected" if state == "rejected" else "Decided"
        line += f"\n{verb} by {who}" + (f" at {_hhmm(decided_at)}" if decided_at else "")
    if reason:
        line += f"\n_{escape(str(reason))[:500]}_"
    return clip(line, 2900)


def _mention(who: Any) -> str:
    """A Slack mention for a user ID; anything else (``policy`` for auto-execution) as text."""
    text = str(who)
    if _USER_ID.match(text):
        return f"<@{text}>"
    return "the policy (auto-execute)" if text == "policy" else escape(text)


def _hhmm(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%H:%M UTC")
    text = str(value)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%H:%M UTC")
    except ValueError:
        return text


def _buttons(record: Any) -> ActionsBlock:
    approve = ButtonElement(
        text="Approve",
        action_id=APPROVE,
        value=str(record.id),
        style="primary",
        confirm=ConfirmObject(
            title="Run this change?",
            text=f"{record.kubectl}"[:290],
            confirm="Approve",
            deny="Cancel",
        )
        if str(record.risk) == "high"
        else None,
    )
    reject = ButtonElement(text="Reject", action_id=REJECT, value=str(record.id), style="danger")
    return ActionsBlock(block_id=f"act:{record.id}", elements=[approve, reject])


def _result_blocks(result: Mapping[str, Any]) -> list[Block]:
    lines: list[str] = []
    if result.get("detail"):
        lines.append(escape(str(result["detail"])))
    diff = result.get("dry_run_diff") or []
    if diff:
        lines.append("*Dry-run diff*\n```" + escape("\n".join(diff[:20])) + "```")
    if result.get("duration_s") is not None:
        lines.append(f"Duration {float(result['duration_s']):.1f}s")
    if result.get("error"):
        lines.append(f":warning: {escape(str(result['error']))}")
    if not lines:
        return []
    return [SectionBlock(text=MarkdownTextObject(text=clip("\n".join(lines))))]


def result_reply(record: Any, result: Mapping[str, Any]) -> Payload:
    """The thread reply reporting an execution: what changed, verification, duration."""
    state = str(record.state)
    head = f"{STATE_LINE.get(state, state)}: `{escape(record.kubectl)}`"
    lines = [head]
    # What happened in one line: the verification's verdict, or why nothing ran (a restart
    # during execution, a hash or policy refusal) — steps alone cannot say the latter.
    if result.get("detail"):
        lines.append(escape(str(result["detail"]))[:500])
    if result.get("error"):
        lines.append(f":warning: {escape(str(result['error']))[:500]}")
    steps = result.get("steps") or []
    for step in steps[:10]:
        name, ok, text = (list(step) + ["", False, ""])[:3]
        mark = ":white_check_mark:" if ok else ":x:"
        lines.append(f"{mark} {escape(str(name))}: {escape(str(text))[:300]}")
    changed = result.get("changed") or result.get("dry_run_diff") or []
    if changed:
        lines.append("*Changed*\n```" + escape("\n".join(changed[:20])) + "```")
    if result.get("duration_s") is not None:
        lines.append(f"Took {float(result['duration_s']):.1f}s · hash `{record.short_hash}`")
    text = clip("\n".join(lines))
    return {
        "text": f"{state}: {record.kubectl}"[:3000],
        "blocks": [SectionBlock(text=MarkdownTextObject(text=text)).to_dict()],
    }


def reject_modal(action_id: str, kubectl: str) -> dict[str, Any]:
    """The modal asking for a rejection reason; ``private_metadata`` holds the action id."""
    view = View(
        type="modal",
        callback_id=REJECT_MODAL,
        private_metadata=action_id,
        title=PlainTextObject(text="Reject remediation"),
        submit=PlainTextObject(text="Reject"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=clip(f"```{escape(kubectl)}```", 2900))),
            InputBlock(
                block_id=REASON_BLOCK,
                label=PlainTextObject(text="Why reject it?"),
                element=PlainTextInputElement(
                    action_id=REASON_INPUT, multiline=True, max_length=500, min_length=3
                ),
            ),
        ],
    )
    return view.to_dict()


def notice_modal(text: str) -> dict[str, Any]:
    """A modal that only says something (e.g. why the clicker may not reject)."""
    view = View(
        type="modal",
        title=PlainTextObject(text="Reject remediation"),
        close=PlainTextObject(text="Close"),
        blocks=[SectionBlock(text=MarkdownTextObject(text=clip(escape(text), 2900)))],
    )
    return view.to_dict()


def modal_reason(view: Mapping[str, Any]) -> str:
    """The reason typed into :func:`reject_modal` (``view_submission`` payload's view)."""
    values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    return str((values.get(REASON_INPUT) or {}).get("value") or "").strip()
