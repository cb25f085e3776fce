"""Slack interaction payloads, as Slack sends them to an app's request URL.

Pure builders for the three kinds the sandbox web page (``sandbox.slack_web``) produces:
``block_actions`` (a button click in a message), ``view_submission`` (a modal's Submit, with
the typed values as ``view.state.values``) and ``view_closed``. They are built from what the
emulator *stored* — the message, its block and button, the view and its input blocks — so a
payload carries exactly what Slack would put in it, whatever the browser claimed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.slack_web_render import block_id_of

JSONDict = dict[str, Any]


class NoSuchElement(LookupError):
    """The stored message has no such block, or no such button in it."""


@dataclass(frozen=True)
class App:
    """Who the payloads are addressed from and to.

    Args:
        team_id: The workspace ID.
        team_domain: The workspace's domain (``team.domain``).
        app_id: ``api_app_id``.
        verification_token: The deprecated ``token`` field Slack still sends.
    """

    team_id: str
    team_domain: str
    app_id: str
    verification_token: str

    def envelope(self, kind: str, user: JSONDict) -> JSONDict:
        """The fields every interaction payload starts with."""
        return {
            "type": kind,
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": user,
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "enterprise": None,
            "is_enterprise_install": False,
        }


def user_object(user_id: str, name: str, team_id: str) -> JSONDict:
    """The ``user`` object of an interaction payload."""
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def find_button(message: Mapping[str, Any], block_index: int, action_id: str) -> JSONDict:
    """The button ``action_id`` in the message's block ``block_index`` (elements or accessory).

    Raises:
        NoSuchElement: There is no such block or button.
    """
    blocks = message.get("blocks") or []
    if not 0 <= block_index < len(blocks):
        raise NoSuchElement(f"no block {block_index} in message {message.get('ts')}")
    block = blocks[block_index]
    candidates = [*(block.get("elements") or []), block.get("accessory") or {}]
    for element in candidates:
        if element.get("type") == "button" and element.get("action_id") == action_id:
            return dict(element)
    raise NoSuchElement(f"no button {action_id!r} in block {block_index}")


def block_actions(
    app: App,
    *,
    user: JSONDict,
    channel: JSONDict,
    message: Mapping[str, Any],
    block_index: int,
    action_id: str,
    trigger_id: str,
    response_url: str,
    action_ts: str,
    ephemeral: bool = False,
) -> JSONDict:
    """The ``block_actions`` payload of a click on a message's button.

    Args:
        app: Workspace and app identity.
        user: The clicking member (:func:`user_object`).
        channel: ``{"id": …, "name": …}`` of the message's conversation.
        message: The message as stored (its ``metadata`` is left out, as Slack does).
        block_index: Position of the block holding the button.
        action_id: The button's ``action_id``.
        trigger_id: A fresh trigger for ``views.open``.
        response_url: Where the app may answer the click.
        action_ts: The click's time, ``"<seconds>.<micros>"``.
        ephemeral: The message is an ephemeral one (the payload then has no ``message``).

    Raises:
        NoSuchElement: The message has no such button.
    """
    element = find_button(message, block_index, action_id)
    action: JSONDict = {
        "type": "button",
        "action_id": action_id,
        "block_id": block_id_of(message["blocks"][block_index], block_index),
        "text": element.get("text"),
        "action_ts": action_ts,
    }
    action.update({k: element[k] for k in ("value", "style", "url") if k in element})
    container: JSONDict = {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": channel["id"],
        "is_ephemeral": ephemeral,
    }
    if message.get("thread_ts"):
        container["thread_ts"] = message["thread_ts"]
    payload = app.envelope("block_actions", user)
    payload.update(
        container=container,
        trigger_id=trigger_id,
        channel=dict(channel),
        state={"values": {}},
        response_url=response_url,
        actions=[action],
    )
    if not ephemeral:
        payload["message"] = {k: v for k, v in message.items() if k != "metadata"}
    return payload


def view_state(view: Mapping[str, Any], values: Mapping[str, Any]) -> JSONDict:
    """``view.state`` for the page's raw ``values`` (block_id → action_id → text or option).

    Built from the view's own input blocks: an input the view does not have is ignored, and
    a ``static_select`` gets the stored option whose value was chosen.
    """
    state: dict[str, dict[str, JSONDict]] = {}
    for index, block in enumerate(view.get("blocks") or []):
        element = block.get("element") or {}
        if block.get("type") != "input" or not element.get("action_id"):
            continue
        block_id, action_id = block_id_of(block, index), element["action_id"]
        given = values.get(block_id)
        raw = given.get(action_id) if isinstance(given, Mapping) else None
        kind = element.get("type")
        if kind == "static_select":
            options = {o.get("value"): o for o in element.get("options") or []}
            entry: JSONDict = {"type": kind, "selected_option": options.get(raw)}
        else:
            entry = {"type": kind, "value": str(raw) if raw not in (None, "") else None}
        state.setdefault(block_id, {})[action_id] = entry
    return {"values": state}


def view_submission(
    app: App,
    *,
    user: JSONDict,
    view: Mapping[str, Any],
    values: Mapping[str, Any],
    trigger_id: str,
) -> JSONDict:
    """The ``view_submission`` payload of ``view`` submitted with ``values``."""
    payload = app.envelope("view_submission", user)
    payload.update(
        trigger_id=trigger_id,
        view={**view, "state": view_state(view, values)},
        response_urls=[],
    )
    return payload


def view_closed(app: App, *, user: JSONDict, view: Mapping[str, Any]) -> JSONDict:
    """The ``view_closed`` payload (Slack sends it for views with ``notify_on_close``)."""
    payload = app.envelope("view_closed", user)
    payload.update(view=dict(view), is_cleared=False)
    return payload
