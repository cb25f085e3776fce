"""Who may approve: the pure rule, and group resolution through a real AsyncWebClient.

Group IDs (``S…``) resolve against the Slack sandbox (it serves ``usergroups.users.list``).
The sandbox has no ``usergroups.list`` yet, so ``@handle`` resolution runs against a small
loopback stub below that speaks both methods.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot.remediate.authz import GroupLookupError, GroupResolver, may_approve
from sandbox.loopback import LoopbackServer
from sandbox.slack import SlackSandbox

TOKEN = "xoxb-sandbox"


@pytest.mark.parametrize(
    ("user", "groups", "approvers", "expected"),
    [
        ("U0ALICE", set(), ["U0ALICE"], True),
        ("W0ALICE", set(), ["W0ALICE"], True),
        ("U0BOB", set(), ["U0ALICE"], False),
        ("U0BOB", {"S0LEADS"}, ["S0LEADS"], True),
        ("U0BOB", {"S0OTHER"}, ["S0LEADS"], False),
        ("U0BOB", {"@sre-oncall"}, ["@sre-oncall"], True),
        ("U0BOB", {"sre-oncall"}, ["@sre-oncall"], True),
        ("U0BOB", {"@sre-leads"}, ["@sre-oncall"], False),
        ("U0BOB", {"U0BOB"}, ["@sre-oncall"], False),  # a user ID is not a group
        ("S0LEADS", set(), ["S0LEADS"], False),  # a user named like a group is not in it
        ("U0ALICE", {"@sre-oncall"}, [], False),  # nobody configured: nobody approves
        ("U0ALICE", set(), ["@sre-leads", "U0ALICE"], True),
    ],
)
def test_may_approve(user: str, groups: set[str], approvers: list[str], expected: bool) -> None:
    assert may_approve(user, groups, approvers) is expected


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def slack() -> AsyncIterator[SlackSandbox]:
    async with SlackSandbox(TOKEN) as sb:
        sb.add_usergroup("S0LEADS", ["U0ALICE"])
        yield sb


async def test_group_ids_resolve_through_the_sandbox(slack: SlackSandbox) -> None:
    clock = Clock()
    resolver = GroupResolver(AsyncWebClient(TOKEN, base_url=slack.api_url), ttl=60, clock=clock)
    alice = await resolver.authorize("U0ALICE", ["S0LEADS"])
    assert alice.allowed and "S0LEADS" in alice.reason
    bob = await resolver.authorize("U0BOB", ["S0LEADS"])
    assert not bob.allowed and "not among" in bob.reason
    assert len(slack.calls_to("usergroups.users.list")) == 1  # cached
    slack.add_usergroup("S0LEADS", ["U0ALICE", "U0BOB"])
    assert not (await resolver.authorize("U0BOB", ["S0LEADS"])).allowed  # still cached
    clock.now += 61
    assert (await resolver.authorize("U0BOB", ["S0LEADS"])).allowed
    assert len(slack.calls_to("usergroups.users.list")) == 2


async def test_listed_user_needs_no_slack_call(slack: SlackSandbox) -> None:
    resolver = GroupResolver(AsyncWebClient(TOKEN, base_url=slack.api_url))
    assert (await resolver.authorize("U0BOB", ["S0LEADS", "U0BOB"])).allowed
    assert slack.calls_to("usergroups.users.list") == []
    refused = await resolver.authorize("U0BOB", [])
    assert not refused.allowed and "no approvers" in refused.reason


async def test_slack_errors_fail_closed(
    slack: SlackSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = GroupResolver(AsyncWebClient(TOKEN, base_url=slack.api_url))
    slack.fail_next(1, status=500, method="usergroups.users.list")
    with caplog.at_level(logging.WARNING, logger="bot.remediate.authz"):
        outage = await resolver.authorize("U0ALICE", ["S0LEADS"])
    assert not outage.allowed and "cannot check group membership" in outage.reason
    assert "failing closed" in caplog.text and "U0ALICE" in caplog.text
    # The failure is not cached: the next click asks again and succeeds.
    assert (await resolver.authorize("U0ALICE", ["S0LEADS"])).allowed
    missing = await resolver.authorize("U0ALICE", ["S0GONE"])
    assert not missing.allowed and "no_such_subteam" in missing.reason
    with pytest.raises(GroupLookupError):
        await resolver.groups_of("U0ALICE", ["S0GONE"])


async def test_bad_token_fails_closed(slack: SlackSandbox) -> None:
    resolver = GroupResolver(AsyncWebClient("xoxb-wrong", base_url=slack.api_url))
    refused = await resolver.authorize("U0ALICE", ["S0LEADS"])
    assert not refused.allowed and "invalid_auth" in refused.reason


class UserGroupsStub(LoopbackServer):
    """``usergroups.list`` and ``usergroups.users.list`` with scripted failures."""

    name = "usergroups stub"

    def __init__(self, groups: dict[str, tuple[str, list[str]]]) -> None:
        super().__init__()
        self.groups = groups  # id -> (handle, members)
        self.calls: list[str] = []
        self.failing: set[str] = set()

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        if method in self.failing:  # a proxy in the way: not even JSON
            return web.Response(status=502, text="<html>bad gateway</html>")
        params: dict[str, Any] = {**request.query, **(await request.post())}
        if method == "usergroups.list":
            groups = [{"id": gid, "handle": h} for gid, (h, _) in self.groups.items()]
            return web.json_response({"ok": True, "usergroups": groups})
        if method == "usergroups.users.list":
            found = self.groups.get(str(params.get("usergroup")))
            if found is None:
                return web.json_response({"ok": False, "error": "no_such_subteam"})
            return web.json_response({"ok": True, "users": found[1]})
        return web.Response(status=404, text=json.dumps({"ok": False}))


@pytest.fixture
async def stub() -> AsyncIterator[UserGroupsStub]:
    groups = {"S0ONCALL": ("sre-oncall", ["U0ALICE"]), "S0LEADS": ("sre-leads", ["U0CAROL"])}
    async with UserGroupsStub(groups) as server:
        yield server


async def test_handles_resolve_to_group_ids(stub: UserGroupsStub) -> None:
    clock = Clock()
    client = AsyncWebClient(TOKEN, base_url=stub.base_url + "/api/")
    resolver = GroupResolver(client, ttl=300, clock=clock)
    alice = await resolver.authorize("U0ALICE", ["@sre-oncall"])
    assert alice.allowed and alice.groups == {"@sre-oncall", "S0ONCALL"}
    assert not (await resolver.authorize("U0ALICE", ["@sre-leads"])).allowed
    assert (await resolver.authorize("U0CAROL", ["@SRE-LEADS"])).allowed
    assert await resolver.groups_of("U0CAROL", ["@sre-oncall", "@sre-leads"]) == {
        "@sre-leads",
        "S0LEADS",
    }
    assert stub.calls.count("usergroups.list") == 1
    assert stub.calls.count("usergroups.users.list") == 2
    unknown = await resolver.authorize("U0ALICE", ["@nobody"])
    assert not unknown.allowed and "no user group @nobody" in unknown.reason
    clock.now += 301
    stub.groups["S0LEADS"] = ("sre-leads", ["U0ALICE"])
    assert (await resolver.authorize("U0ALICE", ["@sre-leads"])).allowed
    assert stub.calls.count("usergroups.list") == 2


async def test_handle_lookup_failure_fails_closed_but_other_entries_count(
    stub: UserGroupsStub,
) -> None:
    resolver = GroupResolver(AsyncWebClient(TOKEN, base_url=stub.base_url + "/api/"))
    stub.failing.add("usergroups.list")
    refused = await resolver.authorize("U0ALICE", ["@sre-oncall"])
    assert not refused.allowed and "usergroups.list failed: HTTP 502" in refused.reason
    # A group named by ID still resolves, so a member is let through on that entry alone.
    assert (await resolver.authorize("U0ALICE", ["@sre-oncall", "S0ONCALL"])).allowed
    stub.failing.clear()
    assert (await resolver.authorize("U0ALICE", ["@sre-oncall"])).allowed
