"""What a change does to an object, as short human lines for the approval thread.

``object_diff(before, after)`` walks two API objects and names every leaf that differs::

    spec.template.spec.containers[cart].resources.limits.memory: 256Mi → 512Mi
    spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]: (none) → 2026-…

Fields the API server changes on every write (resourceVersion, generation, managedFields,
creationTimestamp, uid) and ``status`` are ignored: they are not the change. List items
that carry a ``name`` (containers, env, ports, volumes) are matched by name, so inserting a
container does not show every later one as changed. Values are masked with
:func:`bot.masking.mask` (an env value named like a secret with :func:`mask_env`), because
these lines go to Slack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from bot.masking import mask, mask_env

MAX_LINES = 30
MAX_VALUE = 100
_IGNORED_METADATA = frozenset(
    {"resourceVersion", "generation", "managedFields", "creationTimestamp", "uid", "selfLink"}
)
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ENV_VALUE = re.compile(r"\.env\[(?P<name>[^\]]+)\]\.value$")
_ABSENT = object()


def object_diff(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    max_lines: int = MAX_LINES,
) -> list[str]:
    """Human lines naming each changed field, ``path: old → new``; ``[]`` when equal.

    Args:
        before: The object as it was (None: it did not exist).
        after: The object as it is or would be (None: it is gone).
        max_lines: At most this many lines; the last one then says how many were left out.
    """
    lines = list(_walk("", _trim(before), _trim(after)))
    if len(lines) > max_lines:
        left = len(lines) - (max_lines - 1)
        lines = [*lines[: max_lines - 1], f"… and {left} more changes"]
    return lines


def _trim(obj: Mapping[str, Any] | None) -> Any:
    if obj is None:
        return _ABSENT
    out = {key: value for key, value in obj.items() if key != "status"}
    metadata = out.get("metadata")
    if isinstance(metadata, Mapping):
        out["metadata"] = {k: v for k, v in metadata.items() if k not in _IGNORED_METADATA}
    return out


def _walk(path: str, old: Any, new: Any) -> Iterator[str]:
    if old == new:
        return
    old_map = {} if old is _ABSENT or old is None else old
    new_map = {} if new is _ABSENT or new is None else new
    if isinstance(old_map, Mapping) and isinstance(new_map, Mapping):
        for key in sorted(set(old_map) | set(new_map)):
            yield from _walk(
                _join(path, str(key)), old_map.get(key, _ABSENT), new_map.get(key, _ABSENT)
            )
        return
    old_list = [] if old is _ABSENT or old is None else old
    new_list = [] if new is _ABSENT or new is None else new
    if isinstance(old_list, list) and isinstance(new_list, list):
        yield from _walk_list(path, old_list, new_list)
        return
    yield _line(path, old, new)


def _walk_list(path: str, old: list[Any], new: list[Any]) -> Iterator[str]:
    old_named, new_named = _by_name(old), _by_name(new)
    if old_named is not None and new_named is not None:
        order = list(old_named) + [name for name in new_named if name not in old_named]
        for name in order:
            before, after = old_named.get(name, _ABSENT), new_named.get(name, _ABSENT)
            item_path = f"{path}[{name}]"
            if before is _ABSENT or after is _ABSENT:
                if before != after:
                    yield _line(item_path, before, after)
            else:
                yield from _walk(item_path, before, after)
        return
    for index in range(max(len(old), len(new))):
        before = old[index] if index < len(old) else _ABSENT
        after = new[index] if index < len(new) else _ABSENT
        if before is _ABSENT or after is _ABSENT:
            yield _line(f"{path}[{index}]", before, after)
        else:
            yield from _walk(f"{path}[{index}]", before, after)


def _by_name(items: list[Any]) -> dict[str, Any] | None:
    """Items keyed by their ``name`` when every item has a distinct one, else None."""
    named: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            return None
        if item["name"] in named:
            return None
        named[item["name"]] = item
    return named


def _join(path: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _line(path: str, old: Any, new: Any) -> str:
    env = _ENV_VALUE.search(path)
    return f"{path}: {_render(old, env)} → {_render(new, env)}"


def _render(value: Any, env: re.Match[str] | None) -> str:
    if value is _ABSENT or value is None:
        return "(none)"
    if isinstance(value, str):
        text = mask_env(env.group("name"), value) if env else mask(value)
    elif isinstance(value, bool | int | float):
        text = json.dumps(value)
    else:
        text = mask(json.dumps(value, separators=(",", ":"), sort_keys=True))
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"
