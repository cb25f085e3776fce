"""Scenario files: one frozen incident (webhook, cluster state, logs, metrics).

The file format is contract §1 (``/work/shared/spec/CONTRACTS.md``). :func:`load_scenario`
reads and validates a file; :func:`parse_scenario` validates data that is already loaded.
Every problem is reported as one :class:`ScenarioError` naming the offending field with a
dotted path (``cluster.objects[3].metadata.name``) so a scenario author can fix it without
reading this code. Unknown keys are ignored, as the contract requires.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Scenario", "ScenarioError", "load_scenario", "parse_scenario"]

# RFC 3339 date-time; ``datetime.fromisoformat`` alone would also accept bare dates and
# basic-format ISO 8601, which are not valid in a scenario.
_RFC3339 = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<frac>\d+))?(?P<tz>[Zz]|[+-]\d{2}:\d{2})$"
)


class ScenarioError(ValueError):
    """A scenario file is unreadable or breaks the contract.

    Attributes:
        path: The file the scenario came from, or ``"<scenario>"`` for in-memory data.
        field: Dotted path of the offending field (``"now"``, ``"cluster.objects[3].kind"``),
            ``"<file>"`` when the file itself cannot be read or parsed, ``"<root>"`` when
            the document is not a mapping.
        problem: What is wrong, in a few words.
    """

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        super().__init__(f"{path}: {field}: {problem}")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One incident as Alertmanager, the cluster, its logs and Prometheus saw it.

    Attributes:
        name: Unique slug.
        description: Free text for humans ("" when absent).
        now: The investigation's wall clock, timezone-aware UTC.
        webhook: The Alertmanager webhook body (only checked to hold an ``alerts`` list).
        objects: Kubernetes objects as the API returns them (timestamps as strings).
        logs: ``"<namespace>/<pod>/<container>"`` -> ``{"current": str, "previous": str}``.
        metrics: ``{"series": str, "samples": [[seconds_from_now, value], ...]}`` entries.
        expected: The evaluation answer, or None. The bot must never read it.
        path: The file the scenario was loaded from, or None.
    """

    name: str
    description: str
    now: datetime
    webhook: dict[str, Any]
    objects: list[dict[str, Any]]
    logs: dict[str, dict[str, str]]
    metrics: list[dict[str, Any]]
    expected: dict[str, Any] | None
    path: Path | None

    def rebased(self, now: datetime) -> Scenario:
        """The same incident as if it were happening at ``now``.

        Every RFC 3339 timestamp in the objects and the webhook moves by ``now - self.now``
        (creation times, events, terminations, startsAt …), so a live alert can be
        investigated against a frozen cluster without everything looking days old.
        """
        delta = now - self.now
        return dataclasses.replace(
            self,
            now=now,
            objects=[_shift(o, delta) for o in self.objects],
            webhook=_shift(self.webhook, delta),
        )


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _shift(value: Any, delta: timedelta) -> Any:
    if isinstance(value, dict):
        return {k: _shift(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(v, delta) for v in value]
    if isinstance(value, str) and _TIMESTAMP.match(value) and not value.startswith("0001-"):
        moved = datetime.fromisoformat(value.replace("Z", "+00:00")) + delta
        return moved.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file.

    Args:
        path: The YAML file.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: The file cannot be read, is not YAML, or breaks the contract.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(file), "<file>", f"cannot read: {_one_line(exc)}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(str(file), "<file>", _yaml_problem(exc)) from exc
    return parse_scenario(data, path=file)


def parse_scenario(data: object, *, path: str | Path | None = None) -> Scenario:
    """Validate already-loaded scenario data.

    Args:
        data: The document, as ``yaml.safe_load`` returns it.
        path: Where the data came from, for messages and :attr:`Scenario.path`.

    Returns:
        The validated scenario. Containers are copies; YAML timestamps inside the webhook,
        objects and ``expected`` are turned back into RFC 3339 strings.

    Raises:
        ScenarioError: The data breaks the contract.
    """
    return _Validator(path).scenario(data)


class _Validator:
    """Checks one document; each method raises ScenarioError on the first problem."""

    def __init__(self, path: str | Path | None) -> None:
        self.file = Path(path) if path is not None else None
        self.label = str(path) if path is not None else "<scenario>"

    def fail(self, field: str, problem: str) -> ScenarioError:
        return ScenarioError(self.label, field, problem)

    def mapping(self, value: object, field: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(field, f"must be a mapping, got {_type_name(value)}")
        return dict(value)

    def sequence(self, value: object, field: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(field, f"must be a list, got {_type_name(value)}")
        return value

    def string(self, value: object, field: str, *, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str):
            raise self.fail(field, f"must be a string, got {_type_name(value)}")
        if required and not value:
            raise self.fail(field, "must not be empty")
        return value

    def scenario(self, data: object) -> Scenario:
        top = self.mapping(data, "<root>")
        if "name" not in top:
            raise self.fail("name", "is required")
        name = self.string(top["name"], "name")
        description = self.string(top.get("description"), "description", required=False)
        if "now" not in top:
            raise self.fail("now", "is required")
        if "webhook" not in top:
            raise self.fail("webhook", "is required")
        cluster = self.mapping(_get(top, "cluster", {}), "cluster")
        expected = top.get("expected")
        return Scenario(
            name=name,
            description=description.strip(),
            now=self.timestamp(top["now"], "now"),
            webhook=self.webhook(top["webhook"]),
            objects=self.objects(_get(cluster, "objects", [])),
            logs=self.logs(_get(cluster, "logs", {})),
            metrics=self.metrics(_get(top, "metrics", [])),
            expected=None if expected is None else _jsonable(self.mapping(expected, "expected")),
            path=self.file,
        )

    def timestamp(self, value: object, field: str) -> datetime:
        if isinstance(value, datetime):  # an unquoted YAML timestamp
            moment = value
        elif isinstance(value, str):
            match = _RFC3339.match(value.strip())
            if match is None:
                raise self.fail(field, f"not an RFC 3339 timestamp: {value!r}")
            # fromisoformat in 3.11 takes at most microseconds and only an upper-case "Z".
            frac = (match["frac"] or "")[:6].ljust(6, "0")
            tz = "+00:00" if match["tz"] in ("Z", "z") else match["tz"]
            base = match["base"]
            try:  # still catches impossible dates such as month 13
                moment = datetime.fromisoformat(f"{base[:10]}T{base[11:]}.{frac}{tz}")
            except ValueError as exc:
                raise self.fail(field, f"not an RFC 3339 timestamp: {value!r}") from exc
        else:
            raise self.fail(field, f"must be an RFC 3339 timestamp, got {_type_name(value)}")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise self.fail(field, "timestamp needs a UTC offset (e.g. a trailing 'Z')")
        return moment.astimezone(UTC)

    def webhook(self, value: object) -> dict[str, Any]:
        webhook = self.mapping(value, "webhook")
        if "alerts" not in webhook:
            raise self.fail("webhook.alerts", "is required")
        self.sequence(webhook["alerts"], "webhook.alerts")
        result: dict[str, Any] = _jsonable(webhook)
        return result

    def objects(self, value: object) -> list[dict[str, Any]]:
        seen: dict[tuple[str, str, str, str], int] = {}
        result: list[dict[str, Any]] = []
        for index, item in enumerate(self.sequence(value, "cluster.objects")):
            field = f"cluster.objects[{index}]"
            obj = self.mapping(item, field)
            api_version = self.string(obj.get("apiVersion"), f"{field}.apiVersion")
            kind = self.string(obj.get("kind"), f"{field}.kind")
            meta = self.mapping(obj.get("metadata"), f"{field}.metadata")
            name = self.string(meta.get("name"), f"{field}.metadata.name")
            namespace = self.string(
                meta.get("namespace"), f"{field}.metadata.namespace", required=False
            )
            # Same group, kind, namespace and name is the same API object, whatever version.
            key = (api_version.rpartition("/")[0], kind, namespace, name)
            if key in seen:
                raise self.fail(
                    f"{field}.metadata.name", f"duplicates cluster.objects[{seen[key]}]"
                )
            seen[key] = index
            result.append(_jsonable(obj))
        return result

    def logs(self, value: object) -> dict[str, dict[str, str]]:
        logs = self.mapping(value, "cluster.logs")
        result: dict[str, dict[str, str]] = {}
        for key, entry in logs.items():
            field = f"cluster.logs[{key!r}]"
            parts = key.split("/") if isinstance(key, str) else []
            if len(parts) != 3 or not all(parts):
                raise self.fail(field, "key must be '<namespace>/<pod>/<container>'")
            streams = self.mapping(entry, field)
            result[key] = {
                stream: self.string(streams.get(stream), f"{field}.{stream}", required=False)
                for stream in ("current", "previous")
            }
        return result

    def metrics(self, value: object) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for index, item in enumerate(self.sequence(value, "metrics")):
            field = f"metrics[{index}]"
            entry = self.mapping(item, field)
            series = self.string(entry.get("series"), f"{field}.series")
            samples = self.sequence(entry.get("samples"), f"{field}.samples")
            for number, sample in enumerate(samples):
                if not (
                    isinstance(sample, list) and len(sample) == 2 and all(map(_is_number, sample))
                ):
                    raise self.fail(
                        f"{field}.samples[{number}]", "must be a pair [seconds, value] of numbers"
                    )
            result.append({**entry, "series": series, "samples": [list(s) for s in samples]})
        return result


def _get(mapping: dict[str, Any], key: str, default: object) -> object:
    """``mapping[key]``, with an absent key and an empty YAML value (``key:``) alike."""
    value = mapping.get(key)
    return default if value is None else value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _jsonable(value: Any) -> Any:
    """Deep-copy YAML data, turning YAML timestamps back into the strings the API sends."""
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _type_name(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return f"invalid YAML: {_one_line(exc)}"
