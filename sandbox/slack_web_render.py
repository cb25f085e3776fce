"""Block Kit → HTML for the sandbox's Slack web page (``sandbox.slack_web``).

Renders what a Slack client shows for the message and view JSON the Slack emulator stored:
``mrkdwn`` (bold, italic, strike, code, preformatted blocks, quotes, links, mentions, emoji
shortcodes) and the blocks a bot sends (header, section with fields and accessory, context,
divider, actions, image, input, rich_text), plus uploaded files and reactions.

The content comes from alerts, logs and cluster objects, so everything is escaped: the only
markup in the output is what this module writes, links keep ``http(s)``/``mailto`` targets
only, and a block this module does not know is shown as its type name, never as raw JSON.
Interactive elements carry ``data-*`` attributes (block index, ``action_id``) that the page's
script sends back; the server then reads the element from the stored message, not from them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

JSON = Mapping[str, Any]

# Shortcodes the bot uses (and a few common ones); others stay as ``:name:`` text.
EMOJI: Final[Mapping[str, str]] = {
    "+1": "👍",
    "-1": "👎",
    "alarm_clock": "⏰",
    "arrow_forward": "▶️",
    "bell": "🔔",
    "chart_with_upwards_trend": "📈",
    "eyes": "👀",
    "fire": "🔥",
    "gear": "⚙️",
    "grey_question": "❔",
    "heavy_minus_sign": "➖",
    "heavy_multiplication_x": "✖️",
    "heavy_plus_sign": "➕",
    "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳",
    "large_blue_circle": "🔵",
    "large_green_circle": "🟢",
    "large_orange_circle": "🟠",
    "large_yellow_circle": "🟡",
    "lock": "🔒",
    "mag": "🔍",
    "no_bell": "🔕",
    "no_entry": "⛔",
    "no_entry_sign": "🚫",
    "pencil2": "✏️",
    "red_circle": "🔴",
    "repeat": "🔁",
    "rewind": "⏪",
    "robot_face": "🤖",
    "rotating_light": "🚨",
    "tada": "🎉",
    "warning": "⚠️",
    "white_check_mark": "✅",
    "white_circle": "⚪",
    "x": "❌",
}

_SAFE_SCHEMES: Final = ("http://", "https://", "mailto:")
# Private-use characters mark spans already rendered while the rest is formatted.
_OPEN, _CLOSE = "\ue000", "\ue001"
# A preformatted block swallows the line break after its closing fence, as Slack shows it.
_TOKEN = re.compile(r"```(?P<pre>.*?)```\n?|`(?P<code>[^`\n]+)`|<(?P<angle>[^<>\n]+)>", re.S)
_STASHED = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_BOLD = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])")
_SHORTCODE = re.compile(r":([a-z0-9_+-]+):")
_EMULATOR_FILE = re.compile(r"/files-pri/[A-Z0-9]+-(F[A-Z0-9]+)/")


@dataclass(frozen=True)
class RenderContext:
    """What rendering needs to know about the workspace.

    Args:
        users: User ID → display name, for ``<@U…>`` mentions and message authors.
        channels: Channel ID → name, for ``<#C…>`` references.
        file_url: File ID → the URL the page serves its bytes at.
    """

    users: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)
    file_url: Callable[[str], str] = lambda file_id: f"/files/{file_id}"


def esc(text: Any) -> str:
    """HTML-escape any value's text (quotes too: it may land in an attribute)."""
    return html.escape(str(text), quote=True)


