"""A small Slack client on loopback: the emulator's channels and threads as a web page.

``SlackWebPage`` serves a page (``sandbox/static``) that shows what a ``SlackSandbox`` holds —
channels, threads, ephemeral messages, open modals, uploaded files — rendered from the Block
Kit the bot sent (``sandbox.slack_web_render``), refreshed by polling ``GET /api/state``. It
lets a person act as a workspace member chosen in the page header:

* a button click becomes a ``block_actions`` interaction payload, built from the *stored*
  message (the page only names the message, the block and the ``action_id``);
* a modal's Submit becomes a ``view_submission`` payload with the typed values as
  ``view.state.values``, Cancel a ``view_closed`` one when the view asks for it;

each form-encoded as ``payload=<json>``, signed with the app's signing secret exactly as Slack
signs (``sandbox.slack.sign_request``) and POSTed to the bot's request URL. Trigger IDs are
minted here; a modal the bot opens with one is shown to the member whose click minted it.
A ``response_action: errors`` answer is shown under the modal's inputs. ``response_url``
points back at this server, which replays the answer through the emulator's Web API.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from sandbox import slack_web_payloads as payloads
from sandbox.loopback import LoopbackServer
from sandbox.slack import SlackSandbox, sign_request
from sandbox.slack_web_render import RenderContext, message_html, view_html

JSONDict = dict[str, Any]

_STATIC: Final = {"app.js": "text/javascript", "style.css": "text/css"}
_MAGIC: Final = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


@dataclass(frozen=True)
class Person:
    """A workspace member the page can act as.

    Args:
        id: Slack user ID (the emulator should know it for ``users.info``).
        name: Handle shown in the picker and sent as ``user.username``.
        note: A hint shown next to the name, e.g. "approver".
    """

    id: str
    name: str
    note: str = ""


DEFAULT_PEOPLE: Final = (Person("U0ALICE", "alice"), Person("U0BOB", "bob"))


@dataclass
class Interaction:
    """One payload the page sent to the bot, and the bot's answer."""

    payload: JSONDict
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


