"""Label and field selectors, parsed and matched the way the Kubernetes API server does.

Label selectors take the full syntax (``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``,
``a notin (x)``, ``a``, ``!a``, ``a>1``, ``a<1``, comma-separated and ANDed). Field selectors
take ``=``, ``==`` and ``!=`` on the fields each resource supports; an unsupported field is
an error, as on a real cluster, so code that works here works there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FieldSelector",
    "LabelSelector",
    "SelectorError",
    "format_label_selector",
    "supported_fields",
]


class SelectorError(ValueError):
    """A label or field selector does not parse; the message is the API server's."""


# --- label selectors -------------------------------------------------------------------------

_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY = re.compile(
    rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$"
)
_LABEL_VALUE = re.compile(rf"^({_NAME})?$")
_LABEL_TOKEN = re.compile(r"\s*(?:(==|!=|=|\(|\)|,|!|<|>)|([^\s=!(),<>]+))")
_OPERATORS = ("=", "==", "!=")


@dataclass(frozen=True, slots=True)
class _Requirement:
    key: str
    operator: str  # "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "exists":
            return value is not None
        if self.operator == "!":
            return value is None
        if self.operator == "in":
            return value is not None and value in self.values
        if self.operator == "notin":
            return value is None or value not in self.values
        try:
            have, want = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.operator == "gt" else have < want


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed label selector; the empty selector matches everything."""

    requirements: tuple[_Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse the ``labelSelector`` query parameter.

        Raises:
            SelectorError: The selector is malformed or names an invalid key or value.
        """
        return cls(tuple(_LabelParser(text).requirements()))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels is selected."""
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []  # (type, text), type "op" or "word"
        position = 0
        text = text.rstrip()
        while position < len(text):
            match = _LABEL_TOKEN.match(text, position)
            if match is None:  # pragma: no cover - the token pattern matches any character
                raise SelectorError(f"unable to parse requirement: {text[position:]!r}")
            self.tokens.append(("op", match[1]) if match[1] else ("word", match[2]))
            position = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise SelectorError(_unexpected("", expected))
        self.index += 1
        return token

    def word(self, expected: str) -> str:
        kind, text = self.take(expected)
        if kind != "word":
            raise SelectorError(_unexpected(text, expected))
        return text

    def requirements(self) -> list[_Requirement]:
        found: list[_Requirement] = []
        while self.peek() is not None:
            found.append(self.requirement())
            token = self.peek()
            if token is not None:
                if token != ("op", ","):
                    raise SelectorError(_unexpected(token[1], "',' or 'end of string'"))
                self.index += 1
                if self.peek() is None:
                    raise SelectorError(_unexpected("", "identifier after ','"))
        return found

    def requirement(self) -> _Requirement:
        if self.peek() == ("op", "!"):
            self.index += 1
            return _Requirement(_label_key(self.word("identifier")), "!")
        key = _label_key(self.word("identifier"))
        token = self.peek()
        if token is None or token == ("op", ","):
            return _Requirement(key, "exists")
        kind, text = self.take("operator")
        if kind == "op" and text in _OPERATORS:
            following = self.peek()
            value = self.word("value") if following and following[0] == "word" else ""
            return _Requirement(key, "notin" if text == "!=" else "in", (_label_value(value),))
        if kind == "op" and text in "<>":
            value = self.word("integer")
            if not re.fullmatch(r"-?\d+", value):
                raise SelectorError(
                    f"unable to parse requirement: for '{text}', '{value}' is not an integer"
                )
            return _Requirement(key, "gt" if text == ">" else "lt", (value,))
        if kind == "word" and text in ("in", "notin"):
            return _Requirement(key, text, self.value_set(text))
        raise SelectorError(_unexpected(text, "in, notin, =, ==, !=, gt, lt"))

    def value_set(self, operator: str) -> tuple[str, ...]:
        kind, text = self.take("'('")
        if (kind, text) != ("op", "("):
            raise SelectorError(_unexpected(text, "'('"))
        values: list[str] = []
        while True:
            token = self.peek()
            values.append(_label_value(self.word("value")) if token and token[0] == "word" else "")
            kind, text = self.take("')'")
            if (kind, text) == ("op", ")"):
                break
            if (kind, text) != ("op", ","):
                raise SelectorError(_unexpected(text, "',' or ')'"))
        if values == [""]:
            raise SelectorError(
                f"unable to parse requirement: for '{operator}' operator, values set can't be empty"
            )
        return tuple(values)


def _unexpected(found: str, expected: str) -> str:
    return f"unable to parse requirement: found '{found}', expected: {expected}"


def _label_key(key: str) -> str:
    name = key.rpartition("/")[2]
    if len(name) > 63 or len(key) > 317 or not _LABEL_KEY.match(key):
        raise SelectorError(
            f'unable to parse requirement: Invalid value: "{key}": name part must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character"
        )
    return key


def _label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise SelectorError(
            f'unable to parse requirement: Invalid value: "{value}": a valid label must be an '
            "empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character"
        )
    return value


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """Render a ``LabelSelector`` object (matchLabels/matchExpressions) as query syntax.

    This is what a ``Scale`` subresource reports in ``status.selector``.
    """
    selector = selector or {}
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(expression.get("values") or []))
        if operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            terms.append(f"{key} {operator.lower()} ({values})")
    return ",".join(terms)


# --- field selectors -------------------------------------------------------------------------

_COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
_EXTRA_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("", "Pod"): frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    ("", "Event"): frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    ("", "Node"): frozenset({"spec.unschedulable"}),
    ("", "Namespace"): frozenset({"status.phase"}),
    ("", "Secret"): frozenset({"type"}),
    ("", "ReplicationController"): frozenset({"status.replicas"}),
    ("apps", "ReplicaSet"): frozenset({"status.replicas"}),
    ("batch", "Job"): frozenset({"status.successful"}),
}
# The value a field selector sees when the object omits the field (the API server's defaults).
_FIELD_DEFAULTS = {
    "spec.hostNetwork": "false",
    "spec.unschedulable": "false",
    "spec.restartPolicy": "Always",
    "spec.schedulerName": "default-scheduler",
    "status.replicas": "0",
    "status.successful": "0",
}
_FIELD_ALIASES = {"source": "source.component"}


def supported_fields(group: str, kind: str, *, namespaced: bool) -> frozenset[str]:
    """The field selector labels a resource accepts."""
    common = _COMMON_FIELDS if namespaced else frozenset({"metadata.name"})
    return common | _EXTRA_FIELDS.get((group, kind), frozenset())


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A parsed field selector: (field, operator, value) terms, all of which must hold."""

    terms: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, text: str, supported: frozenset[str] | None = None) -> FieldSelector:
        """Parse the ``fieldSelector`` query parameter.

        Args:
            text: The selector, e.g. ``involvedObject.name=cart,type!=Normal``.
            supported: Fields the resource accepts; None accepts any field.

        Raises:
            SelectorError: A term has no operator, a bad escape, or an unsupported field.
        """
        terms: list[tuple[str, str, str]] = []
        for term in _split_unescaped(text, ","):
            if not term:
                continue
            field, operator, raw = _split_term(text, term)
            if supported is not None and field not in supported:
                raise SelectorError(f"field label not supported: {field}")
            terms.append((field, "!=" if operator == "!=" else "=", _unescape(text, raw)))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object's fields satisfy every term."""
        return all(
            (field_value(obj, field) == value) == (operator == "=")
            for field, operator, value in self.terms
        )


def field_value(obj: Mapping[str, Any], field: str) -> str:
    """A field's value as a field selector compares it (a string; ``""`` when absent)."""
    node: Any = obj
    for part in _FIELD_ALIASES.get(field, field).split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        return _FIELD_DEFAULTS.get(field, "")
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _split_term(selector: str, term: str) -> tuple[str, str, str]:
    for index in range(len(term)):
        for operator in ("!=", "==", "="):
            if term.startswith(operator, index):
                return term[:index].strip(), operator, term[index + len(operator) :]
    raise SelectorError(f"invalid selector: '{selector}'; can't understand '{term}'")


def _unescape(selector: str, value: str) -> str:
    result, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(f"invalid selector: '{selector}'; invalid escape sequence")
            result.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            result.append(char)
    if escaped:
        raise SelectorError(f"invalid selector: '{selector}'; unterminated escape sequence")
    return "".join(result)
