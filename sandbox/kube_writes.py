"""The sandbox API server's writes: POST, PUT, PATCH and DELETE, as kube-apiserver does them.

- PATCH takes ``application/json-patch+json``, ``application/merge-patch+json``,
  ``application/strategic-merge-patch+json`` (built-in kinds only) and
  ``application/apply-patch+yaml``; anything else is a 415.
- PUT and PATCH are conditional on ``metadata.resourceVersion`` when the body carries one
  (409 Conflict when stale); a PUT without one is unconditional for built-in kinds and a 422
  for custom resources.
- Writes go through :mod:`sandbox.kube_validation` (system metadata kept, status/spec split,
  generation, immutable fields) and bump the store-wide resourceVersion, unless they change
  nothing. The ``status`` and ``scale`` subresources write only their part.
- ``dryRun=All`` validates and answers the would-be object without storing it; any other
  value is rejected with a 422 naming the options kind, as the real server does.

Stored writes are reported to the simulated controllers (:mod:`sandbox.kube_rollout`).
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from typing import Any

import yaml
from aiohttp import web

from sandbox.kube_patch import PatchError, json_patch, merge_patch, strategic_merge
from sandbox.kube_pods import SUFFIX_ALPHABET
from sandbox.kube_registry import ResourceType, Target, convert, split_api_version
from sandbox.kube_rollout import RolloutController
from sandbox.kube_selectors import format_label_selector
from sandbox.kube_store import ObjectStore, StatusError, invalid_cause
from sandbox.kube_validation import prepare_create, prepare_update, validate

__all__ = ["PATCH_TYPES", "Writes", "json_response", "scale_of"]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
#: The patch content types a built-in resource accepts, in the order errors list them.
PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)


class Writes:
    """The write verbs of the sandbox API server.

    Args:
        store: The objects served.
        controller: Told about every stored write, to simulate what controllers do next.
    """

    def __init__(self, store: ObjectStore, controller: RolloutController) -> None:
        self._store = store
        self._controller = controller

    def existing(self, target: Target) -> dict[str, Any]:
        """The stored object a URL names (not a copy).

        Raises:
            StatusError: 404 when there is none.
        """
        assert target.name is not None
        obj = self._store.get(target.rtype, target.namespace, target.name)
        if obj is None:
            raise StatusError.not_found(target.rtype, target.name)
        return obj

    # --- POST and DELETE ---------------------------------------------------------------------

    async def create(self, request: web.Request, target: Target) -> web.Response:
        """POST to a collection."""
        dry_run = dry_run_option(request.query.getall("dryRun", []), "CreateOptions")
        obj = await read_json_body(request)
        stored = self._create(target, obj, dry_run)
        return json_response(convert(stored, target.rtype, target.version), status=201)

    def _create(self, target: Target, obj: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        rtype = target.rtype
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
        prepare_create(obj, rtype)
        causes = validate(rtype, obj, None)
        if causes:
            raise StatusError.invalid(rtype, name, causes)
        stored = self._store.stamp(obj, rtype, namespace=target.namespace, created=True)
        if dry_run:
            stored["metadata"].pop("resourceVersion")
            return stored
        self._store.insert(stored, rtype)
        self._controller.written(rtype, None, stored)
        return stored

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        """DELETE one object."""
        rtype = target.rtype
        values = request.query.getall("dryRun", [])
        if request.can_read_body and (await request.read()).strip():
            options = await read_json_body(request)
            body_values = options.get("dryRun") or []
            values = [*values, *(body_values if isinstance(body_values, list) else [body_values])]
        dry_run = dry_run_option(values, "DeleteOptions")
        obj = self.existing(target)
        if not dry_run:
            self._store.delete(rtype, target.namespace, obj["metadata"]["name"])
            self._controller.deleted(rtype, obj)
        if rtype.returns_deleted_object:
            return json_response(convert(obj, rtype, target.version))
        details = {"name": obj["metadata"]["name"], "group": rtype.group, "kind": rtype.plural}
        details["uid"] = obj["metadata"].get("uid", "")
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        # Like Go's omitempty: the core group has no "group" entry.
        return json_response({**status, "details": {k: v for k, v in details.items() if v}})

    # --- PUT and PATCH -------------------------------------------------------------------------

    async def replace(self, request: web.Request, target: Target) -> web.Response:
        """PUT an object, or its ``status`` or ``scale``."""
        dry_run = dry_run_option(request.query.getall("dryRun", []), "UpdateOptions")
        body = await read_json_body(request)
        current = self.existing(target)
        if target.subresource == "scale":
            return json_response(self._write_scale(target, current, body, dry_run))
        expected = target.rtype.api_version(target.version)
        if body.get("apiVersion") not in (None, "", expected):
            raise StatusError.bad_request(
                f"the API version in the data ({body['apiVersion']}) does not match the "
                f"expected API version ({expected})"
            )
        if body.get("kind") not in (None, "", target.rtype.kind):
            raise StatusError.bad_request(
                f"the kind in the data ({body['kind']}) does not match the expected kind "
                f"({target.rtype.kind})"
            )
        body.update(apiVersion=expected, kind=target.rtype.kind)
        result = self._update(
            target, current, _to_storage(body, current, target), dry_run, put=True
        )
        return json_response(convert(result, target.rtype, target.version))

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        """PATCH an object, or its ``status`` or ``scale``."""
        rtype = target.rtype
        content_type = request.headers.get("Content-Type", "").partition(";")[0].strip()
        accepted = PATCH_TYPES if rtype.builtin else [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
        if content_type not in accepted:
            raise StatusError.unsupported_media_type(accepted)
        dry_run = dry_run_option(request.query.getall("dryRun", []), "PatchOptions")
        raw = await request.read()
        if content_type == APPLY_PATCH:
            return await self._apply(request, target, raw, dry_run)
        current = self.existing(target)
        try:
            patch = json.loads(raw or b"null")
        except ValueError as error:
            raise StatusError.bad_request(f"error decoding patch: {error}") from None
        scale = target.subresource == "scale"
        base = scale_of(current) if scale else convert(current, rtype, target.version)
        try:
            if content_type == JSON_PATCH:
                patched = json_patch(base, patch)
            elif content_type == MERGE_PATCH:
                patched = merge_patch(base, patch)
            else:
                if not isinstance(patch, dict):
                    kind = "array" if isinstance(patch, list) else "number"
                    message = (
                        f"json: cannot unmarshal {kind} into Go value of type "
                        "map[string]interface {}"
                    )
                    raise StatusError.bad_request(message)
                patched = strategic_merge(base, patch, kind="Scale" if scale else rtype.kind)
        except PatchError as error:
            raise _status_of(error) from None
        if not isinstance(patched, dict):
            shown = json.dumps(patched)
            cause = invalid_cause(
                "patch", shown, "cannot unmarshal the patched object: not a JSON object"
            )
            raise StatusError.invalid_kind("", "", "", [cause])
        if scale:
            return json_response(self._write_scale(target, current, patched, dry_run))
        patched.update(apiVersion=base["apiVersion"], kind=rtype.kind)
        result = self._update(
            target, current, _to_storage(patched, current, target), dry_run, put=False
        )
        return json_response(convert(result, rtype, target.version))

    async def _apply(
        self, request: web.Request, target: Target, raw: bytes, dry_run: bool
    ) -> web.Response:
        """Server-side apply, approximated: the applied configuration is merged in."""
        if not request.query.get("fieldManager"):
            cause = {
                "reason": "FieldValueRequired",
                "message": "Required value: is required for apply patch",
                "field": "fieldManager",
            }
            raise StatusError.invalid_kind("meta.k8s.io", "PatchOptions", "", [cause])
        try:
            applied = yaml.safe_load(raw.decode() or "null")
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise StatusError.bad_request(f"error decoding YAML: {error}") from None
        if not isinstance(applied, dict):
            raise StatusError.bad_request(
                "error decoding YAML: the applied configuration is not an object"
            )
        assert target.name is not None
        _check_name(applied, target)
        current = self._store.get(target.rtype, target.namespace, target.name)
        if current is None and target.subresource is None:
            applied.setdefault("metadata", {})["name"] = target.name
            stored = self._create(target, applied, dry_run)
            return json_response(convert(stored, target.rtype, target.version), status=201)
        if current is None:
            raise StatusError.not_found(target.rtype, target.name)
        base = convert(current, target.rtype, target.version)
        try:
            if target.rtype.builtin:
                merged = strategic_merge(base, applied, kind=target.rtype.kind)
            else:
                merged = merge_patch(base, applied)
        except PatchError as error:
            raise _status_of(error) from None
        merged.update(apiVersion=base["apiVersion"], kind=target.rtype.kind)
        result = self._update(
            target, current, _to_storage(merged, current, target), dry_run, put=False
        )
        return json_response(convert(result, target.rtype, target.version))

    def _write_scale(
        self, target: Target, current: dict[str, Any], scale: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        """Write a Scale: set the parent's spec.replicas; answer the parent's new Scale."""
        _check_name(scale, target)
        name = str(target.name)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            cause = invalid_cause("spec.replicas", replicas, "must be greater than or equal to 0")
            raise StatusError.invalid_kind("autoscaling", "Scale", name, [cause])
        version = (scale.get("metadata") or {}).get("resourceVersion")
        if version and version != current["metadata"].get("resourceVersion"):
            raise StatusError.conflict(target.rtype, name)
        parent = copy.deepcopy(current)
        parent.setdefault("spec", {})["replicas"] = replicas
        whole = Target(target.rtype, target.version, target.namespace, target.name)
        return scale_of(self._update(whole, current, parent, dry_run, put=False))

    def _update(
        self,
        target: Target,
        current: dict[str, Any],
        new: dict[str, Any],
        dry_run: bool,
        *,
        put: bool,
    ) -> dict[str, Any]:
        """Check, prepare, validate and store an update; answer what is (or would be) stored."""
        rtype, name = target.rtype, str(target.name)
        if not isinstance(new.get("metadata"), dict):
            new["metadata"] = {}
        metadata = new["metadata"]
        _check_name(new, target)
        if rtype.namespaced:
            metadata["namespace"] = target.namespace
        version = metadata.get("resourceVersion")
        if version:
            if version != current["metadata"].get("resourceVersion"):
                raise StatusError.conflict(rtype, name)
        elif put and not rtype.builtin:
            cause = {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: 0x0: must be specified for an update",
                "field": "metadata.resourceVersion",
            }
            raise StatusError.invalid(rtype, name, [cause])
        prepared = prepare_update(rtype, current, new, status_write=target.subresource == "status")
        causes = validate(rtype, prepared, current)
        if causes:
            raise StatusError.invalid(rtype, name, causes)
        if prepared == current or dry_run:  # a no-op is not written: no new resourceVersion
            return prepared
        stored = self._store.commit(prepared, rtype)
        self._controller.written(rtype, current, stored)
        return stored


# --- helpers ---------------------------------------------------------------------------------


def dry_run_option(values: list[str], options_kind: str) -> bool:
    """Whether ``dryRun`` asks for a dry run.

    Raises:
        StatusError: 422 for any value but ``All`` (``CreateOptions.meta.k8s.io "" is
            invalid: dryRun: Unsupported value: ...``), as the API server answers.
    """
    if any(value != "All" for value in values):
        shown = "[]string{" + ", ".join(json.dumps(value) for value in values) + "}"
        cause = {
            "reason": "FieldValueNotSupported",
            "message": f'Unsupported value: {shown}: supported values: "All"',
            "field": "dryRun",
        }
        raise StatusError.invalid_kind("meta.k8s.io", options_kind, "", [cause])
    return bool(values)


def json_response(document: dict[str, Any], status: int = 200) -> web.Response:
    """A JSON response, compact like the API server's."""
    return web.json_response(document, status=status, dumps=_compact_dumps)


