from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import PayloadError
from bot.webhook import alert_fingerprint, body_digest, parse_webhook
from tests.conftest import make_alert, make_webhook

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_real_alertmanager_payloads_parse() -> None:
    firing = parse_webhook((FIXTURES / "alertmanager-firing.json").read_bytes())
    resolved = parse_webhook((FIXTURES / "alertmanager-resolved.json").read_bytes())
    assert firing.alerts[0].endsAt is None
    assert resolved.alerts[0].endsAt is not None
    assert firing.alerts[0].fingerprint == resolved.alerts[0].fingerprint


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("alerts"), "alerts"),
        (lambda d: d.update(alerts=[]), "alerts"),
        (lambda d: d.update(status="weird"), "status"),
        (lambda d: d.update(version="3"), "version"),
        (lambda d: d["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda d: d["alerts"][0].update(labels={}), "alerts[0].labels"),
        (lambda d: d["alerts"][0].update(labels={"a": 1}), "alerts[0].labels.a"),
        (lambda d: d["alerts"][0].update(status=None), "alerts[0].status"),
    ],
)
def test_errors_name_the_field(mutate: Any, field: str) -> None:
    body = make_webhook(make_alert())
    mutate(body)
    with pytest.raises(PayloadError) as info:
        parse_webhook(json.dumps(body))
    assert info.value.field == field


@pytest.mark.parametrize("body", [b"", b"[]", b"not json", b'"x"', b"\xff\xfe"])
def test_garbage_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_webhook(body)


def test_fingerprint_derived_when_missing() -> None:
    alert = make_alert(fingerprint="")
    parsed = parse_webhook(make_webhook(alert)).alerts[0]
    assert len(alert_fingerprint(parsed)) == 16
    again = parse_webhook(make_webhook(make_alert(fingerprint=""))).alerts[0]
    assert alert_fingerprint(parsed) == alert_fingerprint(again)


def test_digest_is_over_raw_bytes() -> None:
    body = json.dumps(make_webhook(make_alert())).encode()
    assert body_digest(body) == body_digest(bytes(body))
    assert body_digest(body) != body_digest(body + b" ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_fuzz_any_json_parses_or_raises_payload_error(value: Any) -> None:
    try:
        parse_webhook(json.dumps(value))
    except PayloadError:
        pass


@given(st.binary(max_size=200))
def test_fuzz_any_bytes_parse_or_raise_payload_error(raw: bytes) -> None:
    try:
        parse_webhook(raw)
    except PayloadError:
        pass


@given(
    st.dictionaries(
        st.sampled_from(["status", "startsAt", "endsAt", "labels", "fingerprint", "annotations"]),
        json_values,
    )
)
def test_fuzz_alert_fields(fields: dict[str, Any]) -> None:
    body = make_webhook(make_alert())
    body["alerts"][0].update(fields)
    try:
        parse_webhook(json.dumps(body))
    except PayloadError:
        pass
