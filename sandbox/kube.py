"""A loopback Kubernetes API server holding a scenario's objects and logs.

:class:`KubeSandbox` speaks enough of the real REST API that the official ``kubernetes``
client works against it unmodified: discovery, get and list (namespaced, cluster-scoped and
across namespaces, with label and field selectors and ``limit``/``continue`` paging), pod
logs, ``status`` and ``scale`` subresources, and errors as real ``Status`` objects. Writes
(create, replace, the three patch types and server-side apply, delete, all with
``dryRun=All``) behave as kube-apiserver's do (:mod:`sandbox.kube_writes`), and simulated
controllers roll Deployments, StatefulSets and DaemonSets out afterwards
(:mod:`sandbox.kube_rollout`). Tests can also inject failures and latency, and script
whether a rollout is healthy.

Watches are not served (400 for ``watch=true``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox.kube_logs import query_flag, query_int, read_pod_log
from sandbox.kube_registry import VERSION_INFO, ResourceRegistry, Target, convert
from sandbox.kube_rollout import RolloutController, RolloutScript
from sandbox.kube_selectors import FieldSelector, LabelSelector, SelectorError, supported_fields
from sandbox.kube_store import ObjectStore, StatusError, object_key
from sandbox.kube_writes import Writes, json_response, scale_of
from sandbox.loopback import LoopbackServer
from sandbox.scenario import Scenario

__all__ = ["KubeSandbox"]


class KubeSandbox(LoopbackServer):
    """A fake Kubernetes API server on loopback, for the official client and for tests.

    Args:
        objects: Kubernetes objects as the API returns them; copies are stored.
        logs: ``"<namespace>/<pod>/<container>"`` -> ``{"current": str, "previous": str}``.
        clock: Current time, stamped on objects created through the API (default: wall clock).
        seed: Seeds the simulated controllers' random choices (pod name suffixes, IPs), so a
            scripted run repeats exactly.

    Attributes:
        requests: ``(method, path_qs)`` of every request received, in order (``path_qs``
            as sent, e.g. ``/api/v1/namespaces/shop/pods?labelSelector=app%3Dcart``).

    The helpers (``fail_next``, ``set_delay``, ``add_object``, ``get_object``,
    ``script_rollout``, ``settle``) are meant to be called from the event loop serving the
    sandbox, not from the client's thread.
    """

    def __init__(
        self,
        objects: list[dict[str, Any]],
        logs: dict[str, dict[str, str]] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        seed: int = 0,
    ) -> None:
        self.requests: list[tuple[str, str]] = []
        self._store = ObjectStore(ResourceRegistry(), clock or (lambda: datetime.now(UTC)))
        self._store.load(objects)
        self._controller = RolloutController(self._store, random.Random(seed))
        self._writes = Writes(self._store, self._controller)
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

    async def stop(self) -> None:
        """Stop the simulated controllers, then stop serving."""
        await self._controller.stop()
        await super().stop()

    # --- test helpers ------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 500) -> None:
        """Answer the next ``n`` requests with ``status`` and an error ``Status`` body."""
        self._failures = n
        self._failure_status = status

    def set_delay(self, seconds: float) -> None:
        """Hold every request for ``seconds`` before answering (0 turns it off)."""
        self._delay = seconds

    def script_rollout(
        self,
        namespace: str,
        kind: str,
        name: str,
        *,
        outcome: Literal["healthy", "broken"] = "healthy",
        steps: int = 3,
        step_seconds: float = 0.05,
    ) -> None:
        """Script the next rollout of a workload (a template change, a scale-up, a pod's
        replacement); unscripted rollouts are healthy, 3 steps of 0.05 s.

        Args:
            namespace: The workload's namespace.
            kind: ``Deployment``, ``StatefulSet``, ``DaemonSet`` or ``ReplicaSet``.
            name: Its name.
            outcome: ``healthy``: after ``steps`` every replica is updated and ready.
                ``broken``: new pods go CrashLoopBackOff (restartCount growing each step),
                the rollout never completes, and a Deployment reports Progressing=False,
                ``ProgressDeadlineExceeded`` after ``steps``. Later pods of that ReplicaSet
                or revision crash too; going back to an earlier template is healthy.
            steps: Simulated controller steps.
            step_seconds: Real seconds per step.
        """
        self._controller.script(kind, namespace, name, RolloutScript(outcome, steps, step_seconds))

    async def settle(self) -> None:
        """Wait until the simulated controllers have finished every rollout they started.

        Raises:
            RuntimeError: A simulated controller step failed.
        """
        await self._controller.settle()

    def add_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if it had always been there (replacing a same-named one).

        The simulated controllers do not react to it; writes through the API do.

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
            return json_response(error.body(), status=error.code)

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

    async def _serve(self, request: web.Request, target: Target) -> web.StreamResponse:
        method, writes = request.method, self._writes
        if target.subresource == "log" and method == "GET":
            body = read_pod_log(
                writes.existing(target), self._logs, request.query, self._store.clock()
            )
            return web.Response(body=body, content_type="text/plain", charset="utf-8")
        if target.subresource is None and target.name is None:
            if method == "GET":
                return self._list(request, target)
            if method == "POST" and (target.namespace is not None or not target.rtype.namespaced):
                return await writes.create(request, target)
        if target.name is not None and target.subresource in (None, "status", "scale"):
            if method == "GET":
                obj = writes.existing(target)
                if target.subresource == "scale":
                    return json_response(scale_of(obj))
                return json_response(convert(obj, target.rtype, target.version))
            if method == "PUT":
                return await writes.replace(request, target)
            if method == "PATCH":
                return await writes.patch(request, target)
            if method == "DELETE" and target.subresource is None:
                return await writes.delete(request, target)
        raise StatusError.method_not_allowed()

    # --- reads -------------------------------------------------------------------------------

    def _list(self, request: web.Request, target: Target) -> web.StreamResponse:
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
        return json_response(
            {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version(target.version),
                "metadata": metadata,
                "items": [convert(obj, rtype, target.version) for obj in items],
            }
        )


# --- request parsing helpers -----------------------------------------------------------------


def _resolve(registry: ResourceRegistry, group: str, version: str, rest: list[str]) -> Target:
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
    return Target(rtype, version, namespace, name, subresource)


def _get_only(request: web.Request, document: dict[str, Any]) -> web.StreamResponse:
    if request.method != "GET":
        raise StatusError.method_not_allowed()
    return json_response(document)


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