def _unentity(text: str) -> str:
    """Undo the three entities Slack text uses (``&amp;``, ``&lt;``, ``&gt;``)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def emojify(escaped: str) -> str:
    """Replace known ``:shortcode:`` emoji in already escaped text."""
    return _SHORTCODE.sub(lambda m: EMOJI.get(m[1], m[0]), escaped)


def safe_url(url: str) -> str | None:
    """The URL if it is http(s)/mailto or a page-relative path, else None."""
    url = url.strip()
    if url.lower().startswith(_SAFE_SCHEMES) or (url.startswith("/") and not url.startswith("//")):
        return url
    return None


def mrkdwn_to_html(text: str, ctx: RenderContext) -> str:
    """Slack ``mrkdwn`` → HTML, escaping everything that is not formatting."""
    stashed: list[str] = []

    def stash(fragment: str) -> str:
        stashed.append(fragment)
        return f"{_OPEN}{len(stashed) - 1}{_CLOSE}"

    def token(match: re.Match[str]) -> str:
        if match["pre"] is not None:
            return stash(f"<pre>{esc(_unentity(match['pre'].strip(chr(10))))}</pre>")
        if match["code"] is not None:
            return stash(f"<code>{esc(_unentity(match['code']))}</code>")
        return stash(_angle(match["angle"], ctx))

    text = _TOKEN.sub(token, text.replace(_OPEN, "").replace(_CLOSE, ""))
    out = esc(_unentity(text))
    out = _BOLD.sub(r"<b>\1</b>", out)
    out = _ITALIC.sub(r"<i>\1</i>", out)
    out = _STRIKE.sub(r"<s>\1</s>", out)
    out = emojify(out)
    out = _quotes(out).replace("\n", "<br>")
    return _STASHED.sub(lambda m: stashed[int(m[1])], out)


def _quotes(escaped: str) -> str:
    lines = []
    for line in escaped.split("\n"):
        if line.startswith("&gt; ") or line == "&gt;":
            line = f"<blockquote>{line[5:]}</blockquote>"
        lines.append(line)
    return "\n".join(lines).replace("</blockquote>\n<blockquote>", "<br>")


def _angle(inner: str, ctx: RenderContext) -> str:
    """``<…>`` tokens: user/channel/special mentions, dates and links."""
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        name = label or ctx.users.get(target[1:], target[1:])
        return f'<span class="mention">@{esc(_unentity(name))}</span>'
    if target.startswith("#"):
        name = label or ctx.channels.get(target[1:], target[1:])
        return f'<span class="mention">#{esc(_unentity(name))}</span>'
    if target.startswith("!"):
        special = target[1:].split("^", 1)[0]
        if special in ("here", "channel", "everyone"):
            return f'<span class="mention">@{special}</span>'
        return f'<span class="mention">{esc(_unentity(label or special))}</span>'
    url = safe_url(_unentity(target))
    shown = esc(_unentity(label or target))
    if url is None:
        return shown if label else esc(f"<{_unentity(inner)}>")
    return f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">{shown}</a>'


def text_html(obj: Any, ctx: RenderContext) -> str:
    """A composition text object (``plain_text`` or ``mrkdwn``), or a bare string."""
    if isinstance(obj, str):
        return emojify(esc(obj))
    if not isinstance(obj, Mapping):
        return ""
    text = str(obj.get("text", ""))
    if obj.get("type") == "mrkdwn":
        return mrkdwn_to_html(text, ctx)
    escaped = esc(text).replace("\n", "<br>")
    return emojify(escaped) if obj.get("emoji", True) else escaped


def block_id_of(block: JSON, index: int) -> str:
    """The block's ``block_id``, or the one Slack would have assigned (stable per index)."""
    return str(block.get("block_id") or f"b{index:02d}")


def blocks_html(
    blocks: Sequence[Any], ctx: RenderContext, errors: Mapping[str, str] | None = None
) -> str:
    """Every block of a message or view, in order; ``errors`` by input ``block_id``."""
    return "".join(
        block_html(block, index, ctx, errors)
        for index, block in enumerate(blocks)
        if isinstance(block, Mapping)
    )


