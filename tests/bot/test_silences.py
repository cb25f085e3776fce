"""Silence matchers, durations and the Alertmanager API v2 client against a scripted stub.

The stub answers what Alertmanager 0.25 answers (bodies copied from the real binary: JSON
strings for 400, go-swagger objects for 422, an empty 404, 500 "silence not found" for
DELETE of an unknown ID). tests/e2e/test_silences_e2e.py runs the client against the real one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from bot.silences import (
    DURATIONS,
    Matcher,
    SilenceClient,
    SilenceError,
    matcher_filter,
    matchers_for_incident,
    parse_duration,
    silence_comment,
    silence_creator,
)
from sandbox.loopback import LoopbackServer
from sandbox.realstack import free_port

SID = "6424f300-af0c-4e9e-bcb0-7572abec18c5"
NOW = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)

# kube-prometheus KubePodCrashLooping as Alertmanager delivers it (kube-state-metrics target
# labels included), plus a workload label added by a relabelling rule.
CRASHLOOP = {
    "alertname": "KubePodCrashLooping",
    "severity": "warning",
    "namespace": "shop",
    "pod": "cart-7d9f8b6c4-x2x9q",
    "container": "cart",
    "deployment": "cart",
    "uid": "0d5c1c7e-5f3e-4a43-9a43-7d2ab1f0e111",
    "instance": "10.0.3.17:8080",
    "endpoint": "http",
    "job": "kube-state-metrics",
    "service": "kube-prometheus-stack-kube-state-metrics",
    "prometheus": "monitoring/kube-prometheus-stack-prometheus",
    "reason": "CrashLoopBackOff",
    "pod_template_hash": "7d9f8b6c4",
    "__name__": "kube_pod_container_status_waiting_reason",
}


def silence(state: str, silence_id: str = SID, **extra: Any) -> dict[str, Any]:
    return {
        "id": silence_id,
        "status": {"state": state},
        "updatedAt": "2026-11-20T10:15:00.000Z",
        "comment": "c",
        "createdBy": "a",
        "startsAt": "2026-11-20T10:15:00.000Z",
        "endsAt": "2026-11-20T14:15:00.000Z",
        "matchers": [{"name": "alertname", "value": "X", "isRegex": False, "isEqual": True}],
        **extra,
    }


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any


@dataclass
class Reply:
    status: int = 200
    body: str = ""
    content_type: str = "application/json"
    delay: float = 0.0


class AlertmanagerStub(LoopbackServer):
    """Answers every request with the next scripted :class:`Reply` and records it."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def reply(self, status: int = 200, body: Any = "", **kwargs: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.replies.append(Reply(status, text, **kwargs))

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        self.seen.append(
            Seen(request.method, request.path, list(request.query.items()), raw and json.loads(raw))
        )
        reply = self.replies.pop(0) if self.replies else Reply(500, '"unscripted"')
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, text=reply.body, content_type=reply.content_type)


@pytest.fixture
async def stub() -> AsyncIterator[AlertmanagerStub]:
    async with AlertmanagerStub() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(stub: AlertmanagerStub, session: aiohttp.ClientSession) -> SilenceClient:
    return SilenceClient(stub.base_url + "/", session, timeout=2)


async def failure(coro: Any) -> SilenceError:
    with pytest.raises(SilenceError) as info:
        await coro
    return info.value


# ------------------------------------------------------------------------------ matchers


def test_matchers_keep_the_workload_and_drop_volatile_labels() -> None:
    matchers = matchers_for_incident(CRASHLOOP)
    assert [(m["name"], m["value"]) for m in matchers] == [
        ("alertname", "KubePodCrashLooping"),
        ("namespace", "shop"),
        ("severity", "warning"),
        ("container", "cart"),
        ("deployment", "cart"),
        ("service", "kube-prometheus-stack-kube-state-metrics"),
    ]
    assert all(m["isEqual"] is True and m["isRegex"] is False for m in matchers)


def test_without_a_workload_label_the_pod_is_kept_rather_than_the_whole_namespace() -> None:
    labels = {"alertname": "KubePodNotReady", "namespace": "shop", "pod": "debug-shell"}
    names = [m["name"] for m in matchers_for_incident(labels)]
    assert names == ["alertname", "namespace", "pod"]


def test_cronjob_runs_are_matched_by_the_cronjob_not_the_per_run_job() -> None:
    labels = {
        "alertname": "KubeJobFailed",
        "namespace": "batch",
        "cronjob": "nightly-report",
        "job_name": "nightly-report-29123400",
        "pod": "nightly-report-29123400-abcde",
    }
    pairs = [(m["name"], m["value"]) for m in matchers_for_incident(labels)]
    assert pairs == [
        ("alertname", "KubeJobFailed"),
        ("namespace", "batch"),
        ("cronjob", "nightly-report"),
    ]


