"""The remediation identity: a separate client that may write, but only what the table allows.

Diagnostics read through :mod:`bot.kube` with a GET-only client and a read-only
ServiceAccount. Approved remediations go through :class:`KubeWriter`, built on its own
``Configuration`` (never the global default) for a second identity whose RBAC is exactly
:data:`REMEDIATION_PERMISSIONS`. The writer refuses, before anything is sent, any request
whose (group, resource, verb) is not in that table, and ``tests/test_deploy.py`` checks that
``deploy/remediation-rbac.yaml`` grants the table and nothing more, so the two cannot drift.

In-cluster, the bearer token is read from ``remediation_token_file`` on every request: the
file is a mounted Secret (see deploy/README.md) that an operator may rotate at any time, and
the kubelet updates the file in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from bot.config import Settings
from bot.errors import ConfigError, KubeError
from bot.kube import RESOURCES, Resource, ThreadedApi, json_object
from bot.targets import ObjectRef

PatchType = Literal["strategic", "merge", "json"]

CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
FIELD_MANAGER = "incident-bot"
_CONTENT_TYPES: dict[str, str] = {
    "strategic": "application/strategic-merge-patch+json",
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}
_VERBS = {"PATCH": "patch", "PUT": "update", "DELETE": "delete"}


@dataclass(frozen=True)
class Permission:
    """One RBAC rule: ``verbs`` on ``resource`` (``plural`` or ``plural/subresource``)."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]


# Exactly what KubeWriter may send, and what deploy/remediation-rbac.yaml grants: writes only
# on the kinds the action catalogue changes, reads only what planning and verifying need.
# No Secrets, no create, and delete only for pods.
REMEDIATION_PERMISSIONS: tuple[Permission, ...] = (
    Permission("apps", "deployments", ("get", "patch", "update")),
    Permission("apps", "deployments/scale", ("patch",)),
    Permission("apps", "statefulsets", ("get", "patch", "update")),
    Permission("apps", "statefulsets/scale", ("patch",)),
    Permission("apps", "daemonsets", ("get", "patch", "update")),
    Permission("apps", "replicasets", ("get", "list")),
    Permission("", "pods", ("get", "list", "delete")),
    Permission("", "nodes", ("get", "patch")),
    Permission("batch", "cronjobs", ("get", "patch")),
    Permission("autoscaling", "horizontalpodautoscalers", ("get", "patch")),
)
_ALLOWED = {(p.api_group, p.resource, verb) for p in REMEDIATION_PERMISSIONS for verb in p.verbs}


def api_group(res: Resource) -> str:
    """``/api/v1`` → ``""`` (core), ``/apis/apps/v1`` → ``apps``."""
    return "" if res.prefix == "/api/v1" else res.prefix.split("/")[2]


def remediation_api_client(settings: Settings) -> k8s.ApiClient:
    """The API client of the remediation identity the settings describe.

    Raises:
        ConfigError: remediation is off, or its mode cannot be configured.
    """
    mode = settings.remediation_mode
    configuration = k8s.Configuration()
    if mode == "url":
        configuration.host = settings.remediation_url.rstrip("/")
    elif mode == "kubeconfig":
        if not settings.remediation_kubeconfig:
            raise ConfigError(
                "INCIDENT_BOT_REMEDIATION_KUBECONFIG", "required when the mode is kubeconfig"
            )
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=settings.remediation_kubeconfig,
                context=settings.remediation_context or None,
                client_configuration=configuration,
                persist_config=False,
            )
        except (k8s_config.ConfigException, OSError) as exc:
            raise ConfigError(
                "INCIDENT_BOT_REMEDIATION_KUBECONFIG", f"cannot load kubeconfig: {exc}"
            ) from None
    elif mode == "in-cluster":
        _in_cluster(configuration, settings.remediation_token_file, os.environ)
    else:
        raise ConfigError(
            "INCIDENT_BOT_REMEDIATION_MODE",
            "remediation is off (none): approved actions are copy-only",
        )
    return k8s.ApiClient(configuration)