def block_html(
    block: JSON, index: int, ctx: RenderContext, errors: Mapping[str, str] | None = None
) -> str:
    """One block, its interactive elements tagged with ``data-block-index``."""
    kind = str(block.get("type", ""))
    attrs = f'class="block {esc(kind)}" data-block-index="{index}"'
    attrs += f' data-block-id="{esc(block_id_of(block, index))}"'
    if kind == "section":
        parts = []
        if block.get("text"):
            parts.append(f'<div class="text">{text_html(block["text"], ctx)}</div>')
        fields = [
            f'<div class="field">{text_html(f, ctx)}</div>' for f in block.get("fields") or []
        ]
        if fields:
            parts.append(f'<div class="fields">{"".join(fields)}</div>')
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping):
            parts.append(f'<div class="accessory">{element_html(accessory, ctx)}</div>')
        return f"<div {attrs}>{''.join(parts)}</div>"
    if kind == "header":
        return f"<div {attrs}>{text_html(block.get('text'), ctx)}</div>"
    if kind == "divider":
        return f"<hr {attrs}>"
    if kind in ("context", "actions"):
        elements = "".join(element_html(e, ctx) for e in block.get("elements") or [])
        return f"<div {attrs}>{elements}</div>"
    if kind == "image":
        title = block.get("title")
        caption = f"<figcaption>{text_html(title, ctx)}</figcaption>" if title else ""
        return f"<figure {attrs}>{caption}{_image(block, ctx, 'image')}</figure>"
    if kind == "input":
        error = (errors or {}).get(block_id_of(block, index), "")
        return f'<div {attrs}>{_input(block, ctx)}<div class="error">{esc(error)}</div></div>'
    if kind == "rich_text":
        return f"<div {attrs}>{_rich_text(block.get('elements') or [], ctx)}</div>"
    if kind == "markdown":
        return f"<div {attrs}>{mrkdwn_to_html(str(block.get('text', '')), ctx)}</div>"
    return f'<div {attrs}><span class="unsupported">[{esc(kind or "?")} block]</span></div>'


def element_html(element: Any, ctx: RenderContext) -> str:
    """An element of an actions/context block or a section accessory."""
    if not isinstance(element, Mapping):
        return ""
    kind = element.get("type")
    if kind in ("mrkdwn", "plain_text"):
        return f'<span class="ctx-text">{text_html(element, ctx)}</span>'
    if kind == "image":
        return _image(element, ctx, "ctx-image")
    if kind == "button":
        return _button(element, ctx)
    placeholder = element.get("placeholder") or element.get("initial_option", {}).get("text")
    label = text_html(placeholder, ctx) if placeholder else esc(kind or "element")
    return f'<span class="btn disabled" title="not emulated">{label} ▾</span>'


def _button(element: JSON, ctx: RenderContext) -> str:
    style = element.get("style")
    classes = "btn" + (f" {style}" if style in ("primary", "danger") else "")
    label = text_html(element.get("text"), ctx)
    url = safe_url(str(element.get("url") or ""))
    if element.get("url"):
        href = f' href="{esc(url)}"' if url else ""
        return f'<a class="{classes}"{href} target="_blank" rel="noopener noreferrer">{label}</a>'
    action_id = esc(element.get("action_id", ""))
    button = (
        f'<button type="button" class="{classes}" data-action-id="{action_id}">{label}</button>'
    )
    confirm = element.get("confirm")
    if isinstance(confirm, Mapping):
        button += _confirm(confirm, ctx)
    return button


def _confirm(confirm: JSON, ctx: RenderContext) -> str:
    """The confirmation dialog of a button, hidden until the page shows it."""
    title = text_html(confirm.get("title") or "Are you sure?", ctx)
    ok = text_html(confirm.get("confirm") or "Yes", ctx)
    deny = text_html(confirm.get("deny") or "Cancel", ctx)
    style = "danger" if confirm.get("style") == "danger" else "primary"
    return (
        '<div class="confirm" hidden><div class="dialog">'
        f'<h2>{title}</h2><div class="text">{text_html(confirm.get("text"), ctx)}</div>'
        f'<div class="buttons"><button type="button" class="btn deny">{deny}</button>'
        f'<button type="button" class="btn {style} accept">{ok}</button></div></div></div>'
    )


def _image(obj: JSON, ctx: RenderContext, css: str) -> str:
    src: str | None = None
    slack_file = obj.get("slack_file")
    if isinstance(slack_file, Mapping):
        if slack_file.get("id"):
            src = ctx.file_url(str(slack_file["id"]))
        elif slack_file.get("url"):
            src = _file_src(str(slack_file["url"]), ctx)
    elif obj.get("image_url"):
        src = _file_src(str(obj["image_url"]), ctx)
    alt = esc(obj.get("alt_text", ""))
    if src is None:
        return f'<span class="{css} missing">[image: {alt}]</span>'
    return f'<img class="{css}" src="{esc(src)}" alt="{alt}" title="{alt}">'


def _file_src(url: str, ctx: RenderContext) -> str | None:
    emulated = _EMULATOR_FILE.search(url)
    return ctx.file_url(emulated[1]) if emulated else safe_url(url)


