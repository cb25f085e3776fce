"""Block Kit → HTML for the sandbox web page: formatting, escaping, blocks, files, modals."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.slack_web_render import (
    RenderContext,
    block_html,
    blocks_html,
    message_html,
    mrkdwn_to_html,
    view_html,
)

CTX = RenderContext(users={"U0ALICE": "alice"}, channels={"C1": "incidents"})


def md(text: str) -> str:
    return mrkdwn_to_html(text, CTX)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*bold* and _italic_ ~gone~", "<b>bold</b> and <i>italic</i> <s>gone</s>"),
        ("oom_killed and rollout_undo", "oom_killed and rollout_undo"),
        ("2*3*4", "2*3*4"),
        ("`a *b* <c>`", "<code>a *b* &lt;c&gt;</code>"),
        ("```line 1\n*not bold*```\nafter", "<pre>line 1\n*not bold*</pre>after"),
        ("a\nb", "a<br>b"),
        ("&gt; quoted\n&gt; more\nplain", "<blockquote>quoted<br>more</blockquote><br>plain"),
        (":white_check_mark: done :unknown_one:", "✅ done :unknown_one:"),
        ("x &lt; y &amp;&amp; z", "x &lt; y &amp;&amp; z"),
        ("*<https://x.example/a?b=1&amp;c=2|Runbook>*", "<b><a href="),
    ],
)
def test_mrkdwn_formatting(text: str, expected: str) -> None:
    assert expected in md(text)


def test_links_mentions_and_specials() -> None:
    out = md(
        "<@U0ALICE> <@U0ZED> <#C1> <#C9|ops> <!here> <!date^1^{date}|Nov 20> <https://r.example>"
    )
    assert '<span class="mention">@alice</span>' in out
    assert "@U0ZED" in out
    assert "#incidents" in out and "#ops" in out
    assert "@here" in out and "Nov 20" in out
    assert '<a href="https://r.example" target="_blank"' in out


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "<javascript:alert(1)|click me>",
        '<https://x.example/"onmouseover="alert(1)|x>',
        "&lt;img src=x onerror=alert(1)&gt;",
        "```</pre><script>x</script>```",
        "`<b onclick=1>`",
    ],
)
def test_content_from_alerts_and_logs_cannot_inject_markup(hostile: str) -> None:
    out = md(hostile)
    assert "<script" not in out and "<img" not in out and "<b onclick" not in out
    assert 'href="javascript' not in out
    assert '"onmouseover' not in out


def test_private_use_markers_in_input_cannot_reference_rendered_spans() -> None:
    assert md("\ue0000\ue001 `code`") == "0 <code>code</code>"


def test_section_fields_accessory_and_header() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Cart :fire:"}},
        {
            "type": "section",
            "block_id": "summary",
            "text": {"type": "mrkdwn", "text": "*Root cause*"},
            "fields": [{"type": "mrkdwn", "text": "*Severity*\nwarning"}],
            "accessory": {
                "type": "button",
                "action_id": "more",
                "text": {"type": "plain_text", "text": "More"},
            },
        },
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "_why_"}]},
        {"type": "video"},
    ]
    out = blocks_html(blocks, CTX)
    assert "Cart 🔥" in out
    assert 'data-block-id="summary"' in out and 'data-block-id="b00"' in out
    assert '<div class="field"><b>Severity</b><br>warning</div>' in out
    assert 'data-action-id="more"' in out
    assert "<hr " in out and "<i>why</i>" in out
    assert "[video block]" in out


def test_buttons_styles_confirm_and_url() -> None:
    block = {
        "type": "actions",
        "block_id": "act:1",
        "elements": [
            {
                "type": "button",
                "action_id": "remediation_approve",
                "value": "act_1",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "confirm": {
                    "title": {"type": "plain_text", "text": "Run this change?"},
                    "text": {"type": "plain_text", "text": "kubectl <x>"},
                    "confirm": {"type": "plain_text", "text": "Approve"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                },
            },
            {
                "type": "button",
                "action_id": "no",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Reject"},
            },
            {
                "type": "button",
                "action_id": "rb",
                "url": "javascript:alert(1)",
                "text": {"type": "plain_text", "text": "Bad"},
            },
            {
                "type": "static_select",
                "action_id": "pick",
                "placeholder": {"type": "plain_text", "text": "Pick"},
            },
        ],
    }
    out = block_html(block, 4, CTX)
    assert 'data-block-index="4"' in out and 'data-block-id="act:1"' in out
    assert 'class="btn primary" data-action-id="remediation_approve"' in out
    assert '<div class="confirm" hidden>' in out and "kubectl &lt;x&gt;" in out
    assert 'class="btn danger"' in out
    assert "javascript" not in out
    assert "Pick ▾" in out


def test_images_from_the_file_store_and_the_web() -> None:
    blocks = [
        {
            "type": "image",
            "slack_file": {"id": "F0SBX000001"},
            "alt_text": "chart",
            "title": {"type": "plain_text", "text": "Memory"},
        },
        {"type": "image", "image_url": "https://img.example/x.png", "alt_text": "x"},
        {
            "type": "image",
            "image_url": "http://127.0.0.1:5/files-pri/T0SANDBOX-F0SBX000002/c.png",
            "alt_text": "y",
        },
        {"type": "image", "image_url": "data:image/png;base64,AAAA", "alt_text": "z"},
    ]
    out = blocks_html(blocks, CTX)
    assert 'src="/files/F0SBX000001"' in out and "<figcaption>Memory</figcaption>" in out
    assert 'src="https://img.example/x.png"' in out
    assert 'src="/files/F0SBX000002"' in out
    assert "data:" not in out and "[image: z]" in out


def test_message_author_files_reactions_replies_and_ephemeral() -> None:
    message = {
        "ts": "1795400000.000100",
        "user": "U0BOT",
        "bot_id": "B0BOT",
        "text": "fallback *text*",
        "files": [
            {"id": "F1", "title": "memory.png", "mimetype": "image/png"},
            {"id": "F2", "name": "log.txt", "mimetype": "text/plain"},
        ],
        "reactions": [{"name": "eyes", "count": 2}],
        "reply_count": 3,
        "edited": {"ts": "1"},
    }
    out = message_html(message, RenderContext(users={"U0BOT": "incident-bot"}), replies_link=True)
    assert "incident-bot" in out and "APP" in out and "(edited)" in out
    assert "fallback <b>text</b>" in out
    assert '<img src="/files/F1" alt="memory.png">' in out and "📎 log.txt" in out
    assert "👀 2" in out
    assert 'data-thread="1795400000.000100">3 replies' in out
    private = message_html({"ts": "1.2", "user": "U0ALICE", "text": "no"}, CTX, ephemeral=True)
    assert "Only visible to you" in private and 'data-ephemeral="1"' in private


def test_modal_inputs_and_errors() -> None:
    view = {
        "id": "V1",
        "type": "modal",
        "title": {"type": "plain_text", "text": "Reject remediation"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Why?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "reason_input",
                    "multiline": True,
                    "max_length": 500,
                },
            },
            {
                "type": "input",
                "block_id": "when",
                "optional": True,
                "label": {"type": "plain_text", "text": "When"},
                "element": {
                    "type": "static_select",
                    "action_id": "pick",
                    "options": [{"text": {"type": "plain_text", "text": "Now"}, "value": "now"}],
                },
            },
        ],
    }
    out = view_html(view, CTX, {"reason": "Say <why>"})
    assert 'data-view-id="V1"' in out and "<h2>Reject remediation</h2>" in out
    assert (
        '<textarea data-input="plain_text_input" data-action-id="reason_input" maxlength="500">'
        in out
    )
    assert '<div class="error">Say &lt;why&gt;</div>' in out
    assert '<option value="now">Now</option>' in out and "(optional)" in out
    assert "btn primary submit" in out and ">Cancel<" in out