def _in_cluster(
    configuration: k8s.Configuration, token_file: str, environ: Mapping[str, str]
) -> None:
    host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("INCIDENT_BOT_REMEDIATION_MODE", "in-cluster, but not in a cluster")
    token_path = Path(token_file)
    # Read now so a missing token fails at start-up, not at the first approved action; the
    # client only consults the hook when a BearerToken is already set.
    configuration.api_key["BearerToken"] = "Bearer " + _read_token(token_path)
    configuration.host = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    configuration.ssl_ca_cert = CA_FILE

    def refresh(config: k8s.Configuration) -> None:
        # Called by the client before every request: a rotated token is used at once.
        config.api_key["BearerToken"] = "Bearer " + _read_token(token_path)

    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            "INCIDENT_BOT_REMEDIATION_TOKEN_FILE", f"cannot read {path}: {exc.strerror}"
        ) from None
    if not token:
        raise ConfigError("INCIDENT_BOT_REMEDIATION_TOKEN_FILE", f"{path} is empty")
    return token


@dataclass(frozen=True)
class WriteRequest:
    """One API write: a PATCH (of an object or its ``scale``) or a pod DELETE.

    For a DELETE, ``body`` holds the preconditions (``{"uid": …}``).
    """

    verb: Literal["patch", "delete"]
    ref: ObjectRef
    body: Any = None
    patch_type: PatchType = "strategic"
    subresource: str | None = None

    def describe(self) -> str:
        """``"strategic patch of shop/Deployment/cart"``, for the step log."""
        if self.verb == "delete":
            return f"delete {self.ref}"
        on = f"{self.ref}/{self.subresource}" if self.subresource else str(self.ref)
        return f"{self.patch_type} patch of {on}"


