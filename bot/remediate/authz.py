"""Who may approve a remediation: policy approver entries against a Slack user.

A policy lists approvers per risk level (``policies/default.yaml``): Slack user IDs
(``U…``/``W…``), user-group IDs (``S…``) or user-group handles (``@sre-oncall``).
:func:`may_approve` is the pure rule; :class:`GroupResolver` finds which of the named groups
a user belongs to through the Slack Web API (``usergroups.list`` maps handles to IDs,
``usergroups.users.list`` lists members), caches the answers for ``ttl`` seconds and fails
*closed*: when Slack cannot say, the user is not authorized and the reason is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

# ValueError covers undecodable bodies: every failure to learn membership means "no".
_LOOKUP_ERRORS = (SlackApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError)


def is_user_entry(entry: str) -> bool:
    """A Slack user ID (``U…`` or ``W…``)."""
    return entry[:1] in ("U", "W")


def group_entries(approvers: Sequence[str]) -> list[str]:
    """The user-group entries (``S…`` IDs and ``@handles``) among ``approvers``."""
    return [e for e in approvers if e.startswith(("S", "@"))]


def may_approve(user_id: str, user_groups: set[str], approvers: Sequence[str]) -> bool:
    """Whether the user matches an approver entry.

    Args:
        user_id: the clicking user's Slack ID.
        user_groups: the user's groups, as IDs (``S…``) and/or handles (``@name`` or ``name``).
        approvers: the policy's entries for the action's risk level; empty means nobody.
    """
    for entry in approvers:
        if is_user_entry(entry):
            if entry == user_id:
                return True
        elif entry.startswith("@"):
            if entry in user_groups or entry[1:] in user_groups:
                return True
        elif entry in user_groups:
            return True
    return False


@dataclass(frozen=True)
class Authorization:
    """The answer for one click: allowed or not, and why (for logs and the clicker)."""

    allowed: bool
    reason: str
    groups: frozenset[str] = frozenset()


class GroupLookupError(Exception):
    """Slack could not say who is in a user group."""


class GroupResolver:
    """Resolves user-group membership through Slack, with a TTL cache.

    Args:
        client: a Web API client with the ``usergroups:read`` scope.
        ttl: seconds a handle map or a member list stays fresh.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        client: AsyncWebClient,
        ttl: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._handles: tuple[float, dict[str, str]] | None = None
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = asyncio.Lock()

    async def authorize(self, user_id: str, approvers: Sequence[str]) -> Authorization:
        """Decide whether ``user_id`` may approve for these approver entries.

        A user listed by ID needs no Slack call. Group entries are resolved; one that cannot
        be resolved counts as "not a member" (fail closed), and when that leaves the user
        unauthorized the reason names the failure.
        """
        if not approvers:
            return Authorization(False, "no approvers are configured for this risk level")
        if user_id in approvers and is_user_entry(user_id):
            return Authorization(True, f"{user_id} is listed as an approver")
        groups, failures = await self._groups_of(user_id, group_entries(approvers))
        if may_approve(user_id, groups, approvers):
            matched = [e for e in approvers if may_approve(user_id, groups, [e])]
            return Authorization(True, f"member of {', '.join(matched)}", frozenset(groups))
        if failures:
            reason = "cannot check group membership (" + "; ".join(failures) + ")"
            log.warning("approval by %s refused, failing closed: %s", user_id, reason)
            return Authorization(False, reason, frozenset(groups))
        return Authorization(False, f"not among {', '.join(approvers)}", frozenset(groups))

    async def groups_of(self, user_id: str, entries: Sequence[str]) -> set[str]:
        """Which of the group ``entries`` the user belongs to (as given: IDs or @handles).

        Raises:
            GroupLookupError: any entry could not be resolved.
        """
        groups, failures = await self._groups_of(user_id, entries)
        if failures:
            raise GroupLookupError("; ".join(failures))
        return groups

    def clear(self) -> None:
        """Forget every cached answer."""
        self._handles = None
        self._members.clear()

    async def _groups_of(self, user_id: str, entries: Sequence[str]) -> tuple[set[str], list[str]]:
        groups: set[str] = set()
        failures: list[str] = []
        for entry in entries:
            try:
                group_id = await self._group_id(entry) if entry.startswith("@") else entry
                if group_id is None:
                    failures.append(f"no user group {entry}")
                    continue
                if user_id in await self._members_of(group_id):
                    groups.update({entry, group_id})
            except GroupLookupError as exc:
                failures.append(f"{entry}: {exc}")
        return groups, failures

    async def _group_id(self, handle: str) -> str | None:
        """The ID of the group with this ``@handle`` (``None``: no such group)."""
        async with self._lock:
            now = self._clock()
            if self._handles is None or self._handles[0] <= now:
                try:
                    response = await self.client.usergroups_list()
                except _LOOKUP_ERRORS as exc:
                    raise GroupLookupError(f"usergroups.list failed: {_describe(exc)}") from exc
                mapping = {
                    str(g.get("handle", "")).lower(): str(g["id"])
                    for g in response.get("usergroups") or []
                    if isinstance(g, dict) and g.get("id")
                }
                self._handles = (now + self.ttl, mapping)
            return self._handles[1].get(handle[1:].lower())

    async def _members_of(self, group_id: str) -> frozenset[str]:
        now = self._clock()
        cached = self._members.get(group_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except _LOOKUP_ERRORS as exc:
            raise GroupLookupError(f"usergroups.users.list failed: {_describe(exc)}") from exc
        members = frozenset(str(u) for u in response.get("users") or [])
        self._members[group_id] = (now + self.ttl, members)
        return members


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        data = exc.response.data
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])
        return f"HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