def test_node_alert_matches_its_node_and_empty_values_are_skipped() -> None:
    labels = {"alertname": "KubeNodeNotReady", "node": "worker-3", "namespace": "", "cluster": ""}
    pairs = [(m["name"], m["value"]) for m in matchers_for_incident(labels)]
    # No workload label, no pod label: alertname + node only.
    assert pairs == [("alertname", "KubeNodeNotReady"), ("node", "worker-3")]


@pytest.mark.parametrize("labels", [{}, {"namespace": "shop"}, {"alertname": " "}])
def test_matchers_refuse_alerts_without_alertname(labels: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="alertname"):
        matchers_for_incident(labels)


def test_matcher_filter_syntax_and_escaping() -> None:
    eq: Matcher = {"name": "a", "value": 'x"y\\z\n', "isRegex": False, "isEqual": True}
    assert matcher_filter(eq) == 'a="x\\"y\\\\z\\n"'
    assert matcher_filter({**eq, "value": "v", "isRegex": True}) == 'a=~"v"'
    assert matcher_filter({**eq, "value": "v", "isEqual": False}) == 'a!="v"'
    assert matcher_filter({**eq, "value": "v", "isEqual": False, "isRegex": True}) == 'a!~"v"'


def test_creator_and_comment() -> None:
    assert silence_creator("alice", "U012ABC") == "alice (U012ABC)"
    assert silence_creator("", "U012ABC") == "unknown user (U012ABC)"
    assert silence_comment("  fix\n deploying ", "INC_7") == (
        "fix deploying [incident INC_7, via incident-bot]"
    )
    assert silence_comment("", "INC_7").startswith("silenced from Slack")


