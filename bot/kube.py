"""Read-only Kubernetes access through the official ``kubernetes`` client.

Why threads and not ``kubernetes_asyncio``: the official client is the one every cluster's
auth setup is tested with (exec plugins, in-cluster token rotation, kubeconfig contexts), and
an incident needs a handful of reads, not thousands. Each blocking call runs in a small
dedicated thread pool (never the event loop), bounded by ``_request_timeout`` inside the
thread and ``asyncio.wait_for`` outside, so a hanging API server costs at most the timeout.

The reader can only send GET: :class:`ReadOnlyApiClient` refuses every other method before
a byte leaves the process, and the path table has no entry for Secrets.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from bot.config import Settings
from bot.errors import ConfigError, KubeError, ReadOnlyViolation

T = TypeVar("T")


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API."""

    prefix: str  # "/api/v1" or "/apis/apps/v1"
    plural: str
    namespaced: bool


# Secrets are deliberately absent: the bot never reads them.
RESOURCES: dict[str, Resource] = {
    "Pod": Resource("/api/v1", "pods", True),
    "Event": Resource("/api/v1", "events", True),
    "Node": Resource("/api/v1", "nodes", False),
    "Namespace": Resource("/api/v1", "namespaces", False),
    "Service": Resource("/api/v1", "services", True),
    "Endpoints": Resource("/api/v1", "endpoints", True),
    "ConfigMap": Resource("/api/v1", "configmaps", True),
    "PersistentVolumeClaim": Resource("/api/v1", "persistentvolumeclaims", True),
    "PersistentVolume": Resource("/api/v1", "persistentvolumes", False),
    "ResourceQuota": Resource("/api/v1", "resourcequotas", True),
    "LimitRange": Resource("/api/v1", "limitranges", True),
    "Deployment": Resource("/apis/apps/v1", "deployments", True),
    "ReplicaSet": Resource("/apis/apps/v1", "replicasets", True),
    "StatefulSet": Resource("/apis/apps/v1", "statefulsets", True),
    "DaemonSet": Resource("/apis/apps/v1", "daemonsets", True),
    "Job": Resource("/apis/batch/v1", "jobs", True),
    "CronJob": Resource("/apis/batch/v1", "cronjobs", True),
    "HorizontalPodAutoscaler": Resource("/apis/autoscaling/v2", "horizontalpodautoscalers", True),
    "StorageClass": Resource("/apis/storage.k8s.io/v1", "storageclasses", False),
}


class ReadOnlyApiClient(k8s.ApiClient):
    """An ``ApiClient`` that can only send GET requests."""

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method.upper() != "GET":
            raise ReadOnlyViolation(url, f"{method} refused: the diagnostics client is read-only")
        return super().call_api(method, url, *args, **kwargs)


def make_api_client(settings: Settings) -> ReadOnlyApiClient | None:
    """Build the read-only client the settings ask for; None when Kubernetes is off.

    Raises:
        ConfigError: when the requested mode cannot be configured.
    """
    mode = settings.kube_mode
    if mode == "none":
        return None
    configuration = k8s.Configuration()
    if mode == "url":
        configuration.host = settings.kube_url.rstrip("/")
        return ReadOnlyApiClient(configuration)
    if mode in ("auto", "in-cluster"):
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return ReadOnlyApiClient(configuration)
        except k8s_config.ConfigException as exc:
            if mode == "in-cluster":
                raise ConfigError("INCIDENT_BOT_KUBE_MODE", f"not in a cluster: {exc}") from None
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=settings.kubeconfig or None,
            context=settings.kube_context or None,
            client_configuration=configuration,
        )
    except (k8s_config.ConfigException, OSError) as exc:
        if mode == "auto":
            return None  # no cluster access configured: evidence says so, nothing fails
        raise ConfigError("KUBECONFIG", f"cannot load kubeconfig: {exc}") from None
    return ReadOnlyApiClient(configuration)