class PageError(Exception):
    """A page request the server refuses (unknown user, message, element or view)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SlackWebPage(LoopbackServer):
    """The sandbox's Slack web page and its JSON API.

    Args:
        slack: The emulator whose workspace the page shows.
        events_url: The bot's request URL (``…/slack/events``) interactions are POSTed to.
        signing_secret: The app's signing secret (the one the bot verifies with).
        people: Members the page can act as; the first is selected at start.
        app_id: ``api_app_id`` in payloads.
        verification_token: The deprecated ``token`` field Slack still sends.
        clock: Wall clock for ``action_ts`` and request signatures.
    """

    name = "slack web page"

    def __init__(
        self,
        slack: SlackSandbox,
        *,
        events_url: str,
        signing_secret: str,
        people: Sequence[Person] = DEFAULT_PEOPLE,
        app_id: str = "A0SANDBOX",
        verification_token: str = "sandbox-verification-token",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if not people:
            raise ValueError("the page needs at least one person to act as")
        self.slack = slack
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.people = {p.id: p for p in people}
        self.app = payloads.App(slack.team_id, slack.team_name.lower(), app_id, verification_token)
        self.sent: list[Interaction] = []
        self._clock = clock
        self._triggers: dict[str, str] = {}  # trigger_id → user who clicked
        self._responses: dict[str, JSONDict] = {}  # response_url token → where to answer
        self._closed: set[str] = set()  # view IDs submitted or cancelled
        self._errors: dict[str, dict[str, str]] = {}  # view ID → errors by block_id
        self._local_changes = 0  # bumps the state version for page-only changes

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/state", self._state)
        app.router.add_post("/api/action", self._action)
        app.router.add_post("/api/view", self._view_submission)
        app.router.add_post("/api/view_closed", self._view_closed)
        app.router.add_get("/files/{file_id}", self._file)
        app.router.add_post("/response/{token}", self._response_url)
        return app

    # ------------------------------------------------------------------------ state

    def context(self) -> RenderContext:
        """Names of members and channels for rendering."""
        users = {user.id: user.name for user in self.slack.users()}
        users.update({p.id: p.name for p in self.people.values()})
        return RenderContext(users=users, channels=self.channel_names())

    def channel_names(self) -> dict[str, str]:
        """Channel ID → name for every conversation the emulator knows."""
        return {cid: self.slack.channel_name(cid) for cid in self.slack.channels()}

    def visible_channels(self, user: str) -> list[JSONDict]:
        """Channels, plus the user's DM with the bot, each with its message count."""
        dm = self.slack.resolve_channel(user)
        out = []
        for cid, name in self.channel_names().items():
            if cid.startswith("D") and cid != dm:
                continue
            shown = f"DM · {self.slack.bot_name}" if cid.startswith("D") else f"#{name}"
            count = len(self.slack.channel_messages(cid))
            out.append({"id": cid, "name": shown, "count": count})
        return out

    def version(self, *parts: str) -> str:
        """Changes whenever the emulator was called or the page changed its own state."""
        return ":".join((str(len(self.slack.calls)), str(self._local_changes), *parts))

    def snapshot(self, user: str, channel: str | None, thread: str | None) -> JSONDict:
        """Everything the page shows for one member, channel and open thread."""
        ctx = self.context()
        channels = self.visible_channels(user)
        if channel not in {c["id"] for c in channels}:
            channel = channels[0]["id"] if channels else None
        messages: list[JSONDict] = []
        thread_html: list[str] = []
        ephemeral: list[str] = []
        if channel is not None:
            for msg in self.slack.channel_messages(channel):
                html = message_html(msg, ctx, replies_link=True)
                messages.append({"ts": msg["ts"], "html": html})
            if thread is not None:
                thread_html = [message_html(m, ctx) for m in self.slack.thread(channel, thread)]
            ephemeral = [
                message_html(m, ctx, ephemeral=True)
                for m in self.slack.ephemeral_messages(channel)
                if m.get("user") == user
            ]
        modal = None
        view = self.open_view(user)
        if view is not None:
            errors = self._errors.get(view["id"], {})
            key = f"{view['id']}:{view.get('hash', '')}:{json.dumps(errors, sort_keys=True)}"
            modal = {"id": view["id"], "key": key, "html": view_html(view, ctx, errors)}
        return {
            "team": self.slack.team_name,
            "people": [vars(p) for p in self.people.values()],
            "user": user,
            "channels": channels,
            "channel": channel,
            "messages": messages,
            "thread": thread if thread_html else None,
            "thread_html": thread_html,
            "ephemeral": ephemeral,
            "modal": modal,
        }

    def open_view(self, user: str) -> JSONDict | None:
        """The newest modal opened (views.open/push) with a trigger of ``user``, if still open."""
        views = {v["id"]: v for v in self.slack.views()}
        newest = None
        for call in self.slack.calls:
            if call.method not in ("views.open", "views.push") or not call.response.get("ok"):
                continue
            trigger = str(call.params.get("trigger_id") or "")
            view_id = call.response["view"]["id"]
            if self._triggers.get(trigger) == user and view_id not in self._closed:
                newest = views.get(view_id)
        return newest

    # ---------------------------------------------------------------------- payloads

    def user_object(self, user: str) -> JSONDict:
        """The payload ``user`` object of a member the page acts as."""
        return payloads.user_object(user, self.people[user].name, self.slack.team_id)

    def new_trigger(self, user: str) -> str:
        """A fresh trigger ID, remembered as minted by ``user``'s click."""
        trigger = f"{int(self._clock())}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
        self._triggers[trigger] = user
        return trigger

    def click_payload(
        self,
        *,
        user: str,
        channel: str,
        message: JSONDict,
        block_index: int,
        action_id: str,
        ephemeral: bool = False,
    ) -> JSONDict:
        """The ``block_actions`` payload of ``user`` clicking a button of a stored message.

        Raises:
            PageError: The message has no such block or no such button in it.
        """
        token = secrets.token_hex(12)
        try:
            payload = payloads.block_actions(
                self.app,
                user=self.user_object(user),
                channel={"id": channel, "name": self.channel_names().get(channel, channel)},
                message=message,
                block_index=block_index,
                action_id=action_id,
                trigger_id=self.new_trigger(user),
                response_url=f"{self.base_url}/response/{token}",
                action_ts=f"{self._clock():.6f}",
                ephemeral=ephemeral,
            )
        except payloads.NoSuchElement as exc:
            raise PageError(404, str(exc)) from None
        self._responses[token] = {"channel": channel, "ts": message["ts"], "user": user}
        return payload

    async def send(self, payload: JSONDict) -> Interaction:
        """Form-encode, sign and POST an interaction payload to the bot."""
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **sign_request(body, self.signing_secret, int(self._clock())),
        }
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(self.events_url, data=body, headers=headers) as resp:
                answer = Interaction(payload, resp.status, await resp.text(), dict(resp.headers))
        self.sent.append(answer)
        return answer

    # ------------------------------------------------------------------------ routes

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text=_asset("index.html"), content_type="text/html")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        return web.Response(text=_asset(name), content_type=_STATIC[name])

    async def _state(self, request: web.Request) -> web.Response:
        query = request.query
        user = query.get("user") or next(iter(self.people))
        if user not in self.people:
            return _error(400, f"unknown user {user!r}")
        channel, thread = query.get("channel") or None, query.get("thread") or None
        version = self.version(user, channel or "", thread or "")
        if query.get("since") == version:
            return web.json_response({"changed": False, "version": version})
        state = self.snapshot(user, channel, thread)
        return web.json_response({"changed": True, "version": version, **state})

    async def _action(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user = self._person(body)
            channel = self.slack.resolve_channel(str(body.get("channel") or ""))
            ts, ephemeral = str(body.get("ts") or ""), bool(body.get("ephemeral"))
            message = self._find_message(channel, ts, user, ephemeral)
            payload = self.click_payload(
                user=user,
                channel=channel,
                message=message,
                block_index=_int(body.get("block_index")),
                action_id=str(body.get("action_id") or ""),
                ephemeral=ephemeral,
            )
        except PageError as exc:
            return _error(exc.status, str(exc))
        answer = await self.send(payload)
        return web.json_response({"status": answer.status, "body": answer.body})

    async def _view_submission(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user = self._person(body)
            view = self._users_view(user, str(body.get("view_id") or ""))
            raw = body.get("values")
            values: dict[str, Any] = raw if isinstance(raw, dict) else {}
            payload = payloads.view_submission(
                self.app,
                user=self.user_object(user),
                view=view,
                values=values,
                trigger_id=self.new_trigger(user),
            )
        except PageError as exc:
            return _error(exc.status, str(exc))
        answer = await self.send(payload)
        result: JSONDict = {"status": answer.status, "body": answer.body}
        reply = _json_or_empty(answer.body)
        action = reply.get("response_action")
        if answer.status != 200:
            result["error"] = f"the bot answered HTTP {answer.status}"
        elif action == "errors":
            self._errors[view["id"]] = {str(k): str(v) for k, v in reply["errors"].items()}
            result["errors"] = self._errors[view["id"]]
        elif action in (None, "clear"):
            self._close(user, view["id"], everything=action == "clear")
        else:
            result["error"] = f"response_action {action!r} is not emulated by this page"
        self._local_changes += 1
        return web.json_response(result)

    async def _view_closed(self, request: web.Request) -> web.Response:
        try:
            body = await _json_body(request)
            user = self._person(body)
            view = self._users_view(user, str(body.get("view_id") or ""))
        except PageError as exc:
            return _error(exc.status, str(exc))
        self._close(user, view["id"], everything=False)
        self._local_changes += 1
        if view.get("notify_on_close"):
            payload = payloads.view_closed(self.app, user=self.user_object(user), view=view)
            answer = await self.send(payload)
            return web.json_response({"status": answer.status, "body": answer.body})
        return web.json_response({"status": None})

    async def _file(self, request: web.Request) -> web.Response:
        data = self.slack.file_content(request.match_info["file_id"])
        if data is None:
            raise web.HTTPNotFound()
        kind = next(
            (k for magic, k in _MAGIC if data.startswith(magic)), "application/octet-stream"
        )
        return web.Response(body=data, content_type=kind)

    async def _response_url(self, request: web.Request) -> web.Response:
        """Replay a ``response_url`` answer through the emulator's Web API, as Slack would."""
        origin = self._responses.get(request.match_info["token"])
        if origin is None:
            raise web.HTTPNotFound()
        try:
            body = await _json_body(request)
        except PageError as exc:
            return _error(exc.status, str(exc))
        content: dict[str, str] = {
            key: body[key] if isinstance(body[key], str) else json.dumps(body[key])
            for key in ("text", "blocks", "attachments")
            if key in body
        }
        target: dict[str, str] = {"channel": origin["channel"]}
        if body.get("delete_original"):
            method, args = "chat.delete", {**target, "ts": origin["ts"]}
        elif body.get("replace_original"):
            method, args = "chat.update", {**target, "ts": origin["ts"], **content}
        elif body.get("response_type") == "in_channel":
            method, args = "chat.postMessage", {**target, **content}
        else:
            method, args = "chat.postEphemeral", {**target, "user": origin["user"], **content}
        headers = {"Authorization": f"Bearer {self.slack.bot_token}"}
        async with aiohttp.ClientSession() as session:
            url = f"{self.slack.api_url}{method}"
            async with session.post(url, data=args, headers=headers) as resp:
                answer = await resp.json()
        if not answer.get("ok"):
            return _error(400, str(answer.get("error")))
        return web.Response(text="ok", content_type="text/plain")

    # ----------------------------------------------------------------------- helpers

    def _person(self, body: Mapping[str, Any]) -> str:
        user = str(body.get("user") or "")
        if user not in self.people:
            raise PageError(400, f"unknown user {user!r}")
        return user

    def _find_message(self, channel: str, ts: str, user: str, ephemeral: bool) -> JSONDict:
        if ephemeral:
            found = [
                m
                for m in self.slack.ephemeral_messages(channel)
                if m.get("ts") == ts and m.get("user") == user
            ]
        else:
            found = [m for m in self.slack.thread(channel, ts) if m.get("ts") == ts]
        if not found:
            raise PageError(404, f"no message {ts} in {channel}")
        return found[0]

    def _users_view(self, user: str, view_id: str) -> JSONDict:
        view = self.open_view(user)
        if view is None or view["id"] != view_id:
            raise PageError(404, f"view {view_id!r} is not open for {user}")
        return view

    def _close(self, user: str, view_id: str, *, everything: bool) -> None:
        self._closed.add(view_id)
        self._errors.pop(view_id, None)
        while everything and (view := self.open_view(user)) is not None:
            self._closed.add(view["id"])


def _asset(name: str) -> str:
    return resources.files("sandbox").joinpath("static", name).read_text(encoding="utf-8")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> JSONDict:
    try:
        body = await request.json()
    except ValueError:
        raise PageError(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise PageError(400, "the body must be a JSON object")
    return body


def _json_or_empty(text: str) -> JSONDict:
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PageError(400, f"not an integer: {value!r}") from None