def _compact_dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


async def read_json_body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        StatusError: 400 when it is not JSON or not an object.
    """
    try:
        body = await request.json()
    except ValueError as error:
        raise StatusError.bad_request(f"the request body is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise StatusError.bad_request("the request body must be a JSON object")
    return body


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The ``autoscaling/v1`` Scale of a workload."""
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


def _check_name(obj: dict[str, Any], target: Target) -> None:
    """The API server's checkName: the body must name what the URL names."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    name = metadata.get("name") or ""
    if name != target.name:
        raise StatusError.bad_request(
            f"the name of the object ({name}) does not match the name on the URL ({target.name})"
        )
    namespace = metadata.get("namespace")
    if target.namespace and namespace and namespace != target.namespace:
        raise StatusError.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )


def _to_storage(obj: dict[str, Any], current: dict[str, Any], target: Target) -> dict[str, Any]:
    """An object sent in the URL's version, converted to the version it is stored in."""
    _, stored_version = split_api_version(str(current.get("apiVersion", "")))
    return convert(obj, target.rtype, stored_version or target.version)


def _status_of(error: PatchError) -> StatusError:
    if error.status == 400:
        return StatusError.bad_request(str(error))
    if error.status == 422:
        return StatusError.patch_not_applied()
    return StatusError.unexpected(str(error))


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


def _random_suffix() -> str:
    return "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(5))
