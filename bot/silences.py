"""Alertmanager silences for an incident, through Alertmanager's API v2.

:class:`SilenceClient` creates, reads, lists and expires silences::

    POST   /api/v2/silences          {matchers, startsAt, endsAt, createdBy, comment}
                                     → 200 {"silenceID": "<uuid>"}
    GET    /api/v2/silence/{id}      → 200 gettableSilence (status.state active|pending|expired)
    DELETE /api/v2/silence/{id}      → 200 (also for an already expired silence)
    GET    /api/v2/silences?filter=name="value"&filter=…  → silences having all those matchers

Alertmanager answers errors as a JSON string (``"silence invalid: …"``, 400), as a
go-swagger object (``{"code": 612, "message": "…"}``, 400/422) or with no body (404 for an
unknown ID on GET). Alertmanager 0.25 answers ``DELETE`` of an unknown ID with 500
``"silence not found"``; :attr:`SilenceError.not_found` covers both spellings.

Which labels a silence matches is decided once, in :func:`matchers_for_incident`.

Errors::

    IncidentBotError
    └── SilenceError   Alertmanager answered an error, a malformed body, or was unreachable
                       (carries the operation, Alertmanager's message and the HTTP status)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypedDict, TypeGuard
from urllib.parse import quote

import aiohttp

from bot.errors import IncidentBotError

__all__ = [
    "DURATIONS",
    "MAX_DURATION",
    "GettableSilence",
    "Matcher",
    "SilenceClient",
    "SilenceError",
    "matcher_filter",
    "matchers_for_incident",
    "parse_duration",
    "silence_comment",
    "silence_creator",
]

# The durations offered in Slack; parse_duration accepts any other within MAX_DURATION.
DURATIONS: Final = ("1h", "4h", "24h")
MAX_DURATION: Final = timedelta(days=7)
_DURATION: Final = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")
_MESSAGE_CHARS: Final = 300
# (isEqual, isRegex) -> Alertmanager's matcher operator.
_OPERATORS: Final = {
    (True, False): "=",
    (True, True): "=~",
    (False, False): "!=",
    (False, True): "!~",
}

# Labels that name the object an alert is about and do not change when its pods are replaced.
# A CronJob's Jobs are named per run, so ``job_name`` only counts without a ``cronjob`` label.
_WORKLOAD_LABELS: Final = ("deployment", "statefulset", "daemonset", "cronjob", "job_name")
_OBJECT_LABELS: Final = (
    *_WORKLOAD_LABELS,
    "horizontalpodautoscaler",
    "persistentvolumeclaim",
    "service",
    "node",
)
_SCOPE_LABELS: Final = ("cluster", "namespace", "severity", "container")


class Matcher(TypedDict):
    """One Alertmanager API v2 matcher (``isEqual`` false means ``!=`` / ``!~``)."""

    name: str
    value: str
    isRegex: bool
    isEqual: bool


class SilenceStatus(TypedDict):
    """``status`` of a silence: ``state`` is ``active``, ``pending`` or ``expired``."""

    state: str


class GettableSilence(TypedDict):
    """A silence as Alertmanager returns it (``gettableSilence``)."""

    id: str
    status: SilenceStatus
    updatedAt: str
    matchers: list[Matcher]
    startsAt: str
    endsAt: str
    createdBy: str
    comment: str


class SilenceError(IncidentBotError):
    """Alertmanager refused a silence request, answered nonsense, or could not be reached.

    Attributes:
        operation: What was attempted, e.g. ``"create silence"``.
        message: Alertmanager's own message (or the connection problem).
        status: The HTTP status, ``None`` when no HTTP answer came.
    """

    def __init__(self, operation: str, message: str, *, status: int | None = None) -> None:
        self.operation = operation
        self.message = message
        self.status = status
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"alertmanager: {operation} failed ({where}): {message}")

    @property
    def not_found(self) -> bool:
        """Whether the silence does not exist (404, or 0.25's 500 on DELETE)."""
        return self.status == 404 or self.message == "silence not found"


def parse_duration(text: str) -> timedelta:
    """Parse a silence duration such as ``"4h"``, ``"90m"``, ``"1d"`` or ``"1h30m"``.

    Raises:
        ValueError: Not of that form, zero, or longer than :data:`MAX_DURATION`.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or not any(match.groups()):
        raise ValueError(f"bad duration {text!r}; use e.g. {', '.join(DURATIONS)}")
    days, hours, minutes = (int(group or 0) for group in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes)
    if duration <= timedelta(0):
        raise ValueError(f"duration must be positive: {text!r}")
    if duration > MAX_DURATION:
        raise ValueError(f"duration {text!r} is longer than {MAX_DURATION.days} days")
    return duration


def matchers_for_incident(labels: Mapping[str, str]) -> list[Matcher]:
    """The matchers of a silence for the incident an alert with ``labels`` belongs to.

    The silence must keep matching the *same* problem when it fires again, and nothing else:

    * ``alertname`` always (required);
    * the scope: ``cluster``, ``namespace``, ``severity`` (a critical escalation of a
      silenced warning still pages) and ``container`` (a container's name is part of the
      pod spec, so it survives pod replacement);
    * the object: ``deployment``, ``statefulset``, ``daemonset``, ``cronjob``, ``job_name``
      (dropped when ``cronjob`` is present: each run's Job has a new name),
      ``horizontalpodautoscaler``, ``persistentvolumeclaim``, ``service``, ``node``;
    * ``pod`` only when no workload label (deployment … job_name) names the controller:
      pod names change on every restart of a controller's pods, but without the pod the
      silence would cover the alert for the whole namespace;
    * nothing else: not volatile labels (``instance``, ``endpoint``, ``uid``,
      ``pod_template_hash``, container/image IDs, ``reason``), not ``job``/``prometheus``
      (which scraper saw it) and never ``__``-prefixed ones.

    Labels with empty values are skipped (an equality matcher on ``""`` matches a missing
    label). Every matcher is an exact equality: ``isEqual`` true, ``isRegex`` false.

    Raises:
        ValueError: ``labels`` has no ``alertname`` -- a silence needs one to be narrow.
    """
    if not labels.get("alertname", "").strip():
        raise ValueError("the alert has no alertname; refusing to build a broad silence")
    names = ["alertname", *_SCOPE_LABELS, *_OBJECT_LABELS]
    if labels.get("cronjob"):
        names.remove("job_name")
    if not any(labels.get(name) for name in _WORKLOAD_LABELS):
        names.append("pod")
    return [_equal(name, labels[name]) for name in names if labels.get(name)]


def _equal(name: str, value: str) -> Matcher:
    return {"name": name, "value": value, "isRegex": False, "isEqual": True}


def matcher_filter(matcher: Matcher) -> str:
    """``matcher`` in Alertmanager's filter syntax, e.g. ``namespace="shop"``.

    The value is double-quoted with ``\\``, ``"`` and newlines escaped, as Alertmanager's
    matcher parser expects.
    """
    operator = _OPERATORS[matcher["isEqual"], matcher["isRegex"]]
    value = matcher["value"].replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{matcher["name"]}{operator}"{value}"'


def silence_creator(user_name: str, user_id: str) -> str:
    """``createdBy`` for a Slack user: ``"alice (U012ABC)"``."""
    name = user_name.strip() or "unknown user"
    return f"{name} ({user_id})" if user_id else name


def silence_comment(reason: str, incident_id: str) -> str:
    """``comment`` of a silence: the user's reason and the incident it belongs to."""
    text = " ".join(reason.split()) or "silenced from Slack"
    return f"{text} [incident {incident_id}, via incident-bot]"


def _rfc3339(moment: datetime) -> str:
    """``moment`` in UTC with milliseconds and a ``Z`` (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_silence(obj: Any) -> TypeGuard[GettableSilence]:
    """Whether ``obj`` looks like a gettableSilence (has an ID and a status state)."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("id"), str)
        and isinstance(obj.get("status"), dict)
        and isinstance(obj["status"].get("state"), str)
    )


def _check_id(silence_id: str) -> str:
    """``silence_id`` if it is a UUID (Alertmanager's IDs are), for a safe URL path."""
    try:
        uuid.UUID(silence_id)
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"not a silence ID: {silence_id!r}") from None
    return quote(silence_id, safe="")


