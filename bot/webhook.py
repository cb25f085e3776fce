"""The Alertmanager webhook (version 4) schema and its normalisation into alerts.

Alertmanager never retries a 4xx, so validation must be exact about what is *wrong* (the
400 names the field) and lenient about what is merely *unusual*: unknown keys are ignored,
a missing fingerprint is derived from the labels the way Alertmanager would.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.errors import PayloadError

# Alertmanager's "zero" time for endsAt of a firing alert.
_ZERO_TIME_PREFIX = "0001-01-01"


class AlertPayload(BaseModel):
    """One alert inside a notification."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # noqa: N815 - wire name
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""

    @field_validator("endsAt", mode="before")
    @classmethod
    def _zero_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and (not value or value.startswith(_ZERO_TIME_PREFIX)):
            return None
        return value

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp needs a time zone (RFC 3339)")
        return value.astimezone(UTC)

    @field_validator("labels")
    @classmethod
    def _has_labels(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("an alert needs at least one label")
        return value


class WebhookPayload(BaseModel):
    """A whole notification as Alertmanager POSTs it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: str = "4"
    groupKey: str = ""  # noqa: N815
    truncatedAlerts: int = 0  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[AlertPayload] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _version_4(cls, value: str) -> str:
        if value != "4":
            raise ValueError(f"unsupported webhook version {value!r}; Alertmanager sends '4'")
        return value


def parse_webhook(body: bytes | str | dict[str, Any]) -> WebhookPayload:
    """Parse and validate a webhook body.

    Raises:
        PayloadError: naming the first bad field (``alerts[0].startsAt``) or ``body``.
    """
    try:
        if isinstance(body, bytes | str):
            # pydantic's own JSON parser: one pass, no intermediate dict (this is the hot path)
            return WebhookPayload.model_validate_json(body)
        if not isinstance(body, dict):
            raise PayloadError("body", "must be a JSON object")
        return WebhookPayload.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PayloadError(_loc(first["loc"]) or "body", first["msg"]) from None


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def alert_fingerprint(alert: AlertPayload) -> str:
    """The alert's fingerprint, derived from its labels when Alertmanager did not send one."""
    if alert.fingerprint:
        return alert.fingerprint
    canon = json.dumps(sorted(alert.labels.items()), separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def body_digest(body: bytes) -> str:
    """The digest used to recognise a re-delivered notification at the inbox.

    Over the raw bytes: Alertmanager re-sends a notification byte for byte. A copy that
    differs only in formatting is stored once more but changes nothing, because every alert
    state event is applied once (``IncidentEngine``).
    """
    return hashlib.sha256(body).hexdigest()
