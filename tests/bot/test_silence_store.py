"""The incident's silence: its table, and how the parent message shows it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot import messages
from bot.config import Settings
from bot.incidents import IncidentEngine
from bot.silence_store import (
    IncidentSilence,
    active_silence,
    get_silence,
    mark_expired,
    record_silence,
)
from bot.store import Store
from bot.targets import ObjectRef
from bot.webhook import alert_fingerprint, parse_webhook
from tests.conftest import make_alert, make_webhook

INCIDENT = "INC_20261120_001"
SID = "6424f300-af0c-4e9e-bcb0-7572abec18c5"
AT = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)
SILENCE = IncidentSilence(INCIDENT, SID, AT + timedelta(hours=4), "U0ALICE", "", AT)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    IncidentEngine(s, Settings(default_channel="#inc"))  # creates the table
    yield s
    s.close()


def open_incident(store: Store, engine: IncidentEngine, *alerts: dict[str, Any]) -> None:
    body = json.dumps(make_webhook(*alerts))
    store.inbox_add_many([(body, body, 1000.0)])  # the body as digest: each one is new
    item = store.inbox_pending()[-1]
    payload = parse_webhook(body)
    cart: ObjectRef | None = ObjectRef("Deployment", "cart", "shop")
    objects = {alert_fingerprint(a): cart for a in payload.alerts}
    engine.apply(item.id, payload, objects, 1000.0)


def actions(payload: messages.Payload) -> list[dict[str, Any]]:
    return [e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]]


def contexts(payload: messages.Payload) -> list[str]:
    return [e["text"] for b in payload["blocks"] if b["type"] == "context" for e in b["elements"]]


# ------------------------------------------------------------------------------ the table


def test_active_silence_until_it_ends_or_is_expired(store: Store) -> None:
    assert active_silence(store, INCIDENT, AT) is None
    with store.transaction():
        record_silence(store, SILENCE)
    assert active_silence(store, INCIDENT, AT + timedelta(hours=1)) == SILENCE
    assert active_silence(store, INCIDENT, AT + timedelta(hours=4)) is None  # ended by itself
    assert active_silence(store, "INC_20261120_002", AT) is None

    assert get_silence(store, INCIDENT, SID) == SILENCE
    assert get_silence(store, "INC_20261120_002", SID) is None  # not that incident's

    later = AT + timedelta(minutes=30)
    with store.transaction():
        assert mark_expired(store, INCIDENT, SID, later)
        assert not mark_expired(store, INCIDENT, SID, later)  # once
    assert active_silence(store, INCIDENT, later) is None
    expired = get_silence(store, INCIDENT, SID)
    assert expired is not None and expired.expired_at == later
    assert not expired.active(AT)


def test_the_latest_ending_silence_is_the_one_shown(store: Store) -> None:
    longer = IncidentSilence(INCIDENT, "b" * 8, AT + timedelta(hours=24), "U0BOB", "", AT)
    with store.transaction():
        record_silence(store, SILENCE)
        record_silence(store, longer)
    assert active_silence(store, INCIDENT, AT) == longer


# ---------------------------------------------------------------------- the parent message


def incident_row(status: str = "firing") -> dict[str, Any]:
    return {
        "id": INCIDENT,
        "status": status,
        "severity": "warning",
        "object": "shop/Deployment/cart",
        "namespace": "shop",
        "alertname": "KubePodCrashLooping",
        "opened_at": "2026-11-20T10:00:00+00:00",
        "resolved_at": "2026-11-20T10:30:00+00:00" if status == "resolved" else None,
        "flapping": 0,
        "external_url": "",
    }


FIRST = {"annotations": "{}", "generator_url": ""}


def test_firing_unsilenced_parent_offers_the_three_durations() -> None:
    payload = messages.parent_message(incident_row(), FIRST, 1)
    assert [(b["text"]["text"], b["action_id"], b["value"]) for b in actions(payload)] == [
        ("Silence 1h", "silence_1h", f"{INCIDENT}|1h"),
        ("Silence 4h", "silence_4h", f"{INCIDENT}|4h"),
        ("Silence 24h", "silence_24h", f"{INCIDENT}|24h"),
    ]
    assert not any("Silenced" in c for c in contexts(payload))


def test_resolved_parent_has_no_buttons() -> None:
    assert actions(messages.parent_message(incident_row("resolved"), FIRST, 1)) == []


def test_silenced_parent_says_until_when_by_whom_and_offers_expiry() -> None:
    reason = IncidentSilence(INCIDENT, SID, AT + timedelta(hours=4), "U0ALICE", "fix <soon>", AT)
    payload = messages.parent_message(incident_row(), FIRST, 1, reason)
    assert ":no_bell: Silenced until 14:05 UTC by <@U0ALICE>: fix &lt;soon&gt;" in contexts(payload)
    [button] = actions(payload)
    assert (button["text"]["text"], button["action_id"]) == ("Expire silence", "silence_expire")
    assert button["value"] == f"{INCIDENT}|{SID}"
    # A silence that outlives the day names the day it ends.
    overnight = IncidentSilence(INCIDENT, SID, AT + timedelta(hours=24), "U0ALICE", "", AT)
    line = messages.silence_line(overnight)
    assert line == ":no_bell: Silenced until Sat 21 Nov 10:05 UTC by <@U0ALICE>"


def test_engine_updates_show_the_silence_in_force(store: Store) -> None:
    engine = IncidentEngine(store, Settings(default_channel="#inc"))
    open_incident(store, engine, make_alert(pod="cart-1", fingerprint="fp-1"))
    with store.transaction():
        # received_at of these notifications is 1000 s after the epoch: long before `until`
        record_silence(store, SILENCE)
    open_incident(store, engine, make_alert(pod="cart-2", fingerprint="fp-2"))
    update = [i for i in store.outbox_open() if i.kind == "update"][-1]
    assert any("Silenced until 14:05 UTC" in c for c in contexts(update.payload))
    assert [b["text"]["text"] for b in actions(update.payload)] == ["Expire silence"]
