"""The three patch formats a Kubernetes API server applies, on plain JSON documents.

- :func:`json_patch`: RFC 6902 operations (``add``, ``remove``, ``replace``, ``move``,
  ``copy``, ``test``), with the quirks of the library the API server uses
  (``evanphx/json-patch`` v4): ``test`` against a missing member passes when the value is
  null, negative array indices count from the end.
- :func:`merge_patch`: RFC 7386 JSON merge patch.
- :func:`strategic_merge`: the strategic merge patch of built-in kinds. Lists of containers,
  volumes, env, ports, conditions and the like are merged element by element on their
  patch merge key; ``finalizers`` are merged as a set; other lists are replaced. Directives:
  ``$patch: replace|delete|merge`` (on maps and list elements), ``$retainKeys``,
  ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>``; a null deletes a key.

Every function takes and returns JSON values and never changes its arguments. Failures raise
:class:`PatchError` carrying the HTTP status the API server answers them with.
"""

from __future__ import annotations

import copy
import json
from typing import Any

__all__ = ["PatchError", "go_value", "json_patch", "merge_patch", "strategic_merge"]

# Lists merged element by element, by field name: the patch merge key of each element.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "secrets": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "hostAliases": "ip",
    "podIPs": "ip",
    "hostIPs": "ip",
    "topologySpreadConstraints": "topologyKey",
    "ownerReferences": "uid",
    "conditions": "type",
}
_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})
# Lists of scalars merged as sets.
_SET_LISTS = frozenset({"finalizers"})
_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"


class PatchError(Exception):
    """A patch the API server refuses.

    Attributes:
        status: 400 (the patch is malformed), 422 (it does not apply to the object) or 500
            (an error the API server passes through unconverted, e.g. a missing merge key).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- RFC 6902 JSON patch ---------------------------------------------------------------------


def json_patch(document: Any, operations: Any) -> Any:
    """Apply a JSON patch (a list of operations) to a copy of ``document``.

    Raises:
        PatchError: 400 when the patch is not a list of objects; 422 when an operation does
            not apply (unknown op, missing path, failed ``test``).
    """
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        kind = "object" if isinstance(operations, dict) else type(operations).__name__
        raise PatchError(
            400, f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch"
        )
    result = copy.deepcopy(document)
    for operation in operations:
        result = _apply_operation(result, operation)
    return result


def _apply_operation(document: Any, operation: dict[str, Any]) -> Any:
    op = operation.get("op")
    path = _pointer(operation.get("path"))
    value = copy.deepcopy(operation.get("value"))
    if op == "add":
        return _add(document, path, value)
    if op == "remove":
        _remove(document, path)
        return document
    if op == "replace":
        _remove(document, path)
        return _add(document, path, value)
    if op in ("move", "copy"):
        source = _pointer(operation.get("from"))
        moved = copy.deepcopy(_get(document, source))
        if op == "move":
            _remove(document, source)
        return _add(document, path, moved)
    if op == "test":
        parent, key = _parent(document, path)
        found = _child(parent, key)
        failed = PatchError(422, f"testing value /{'/'.join(path)} failed")
        if found is _MISSING or found is None:  # absent and null both pass a null test
            if value is None:
                return document
            raise failed
        if value is None or not _json_equal(found, value):
            raise failed
        return document
    raise PatchError(422, f"Unexpected kind: {op if isinstance(op, str) else 'unknown'}")


_MISSING = object()


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(422, f"invalid path: {path!r}")
    if not path:
        raise PatchError(422, "the root of the document cannot be patched")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(document: Any, path: list[str]) -> tuple[Any, str]:
    node = document
    for part in path[:-1]:
        node = _child(node, part)
        if node is _MISSING or not isinstance(node, dict | list):
            raise PatchError(422, f"doc is missing path: /{'/'.join(path)}")
    if not isinstance(node, dict | list):
        raise PatchError(422, f"doc is missing path: /{'/'.join(path)}")
    return node, path[-1]


def _child(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return node.get(key, _MISSING)
    if isinstance(node, list):
        try:
            index = _index(key, len(node), inserting=False)
        except PatchError:
            return _MISSING
        return node[index]
    return _MISSING


def _index(key: str, length: int, *, inserting: bool) -> int:
    try:
        index = int(key)
    except ValueError:
        raise PatchError(422, f"invalid array index: {key}") from None
    if index < 0:
        index += length
    if index < 0 or index > length or (index == length and not inserting):
        raise PatchError(422, f"array index out of bounds: {key}")
    return index


def _get(document: Any, path: list[str]) -> Any:
    parent, key = _parent(document, path)
    found = _child(parent, key)
    if found is _MISSING:
        raise PatchError(422, f"doc is missing key: /{'/'.join(path)}")
    return found


def _add(document: Any, path: list[str], value: Any) -> Any:
    parent, key = _parent(document, path)
    if isinstance(parent, dict):
        parent[key] = value
    elif key == "-":
        parent.append(value)
    else:
        parent.insert(_index(key, len(parent), inserting=True), value)
    return document


def _remove(document: Any, path: list[str]) -> None:
    parent, key = _parent(document, path)
    if isinstance(parent, dict):
        if key not in parent:
            raise PatchError(422, f"doc is missing key: /{'/'.join(path)}")
        del parent[key]
    else:
        del parent[_index(key, len(parent), inserting=False)]


def _json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values, where ``true`` is not ``1``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    return bool(left == right) and isinstance(left, str) == isinstance(right, str)


# --- RFC 7386 merge patch --------------------------------------------------------------------


def merge_patch(document: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge, null deletes, anything else replaces.

    Raises:
        PatchError: 400 for a null patch (the API server's "Invalid JSON Patch").
    """
    if patch is None:
        raise PatchError(400, "Invalid JSON Patch")
    return _merge(document, patch)


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