class KubeWriter(ThreadedApi):
    """Async, time-boxed requests as the remediation identity.

    Args:
        api_client: From :func:`remediation_api_client` (or any ``ApiClient`` in tests).
        timeout: Seconds allowed per request.
    """

    def __init__(self, api_client: k8s.ApiClient, *, timeout: float = 10.0) -> None:
        super().__init__(api_client, timeout=timeout, workers=4, thread_name="kube-write")

    async def get(self, ref: ObjectRef, *, subresource: str | None = None) -> dict[str, Any]:
        """One object (or its subresource).

        Raises:
            KubeError: with ``status`` 404 when it does not exist, or any other API error.
        """
        return await self._call("GET", ref, subresource=subresource)

    async def patch(
        self,
        ref: ObjectRef,
        body: dict[str, Any] | list[dict[str, Any]],
        *,
        patch_type: PatchType = "strategic",
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """PATCH an object; with ``dry_run`` the server validates and answers, storing nothing.

        Returns:
            The object as patched (as it would be, for a dry run).
        """
        return await self._call(
            "PATCH",
            ref,
            body=body,
            subresource=subresource,
            dry_run=dry_run,
            content_type=_CONTENT_TYPES[patch_type],
        )

    async def replace(
        self, ref: ObjectRef, body: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """PUT a whole object; its ``metadata.resourceVersion`` makes it conditional (409)."""
        return await self._call("PUT", ref, body=body, dry_run=dry_run)

    async def delete_pod(
        self, namespace: str, name: str, *, dry_run: bool = False, uid: str | None = None
    ) -> dict[str, Any]:
        """DELETE one pod; with ``uid`` only that incarnation (precondition, else 409)."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            options["preconditions"] = {"uid": uid}
        return await self._call(
            "DELETE", ObjectRef("Pod", name, namespace), body=options, dry_run=dry_run
        )

    async def send(self, request: WriteRequest, *, dry_run: bool) -> dict[str, Any]:
        """Send a :class:`WriteRequest` (as a dry run, or for real)."""
        ref = request.ref
        if request.verb == "delete":
            uid = _precondition_uid(request.body)
            return await self.delete_pod(ref.namespace, ref.name, dry_run=dry_run, uid=uid)
        return await self.patch(
            ref,
            request.body,
            patch_type=request.patch_type,
            dry_run=dry_run,
            subresource=request.subresource,
        )

    async def list_replicasets(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """ReplicaSets in ``namespace`` matching a label selector."""
        return await self._list("ReplicaSet", namespace, selector)

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Pods in ``namespace`` matching a label selector."""
        return await self._list("Pod", namespace, selector)

    async def _list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        if not selector:
            # An empty selector matches everything in the namespace: never what a caller means.
            raise ValueError(f"listing {kind} needs a label selector")
        body = await self._call(
            "GET", ObjectRef(kind, "", namespace), query=[("labelSelector", selector)]
        )
        return [item for item in body.get("items") or [] if isinstance(item, dict)]

    async def _call(
        self,
        method: str,
        ref: ObjectRef,
        *,
        body: Any = None,
        subresource: str | None = None,
        dry_run: bool = False,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        path = _path(method, ref, subresource)
        params = list(query or [])
        if method in ("PATCH", "PUT"):
            params.append(("fieldManager", FIELD_MANAGER))
        if dry_run:
            params.append(("dryRun", "All"))
        return await self._in_thread(path, self._blocking, method, path, params, body, content_type)

    def _blocking(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: Any,
        content_type: str,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            method, url, headers, serialized, _ = self._api.param_serialize(
                method,
                path,
                query_params=query,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
        except ConfigError as exc:  # the token file vanished or emptied since start-up
            raise KubeError(path, f"no credentials: {exc}") from None
        try:
            resp = self._api.call_api(
                method, url, header_params=headers, body=serialized, _request_timeout=self._timeout
            )
            data = resp.read()  # type: ignore[no-untyped-call]
        except k8s.ApiException as exc:
            message = _status_message(exc.status, exc.body or b"")
            raise KubeError(path, message, status=exc.status) from None
        except Exception as exc:  # urllib3 errors: refused, reset, read timeout
            raise KubeError(path, f"{type(exc).__name__}: {exc}") from None
        if not 200 <= resp.status < 300:
            raise KubeError(path, _status_message(resp.status, data), status=resp.status)
        return json_object(path, data)


def _precondition_uid(preconditions: Any) -> str | None:
    """The ``uid`` of a preconditions mapping, if any."""
    uid = preconditions.get("uid") if isinstance(preconditions, dict) else None
    return str(uid) if uid else None


def _path(method: str, ref: ObjectRef, subresource: str | None) -> str:
    """The URL path, after checking the request against :data:`REMEDIATION_PERMISSIONS`.

    Raises:
        ValueError: the remediation identity has no such permission (a programming error).
    """
    try:
        res = RESOURCES[ref.kind]
    except KeyError:
        raise ValueError(f"kind {ref.kind} is not known to the remediation client") from None
    verb = ("get" if ref.name else "list") if method == "GET" else _VERBS[method]
    resource = res.plural + (f"/{subresource}" if subresource else "")
    if (api_group(res), resource, verb) not in _ALLOWED:
        raise ValueError(f"{verb} {resource} is not in REMEDIATION_PERMISSIONS")
    if res.namespaced and not ref.namespace:
        raise ValueError(f"{ref.kind} {ref.name!r} needs a namespace")
    path = res.prefix
    if res.namespaced:
        path += f"/namespaces/{ref.namespace}"
    path += f"/{res.plural}"
    if ref.name:
        path += f"/{ref.name}"
    if subresource:
        path += f"/{subresource}"
    return path


def _status_message(status: int | None, data: bytes | str) -> str:
    """``"422 Invalid: Deployment.apps "x" is invalid: …"`` from a ``Status`` body."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        reason = f" {body['reason']}" if body.get("reason") else ""
        return f"{status}{reason}: {body['message']}"
    return f"{status} {text[:200]}"
