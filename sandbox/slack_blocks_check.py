"""Server-side Block Kit checks for the Slack sandbox.

Slack rejects bad Block Kit on the server: messages answer ``invalid_blocks`` and views answer
``invalid_arguments``, each problem rendered as ``<message> [json-pointer:<path>]``. This module
reproduces the limits that bite real bots (item counts, text lengths, required fields, unique
``block_id`` / ``action_id``) from one table of limits.

It deliberately does not reuse ``slack_sdk.models.blocks``: the bot builds its blocks with those
models, so checking them with the same code would only confirm the client agrees with itself,
and the models neither report JSON pointers nor check uniqueness across a whole message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

MAX_MESSAGE_BLOCKS: Final = 50
MAX_VIEW_BLOCKS: Final = 100

BLOCK_TYPES: Final = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
ELEMENT_TYPES: Final = frozenset(
    {
        "button",
        "channels_select",
        "checkboxes",
        "conversations_select",
        "datepicker",
        "datetimepicker",
        "email_text_input",
        "external_select",
        "file_input",
        "image",
        "multi_channels_select",
        "multi_conversations_select",
        "multi_external_select",
        "multi_static_select",
        "multi_users_select",
        "number_input",
        "overflow",
        "plain_text_input",
        "radio_buttons",
        "rich_text_input",
        "static_select",
        "timepicker",
        "url_text_input",
        "users_select",
        "workflow_button",
    }
)
TEXT_TYPES: Final = frozenset({"plain_text", "mrkdwn"})

# Character limits Slack documents for Block Kit fields, keyed by (owner type, field).
TEXT_LIMITS: Final[Mapping[tuple[str, str], int]] = {
    ("section", "text"): 3000,
    ("section", "field"): 2000,
    ("header", "text"): 150,
    ("input", "label"): 2000,
    ("input", "hint"): 2000,
    ("image", "title"): 2000,
    ("button", "text"): 75,
    ("option", "text"): 75,
    ("element", "placeholder"): 150,
    ("view", "title"): 24,
    ("view", "submit"): 24,
    ("view", "close"): 24,
}
STRING_LIMITS: Final[Mapping[tuple[str, str], int]] = {
    ("block", "block_id"): 255,
    ("element", "action_id"): 255,
    ("button", "value"): 2000,
    ("button", "url"): 3000,
    ("option", "value"): 150,
    ("image", "alt_text"): 2000,
    ("image", "image_url"): 3000,
    ("view", "private_metadata"): 3000,
    ("view", "callback_id"): 255,
    ("view", "external_id"): 255,
}
COUNT_LIMITS: Final[Mapping[tuple[str, str], int]] = {
    ("section", "fields"): 10,
    ("actions", "elements"): 25,
    ("context", "elements"): 10,
    ("element", "options"): 100,
    ("overflow", "options"): 5,
}


@dataclass(frozen=True)
class BlockIssue:
    """One Block Kit problem, located by a JSON pointer into the request."""

    pointer: str
    message: str

    def render(self) -> str:
        """Return the problem as Slack words it in ``errors``."""
        return f"{self.message} [json-pointer:{self.pointer}]"


@dataclass
class _Checker:
    issues: list[BlockIssue] = field(default_factory=list)
    block_ids: set[str] = field(default_factory=set)
    action_ids: set[str] = field(default_factory=set)

    def add(self, pointer: str, message: str) -> None:
        self.issues.append(BlockIssue(pointer, message))

    def string(self, obj: Mapping[str, Any], key: str, ptr: str, limit: int) -> None:
        value = obj.get(key)
        if value is None:
            return
        if not isinstance(value, str):
            self.add(f"{ptr}/{key}", "must be a string")
        elif len(value) > limit:
            self.add(f"{ptr}/{key}", f"must be less than {limit + 1} characters")

    def text(
        self, obj: Any, ptr: str, limit: int, *, plain_only: bool = False, required: bool = True
    ) -> None:
        """Check a text composition object."""
        if obj is None:
            if required:
                self.add(ptr, "must provide an object")
            return
        if not isinstance(obj, Mapping):
            self.add(ptr, "must provide an object")
            return
        allowed = {"plain_text"} if plain_only else TEXT_TYPES
        if obj.get("type") not in allowed:
            self.add(f"{ptr}/type", f"must be one of: {', '.join(sorted(allowed))}")
        text = obj.get("text")
        if not isinstance(text, str):
            self.add(ptr, "missing required field: text")
        elif not text:
            self.add(f"{ptr}/text", "must be more than 0 characters")
        elif len(text) > limit:
            self.add(f"{ptr}/text", f"must be less than {limit + 1} characters")

    def items(self, obj: Mapping[str, Any], key: str, ptr: str, limit: int) -> list[Any]:
        """Return ``obj[key]`` as a list, reporting a wrong type or too many items."""
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(f"{ptr}/{key}", "must be an array")
            return []
        if len(value) > limit:
            self.add(f"{ptr}/{key}", f"must be less than {limit + 1} items")
        return value

    def unique(self, seen: set[str], value: Any, ptr: str, what: str) -> None:
        if isinstance(value, str):
            if value in seen:
                self.add(ptr, f"duplicate {what}: {value}")
            seen.add(value)

    def element(self, el: Any, ptr: str) -> None:
        """Check an interactive element (button, select, input, ...)."""
        if not isinstance(el, Mapping):
            self.add(ptr, "must provide an object")
            return
        etype = el.get("type")
        if etype not in ELEMENT_TYPES:
            self.add(ptr, "failed to match all allowed schemas")
            return
        self.string(el, "action_id", ptr, STRING_LIMITS[("element", "action_id")])
        self.unique(self.action_ids, el.get("action_id"), f"{ptr}/action_id", "action_id")
        if etype == "image":
            self.string(el, "alt_text", ptr, STRING_LIMITS[("image", "alt_text")])
            return
        if etype == "button":
            self.text(
                el.get("text"), f"{ptr}/text", TEXT_LIMITS[("button", "text")], plain_only=True
            )
            self.string(el, "value", ptr, STRING_LIMITS[("button", "value")])
            self.string(el, "url", ptr, STRING_LIMITS[("button", "url")])
            if el.get("style") not in (None, "primary", "danger"):
                self.add(f"{ptr}/style", "must be one of: danger, primary")
            return
        if "placeholder" in el:
            limit = TEXT_LIMITS[("element", "placeholder")]
            self.text(el["placeholder"], f"{ptr}/placeholder", limit, plain_only=True)
        count_limit = COUNT_LIMITS.get((etype, "options"), COUNT_LIMITS[("element", "options")])
        for i, option in enumerate(self.items(el, "options", ptr, count_limit)):
            self.option(option, f"{ptr}/options/{i}")

    def option(self, option: Any, ptr: str) -> None:
        if not isinstance(option, Mapping):
            self.add(ptr, "must provide an object")
            return
        self.text(option.get("text"), f"{ptr}/text", TEXT_LIMITS[("option", "text")])
        self.string(option, "value", ptr, STRING_LIMITS[("option", "value")])

    def block(self, block: Any, ptr: str) -> None:
        if not isinstance(block, Mapping):
            self.add(ptr, "must provide an object")
            return
        btype = block.get("type")
        if not isinstance(btype, str):
            self.add(ptr, "missing required field: type")
            return
        if btype not in BLOCK_TYPES:
            self.add(ptr, "failed to match all allowed schemas")
            return
        self.string(block, "block_id", ptr, STRING_LIMITS[("block", "block_id")])
        self.unique(self.block_ids, block.get("block_id"), f"{ptr}/block_id", "block_id")
        check = _BLOCK_CHECKS.get(btype)
        if check is not None:
            check(self, block, ptr)


def _section(c: _Checker, block: Mapping[str, Any], ptr: str) -> None:
    if block.get("text") is None and block.get("fields") is None:
        c.add(ptr, "must provide either text or fields")
    c.text(block.get("text"), f"{ptr}/text", TEXT_LIMITS[("section", "text")], required=False)
    for i, item in enumerate(c.items(block, "fields", ptr, COUNT_LIMITS[("section", "fields")])):
        c.text(item, f"{ptr}/fields/{i}", TEXT_LIMITS[("section", "field")])
    if block.get("accessory") is not None:
        c.element(block["accessory"], f"{ptr}/accessory")


def _header(c: _Checker, block: Mapping[str, Any], ptr: str) -> None:
    c.text(block.get("text"), f"{ptr}/text", TEXT_LIMITS[("header", "text")], plain_only=True)


def _actions(c: _Checker, block: Mapping[str, Any], ptr: str) -> None:
    elements = c.items(block, "elements", ptr, COUNT_LIMITS[("actions", "elements")])
    if not elements:
        c.add(f"{ptr}/elements", "must provide at least 1 item")
    for i, el in enumerate(elements):
        c.element(el, f"{ptr}/elements/{i}")


def _context(c: _Checker, block: Mapping[str, Any], ptr: str) -> None:
    elements = c.items(block, "elements", ptr, COUNT_LIMITS[("context", "elements")])
    if not elements:
        c.add(f"{ptr}/elements", "must provide at least 1 item")
    for i, el in enumerate(elements):
        el_ptr = f"{ptr}/elements/{i}"
        if isinstance(el, Mapping) and el.get("type") in TEXT_TYPES:
            c.text(el, el_ptr, TEXT_LIMITS[("section", "text")])
        elif isinstance(el, Mapping) and el.get("type") == "image":
            c.element(el, el_ptr)
        else:
            c.add(el_ptr, "failed to match all allowed schemas")


def _image(c: _Checker, block: Mapping[str, Any], ptr: str) -> None:
    if block.get("image_url") is None and block.get("slack_file") is None:
        c.add(ptr, "must provide either image_url or slack_file")
    if not block.get("alt_text"):
        c.add(ptr, "missing required field: alt_text")
    c.string(block, "alt_text", ptr, STRING_LIMITS[("image", "alt_text")])
    c.string(block, "image_url", ptr, STRING_LIMITS[("image", "image_url")])
    if block.get("title") is not None:
        c.text(block["title"], f"{ptr}/title", TEXT_LIMITS[("image", "title")], plain_only=True)


def _input(c: _Checker, block: Mapping[str, Any], ptr: str) -> None:
    c.text(block.get("label"), f"{ptr}/label", TEXT_LIMITS[("input", "label")], plain_only=True)
    limit = TEXT_LIMITS[("input", "hint")]
    c.text(block.get("hint"), f"{ptr}/hint", limit, plain_only=True, required=False)
    if block.get("element") is None:
        c.add(ptr, "missing required field: element")
    else:
        c.element(block["element"], f"{ptr}/element")


def _rich_text(c: _Checker, block: Mapping[str, Any], ptr: str) -> None:
    if not isinstance(block.get("elements"), list):
        c.add(ptr, "missing required field: elements")


_BLOCK_CHECKS: Final = {
    "section": _section,
    "header": _header,
    "actions": _actions,
    "context": _context,
    "image": _image,
    "input": _input,
    "rich_text": _rich_text,
}


def _check_block_list(c: _Checker, blocks: Any, ptr: str, limit: int) -> None:
    if not isinstance(blocks, list):
        c.add(ptr, "must be an array")
        return
    if len(blocks) > limit:
        c.add(ptr, f"must be less than {limit + 1} items")
    for i, block in enumerate(blocks):
        c.block(block, f"{ptr}/{i}")


def check_message_blocks(blocks: Any) -> list[BlockIssue]:
    """Check the ``blocks`` argument of a message method (chat.postMessage, chat.update, ...).

    Args:
        blocks: The decoded ``blocks`` argument.

    Returns:
        The problems found, in document order; empty when Slack would accept the blocks.
    """
    checker = _Checker()
    _check_block_list(checker, blocks, "/blocks", MAX_MESSAGE_BLOCKS)
    return checker.issues


def check_view(view: Any, *, allowed_types: frozenset[str]) -> list[BlockIssue]:
    """Check the ``view`` argument of a views.* method.

    Args:
        view: The decoded ``view`` argument.
        allowed_types: View types the method accepts (``modal`` for views.open/push,
            ``home`` for views.publish, both for views.update).

    Returns:
        The problems found, in document order; empty when Slack would accept the view.
    """
    checker = _Checker()
    ptr = "/view"
    if not isinstance(view, Mapping):
        checker.add(ptr, "must provide an object")
        return checker.issues
    vtype = view.get("type")
    if vtype is None:
        checker.add(ptr, "missing required field: type")
    elif vtype not in allowed_types:
        checker.add(f"{ptr}/type", f"must be one of: {', '.join(sorted(allowed_types))}")
    if "blocks" not in view:
        checker.add(ptr, "missing required field: blocks")
    else:
        _check_block_list(checker, view["blocks"], f"{ptr}/blocks", MAX_VIEW_BLOCKS)
    if vtype == "modal":
        checker.text(
            view.get("title"), f"{ptr}/title", TEXT_LIMITS[("view", "title")], plain_only=True
        )
        for key in ("submit", "close"):
            limit = TEXT_LIMITS[("view", key)]
            checker.text(view.get(key), f"{ptr}/{key}", limit, plain_only=True, required=False)
        blocks = view.get("blocks")
        has_input = isinstance(blocks, list) and any(
            isinstance(b, Mapping) and b.get("type") == "input" for b in blocks
        )
        if has_input and view.get("submit") is None:
            checker.add(ptr, "must provide submit when using input blocks")
    for key in ("private_metadata", "callback_id", "external_id"):
        checker.string(view, key, ptr, STRING_LIMITS[("view", key)])
    return checker.issues
