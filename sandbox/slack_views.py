"""Views (modals and App Home) of the Slack sandbox: ``views.open/push/update/publish``.

A mixin of :class:`sandbox.slack.SlackSandbox`; the state it works on (``_views``,
``_home_views``, ``_used_triggers``) is created by ``_Workspace._init_workspace``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

from sandbox.slack_blocks_check import check_view
from sandbox.slack_workspace import JSONDict, _ApiError, _missing, _Params


class _ViewMethods:
    """The view handlers; the attributes below belong to ``_Workspace``."""

    team_id: str
    bot_id: str
    _counter: int
    _views: dict[str, JSONDict]
    _home_views: dict[str, str]
    _used_triggers: set[str]
    _next_id: Callable[[str], str]

    def _checked_view(self, p: _Params, allowed: frozenset[str]) -> JSONDict:
        view = p.get("view")
        if view is None:
            raise _missing("view")
        issues = check_view(view, allowed_types=allowed)
        if issues:
            messages = [f"[ERROR] {i.render()}" for i in issues]
            raise _ApiError("invalid_arguments", response_metadata={"messages": messages})
        assert isinstance(view, dict)  # check_view reports anything else
        external_id = view.get("external_id")
        if external_id and any(v.get("external_id") == external_id for v in self._views.values()):
            raise _ApiError("duplicate_external_id")
        return view

    def _store_view(self, view: JSONDict, view_id: str | None = None) -> JSONDict:
        view_id = view_id or self._next_id("V")
        previous = self._views.get(view_id, {})
        stored: JSONDict = {
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "clear_on_close": False,
            "notify_on_close": False,
            "previous_view_id": None,
            **view,
            "id": view_id,
            "team_id": self.team_id,
            "root_view_id": previous.get("root_view_id", view_id),
            "app_id": "A0SANDBOX",
            "bot_id": self.bot_id,
            "hash": f"{int(time.time())}.{self._counter:08d}",
        }
        self._views[view_id] = stored
        return {"view": copy.deepcopy(stored)}

    def _use_trigger(self, p: _Params) -> str:
        trigger = p.opt("trigger_id") or p.opt("interactivity_pointer")
        if trigger is None:
            raise _ApiError("invalid_trigger_id")
        if trigger in self._used_triggers:
            raise _ApiError("exchanged_trigger_id")
        return trigger

    def _views_open(self, p: _Params) -> JSONDict:
        trigger = self._use_trigger(p)
        view = self._checked_view(p, frozenset({"modal"}))
        self._used_triggers.add(trigger)
        return self._store_view(view)

    def _views_push(self, p: _Params) -> JSONDict:
        return self._views_open(p)

    def _views_update(self, p: _Params) -> JSONDict:
        view_id, external_id = p.opt("view_id"), p.opt("external_id")
        if view_id is None and external_id is not None:
            found = [k for k, v in self._views.items() if v.get("external_id") == external_id]
            view_id = found[0] if found else None
        elif view_id is None:
            raise _missing("view_id")
        if view_id is None or view_id not in self._views:
            raise _ApiError("not_found")
        current = self._views[view_id]
        if p.opt("hash") not in (None, current["hash"]):
            raise _ApiError("hash_conflict")
        # The view keeps its own external_id, so do not count it as a duplicate of itself.
        del self._views[view_id]
        try:
            view = self._checked_view(p, frozenset({"modal", "home"}))
        finally:
            self._views[view_id] = current
        return self._store_view(view, view_id)

    def _views_publish(self, p: _Params) -> JSONDict:
        user_id = p.req("user_id")
        view = self._checked_view(p, frozenset({"home"}))
        view_id = self._home_views.get(user_id)
        if view_id is not None and p.opt("hash") not in (None, self._views[view_id]["hash"]):
            raise _ApiError("hash_conflict")
        result = self._store_view(view, view_id)
        self._home_views[user_id] = result["view"]["id"]
        return result