class ThreadedApi:
    """An ``ApiClient`` whose blocking calls run in a small thread pool, each time-boxed.

    The base of :class:`KubeReader` and :class:`bot.remediate.kube_write.KubeWriter`.

    Args:
        api_client: The client the calls use.
        timeout: Seconds allowed per request (callers pass it as ``_request_timeout``; the
            wait outside the thread gives up half a second later).
        workers: Size of the thread pool.
        thread_name: Prefix of its threads' names.
    """

    def __init__(
        self, api_client: k8s.ApiClient, *, timeout: float, workers: int, thread_name: str
    ) -> None:
        self._api = api_client
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name)

    def close(self) -> None:
        """Release the thread pool and connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()  # type: ignore[no-untyped-call]

    async def _in_thread(self, path: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool; KubeError naming ``path`` when it outlasts the timeout."""
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._pool, fn, *args)
        try:
            return await asyncio.wait_for(call, self._timeout + 0.5)
        except TimeoutError:
            raise KubeError(path, f"timed out after {self._timeout:g}s") from None


class KubeReader(ThreadedApi):
    """Async, read-only, time-boxed access to the Kubernetes API."""

    _api: ReadOnlyApiClient

    def __init__(self, api_client: ReadOnlyApiClient, *, timeout: float = 5.0) -> None:
        super().__init__(api_client, timeout=timeout, workers=8, thread_name="kube")

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """One object as a dict, or None when it does not exist."""
        res = _resource(kind)
        path = _collection(res, namespace) + "/" + name
        try:
            return await self._json(path, [])
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list_objects(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` (in ``namespace`` or all), filtered like ``kubectl get``."""
        query: list[tuple[str, str]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if limit:
            query.append(("limit", str(limit)))
        body = await self._json(_collection(_resource(kind), namespace), query)
        items = body.get("items") or []
        return [item for item in items if isinstance(item, dict)]

    async def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int = 100,
        limit_bytes: int = 32_000,
    ) -> str:
        """The tail of a container's log (current or previous instance)."""
        query = [
            ("container", container),
            ("tailLines", str(tail_lines)),
            ("limitBytes", str(limit_bytes)),
        ]
        if previous:
            query.append(("previous", "true"))
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        data = await self._raw(path, query, accept="text/plain")
        return data.decode("utf-8", "replace")

    async def _json(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        return json_object(path, await self._raw(path, query, accept="application/json"))

    async def _raw(self, path: str, query: list[tuple[str, str]], *, accept: str) -> bytes:
        return await self._in_thread(path, self._get_blocking, path, query, accept)

    def _get_blocking(self, path: str, query: list[tuple[str, str]], accept: str) -> bytes:
        method, url, headers, _, _ = self._api.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": accept},
            auth_settings=["BearerToken"],
        )
        try:
            resp = self._api.call_api(
                method, url, header_params=headers, _request_timeout=self._timeout
            )
            data = resp.read()
        except k8s.ApiException as exc:
            raise KubeError(path, f"{exc.status} {exc.reason}", status=exc.status) from None
        except Exception as exc:  # urllib3 errors: refused, reset, read timeout
            raise KubeError(path, f"{type(exc).__name__}: {exc}") from None
        if not 200 <= resp.status < 300:
            raise KubeError(path, _status_message(resp.status, data), status=resp.status)
        return bytes(data)


def json_object(path: str, data: bytes | str) -> dict[str, Any]:
    """An API answer parsed as a JSON object.

    Raises:
        KubeError: naming ``path``, when the answer is not JSON or not an object.
    """
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise KubeError(path, f"invalid JSON from API server: {exc}") from None
    if not isinstance(body, dict):
        raise KubeError(path, "API server answered something other than an object")
    return body


def _resource(kind: str) -> Resource:
    try:
        return RESOURCES[kind]
    except KeyError:
        raise KubeError(kind, "kind not readable by incident-bot") from None


def _collection(res: Resource, namespace: str | None) -> str:
    if res.namespaced and namespace:
        return f"{res.prefix}/namespaces/{namespace}/{res.plural}"
    return f"{res.prefix}/{res.plural}"


def _status_message(status: int, data: bytes) -> str:
    try:
        body = json.loads(data)
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return f"{status} {message or data[:200].decode('utf-8', 'replace')}"
