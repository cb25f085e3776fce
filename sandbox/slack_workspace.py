"""Workspace state and Web API method handlers of the Slack sandbox.

``SlackSandbox`` (``sandbox.slack``: routing, auth, faults, recording) inherits ``_Workspace``,
the state a bot can observe (channels, messages, threads, views, files, users, user groups) and
the handler of each emulated method.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import mimetypes
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sandbox.slack_blocks_check import check_message_blocks

if TYPE_CHECKING:
    from sandbox.slack import SlackUser

JSONDict = dict[str, Any]

MAX_TEXT_CHARS: Final = 40_000
_CHANNEL_ID: Final = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_USER_ID: Final = re.compile(r"^[UW][A-Z0-9]{2,}$")


@dataclass
class _Channel:
    id: str
    name: str
    is_member: bool = True
    is_private: bool = False
    is_im: bool = False
    # Every message (top-level and replies) by ts; ts grow monotonically so order is post order.
    messages: dict[str, JSONDict] = field(default_factory=dict)
    revisions: dict[str, list[JSONDict]] = field(default_factory=dict)

    def to_api(self) -> JSONDict:
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not (self.is_im or self.is_private),
            "is_group": False,
            "is_im": self.is_im,
            "is_mpim": False,
            "is_private": self.is_private or self.is_im,
            "is_archived": False,
            "is_general": False,
            "is_member": self.is_member,
            "created": 1_700_000_000,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }


@dataclass
class _Upload:
    file_id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None


class _ApiError(Exception):
    """An ``ok: false`` answer, raised inside a method handler."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _missing(field_name: str) -> _ApiError:
    return _ApiError(
        "invalid_arguments",
        response_metadata={"messages": [f"[ERROR] missing required field: {field_name}"]},
    )


class _Params:
    """Typed access to a call's merged query, form and JSON arguments."""

    def __init__(self, data: JSONDict) -> None:
        self.data = data

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def opt(self, key: str) -> str | None:
        value = self.data.get(key)
        return None if value is None or value == "" else str(value)

    def req(self, key: str) -> str:
        value = self.opt(key)
        if value is None:
            raise _missing(key)
        return value

    def flag(self, key: str) -> bool:
        return self.data.get(key) in (True, 1, "1", "true", "True")

    def integer(self, key: str, default: int) -> int:
        value = self.data.get(key)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _ApiError("invalid_arguments") from None


def _stable_id(prefix: str, key: str) -> str:
    digest = base64.b32encode(hashlib.sha1(key.encode()).digest()).decode()
    return prefix + digest[:10]


def _paginate(items: list[JSONDict], p: _Params) -> tuple[list[JSONDict], JSONDict]:
    """Slice ``items`` by ``limit``/``cursor``; return the page and the pagination fields."""
    limit = min(max(p.integer("limit", 100), 1), 999)
    cursor = p.opt("cursor")
    start = 0
    if cursor is not None:
        try:
            start = int(base64.b64decode(cursor).decode().removeprefix("next_offset:"))
        except ValueError:
            raise _ApiError("invalid_cursor") from None
    page = items[start : start + limit]
    more = start + limit < len(items)
    next_cursor = base64.b64encode(f"next_offset:{start + limit}".encode()).decode() if more else ""
    return page, {"has_more": more, "response_metadata": {"next_cursor": next_cursor}}


def _ts_arg(p: _Params, key: str) -> float | None:
    value = p.opt(key)
    try:
        return None if value is None else float(value)
    except ValueError:
        raise _ApiError(f"invalid_ts_{key}") from None


def _in_range(p: _Params) -> Callable[[str], bool]:
    """Build the conversations.* ``oldest``/``latest``/``inclusive`` filter for message ts."""
    oldest, latest, inclusive = _ts_arg(p, "oldest"), _ts_arg(p, "latest"), p.flag("inclusive")

    def keep(ts: str) -> bool:
        value = float(ts)
        if oldest is not None and (value < oldest or (value == oldest and not inclusive)):
            return False
        return latest is None or value < latest or (value == latest and inclusive)

    return keep