# ------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("4h", timedelta(hours=4)),
        ("24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(minutes=90)),
        ("1d", timedelta(days=1)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "4", "0h", "-1h", "4x", "1.5h", "8d", "30m1h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_offered_durations_parse() -> None:
    assert [parse_duration(d) for d in DURATIONS] == [
        timedelta(hours=1),
        timedelta(hours=4),
        timedelta(hours=24),
    ]


# ------------------------------------------------------------------------------ client


async def test_create_posts_the_v2_body_and_returns_the_id(
    stub: AlertmanagerStub, client: SilenceClient
) -> None:
    stub.reply(200, {"silenceID": SID})
    matchers = matchers_for_incident(CRASHLOOP)
    silence_id = await client.create(
        matchers, "4h", silence_creator("alice", "U1"), silence_comment("deploy", "INC_1"), NOW
    )
    assert silence_id == SID
    [seen] = stub.seen
    assert (seen.method, seen.path) == ("POST", "/api/v2/silences")
    assert seen.body == {
        "matchers": matchers,
        "startsAt": "2026-11-20T10:15:00.000Z",
        "endsAt": "2026-11-20T14:15:00.000Z",
        "createdBy": "alice (U1)",
        "comment": "deploy [incident INC_1, via incident-bot]",
    }


async def test_create_converts_other_timezones_to_utc(
    stub: AlertmanagerStub, client: SilenceClient
) -> None:
    stub.reply(200, {"silenceID": SID})
    local = datetime(2026, 11, 20, 11, 15, tzinfo=ZoneInfo("Europe/Paris"))
    await client.create(matchers_for_incident(CRASHLOOP), timedelta(hours=1), "a", "c", local)
    assert stub.seen[0].body["startsAt"] == "2026-11-20T10:15:00.000Z"
    assert stub.seen[0].body["endsAt"] == "2026-11-20T11:15:00.000Z"


@pytest.mark.parametrize(
    ("matchers", "problem"),
    [
        ([], "without matchers"),
        ([{"name": "pod", "value": "", "isRegex": False, "isEqual": True}], "empty label"),
        ([{"name": "pod", "value": ".*", "isRegex": True, "isEqual": True}], "empty label"),
    ],
)
async def test_create_refuses_silences_that_would_mute_everything(
    stub: AlertmanagerStub, client: SilenceClient, matchers: list[Matcher], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        await client.create(matchers, "1h", "alice (U1)", "why")
    assert stub.seen == []


async def test_create_needs_creator_comment_and_positive_duration(
    stub: AlertmanagerStub, client: SilenceClient
) -> None:
    matchers = matchers_for_incident(CRASHLOOP)
    with pytest.raises(ValueError, match="creator"):
        await client.create(matchers, "1h", " ", "why")
    with pytest.raises(ValueError, match="creator"):
        await client.create(matchers, "1h", "alice", "")
    with pytest.raises(ValueError, match="positive"):
        await client.create(matchers, timedelta(0), "alice", "why")
    with pytest.raises(ValueError, match="duration"):
        await client.create(matchers, "forever", "alice", "why")
    assert stub.seen == []


async def test_get_and_expire_address_the_silence(
    stub: AlertmanagerStub, client: SilenceClient
) -> None:
    stub.reply(200, silence("active"))
    stub.reply(200, "")
    got = await client.get(SID)
    assert got["status"]["state"] == "active" and got["id"] == SID
    await client.expire(SID)
    assert [(s.method, s.path) for s in stub.seen] == [
        ("GET", f"/api/v2/silence/{SID}"),
        ("DELETE", f"/api/v2/silence/{SID}"),
    ]


@pytest.mark.parametrize("bad", ["nonsense", "../silences", f"{SID}/x", ""])
async def test_ids_that_are_not_uuids_are_refused_before_sending(
    stub: AlertmanagerStub, client: SilenceClient, bad: str
) -> None:
    with pytest.raises(ValueError, match="not a silence ID"):
        await client.get(bad)
    with pytest.raises(ValueError, match="not a silence ID"):
        await client.expire(bad)
    assert stub.seen == []


async def test_list_active_sends_filters_and_keeps_active_ones(
    stub: AlertmanagerStub, client: SilenceClient
) -> None:
    other = "11111111-2222-4333-8444-555555555555"
    stub.reply(200, [silence("expired"), silence("active", other), silence("pending")])
    matchers = matchers_for_incident({"alertname": "A", "namespace": 'we"ird'})
    found = await client.list_active(matchers)
    assert [s["id"] for s in found] == [other]
    assert stub.seen[0].query == [("filter", 'alertname="A"'), ("filter", 'namespace="we\\"ird"')]


async def test_base_url_with_a_route_prefix(
    stub: AlertmanagerStub, session: aiohttp.ClientSession
) -> None:
    stub.reply(200, [])
    prefixed = SilenceClient(stub.base_url + "/alertmanager/", session)
    assert await prefixed.list_active([]) == []
    assert stub.seen[0].path == "/alertmanager/api/v2/silences"


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("status", "body", "content_type", "message"),
    [
        # Alertmanager's own validation: a JSON string.
        (
            400,
            '"silence invalid: at least one matcher must not match the empty string"\n',
            "application/json",
            "silence invalid: at least one matcher must not match the empty string",
        ),
        # go-swagger's body validation.
        (
            422,
            '{"code":612,"message":"matchers in body should have at least 1 items"}',
            "application/json",
            "matchers in body should have at least 1 items",
        ),
        # A proxy in front of Alertmanager.
        (502, "<html>Bad Gateway</html>", "text/html", "<html>Bad Gateway</html>"),
        (503, "", "text/plain", "Service Unavailable"),
    ],
)
async def test_create_errors_carry_alertmanagers_message_and_status(
    stub: AlertmanagerStub,
    client: SilenceClient,
    status: int,
    body: str,
    content_type: str,
    message: str,
) -> None:
    stub.reply(status, body, content_type=content_type)
    error = await failure(client.create(matchers_for_incident(CRASHLOOP), "1h", "a", "c"))
    assert (error.operation, error.status, error.message) == ("create silence", status, message)
    assert message in str(error) and f"HTTP {status}" in str(error)
    assert not error.not_found


async def test_unknown_ids_are_not_found_for_get_and_expire(
    stub: AlertmanagerStub, client: SilenceClient
) -> None:
    stub.reply(404, "")  # GET: empty 404
    stub.reply(500, '"silence not found"\n')  # DELETE: Alertmanager 0.25 answers 500
    get_error = await failure(client.get(SID))
    assert get_error.status == 404 and get_error.not_found
    assert get_error.message == "silence not found"
    expire_error = await failure(client.expire(SID))
    assert expire_error.status == 500 and expire_error.not_found


async def test_malformed_success_bodies_are_errors(
    stub: AlertmanagerStub, client: SilenceClient
) -> None:
    stub.reply(200, {"id": SID})  # no silenceID
    stub.reply(200, "<html>login</html>", content_type="text/html")
    stub.reply(200, {"silences": []})
    stub.reply(200, [{"id": SID}])
    matchers = matchers_for_incident(CRASHLOOP)
    assert "no silenceID" in (await failure(client.create(matchers, "1h", "a", "c"))).message
    assert "not JSON" in (await failure(client.get(SID))).message
    assert "not a list" in (await failure(client.list_active(matchers))).message
    assert "malformed" in (await failure(client.list_active(matchers))).message


async def test_unreachable_alertmanager(session: aiohttp.ClientSession) -> None:
    client = SilenceClient(f"http://127.0.0.1:{free_port()}", session, timeout=2)
    error = await failure(client.get(SID))
    assert error.status is None and error.message.startswith("unreachable")
    assert "no answer" in str(error)


async def test_slow_alertmanager_times_out(
    stub: AlertmanagerStub, session: aiohttp.ClientSession
) -> None:
    stub.reply(200, [], delay=5.0)
    client = SilenceClient(stub.base_url, session, timeout=0.2)
    error = await failure(client.list_active(matchers_for_incident(CRASHLOOP)))
    assert error.status is None and error.message == "timed out after 0.2 s"


async def test_client_needs_a_url(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="no Alertmanager URL"):
        SilenceClient("", session)