def _input(block: JSON, ctx: RenderContext) -> str:
    element = block.get("element") or {}
    label = f"<label>{text_html(block.get('label'), ctx)}</label>"
    hint = block.get("hint")
    hint_html = f'<div class="hint">{text_html(hint, ctx)}</div>' if hint else ""
    kind = element.get("type")
    action_id = esc(element.get("action_id", ""))
    common = f'data-input="{esc(kind)}" data-action-id="{action_id}"'
    placeholder = element.get("placeholder")
    if placeholder:
        common += f' placeholder="{esc(placeholder.get("text", ""))}"'
    if kind == "plain_text_input":
        initial = esc(element.get("initial_value", ""))
        for attr in ("min_length", "max_length"):
            if isinstance(element.get(attr), int):
                common += f' {attr.replace("_", "")}="{element[attr]}"'
        if element.get("multiline"):
            field_html = f"<textarea {common}>{initial}</textarea>"
        else:
            field_html = f'<input type="text" {common} value="{initial}">'
    elif kind == "static_select":
        chosen = (element.get("initial_option") or {}).get("value")
        options = "".join(
            f'<option value="{esc(o.get("value", ""))}"'
            + (" selected" if o.get("value") == chosen else "")
            + f">{esc((o.get('text') or {}).get('text', ''))}</option>"
            for o in element.get("options") or []
        )
        field_html = f'<select {common}><option value=""></option>{options}</select>'
    else:
        field_html = f'<span class="unsupported">[{esc(kind)} input not emulated]</span>'
    optional = ' <span class="optional">(optional)</span>' if block.get("optional") else ""
    return f"{label}{optional}{field_html}{hint_html}"


def _rich_text(elements: Iterable[Any], ctx: RenderContext) -> str:
    parts = []
    for element in elements:
        if not isinstance(element, Mapping):
            continue
        kind = element.get("type")
        inner = element.get("elements") or []
        if kind == "rich_text_section":
            parts.append(f"<div>{_rich_inline(inner, ctx)}</div>")
        elif kind == "rich_text_preformatted":
            parts.append(f"<pre>{_rich_inline(inner, ctx)}</pre>")
        elif kind == "rich_text_quote":
            parts.append(f"<blockquote>{_rich_inline(inner, ctx)}</blockquote>")
        elif kind == "rich_text_list":
            tag = "ol" if element.get("style") == "ordered" else "ul"
            items = "".join(f"<li>{_rich_text([i], ctx)}</li>" for i in inner)
            parts.append(f"<{tag}>{items}</{tag}>")
    return "".join(parts)


def _rich_inline(elements: Iterable[Any], ctx: RenderContext) -> str:
    out = []
    for element in elements:
        if not isinstance(element, Mapping):
            continue
        kind = element.get("type")
        if kind == "text":
            piece = esc(element.get("text", "")).replace("\n", "<br>")
            style = element.get("style") or {}
            for key, tag in (("code", "code"), ("bold", "b"), ("italic", "i"), ("strike", "s")):
                if style.get(key):
                    piece = f"<{tag}>{piece}</{tag}>"
            out.append(piece)
        elif kind == "link":
            out.append(_angle(f"{element.get('url', '')}|{element.get('text', '')}", ctx))
        elif kind == "user":
            out.append(_angle(f"@{element.get('user_id', '')}", ctx))
        elif kind == "channel":
            out.append(_angle(f"#{element.get('channel_id', '')}", ctx))
        elif kind == "emoji":
            out.append(emojify(esc(f":{element.get('name', '')}:")))
    return "".join(out)


def clock(ts: str) -> str:
    """A message ``ts`` as ``HH:MM:SS`` UTC."""
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%H:%M:%S")
    except (ValueError, OverflowError):
        return ""