class _Workspace:
    """The workspace a ``SlackSandbox`` emulates and the handlers of its Web API methods."""

    # Identity, set by ``SlackSandbox.__init__``.
    team_id: str
    team_name: str
    bot_user_id: str
    bot_id: str
    bot_name: str

    @property
    def base_url(self) -> str:
        """Served by ``LoopbackServer``, which precedes this class in ``SlackSandbox``'s MRO."""
        raise NotImplementedError

    def _init_workspace(self) -> None:
        """Create the empty workspace state; ``SlackSandbox.__init__`` calls it."""
        self._users: dict[str, SlackUser] = {}
        self._channels: dict[str, _Channel] = {}
        self._names: dict[str, str] = {}
        self._missing: set[str] = set()
        self._usergroups: dict[str, list[str]] = {}
        self._usergroup_handles: dict[str, str] = {}
        self._ephemeral: list[JSONDict] = []
        self._views: dict[str, JSONDict] = {}
        self._home_views: dict[str, str] = {}
        self._used_triggers: set[str] = set()
        self._uploads: dict[str, _Upload] = {}
        self._last_ts_micros = 0
        self._counter = 0

    def resolve_channel(self, name_or_id: str) -> str:
        """Map ``#name``, ``name``, a channel ID or a user ID (its DM) to a conversation ID."""
        if _CHANNEL_ID.match(name_or_id):
            return name_or_id
        if _USER_ID.match(name_or_id):
            return _stable_id("D", name_or_id)
        clean = name_or_id.lstrip("#").lower()
        return self._names.get(clean) or _stable_id("C", clean)

    # ------------------------------------------------------------- state helpers

    def _next_ts(self) -> str:
        # Real Slack ts values are the epoch time of the message (unique per channel);
        # clients filter history by them (``oldest``/``latest``), so keep them real.
        self._counter += 1
        micros = max(int(time.time() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}0SBX{self._counter:06d}"

    def _channel(self, name_or_id: str, *, need_member: bool = True) -> _Channel:
        """Find a conversation; one never seen is made up but only kept once posted to."""
        cid = self.resolve_channel(name_or_id)
        if cid in self._missing:
            raise _ApiError("channel_not_found")
        chan = self._channels.get(cid)
        if chan is None:
            if cid.startswith("D"):
                chan = _Channel(cid, name_or_id, is_im=True)
            elif _CHANNEL_ID.match(name_or_id):
                chan = _Channel(cid, f"channel-{cid.lower()}")
            else:
                chan = _Channel(cid, name_or_id.lstrip("#").lower())
        if need_member and not chan.is_member:
            raise _ApiError("not_in_channel")
        return chan

    @staticmethod
    def _message(chan: _Channel, p: _Params, key: str = "ts") -> JSONDict:
        msg = chan.messages.get(p.req(key))
        if msg is None:
            raise _ApiError("message_not_found")
        return msg

    @staticmethod
    def _is_top_level(msg: JSONDict) -> bool:
        thread_ts = msg.get("thread_ts")
        return thread_ts in (None, msg["ts"]) or msg.get("subtype") == "thread_broadcast"

    @staticmethod
    def _thread_of(chan: _Channel, ts: str) -> list[JSONDict]:
        root = chan.messages[ts].get("thread_ts") or ts
        return [m for m in chan.messages.values() if m["ts"] == root or m.get("thread_ts") == root]

    @staticmethod
    def _refresh_thread(chan: _Channel, parent_ts: str) -> None:
        parent = chan.messages.get(parent_ts)
        if parent is None:
            return
        replies = [m for m in chan.messages.values() if m.get("thread_ts") == parent_ts]
        replies = [m for m in replies if m["ts"] != parent_ts]
        if not replies:
            for key in ("reply_count", "reply_users", "reply_users_count", "latest_reply"):
                parent.pop(key, None)
            return
        users = list(dict.fromkeys(m.get("user", "") for m in replies))
        parent.update(
            thread_ts=parent_ts,
            reply_count=len(replies),
            reply_users=users,
            reply_users_count=len(users),
            latest_reply=replies[-1]["ts"],
        )

    def _content(self, p: _Params, *, partial: bool = False) -> JSONDict:
        """Validate message content arguments; return the fields to store."""
        content: JSONDict = {}
        text, blocks, attachments = p.opt("text"), p.get("blocks"), p.get("attachments")
        if blocks is not None:
            if not isinstance(blocks, list):
                raise _ApiError("invalid_blocks_format")
            issues = [i.render() for i in check_message_blocks(blocks)]
            if issues:
                messages = [f"[ERROR] {i}" for i in issues]
                raise _ApiError(
                    "invalid_blocks", errors=issues, response_metadata={"messages": messages}
                )
            content["blocks"] = blocks
        if attachments is not None:
            if not isinstance(attachments, list):
                raise _ApiError("invalid_attachments")
            content["attachments"] = attachments
        if not (text or blocks or attachments):
            raise _ApiError("no_text")
        if text is not None:
            if len(text) > MAX_TEXT_CHARS:
                raise _ApiError("msg_too_long")
            content["text"] = text
        elif not partial:
            content["text"] = ""
        metadata = p.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise _ApiError("invalid_metadata_format")
            event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
            if not isinstance(event_type, str) or not isinstance(payload, dict):
                raise _ApiError("invalid_metadata_schema")
            content["metadata"] = {"event_type": event_type, "event_payload": payload}
        return content

    def _post(self, chan: _Channel, fields: JSONDict, thread_ts: str | None) -> JSONDict:
        """Store a new bot message (a reply when ``thread_ts`` is given) and return it."""
        root: str | None = None
        if thread_ts is not None:
            parent = chan.messages.get(thread_ts)
            if parent is None:
                raise _ApiError("thread_not_found")
            root = parent.get("thread_ts") or thread_ts
        ts = self._next_ts()
        base = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id}
        msg = {
            k: v
            for k, v in {**base, "team": self.team_id, "ts": ts, **fields}.items()
            if v is not None
        }
        if root is not None:
            msg.update(thread_ts=root, parent_user_id=chan.messages[root].get("user"))
        if chan.id not in self._channels:
            self._channels[chan.id] = chan
            if not chan.is_im:
                self._names.setdefault(chan.name, chan.id)
        chan.messages[ts] = msg
        if root is not None:
            self._refresh_thread(chan, root)
        return msg

    # ----------------------------------------------------------------- methods

    def _auth_test(self, p: _Params) -> JSONDict:
        return {
            "url": f"https://{self.team_name.lower()}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, p: _Params) -> JSONDict:
        chan = self._channel(p.req("channel"))
        fields = self._content(p)
        thread_ts = p.opt("thread_ts")
        if thread_ts is not None and p.flag("reply_broadcast"):
            fields["subtype"] = "thread_broadcast"
        if p.opt("username") is not None:
            fields["username"] = p.opt("username")
        msg = self._post(chan, fields, thread_ts)
        return {"channel": chan.id, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _chat_update(self, p: _Params) -> JSONDict:
        chan = self._channel(p.req("channel"))
        msg = self._message(chan, p)
        if msg.get("bot_id") != self.bot_id:
            raise _ApiError("cant_update_message")
        fields = self._content(p, partial=True)
        chan.revisions.setdefault(msg["ts"], []).append(copy.deepcopy(msg))
        # Slack keeps blocks/attachments that chat.update omits; an empty list removes them.
        msg.update(fields)
        for key in ("blocks", "attachments"):
            if msg.get(key) == []:
                del msg[key]
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": chan.id,
            "ts": msg["ts"],
            "text": msg.get("text", ""),
            "message": copy.deepcopy(msg),
        }

    def _chat_post_ephemeral(self, p: _Params) -> JSONDict:
        chan = self._channel(p.req("channel"))
        user = p.req("user")
        fields = self._content(p)
        ts = self._next_ts()
        self._ephemeral.append({"channel": chan.id, "user": user, "ts": ts, **fields})
        return {"message_ts": ts}

    def _chat_delete(self, p: _Params) -> JSONDict:
        chan = self._channel(p.req("channel"))
        msg = self._message(chan, p)
        if msg.get("bot_id") != self.bot_id:
            raise _ApiError("cant_delete_message")
        ts, root = msg["ts"], msg.get("thread_ts")
        if msg.get("reply_count"):
            # A parent with replies stays as a tombstone so the thread remains reachable.
            chan.messages[ts] = {
                "type": "message",
                "subtype": "tombstone",
                "text": "This message was deleted.",
                "user": "USLACKBOT",
                **{k: v for k, v in msg.items() if k.startswith(("reply_", "latest_", "thread_"))},
                "ts": ts,
            }
        else:
            del chan.messages[ts]
            if root is not None and root != ts:
                self._refresh_thread(chan, root)
        return {"channel": chan.id, "ts": ts}

    def _reactions_add(self, p: _Params) -> JSONDict:
        chan = self._channel(p.req("channel"))
        name = p.req("name")
        msg = self._message(chan, p, "timestamp")
        reactions: list[JSONDict] = msg.setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None:
            reactions.append({"name": name, "users": [self.bot_user_id], "count": 1})
        elif self.bot_user_id in entry["users"]:
            raise _ApiError("already_reacted")
        else:
            entry["users"].append(self.bot_user_id)
            entry["count"] += 1
        return {}

    def _conversations_info(self, p: _Params) -> JSONDict:
        return {"channel": self._channel(p.req("channel"), need_member=False).to_api()}

    def _conversations_list(self, p: _Params) -> JSONDict:
        chans = [c.to_api() for c in self._channels.values() if not c.is_im]
        page, more = _paginate(chans, p)
        return {"channels": page, **more}

    def _render(self, messages: Iterable[JSONDict], p: _Params) -> list[JSONDict]:
        with_metadata = p.flag("include_all_metadata")
        keep = _in_range(p)
        out = [copy.deepcopy(m) for m in messages if keep(m["ts"])]
        if not with_metadata:
            for m in out:
                m.pop("metadata", None)
        return out

    def _conversations_history(self, p: _Params) -> JSONDict:
        chan = self._channel(p.req("channel"))
        top = [m for m in chan.messages.values() if self._is_top_level(m)]
        page, more = _paginate(self._render(reversed(top), p), p)
        return {"messages": page, "pin_count": 0, **more}

    def _conversations_replies(self, p: _Params) -> JSONDict:
        chan = self._channel(p.req("channel"))
        ts = p.req("ts")
        if ts not in chan.messages:
            raise _ApiError("thread_not_found")
        page, more = _paginate(self._render(self._thread_of(chan, ts), p), p)
        return {"messages": page, **more}

    def _users_info(self, p: _Params) -> JSONDict:
        user = self._users.get(p.req("user"))
        if user is None:
            raise _ApiError("user_not_found")
        return {"user": user.to_api(self.team_id)}

    def _usergroups_users_list(self, p: _Params) -> JSONDict:
        users = self._usergroups.get(p.req("usergroup"))
        if users is None:
            raise _ApiError("no_such_subteam")
        return {"users": list(users)}

    def _usergroups_list(self, p: _Params) -> JSONDict:
        groups = []
        for group_id, users in self._usergroups.items():
            handle = self._usergroup_handles.get(group_id, group_id.lower())
            group: JSONDict = {
                "id": group_id,
                "team_id": self.team_id,
                "is_usergroup": True,
                "name": handle.replace("-", " ").title(),
                "handle": handle,
                "description": "",
                "date_delete": 0,
                "user_count": len(users),
            }
            if p.flag("include_users"):
                group["users"] = list(users)
            groups.append(group)
        return {"usergroups": groups}

    def _files_get_upload_url(self, p: _Params) -> JSONDict:
        filename = p.req("filename")
        length = p.integer("length", -1)
        if length < 0:
            raise _missing("length")
        file_id = self._next_id("F")
        self._uploads[file_id] = _Upload(file_id, filename, length)
        return {"upload_url": f"{self.base_url}/upload/v1/{file_id}", "file_id": file_id}

    def _file_object(self, upload: _Upload) -> JSONDict:
        mimetype = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
        url = f"{self.base_url}/files-pri/{self.team_id}-{upload.file_id}/{upload.filename}"
        return {
            "id": upload.file_id,
            "created": 1_700_000_000,
            "timestamp": 1_700_000_000,
            "name": upload.filename,
            "title": upload.title or upload.filename,
            "mimetype": mimetype,
            "filetype": upload.filename.rpartition(".")[2] if "." in upload.filename else "",
            "user": self.bot_user_id,
            "size": len(upload.data or b""),
            "mode": "hosted",
            "is_external": False,
            "is_public": True,
            "url_private": url,
            "url_private_download": url + "?download=1",
            "shares": {},
            "channels": [],
        }

    def _files_complete_upload(self, p: _Params) -> JSONDict:
        entries = p.get("files")
        if not isinstance(entries, list) or not entries:
            raise _missing("files")
        uploads: list[_Upload] = []
        for entry in entries:
            upload = self._uploads.get(entry.get("id", "")) if isinstance(entry, dict) else None
            if upload is None or upload.data is None:
                raise _ApiError("file_not_found")
            upload.title = entry.get("title") or upload.title
            uploads.append(upload)
        targets = [p.opt("channel_id")] if p.opt("channel_id") else []
        targets += [c for c in (p.opt("channels") or "").split(",") if c]
        files = [self._file_object(u) for u in uploads]
        for target in targets:
            assert target is not None
            chan = self._channel(target)
            fields = {"text": p.opt("initial_comment") or "", "files": files, "upload": True}
            msg = self._post(chan, copy.deepcopy(fields), p.opt("thread_ts"))
            share: JSONDict = {"ts": msg["ts"], "channel_name": chan.name}
            if "thread_ts" in msg:
                share["thread_ts"] = msg["thread_ts"]
            for f in files:
                visibility = "private" if chan.is_private or chan.is_im else "public"
                f["shares"].setdefault(visibility, {}).setdefault(chan.id, []).append(share)
                f["channels"].append(chan.id)
        return {"files": files}
