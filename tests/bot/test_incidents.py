"""The incident engine on an in-memory store: grouping, dedupe, resolve, flapping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.config import Settings
from bot.incidents import IncidentEngine
from bot.store import Store
from bot.targets import ObjectRef
from bot.webhook import alert_fingerprint, parse_webhook
from tests.conftest import make_alert, make_webhook

CART = ObjectRef("Deployment", "cart", "shop")


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    yield s
    s.close()


@pytest.fixture
def engine(store: Store) -> IncidentEngine:
    return IncidentEngine(store, Settings(default_channel="#inc"))


class Feeder:
    def __init__(self, store: Store, engine: IncidentEngine) -> None:
        self.store = store
        self.engine = engine
        self.sent = 0

    def send(self, *alerts: dict[str, Any], obj: ObjectRef | None = CART) -> Any:
        body = json.dumps(make_webhook(*alerts))
        self.sent += 1  # unique digests: these tests exercise the engine, not the inbox
        self.store.inbox_add_many([(f"d{self.sent}", body, 1000.0)])
        item = self.store.inbox_pending()[-1]
        payload = parse_webhook(body)
        objects = {alert_fingerprint(a): obj for a in payload.alerts}
        return self.engine.apply(item.id, payload, objects, 1000.0)

    def outbox(self) -> list[tuple[str, str]]:
        return [(i.kind, i.payload["text"]) for i in self.store.outbox_open()]


@pytest.fixture
def feed(store: Store, engine: IncidentEngine) -> Feeder:
    return Feeder(store, engine)


def test_new_alert_opens_incident_with_parent(feed: Feeder, store: Store) -> None:
    applied = feed.send(make_alert(pod="cart-7d9f8b6c4-x2x9q"))
    assert applied.new_incidents == ["INC_20261120_001"]
    incident = store.get_incident("INC_20261120_001")
    assert incident is not None
    assert incident["object"] == "shop/Deployment/cart"
    assert incident["channel"] == "#inc"
    assert [k for k, _ in feed.outbox()] == ["parent"]
    assert store.inbox_depth() == 0


def test_same_event_twice_changes_nothing(feed: Feeder, store: Store) -> None:
    feed.send(make_alert())
    again = feed.send(make_alert())
    assert again.duplicates == 1 and again.processed == 0 and again.queued_messages == 0
    assert len(store.incidents()) == 1


def test_pods_of_one_workload_group_into_one_incident(feed: Feeder, store: Store) -> None:
    applied = feed.send(
        make_alert(fingerprint="a", pod="cart-7d9f8b6c4-x2x9q"),
        make_alert(fingerprint="b", pod="cart-7d9f8b6c4-q7m2k"),
    )
    assert len(applied.new_incidents) == 1
    assert [k for k, _ in feed.outbox()] == ["parent"]  # one parent listing both, no chatter
    assert len(store.incident_alerts(applied.new_incidents[0])) == 2


def test_later_alert_joins_with_reply_and_update(feed: Feeder) -> None:
    feed.send(make_alert(fingerprint="a", pod="cart-1"))
    feed.send(make_alert(fingerprint="b", pod="cart-2"))
    kinds = [k for k, _ in feed.outbox()]
    assert kinds == ["parent", "reply", "update"]
    assert "pod=cart-2" in feed.outbox()[1][1]


def test_different_workloads_or_alertnames_are_separate(feed: Feeder, store: Store) -> None:
    feed.send(make_alert(fingerprint="a"), obj=CART)
    feed.send(make_alert(fingerprint="b"), obj=ObjectRef("Deployment", "web", "shop"))
    feed.send(make_alert(fingerprint="c", alertname="KubePodNotReady"), obj=CART)
    assert len(store.incidents()) == 3


def test_resolve_all_alerts_resolves_incident(feed: Feeder, store: Store) -> None:
    feed.send(make_alert(fingerprint="a"), make_alert(fingerprint="b"))
    feed.send(make_alert(fingerprint="a", status="resolved", ends_at="2026-11-20T10:05:00Z"))
    assert store.incidents()[0]["status"] == "firing"
    assert "1 of 2 alerts in this incident firing" in feed.outbox()[-1][1]
    feed.send(make_alert(fingerprint="b", status="resolved", ends_at="2026-11-20T10:14:00Z"))
    incident = store.incidents()[0]
    assert incident["status"] == "resolved"
    texts = [t for _, t in feed.outbox()]
    assert any("Resolved after 14m" in t for t in texts)
    assert feed.outbox()[-1][0] == "update"
    assert "Resolved" in feed.outbox()[-1][1]


def test_resolved_for_unknown_alert_is_ignored(feed: Feeder, store: Store) -> None:
    applied = feed.send(make_alert(status="resolved", ends_at="2026-11-20T10:05:00Z"))
    assert applied.processed == 1 and not applied.new_incidents
    assert store.incidents() == []


def _cycle(feed: Feeder, minute: int) -> None:
    start = f"2026-11-20T10:{minute:02d}:00Z"
    feed.send(make_alert(starts_at=start))
    feed.send(
        make_alert(
            starts_at=start, status="resolved", ends_at=f"2026-11-20T10:{minute + 1:02d}:00Z"
        )
    )


def test_flapping_pauses_notifications_with_one_notice(feed: Feeder, store: Store) -> None:
    for minute in (0, 4, 8):
        _cycle(feed, minute)
    assert len(store.incidents()) == 1  # re-fires reopen, never duplicate
    before = len(feed.outbox())
    _cycle(feed, 12)  # the 4th fire after 3 full cycles in 30 min
    _cycle(feed, 16)
    new = feed.outbox()[before:]
    replies = [t for k, t in new if k == "reply"]
    assert len(replies) == 1 and "Flapping" in replies[0]
    assert all(k == "update" for k, t in new if "Flapping" not in t)
    assert store.incidents()[0]["flapping"] == 1


def test_flapping_ends_when_cycles_leave_the_window(feed: Feeder, store: Store) -> None:
    for minute in (0, 2, 4, 6):
        _cycle(feed, minute)
    assert store.incidents()[0]["flapping"] == 1
    # Resolved at 10:07, fires again at 10:35: inside the 30 min reopen window, but only
    # one earlier fire (10:06) is within 30 min of 10:35.
    feed.send(make_alert(starts_at="2026-11-20T10:35:00Z"))
    assert store.incidents()[0]["flapping"] == 0
    assert "notifications resumed" in feed.outbox()[-2][1]


def test_refire_after_window_opens_new_incident(feed: Feeder, store: Store) -> None:
    _cycle(feed, 0)
    feed.send(make_alert(starts_at="2026-11-20T11:30:00Z"))
    assert len(store.incidents()) == 2


def test_higher_severity_raises_incident(feed: Feeder, store: Store) -> None:
    feed.send(make_alert(fingerprint="a"))
    critical = make_alert(fingerprint="b")
    critical["labels"]["severity"] = "critical"
    feed.send(critical)
    assert store.incidents()[0]["severity"] == "critical"


def test_failed_apply_rolls_back_everything(store: Store, engine: IncidentEngine) -> None:
    body = json.dumps(make_webhook(make_alert()))
    store.inbox_add_many([("d", body, 1.0)])
    item = store.inbox_pending()[0]
    payload = parse_webhook(body)

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("disk on fire")

    engine._queue = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        engine.apply(item.id, payload, {}, 1.0)
    assert store.incidents() == [] and store.outbox_open() == []
    assert store.inbox_depth() == 1


def test_joins_are_one_reply_per_notification(feed: Feeder) -> None:
    feed.send(make_alert(fingerprint="first", pod="cart-0"))
    feed.send(*(make_alert(fingerprint=f"p{i}", pod=f"cart-{i}") for i in range(1, 9)))
    replies = [t for k, t in feed.outbox() if k == "reply"]
    assert len(replies) == 1
    assert "(+3 more)" in replies[0] and "9 of 9 alerts in this incident" in replies[0]


def test_big_incidents_stop_announcing_joins(feed: Feeder) -> None:
    feed.send(*(make_alert(fingerprint=f"p{i}", pod=f"cart-{i}") for i in range(25)))
    feed.send(make_alert(fingerprint="late", pod="cart-late"))
    kinds = [k for k, _ in feed.outbox()]
    assert kinds == ["parent", "update"]