# --- strategic merge patch -------------------------------------------------------------------


def strategic_merge(document: dict[str, Any], patch: dict[str, Any], *, kind: str) -> Any:
    """Apply a strategic merge patch to a copy of a built-in object.

    Args:
        document: The current object.
        patch: The patch, a JSON object.
        kind: The object's kind (a Service's ``spec.ports`` merge on ``port``).

    Returns:
        The patched object (None if the patch deletes it with a top-level ``$patch``).

    Raises:
        PatchError: 400 for an unknown directive value; 500 for a list element without
            its merge key (as the API server passes that error through).
    """
    return _merge_map(copy.deepcopy(document), patch, (), kind)


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...], kind: str
) -> dict[str, Any] | None:
    directive = patch.get(_DIRECTIVE)
    if directive == "replace":
        replaced: dict[str, Any] = _clean({k: v for k, v in patch.items() if k != _DIRECTIVE})
        return replaced
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise PatchError(500, f"unknown patch type: {directive} in map: {go_value(patch)}")
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN_KEYS):
            continue
        if key.startswith(_ORDER):
            orders[key.removeprefix(_ORDER)] = value if isinstance(value, list) else []
        elif key.startswith(_DELETE_FROM):
            field = key.removeprefix(_DELETE_FROM)
            drop = value if isinstance(value, list) else []
            if isinstance(original.get(field), list):
                original[field] = [item for item in original[field] if item not in drop]
        elif value is None:
            original.pop(key, None)
        elif isinstance(value, dict):
            current = original.get(key)
            merged = _merge_map(
                current if isinstance(current, dict) else {}, value, (*path, key), kind
            )
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list):
            current = original.get(key)
            original[key] = _merge_list(
                current if isinstance(current, list) else [], value, (*path, key), kind
            )
        else:
            original[key] = value
    for field, order in orders.items():
        if isinstance(original.get(field), list):
            original[field] = _ordered(original[field], order, _merge_key((*path, field), kind))
    retain = patch.get(_RETAIN_KEYS)
    if isinstance(retain, list):
        original = {k: v for k, v in original.items() if k in retain}
    return original


def _merge_key(path: tuple[str, ...], kind: str) -> str | None:
    field = path[-1]
    if field == "ports":
        if any(part in _CONTAINER_LISTS for part in path):
            return "containerPort"
        return "port" if kind == "Service" and path == ("spec", "ports") else None
    if field == "addresses":
        return "type" if kind == "Node" and path == ("status", "addresses") else None
    return _MERGE_KEYS.get(field)


def _merge_list(
    original: list[Any], patch: list[Any], path: tuple[str, ...], kind: str
) -> list[Any]:
    field = path[-1]
    if field in _SET_LISTS:
        return [*original, *(item for item in patch if item not in original)]
    key = _merge_key(path, kind)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return [_clean(item) for item in patch]
    if any(item.get(_DIRECTIVE) == "replace" for item in patch):
        return [_clean(item) for item in patch if set(item) != {_DIRECTIVE}]
    result = list(original)
    for item in patch:
        if key not in item:
            raise PatchError(
                500, f"map: {go_value(item)} does not contain declared merge key: {key}"
            )
        position = next(
            (
                i
                for i, have in enumerate(result)
                if isinstance(have, dict) and have.get(key) == item[key]
            ),
            None,
        )
        if item.get(_DIRECTIVE) == "delete":
            result = [
                have
                for have in result
                if not (isinstance(have, dict) and have.get(key) == item[key])
            ]
        elif position is None:
            result.append(_clean(item))
        else:
            merged = _merge_map(result[position], item, path, kind)
            if merged is None:
                del result[position]
            else:
                result[position] = merged
    return result


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Items listed in a ``$setElementOrder`` first, in its order; the others after them."""

    def identity(item: Any) -> Any:
        return item.get(key) if key is not None and isinstance(item, dict) else item

    wanted = [identity(entry) for entry in order]
    ranked = [item for want in wanted for item in items if identity(item) == want]
    return ranked + [item for item in items if identity(item) not in wanted]


def _clean(value: Any) -> Any:
    """A new value from a patch: nulls and directives dropped, as decoding them does."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None and not k.startswith("$")}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def go_value(value: Any) -> str:
    """A JSON value as Go's ``%v`` prints it (``map[image:x name:app]``), for messages."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)