def message_html(
    message: JSON,
    ctx: RenderContext,
    *,
    replies_link: bool = False,
    ephemeral: bool = False,
) -> str:
    """A message as the page shows it: author, time, blocks (or text), files, reactions.

    Args:
        message: The message as the emulator stores it.
        ctx: Names and file URLs.
        replies_link: Add the "N replies" link that opens the thread (channel view).
        ephemeral: Mark it "Only visible to you".
    """
    ts = str(message.get("ts", ""))
    author_id = str(message.get("user", ""))
    is_bot = bool(message.get("bot_id"))
    author = message.get("username") or ctx.users.get(author_id, author_id or "incident-bot")
    badge = ' <span class="app">APP</span>' if is_bot or ephemeral else ""
    edited = ' <span class="edited">(edited)</span>' if message.get("edited") else ""
    meta = (
        f'<div class="meta"><b class="author">{esc(author)}</b>{badge}'
        f" <time>{clock(ts)}</time>{edited}</div>"
    )
    if ephemeral:
        meta = '<div class="only-you">👁 Only visible to you</div>' + meta
    blocks = message.get("blocks")
    if isinstance(blocks, list) and blocks:
        body = blocks_html(blocks, ctx)
    else:
        body = f'<div class="block text">{mrkdwn_to_html(str(message.get("text", "")), ctx)}</div>'
    body += "".join(_attachment(a, ctx) for a in message.get("attachments") or [])
    body += "".join(_file(f, ctx) for f in message.get("files") or [])
    reactions = message.get("reactions") or []
    if reactions:
        chips = "".join(
            f'<span class="reaction">{emojify(esc(":" + str(r.get("name")) + ":"))} '
            f"{int(r.get('count', 1))}</span>"
            for r in reactions
        )
        body += f'<div class="reactions">{chips}</div>'
    count = int(message.get("reply_count") or 0)
    if replies_link and count:
        noun = "reply" if count == 1 else "replies"
        body += (
            f'<button type="button" class="replies" data-thread="{esc(ts)}">{count} {noun}</button>'
        )
    initial = esc(str(author)[:1].upper() or "?")
    css = "message ephemeral" if ephemeral else "message"
    return (
        f'<div class="{css}" data-ts="{esc(ts)}" data-ephemeral="{int(ephemeral)}">'
        f'<div class="avatar{" bot" if is_bot else ""}">{initial}</div>'
        f'<div class="body">{meta}{body}</div></div>'
    )


def _attachment(attachment: Any, ctx: RenderContext) -> str:
    if not isinstance(attachment, Mapping):
        return ""
    color = str(attachment.get("color", ""))
    style = f' style="border-color:#{esc(color)}"' if re.fullmatch(r"[0-9a-fA-F]{6}", color) else ""
    parts = []
    for key in ("pretext", "title", "text"):
        if attachment.get(key):
            parts.append(f"<div>{mrkdwn_to_html(str(attachment[key]), ctx)}</div>")
    if isinstance(attachment.get("blocks"), list):
        parts.append(blocks_html(attachment["blocks"], ctx))
    return f'<div class="attachment"{style}>{"".join(parts)}</div>'


def _file(file: Any, ctx: RenderContext) -> str:
    if not isinstance(file, Mapping) or not file.get("id"):
        return ""
    src = esc(ctx.file_url(str(file["id"])))
    title = esc(file.get("title") or file.get("name") or file["id"])
    if str(file.get("mimetype", "")).startswith("image/"):
        return (
            f'<figure class="file"><figcaption>{title}</figcaption>'
            f'<a href="{src}" target="_blank"><img src="{src}" alt="{title}"></a></figure>'
        )
    return f'<div class="file"><a href="{src}" target="_blank">📎 {title}</a></div>'


def view_html(view: JSON, ctx: RenderContext, errors: Mapping[str, str] | None = None) -> str:
    """A modal: title, blocks (inputs editable), errors under their blocks, Close/Submit."""
    body = blocks_html(view.get("blocks") or [], ctx, errors)
    title = text_html(view.get("title"), ctx)
    close = text_html(view.get("close") or {"type": "plain_text", "text": "Cancel"}, ctx)
    submit = view.get("submit")
    submit_html = (
        f'<button type="button" class="btn primary submit">{text_html(submit, ctx)}</button>'
        if submit
        else ""
    )
    return (
        f'<div class="dialog modal-view" data-view-id="{esc(view.get("id", ""))}">'
        f'<h2>{title}</h2><div class="modal-body">{body}</div><div class="buttons">'
        f'<button type="button" class="btn close">{close}</button>{submit_html}</div></div>'
    )
