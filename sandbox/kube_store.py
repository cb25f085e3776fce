"""The sandbox API server's object store and the ``Status`` errors it answers with.

Objects are kept per resource, keyed by namespace and name, in the order etcd would list
them. Storing an object fills in what a real API server always sets (``resourceVersion``,
``uid``, the namespace of namespaced kinds) and makes sure its namespace exists.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sandbox.kube_registry import ResourceRegistry, ResourceType

__all__ = ["ObjectStore", "StatusError", "invalid_cause", "object_key", "rfc3339"]

# Statuses fail_next() may inject, with the reason a real API server gives them.
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_UID_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


class StatusError(Exception):
    """An API error, answered as a ``Status`` object with the HTTP code it carries.

    Attributes:
        code: The HTTP status code.
        reason: The machine-readable reason (``NotFound``, ``AlreadyExists``, ...).
        message: The human-readable message.
        details: The ``details`` object (name, group, kind, causes), possibly empty.
    """

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}
        self.keep_empty_details = False

    def body(self) -> dict[str, Any]:
        """The ``Status`` object as the API server sends it."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }
        if not self.details and self.code != 404 and not self.keep_empty_details:
            del body["details"]
        if not self.reason:  # StatusReasonUnknown is "", left out like Go's omitempty
            del body["reason"]
        return body

    @classmethod
    def not_found(cls, rtype: ResourceType, name: str) -> StatusError:
        """``pods "x" not found``."""
        return cls(404, "NotFound", f'{rtype.qualified} "{name}" not found', _details(rtype, name))

    @classmethod
    def no_such_path(cls) -> StatusError:
        """A URL that names no resource."""
        return cls(404, "NotFound", "the server could not find the requested resource")

    @classmethod
    def already_exists(cls, rtype: ResourceType, name: str) -> StatusError:
        """``pods "x" already exists``."""
        message = f'{rtype.qualified} "{name}" already exists'
        return cls(409, "AlreadyExists", message, _details(rtype, name))

    @classmethod
    def invalid(cls, rtype: ResourceType, name: str, causes: list[dict[str, str]]) -> StatusError:
        """A 422 naming each invalid field; ``causes`` hold reason, message and field."""
        return cls.invalid_kind(rtype.group, rtype.kind, name, causes)

    @classmethod
    def invalid_kind(
        cls, group: str, kind: str, name: str, causes: list[dict[str, str]]
    ) -> StatusError:
        """A 422 for any group and kind (``Scale.autoscaling``, ``PatchOptions.meta.k8s.io``)."""
        errors = [f"{cause['field']}: {cause['message']}" for cause in causes]
        summary = errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]"
        details: dict[str, Any] = {"name": name, "group": group, "kind": kind, "causes": causes}
        details = {key: value for key, value in details.items() if value}  # Go's omitempty
        qualified = f"{kind}.{group}" if group else kind
        return cls(422, "Invalid", f'{qualified} "{name}" is invalid: {summary}', details)

    @classmethod
    def conflict(cls, rtype: ResourceType, name: str) -> StatusError:
        """A 409: the write named a resourceVersion that is no longer the current one."""
        message = (
            f'Operation cannot be fulfilled on {rtype.qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again"
        )
        return cls(409, "Conflict", message, _details(rtype, name))

    @classmethod
    def patch_not_applied(cls) -> StatusError:
        """The 422 a JSON patch that does not apply gets (a failed ``test``, a bad path).

        The API server drops the patch library's own message: every such failure reads
        the same, with empty details.
        """
        error = cls(
            422, "Invalid", "the server rejected our request due to an error in our request"
        )
        error.keep_empty_details = True
        return error

    @classmethod
    def unsupported_media_type(cls, accepted: list[str]) -> StatusError:
        """A 415 for a PATCH whose Content-Type is not an accepted patch type."""
        message = (
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted)
        )
        return cls(415, "UnsupportedMediaType", message)

    @classmethod
    def bad_request(cls, message: str) -> StatusError:
        """A 400 with the given message."""
        return cls(400, "BadRequest", message)

    @classmethod
    def method_not_allowed(cls) -> StatusError:
        """A 405 for a verb the resource path does not take."""
        return cls(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    @classmethod
    def unexpected(cls, message: str) -> StatusError:
        """A 500 for an error the API server never turned into a status: its bare message."""
        return cls(500, "", message)

    @classmethod
    def injected(cls, code: int) -> StatusError:
        """The failure answered by ``KubeSandbox.fail_next``."""
        reason = _REASONS.get(code, "InternalError")
        message = (
            "an error on the server (injected by the sandbox) has prevented the request "
            "from succeeding"
        )
        return cls(code, reason, message)


def invalid_cause(field: str, value: object, problem: str) -> dict[str, str]:
    """One entry of an Invalid status's ``details.causes``."""
    shown = f'"{value}"' if isinstance(value, str) else json.dumps(value)
    message = f"Invalid value: {shown}: {problem}"
    return {"reason": "FieldValueInvalid", "message": message, "field": field}


def _details(rtype: ResourceType, name: str) -> dict[str, Any]:
    details = {"name": name, "kind": rtype.plural}
    if rtype.group:
        details["group"] = rtype.group
    return details


def rfc3339(moment: datetime) -> str:
    """A timestamp as Kubernetes writes it: ``2026-11-20T10:15:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_key(obj: dict[str, Any]) -> str:
    """The sort key etcd lists objects by: ``namespace/name`` or ``name``."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata['name']}" if namespace else str(metadata["name"])


class ObjectStore:
    """Objects per resource, with a cluster-wide resourceVersion counter.

    Args:
        registry: Resolves each object's resource and learns unknown kinds.
        clock: Current time, for the creationTimestamp of created objects.
    """

    def __init__(self, registry: ResourceRegistry, clock: Callable[[], datetime]) -> None:
        self.registry = registry
        self.clock = clock
        self._objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._revision = 0

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion handed out."""
        return str(self._revision)

    def load(self, objects: Iterable[dict[str, Any]]) -> None:
        """Store objects as given (replacing same-named ones), then add missing namespaces."""
        for obj in objects:
            self.put(obj)
        self.ensure_namespace("default")

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a copy of an object, replacing one with the same name.

        Args:
            obj: A Kubernetes object with ``apiVersion``, ``kind`` and ``metadata.name``.

        Returns:
            The stored object.

        Raises:
            ValueError: The object lacks apiVersion, kind or metadata.name.
        """
        if not obj.get("apiVersion") or not obj.get("kind"):
            raise ValueError("a Kubernetes object needs apiVersion and kind")
        if not (obj.get("metadata") or {}).get("name"):
            raise ValueError(f"a {obj['kind']} needs metadata.name")
        rtype = self.registry.learn(obj)
        return self.insert(self.stamp(copy.deepcopy(obj), rtype, namespace=None), rtype)

    def insert(self, obj: dict[str, Any], rtype: ResourceType) -> dict[str, Any]:
        """Store an already stamped object (not copied), making sure its namespace exists."""
        namespace = obj["metadata"].get("namespace", "")
        self._bucket(rtype)[(namespace, obj["metadata"]["name"])] = obj
        if namespace:
            self.ensure_namespace(namespace)
        return obj

    def commit(self, obj: dict[str, Any], rtype: ResourceType) -> dict[str, Any]:
        """Store an updated object (not copied) under the next resourceVersion."""
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        return self.insert(obj, rtype)

    def stamp(
        self,
        obj: dict[str, Any],
        rtype: ResourceType,
        *,
        namespace: str | None,
        created: bool = False,
    ) -> dict[str, Any]:
        """Fill in what the API server sets on write: namespace, uid, resourceVersion.

        Args:
            obj: The object, changed in place.
            rtype: Its resource.
            namespace: The request's namespace, overriding the object's when given.
            created: The object is being created through the API (sets creationTimestamp,
                a fresh uid).

        Returns:
            The same object.
        """
        metadata = obj.setdefault("metadata", {})
        if rtype.namespaced:
            metadata["namespace"] = namespace or metadata.get("namespace") or "default"
        else:
            metadata.pop("namespace", None)
        self._revision += 1
        metadata["resourceVersion"] = str(self._revision)
        if created or not metadata.get("uid"):
            # Deterministic, so scenario runs are reproducible; the revision makes a
            # re-created object a new one, as on a real cluster.
            seed = f"{rtype.qualified}/{object_key(obj)}/{self._revision}"
            metadata["uid"] = str(uuid.uuid5(_UID_NAMESPACE, seed))
        if created:
            metadata["creationTimestamp"] = rfc3339(self.clock())
        return obj

    def ensure_namespace(self, name: str) -> None:
        """Synthesize an active Namespace object unless one exists."""
        rtype = self.registry.for_kind("", "Namespace")
        assert rtype is not None  # a built-in kind
        if ("", name) not in self._bucket(rtype):
            self.put(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                }
            )

    def namespace_exists(self, name: str) -> bool:
        """Whether a Namespace object of that name is stored."""
        rtype = self.registry.for_kind("", "Namespace")
        assert rtype is not None
        return ("", name) in self._bucket(rtype)

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (not a copy), or None."""
        return self._bucket(rtype).get((namespace or "", name))

    def list(self, rtype: ResourceType, namespace: str | None) -> list[dict[str, Any]]:
        """Stored objects of a resource, in one namespace or all, in etcd key order."""
        items = [
            obj
            for (obj_namespace, _), obj in self._bucket(rtype).items()
            if namespace is None or obj_namespace == namespace
        ]
        return sorted(items, key=object_key)

    def delete(self, rtype: ResourceType, namespace: str | None, name: str) -> None:
        """Remove an object if stored."""
        self._bucket(rtype).pop((namespace or "", name), None)

    def everything(self) -> tuple[tuple[ResourceType, dict[str, Any]], ...]:
        """Every stored object with its resource (not copies), for garbage collection."""
        return tuple(
            (rtype, obj)
            for (group, kind), bucket in self._objects.items()
            if (rtype := self.registry.for_kind(group, kind)) is not None
            for obj in bucket.values()
        )

    def _bucket(self, rtype: ResourceType) -> dict[tuple[str, str], dict[str, Any]]:
        return self._objects.setdefault((rtype.group, rtype.kind), {})
