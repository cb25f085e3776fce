"""A loopback Kubernetes API server holding a scenario's objects and logs.

:class:`KubeSandbox` speaks enough of the real REST API that the official ``kubernetes``
client works against it unmodified: discovery, get and list (namespaced, cluster-scoped and
across namespaces, with label and field selectors and ``limit``/``continue`` paging), pod
logs, ``status`` and ``scale`` subresources, create and delete (with ``dryRun=All``), and
errors as real ``Status`` objects. Tests can also inject failures and latency.

Watches, PUT and PATCH are not served (405, or 400 for ``watch=true``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox.kube_logs import query_flag, query_int, read_pod_log
from sandbox.kube_registry import VERSION_INFO, ResourceRegistry, ResourceType, convert
from sandbox.kube_selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    format_label_selector,
    supported_fields,
)
from sandbox.kube_store import ObjectStore, StatusError, invalid_cause, object_key
from sandbox.loopback import LoopbackServer
from sandbox.scenario import Scenario

__all__ = ["KubeSandbox"]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)


@dataclass(frozen=True, slots=True)
class _Target:
    """What a resource URL addresses."""

    rtype: ResourceType
    version: str
    namespace: str | None  # None: cluster-scoped, or a namespaced list across namespaces
    name: str | None = None
    subresource: str | None = None


class KubeSandbox(LoopbackServer):
    """A fake Kubernetes API server on loopback, for the official client and for tests.

    Args:
        objects: Kubernetes objects as the API returns them; copies are stored.
        logs: ``"<namespace>/<pod>/<container>"`` -> ``{"current": str, "previous": str}``.
        clock: Current time, stamped on objects created through the API (default: wall clock).

    Attributes:
        requests: ``(method, path_qs)`` of every request received, in order (``path_qs``
            as sent, e.g. ``/api/v1/namespaces/shop/pods?labelSelector=app%3Dcart``).

    The helpers (``fail_next``, ``set_delay``, ``add_object``, ``get_object``) are meant to
    be called from the event loop serving the sandbox, not from the client's thread.
    """

    def __init__(
        self,
        objects: list[dict[str, Any]],
        logs: dict[str, dict[str, str]] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.requests: list[tuple[str, str]] = []
        self._store = ObjectStore(ResourceRegistry(), clock or (lambda: datetime.now(UTC)))
        self._store.load(objects)
        self._logs = {key: dict(streams) for key, streams in (logs or {}).items()}
        self._failures = 0
        self._failure_status = 500
        self._delay = 0.0
        super().__init__()

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> KubeSandbox:
        """A sandbox holding a scenario's cluster objects and logs, its clock at ``now``."""
        return cls(scenario.objects, scenario.logs, clock=lambda: scenario.now)

    # --- lifecycle ---------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        return app

    # --- test helpers ------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next ``n`` requests with ``status`` and an error ``Status`` body."""
        self._failures = n
        self._failure_status = status

    def set_delay(self, seconds: float) -> None:
        """Hold every request for ``seconds`` before answering (0 turns it off)."""
        self._delay = seconds

    def add_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if it had always been there (replacing a same-named one).

        Returns:
            A copy of the stored object, with resourceVersion, uid and namespace filled in.
        """
        return copy.deepcopy(self._store.put(obj))

    def get_object(
        self, kind: str, namespace: str | None, name: str, *, api_version: str | None = None
    ) -> dict[str, Any] | None:
        """A copy of a stored object, or None.

        Args:
            kind: The kind, e.g. ``Deployment``.
            namespace: Its namespace; None for cluster-scoped kinds.
            name: Its name.
            api_version: Picks the group when several groups have this kind.
        """
        registry = self._store.registry
        if api_version is not None:
            rtype = registry.for_kind(api_version.rpartition("/")[0], kind)
            candidates = [rtype] if rtype is not None else []
        else:
            candidates = registry.find_kind(kind)
        for candidate in candidates:
            found = self._store.get(candidate, namespace if candidate.namespaced else None, name)
            if found is not None:
                return copy.deepcopy(found)
        return None

    # --- HTTP plumbing -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if self._delay > 0:
            await asyncio.sleep(self._delay)
        try:
            if self._failures > 0:
                self._failures -= 1
                raise StatusError.injected(self._failure_status)
            return await handler(request)
        except StatusError as error:
            return _json(error.body(), status=error.code)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [part for part in request.path.split("/") if part]
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return web.Response(text="ok")
        if parts == ["version"]:
            return _get_only(request, VERSION_INFO)
        registry = self._store.registry
        if parts == ["api"]:
            return _get_only(request, self._api_versions(request))
        if parts == ["apis"]:
            return _get_only(request, registry.api_group_list())
        if len(parts) == 2 and parts[0] == "apis":
            group_doc = registry.api_group(parts[1])
            if group_doc is None:
                raise StatusError.no_such_path()
            return _get_only(request, group_doc)
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise StatusError.no_such_path()
        if not registry.serves(group, version):
            raise StatusError.no_such_path()
        if not rest:
            return _get_only(request, registry.resource_list(group, version))
        return await self._serve(request, _resolve(registry, group, version, rest))

    def _api_versions(self, request: web.Request) -> dict[str, Any]:
        address = f"{request.url.host}:{request.url.port}"
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
        }

    async def _serve(self, request: web.Request, target: _Target) -> web.StreamResponse:
        method = request.method
        if target.subresource == "log" and method == "GET":
            body = read_pod_log(
                self._existing(target), self._logs, request.query, self._store.clock()
            )
            return web.Response(body=body, content_type="text/plain", charset="utf-8")
        if target.subresource in ("status", "scale") and method == "GET":
            obj = self._existing(target)
            if target.subresource == "scale":
                return _json(_scale(obj))
            return _json(convert(obj, target.rtype, target.version))
        if target.subresource is None and target.name is None:
            if method == "GET":
                return self._list(request, target)
            if method == "POST" and (target.namespace is not None or not target.rtype.namespaced):
                return await self._create(request, target)
        if target.subresource is None and target.name is not None:
            if method == "GET":
                return _json(convert(self._existing(target), target.rtype, target.version))
            if method == "DELETE":
                return await self._delete(request, target)
        raise StatusError.method_not_allowed()

    def _existing(self, target: _Target) -> dict[str, Any]:
        assert target.name is not None
        obj = self._store.get(target.rtype, target.namespace, target.name)
        if obj is None:
            raise StatusError.not_found(target.rtype, target.name)
        return obj

    # --- reads -------------------------------------------------------------------------------

    def _list(self, request: web.Request, target: _Target) -> web.StreamResponse:
        query = request.query
        rtype = target.rtype
        if query_flag(query, "watch"):
            raise StatusError.bad_request("the sandbox API server does not serve watches")
        try:
            labels = LabelSelector.parse(query.get("labelSelector", ""))
            fields = FieldSelector.parse(
                query.get("fieldSelector", ""),
                supported_fields(rtype.group, rtype.kind, namespaced=rtype.namespaced),
            )
        except SelectorError as error:
            raise StatusError.bad_request(str(error)) from error
        items = [
            obj
            for obj in self._store.list(rtype, target.namespace)
            if labels.matches((obj.get("metadata") or {}).get("labels")) and fields.matches(obj)
        ]
        metadata: dict[str, Any] = {"resourceVersion": self._store.resource_version}
        if query.get("continue"):
            start = _decode_continue(query["continue"])
            items = [obj for obj in items if object_key(obj) > start]
        limit = query_int(query, "limit")
        if limit and limit > 0 and len(items) > limit:
            metadata["continue"] = _encode_continue(object_key(items[limit - 1]), metadata)
            if not labels.requirements and not fields.terms:
                metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return _json(
            {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version(target.version),
                "metadata": metadata,
                "items": [convert(obj, rtype, target.version) for obj in items],
            }
        )

    # --- writes ------------------------------------------------------------------------------

    async def _create(self, request: web.Request, target: _Target) -> web.StreamResponse:
        rtype = target.rtype
        dry_run = _dry_run(request.query.getall("dryRun", []))
        obj = await _json_body(request)
        name = _validate_new(obj, rtype, target.version)
        metadata = obj["metadata"]
        if rtype.namespaced:
            assert target.namespace is not None
            if metadata.get("namespace") not in (None, "", target.namespace):
                raise StatusError.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            if not self._store.namespace_exists(target.namespace):
                namespaces = self._store.registry.for_kind("", "Namespace")
                assert namespaces is not None
                raise StatusError.not_found(namespaces, target.namespace)
        if self._store.get(rtype, target.namespace, name) is not None:
            raise StatusError.already_exists(rtype, name)
        for field in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp"):
            metadata.pop(field, None)
        stored = self._store.stamp(obj, rtype, namespace=target.namespace, created=True)
        if dry_run:
            stored["metadata"].pop("resourceVersion")
        else:
            self._store.insert(stored, rtype)
        return _json(convert(stored, rtype, target.version), status=201)

    async def _delete(self, request: web.Request, target: _Target) -> web.StreamResponse:
        rtype = target.rtype
        values = request.query.getall("dryRun", [])
        if request.can_read_body and (await request.read()).strip():
            options = await _json_body(request)
            body_values = options.get("dryRun") or []
            values = [*values, *(body_values if isinstance(body_values, list) else [body_values])]
        dry_run = _dry_run(values)
        obj = self._existing(target)
        if not dry_run:
            self._store.delete(rtype, target.namespace, obj["metadata"]["name"])
        if rtype.returns_deleted_object:
            return _json(convert(obj, rtype, target.version))
        details = {"name": obj["metadata"]["name"], "group": rtype.group, "kind": rtype.plural}
        details["uid"] = obj["metadata"].get("uid", "")
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        # Like Go's omitempty: the core group has no "group" entry.
        return _json({**status, "details": {k: v for k, v in details.items() if v}})


def _validate_new(obj: dict[str, Any], rtype: ResourceType, version: str) -> str:
    """Default and check a POSTed object's kind, apiVersion and name; return the name.

    Raises:
        StatusError: 422 Invalid naming every bad field.
    """
    expected = rtype.api_version(version)
    causes = [
        invalid_cause(field, obj[field], f"must be {want}")
        for field, want in (("apiVersion", expected), ("kind", rtype.kind))
        if obj.get(field) not in (None, "", want)
    ]
    obj.update(apiVersion=expected, kind=rtype.kind)
    if not isinstance(obj.get("metadata"), dict):
        obj["metadata"] = {}
    metadata = obj["metadata"]
    name = str(metadata.get("name") or "")
    if not name and metadata.get("generateName"):
        name = metadata["name"] = f"{metadata['generateName']}{_random_suffix()}"
    if not name:
        message = "Required value: name or generateName is required"
        causes.append(
            {"reason": "FieldValueRequired", "message": message, "field": "metadata.name"}
        )
    elif not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
        causes.append(invalid_cause("metadata.name", name, _DNS_SUBDOMAIN_RULE))
    if causes:
        raise StatusError.invalid(rtype, name, causes)
    return name


# --- request parsing helpers -----------------------------------------------------------------


def _resolve(registry: ResourceRegistry, group: str, version: str, rest: list[str]) -> _Target:
    """Map the path after ``/api/v1`` or ``/apis/{g}/{v}`` to what it addresses."""
    namespaced_path = (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
    )
    if namespaced_path:
        namespace: str | None = rest[1]
        plural, tail = rest[2], rest[3:]
    else:
        namespace, plural, tail = None, rest[0], rest[1:]
    rtype = registry.lookup(group, version, plural)
    if rtype is None or len(tail) > 2 or (namespaced_path and not rtype.namespaced):
        raise StatusError.no_such_path()
    if tail and rtype.namespaced and namespace is None:  # /api/v1/pods/x is no URL
        raise StatusError.no_such_path()
    subresource = tail[1] if len(tail) == 2 else None
    if subresource is not None and subresource not in rtype.subresources:
        raise StatusError.no_such_path()
    name = tail[0] if tail else None
    return _Target(rtype, version, namespace, name, subresource)


def _json(document: dict[str, Any], status: int = 200) -> web.Response:
    """A JSON response, compact like the API server's."""
    return web.json_response(document, status=status, dumps=_compact_dumps)


def _compact_dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


def _get_only(request: web.Request, document: dict[str, Any]) -> web.StreamResponse:
    if request.method != "GET":
        raise StatusError.method_not_allowed()
    return _json(document)


def _dry_run(values: list[str]) -> bool:
    for value in values:
        if value != "All":
            raise StatusError.bad_request(
                f'Invalid dryRun value: "{value}"; supported values: [All]'
            )
    return bool(values)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as error:
        raise StatusError.bad_request(f"the request body is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise StatusError.bad_request("the request body must be a JSON object")
    return body


def _random_suffix() -> str:
    return "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def _encode_continue(last_key: str, metadata: dict[str, Any]) -> str:
    token = {
        "v": "meta.k8s.io/v1",
        "rv": int(metadata["resourceVersion"]),
        "start": last_key + "\x00",
    }
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def _decode_continue(token: str) -> str:
    try:
        start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise StatusError.bad_request(f"continue key is not valid: {error}") from None
    return str(start).rstrip("\x00")


# --- response helpers ------------------------------------------------------------------------


def _scale(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    keep = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {key: metadata[key] for key in keep if key in metadata},
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": status.get("replicas", 0),
            "selector": format_label_selector(spec.get("selector")),
        },
    }
