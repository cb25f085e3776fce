"""A loopback emulator of the Slack Web API for tests and demos.

``SlackSandbox`` is an aiohttp server that the real ``slack_sdk`` ``AsyncWebClient`` (and so
Slack Bolt's ``AsyncApp``) talks to unmodified, via ``base_url=sandbox.api_url``. It keeps the
workspace state a bot can observe (channels, messages, threads, views, files), answers with
Slack's wire formats (``{"ok": false, "error": ...}`` at HTTP 200, 404 for unknown methods, 429
with ``Retry-After``), validates Block Kit like Slack (see ``slack_blocks_check``) and records
every call for assertions. Faults (rate limits, 5xx, latency) can be scripted per method; a
faulted call never changes state. The workspace state and method handlers live in
``slack_workspace`` (the ``views.*`` methods in ``slack_views``).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from sandbox.loopback import LoopbackServer
from sandbox.slack_views import _ViewMethods
from sandbox.slack_workspace import MAX_TEXT_CHARS as MAX_TEXT_CHARS
from sandbox.slack_workspace import (
    JSONDict,
    _ApiError,
    _Channel,
    _Params,
    _stable_id,
    _Workspace,
)

DEFAULT_SCOPES: Final = (
    "chat:write",
    "chat:write.public",
    "channels:history",
    "channels:read",
    "groups:history",
    "files:write",
    "reactions:write",
    "users:read",
    "usergroups:read",
    "commands",
)
# Arguments Slack documents as "JSON-encoded string" in form bodies; decoded before recording.
_JSON_ARGS: Final = frozenset({"blocks", "attachments", "metadata", "view", "files"})
_STATUS_ERRORS: Final = {500: "internal_error", 503: "service_unavailable"}


@dataclass(frozen=True)
class RecordedCall:
    """One Web API call as the sandbox received and answered it."""

    method: str
    params: JSONDict
    headers: dict[str, str]
    at: float
    response: JSONDict
    status: int = 200


@dataclass
class SlackUser:
    """A workspace member that users.info can describe."""

    id: str
    name: str
    real_name: str
    display_name: str = ""
    email: str | None = None
    is_bot: bool = False
    tz: str = "UTC"

    def to_api(self, team_id: str) -> JSONDict:
        """Render the user object users.info returns."""
        profile: JSONDict = {
            "real_name": self.real_name,
            "display_name": self.display_name,
            "real_name_normalized": self.real_name,
            "display_name_normalized": self.display_name,
            "team": team_id,
        }
        if self.email is not None:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": False,
            "real_name": self.real_name,
            "tz": self.tz,
            "is_admin": False,
            "is_owner": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "profile": profile,
        }


@dataclass
class _Fault:
    remaining: int
    status: int
    method: str | None
    retry_after: int | None = None


class SlackSandbox(LoopbackServer, _Workspace, _ViewMethods):
    """An in-process Slack Web API on 127.0.0.1.

    Any channel name or ID is accepted and gets a stable ID (``#incidents`` -> ``C...``, a user
    ID -> its ``D...`` DM) unless registered with ``add_channel`` or ``missing_channels``.
    ``users.info`` knows the bot, ``U0ALICE`` (alice) and ``U0BOB`` (bob) plus ``add_user``.

    Args:
        bot_token: The only token the sandbox accepts.
        team_id: Workspace ID reported by auth.test and in objects.
        bot_user_id: The bot's user ID (auth.test ``user_id``, author of its messages).
        bot_id: The bot's ``B...`` ID.
        team_name: Workspace name reported by auth.test.
        bot_name: The bot user's name.
        scopes: Scopes sent back in ``X-OAuth-Scopes`` (Bolt reads them after auth.test).
        missing_channels: Channel names or IDs that answer ``channel_not_found``.
        clock: Monotonic clock used to time-stamp recorded calls.
    """

    def __init__(
        self,
        bot_token: str = "xoxb-sandbox",
        *,
        team_id: str = "T0SANDBOX",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        team_name: str = "Sandbox",
        bot_name: str = "incident-bot",
        scopes: Iterable[str] = DEFAULT_SCOPES,
        missing_channels: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_name = team_name
        self.bot_name = bot_name
        self.scopes = tuple(scopes)
        self.calls: list[RecordedCall] = []
        self._clock = clock
        self._init_workspace()
        self._faults: list[_Fault] = []
        self._delay: tuple[float, str | None] = (0.0, None)
        super().__init__()
        self._methods: dict[str, Callable[[_Params], JSONDict]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "reactions.add": self._reactions_add,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }
        self.add_user(bot_user_id, bot_name, bot_name, display_name=bot_name, is_bot=True)
        self.add_user("U0ALICE", "alice", "Alice Oncall", display_name="alice")
        self.add_user("U0BOB", "bob", "Bob Responder", display_name="bob")
        for channel in missing_channels:
            self.mark_channel_missing(channel)

    # ----------------------------------------------------------------- lifecycle

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("POST", "/api/{method}", self._handle_api)
        app.router.add_route("GET", "/api/{method}", self._handle_api)
        app.router.add_route("POST", "/upload/v1/{file_id}", self._handle_upload)
        return app

    @property
    def api_url(self) -> str:
        """Base URL for ``AsyncWebClient(base_url=...)``; the trailing ``/`` is required."""
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------ configuration

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        is_bot: bool = False,
        tz: str = "UTC",
    ) -> SlackUser:
        """Register (or replace) a workspace member for users.info."""
        user = SlackUser(user_id, name, real_name, display_name or name, email, is_bot, tz)
        self._users[user_id] = user
        return user

    def add_channel(
        self,
        name: str,
        *,
        channel_id: str | None = None,
        is_member: bool = True,
        is_private: bool = False,
    ) -> str:
        """Register a channel; posting where ``is_member`` is false answers ``not_in_channel``.

        Returns:
            The channel ID.
        """
        clean = name.lstrip("#").lower()
        cid = channel_id or _stable_id("C", clean)
        self._names[clean] = cid
        self._channels[cid] = _Channel(cid, clean, is_member=is_member, is_private=is_private)
        return cid

    def mark_channel_missing(self, name_or_id: str) -> None:
        """Make every call naming this channel answer ``channel_not_found``."""
        self._missing.add(self.resolve_channel(name_or_id))

    def add_usergroup(
        self, usergroup_id: str, user_ids: Iterable[str], *, handle: str | None = None
    ) -> None:
        """Register (or replace) a user group for usergroups.list and usergroups.users.list.

        Args:
            usergroup_id: Its ``S…`` ID.
            user_ids: Its members.
            handle: What people mention it as, without the ``@`` (default: the ID, lowercased).
        """
        self._usergroups[usergroup_id] = list(user_ids)
        if handle is not None:
            self._usergroup_handles[usergroup_id] = handle.lstrip("@")

    def post_as_user(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> JSONDict:
        """Store a message as if a person posted it, e.g. the one an ``app_mention`` event names.

        Returns:
            The stored message; its ``ts`` is what the event payload should carry.
        """
        chan = self._channel(channel, need_member=False)
        fields = {"text": text, "user": user, "bot_id": None}
        return copy.deepcopy(self._post(chan, fields, thread_ts))

    # --------------------------------------------------------------- inspection

    def calls_to(self, method: str) -> list[RecordedCall]:
        """Recorded calls of one Web API method, oldest first."""
        return [call for call in self.calls if call.method == method]

    def channels(self) -> list[str]:
        """IDs of every conversation the sandbox knows, in first-use order."""
        return list(self._channels)

    def channel_name(self, channel_id: str) -> str:
        """The name of a conversation :meth:`channels` lists.

        Raises:
            KeyError: the sandbox does not know ``channel_id``.
        """
        return self._channels[channel_id].name

    def users(self) -> list[SlackUser]:
        """Every member registered with :meth:`add_user`, in registration order."""
        return list(self._users.values())

    def channel_messages(self, channel: str) -> list[JSONDict]:
        """Top-level messages (and broadcast replies) in post order, as currently edited."""
        chan = self._channels.get(self.resolve_channel(channel))
        if chan is None:
            return []
        return [copy.deepcopy(m) for m in chan.messages.values() if self._is_top_level(m)]

    def thread(self, channel: str, ts: str) -> list[JSONDict]:
        """A thread's parent followed by its replies in post order (``ts`` may be any of them)."""
        chan = self._channels.get(self.resolve_channel(channel))
        if chan is None or ts not in chan.messages:
            return []
        return [copy.deepcopy(m) for m in self._thread_of(chan, ts)]

    def revisions(self, channel: str, ts: str) -> list[JSONDict]:
        """Earlier versions of a message, oldest first, one per chat.update."""
        chan = self._channels.get(self.resolve_channel(channel))
        return copy.deepcopy(chan.revisions.get(ts, [])) if chan is not None else []

    def ephemeral_messages(self, channel: str | None = None) -> list[JSONDict]:
        """Messages sent with chat.postEphemeral, optionally for one channel."""
        cid = None if channel is None else self.resolve_channel(channel)
        return [copy.deepcopy(m) for m in self._ephemeral if cid is None or m["channel"] == cid]

    def views(self) -> list[JSONDict]:
        """Every view opened, pushed or published, as currently updated."""
        return [copy.deepcopy(v) for v in self._views.values()]

    def home_view(self, user_id: str) -> JSONDict | None:
        """The Home tab last published for ``user_id``."""
        view_id = self._home_views.get(user_id)
        return None if view_id is None else copy.deepcopy(self._views[view_id])

    def file_content(self, file_id: str) -> bytes | None:
        """Bytes uploaded for ``file_id`` through its upload URL."""
        upload = self._uploads.get(file_id)
        return None if upload is None else upload.data

    # ---------------------------------------------------------- fault injection

    def rate_limit_next(self, n: int, retry_after: int = 1, method: str | None = None) -> None:
        """Answer the next ``n`` calls (of ``method``, or any) with 429 and ``Retry-After``."""
        self._faults.append(_Fault(n, 429, method, retry_after))

    def fail_next(self, n: int, status: int = 500, method: str | None = None) -> None:
        """Answer the next ``n`` calls (of ``method``, or any) with HTTP ``status``."""
        self._faults.append(_Fault(n, status, method))

    def set_delay(self, seconds: float, method: str | None = None) -> None:
        """Delay every answer (of ``method``, or any) by ``seconds``; 0 turns it off."""
        self._delay = (seconds, method)

    def clear_faults(self) -> None:
        """Drop scripted faults and delays."""
        self._faults.clear()
        self._delay = (0.0, None)

    # -------------------------------------------------------------------- HTTP

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        at = self._clock()
        params: JSONDict = {}
        seconds, only = self._delay
        if seconds > 0 and only in (None, method):
            await asyncio.sleep(seconds)
        try:
            params, form_token = await self._read_params(request)
            status, body, headers = self._dispatch(method, params, request, form_token)
        except _ApiError as failure:
            status, body, headers = 200, {"ok": False, "error": failure.error, **failure.extra}, {}
        self.calls.append(RecordedCall(method, params, dict(request.headers), at, body, status))
        headers = {
            "X-Slack-Req-Id": hashlib.sha1(f"{at}{len(self.calls)}".encode()).hexdigest()[:32],
            "X-OAuth-Scopes": ",".join(self.scopes),
            **headers,
        }
        return web.json_response(body, status=status, headers=headers)

    @staticmethod
    async def _read_params(request: web.Request) -> tuple[JSONDict, str | None]:
        """Merge query string and body arguments; return them and a form ``token``."""
        params: JSONDict = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = json.loads(await request.read())
                except ValueError:
                    raise _ApiError("invalid_json") from None
                if not isinstance(body, dict):
                    raise _ApiError("invalid_json")
                # Slack ignores a token inside a JSON body: JSON callers must use the header.
                body.pop("token", None)
                params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        token = params.pop("token", None)
        for key in _JSON_ARGS & params.keys():
            if isinstance(params[key], str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    pass  # left as a string; the method answers *_format errors
        return params, token

    def _dispatch(
        self, method: str, params: JSONDict, request: web.Request, form_token: str | None
    ) -> tuple[int, JSONDict, dict[str, str]]:
        handler = self._methods.get(method)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method", "req_method": method}, {}
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else form_token
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if token != self.bot_token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        fault = self._take_fault(method)
        if fault is not None:
            if fault.status == 429:
                retry = {"Retry-After": str(fault.retry_after)}
                return 429, {"ok": False, "error": "ratelimited"}, retry
            error = _STATUS_ERRORS.get(fault.status, "fatal_error")
            return fault.status, {"ok": False, "error": error}, {}
        return 200, {"ok": True, **handler(_Params(params))}, {}

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.method in (None, method):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def _handle_upload(self, request: web.Request) -> web.Response:
        upload = self._uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            parts = [v for v in form.values() if isinstance(v, web.FileField)]
            upload.data = parts[0].file.read() if parts else b""
        else:
            upload.data = await request.read()
        return web.Response(text=f"OK - {len(upload.data)}", content_type="text/plain")


def sign_request(
    body: bytes | str, signing_secret: str, timestamp: int | None = None
) -> dict[str, str]:
    """Build the headers Slack signs an event or interaction request with.

    Args:
        body: The exact request body that will be sent.
        signing_secret: The app's signing secret (the one the bot verifies with).
        timestamp: Unix seconds to sign; now when omitted. Old values test replay rejection.

    Returns:
        ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` headers.
    """
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
    if signature is None:
        raise ValueError("slack_sdk could not sign the request")
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}