def _error_message(status: int, reason: str | None, text: str) -> str:
    """Alertmanager's message out of an error body (JSON string, swagger object or text)."""
    body: Any = text
    try:
        body = json.loads(text)
    except ValueError:
        pass
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or json.dumps(body)
    message = " ".join(str(body).split())
    if not message:
        message = "silence not found" if status == 404 else (reason or "no message")
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 1] + "…"
    return message


class SilenceClient:
    """Creates, reads, lists and expires silences in one Alertmanager.

    Args:
        base_url: Alertmanager's base URL (``http://alertmanager:9093``, or with the path
            prefix of ``--web.route-prefix``); ``/api/v2/…`` is appended.
        session: The aiohttp session to send requests with (owned by the caller).
        timeout: Seconds allowed per request.
    """

    def __init__(self, base_url: str, session: aiohttp.ClientSession, timeout: float = 5) -> None:
        if not base_url:
            raise ValueError("no Alertmanager URL configured")
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = timeout

    async def create(
        self,
        matchers: Sequence[Matcher],
        duration: timedelta | str,
        created_by: str,
        comment: str,
        now: datetime | None = None,
    ) -> str:
        """Create a silence from ``now`` for ``duration``.

        Args:
            matchers: Usually :func:`matchers_for_incident`; must not be empty.
            duration: A :class:`~datetime.timedelta` or text for :func:`parse_duration`.
            created_by: Who silenced (see :func:`silence_creator`).
            comment: Why (see :func:`silence_comment`).
            now: Start of the silence; the wall clock by default.

        Returns:
            The new silence's ID.

        Raises:
            ValueError: No matchers, only matchers that also match a missing label (such a
                silence would mute every alert), a bad duration, or no creator/comment.
            SilenceError: Alertmanager refused it or could not be reached.
        """
        if not matchers:
            raise ValueError("refusing a silence without matchers: it would silence everything")
        if not any(m["value"] and m["isEqual"] and not m["isRegex"] for m in matchers):
            raise ValueError("refusing a silence whose matchers all match an empty label")
        if not created_by.strip() or not comment.strip():
            raise ValueError("a silence needs its creator and a comment")
        span = parse_duration(duration) if isinstance(duration, str) else duration
        if span <= timedelta(0):
            raise ValueError(f"duration must be positive: {span}")
        start = now or datetime.now(UTC)
        body = {
            "matchers": [dict(m) for m in matchers],
            "startsAt": _rfc3339(start),
            "endsAt": _rfc3339(start + span),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = await self._request("create silence", "POST", "/silences", json_body=body)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise SilenceError("create silence", f"no silenceID in {answer!r:.200}", status=200)
        return silence_id

    async def expire(self, silence_id: str) -> None:
        """Expire a silence now; expiring an already expired one is not an error.

        Raises:
            ValueError: ``silence_id`` is not a UUID.
            SilenceError: Unknown ID (:attr:`SilenceError.not_found`), or any other failure.
        """
        path = f"/silence/{_check_id(silence_id)}"
        await self._request("expire silence", "DELETE", path)

    async def get(self, silence_id: str) -> GettableSilence:
        """One silence; ``result["status"]["state"]`` is ``active``, ``pending`` or ``expired``.

        Raises:
            ValueError: ``silence_id`` is not a UUID.
            SilenceError: Unknown ID (status 404), or any other failure.
        """
        answer = await self._request("get silence", "GET", f"/silence/{_check_id(silence_id)}")
        if not _is_silence(answer):
            raise SilenceError("get silence", f"malformed silence {answer!r:.200}", status=200)
        return answer

    async def list_active(self, matchers: Sequence[Matcher]) -> list[GettableSilence]:
        """Active silences that have every one of ``matchers`` (and possibly more).

        Alertmanager compares matchers literally (name, value and operator), so pass the
        matchers a silence was created with, e.g. :func:`matchers_for_incident` again.

        Raises:
            SilenceError: Alertmanager refused the filter or could not be reached.
        """
        params = [("filter", matcher_filter(m)) for m in matchers]
        answer = await self._request("list silences", "GET", "/silences", params=params)
        if not isinstance(answer, list):
            raise SilenceError("list silences", f"not a list: {answer!r:.200}", status=200)
        active: list[GettableSilence] = []
        for item in answer:
            if not _is_silence(item):
                raise SilenceError("list silences", f"malformed silence {item!r:.200}", status=200)
            if item["status"]["state"] == "active":
                active.append(item)
        return active

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Sequence[tuple[str, str]] = (),
    ) -> Any:
        """Send one request; the decoded JSON answer (``None`` for an empty 200 body)."""
        url = f"{self.base_url}/api/v2{path}"
        try:
            async with self.session.request(
                method,
                url,
                json=json_body,
                params=list(params),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                text = await response.text(errors="replace")
                status, reason = response.status, response.reason
        except TimeoutError:
            raise SilenceError(operation, f"timed out after {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise SilenceError(operation, f"unreachable: {exc or type(exc).__name__}") from exc
        if status != 200:
            raise SilenceError(operation, _error_message(status, reason, text), status=status)
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise SilenceError(operation, f"not JSON: {text[:200]!r}", status=status) from None
