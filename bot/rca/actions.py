"""Suggested remediations as structured, validated proposals.

Every action — from a rule or from Claude — is built here and nowhere else: the kind must be
in the catalogue, the target a well-formed object of a kind that action accepts, and every
parameter is validated (DNS-1123 names, Kubernetes quantities, image references, bounded
integers). The kubectl rendering is built from validated parts only, so no text from logs,
annotations or a model can smuggle shell syntax into it. Execution (with policy, approval,
dry-run, snapshot and rollback) belongs to the remediation issue; this only proposes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from bot.rca.model import Action
from bot.targets import ObjectRef

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_IMAGE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]{0,254}$")
_RELEASE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
MAX_REPLICAS = 500


def _ref(target: str, kinds: tuple[str, ...]) -> ObjectRef:
    try:
        ref = ObjectRef.parse(target)
    except ValueError as exc:
        raise ValueError(f"bad target: {exc}") from None
    if ref.kind not in kinds:
        raise ValueError(f"target kind {ref.kind} not allowed; want one of {', '.join(kinds)}")
    if not _NAME.match(ref.name):
        raise ValueError(f"bad object name {ref.name!r}")
    if ref.kind != "Node" and not _LABEL.match(ref.namespace or ""):
        raise ValueError(f"bad or missing namespace {ref.namespace!r}")
    return ref


def _ns(ref: ObjectRef) -> str:
    return f"-n {ref.namespace} " if ref.kind != "Node" else ""


def _resource(ref: ObjectRef) -> str:
    return f"{ref.kind.lower()}/{ref.name}"


def _container(params: Mapping[str, Any]) -> str:
    name = str(params.get("container", ""))
    if not _LABEL.match(name):
        raise ValueError(f"bad container name {name!r}")
    return name


def _integer(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what} must be an integer")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{what} must be an integer") from None
    if not low <= number <= high:
        raise ValueError(f"{what} must be between {low} and {high}")
    return number


def _replicas(value: Any, what: str = "replicas") -> int:
    return _integer(value, what, 0, MAX_REPLICAS)


def _revision(value: Any, what: str) -> int:
    """A Deployment revision: a positive integer (revisions grow without a small bound)."""
    return _integer(value, what, 1, 2**31)


def _quantities(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a mapping of cpu/memory to quantities")
    out = {}
    for key, quantity in value.items():
        if key not in ("cpu", "memory", "ephemeral-storage"):
            raise ValueError(f"{what}: unknown resource {key!r}")
        if not _QUANTITY.match(str(quantity)):
            raise ValueError(f"{what}.{key}: bad quantity {quantity!r}")
        out[str(key)] = str(quantity)
    return out


def _rollout_restart(
    ref: ObjectRef, params: Mapping[str, Any]
) -> tuple[str, str | None, dict[str, Any]]:
    return f"kubectl {_ns(ref)}rollout restart {_resource(ref)}", None, {}


def _rollout_undo(
    ref: ObjectRef, params: Mapping[str, Any]
) -> tuple[str, str | None, dict[str, Any]]:
    cmd = f"kubectl {_ns(ref)}rollout undo {_resource(ref)}"
    clean: dict[str, Any] = {}
    # --to-revision=0 means "the previous revision" to kubectl: same as leaving it out.
    if params.get("to_revision"):
        clean["to_revision"] = _revision(params["to_revision"], "to_revision")
        cmd += f" --to-revision={clean['to_revision']}"
    back = None
    if params.get("current_revision"):
        clean["current_revision"] = _revision(params["current_revision"], "current_revision")
        revision = clean["current_revision"]
        back = f"kubectl {_ns(ref)}rollout undo {_resource(ref)} --to-revision={revision}"
    return cmd, back, clean


def _scale(ref: ObjectRef, params: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    if ref.kind == "HorizontalPodAutoscaler":
        new = _replicas(params.get("max_replicas"), "max_replicas")
        patch = json.dumps({"spec": {"maxReplicas": new}}, separators=(",", ":"))
        cmd = f"kubectl {_ns(ref)}patch hpa/{ref.name} --type=merge -p '{patch}'"
        back = None
        if params.get("from_max_replicas") is not None:
            old = _replicas(params["from_max_replicas"], "from_max_replicas")
            old_patch = json.dumps({"spec": {"maxReplicas": old}}, separators=(",", ":"))
            back = f"kubectl {_ns(ref)}patch hpa/{ref.name} --type=merge -p '{old_patch}'"
            return cmd, back, {"max_replicas": new, "from_max_replicas": old}
        return cmd, back, {"max_replicas": new}
    replicas = _replicas(params.get("replicas"))
    cmd = f"kubectl {_ns(ref)}scale {_resource(ref)} --replicas={replicas}"
    clean: dict[str, Any] = {"replicas": replicas}
    back = None
    if params.get("from_replicas") is not None:
        clean["from_replicas"] = _replicas(params["from_replicas"], "from_replicas")
        back = f"kubectl {_ns(ref)}scale {_resource(ref)} --replicas={clean['from_replicas']}"
    return cmd, back, clean


def _set_resources(
    ref: ObjectRef, params: Mapping[str, Any]
) -> tuple[str, str | None, dict[str, Any]]:
    container = _container(params)
    limits = _quantities(params.get("limits"), "limits")
    requests = _quantities(params.get("requests"), "requests")
    if not limits and not requests:
        raise ValueError("set_resources needs limits or requests")

    def render(lim: dict[str, str], req: dict[str, str]) -> str:
        cmd = f"kubectl {_ns(ref)}set resources {_resource(ref)} -c {container}"
        if lim:
            cmd += " --limits=" + ",".join(f"{k}={v}" for k, v in sorted(lim.items()))
        if req:
            cmd += " --requests=" + ",".join(f"{k}={v}" for k, v in sorted(req.items()))
        return cmd

    clean: dict[str, Any] = {"container": container, "limits": limits, "requests": requests}
    old_limits = _quantities(params.get("from_limits"), "from_limits")
    old_requests = _quantities(params.get("from_requests"), "from_requests")
    back = render(old_limits, old_requests) if old_limits or old_requests else None
    if back:
        clean.update(from_limits=old_limits, from_requests=old_requests)
    return render(limits, requests), back, clean


def _set_image(ref: ObjectRef, params: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    container = _container(params)
    image = str(params.get("image", ""))
    if not _IMAGE.match(image):
        raise ValueError(f"bad image reference {image!r}")
    cmd = f"kubectl {_ns(ref)}set image {_resource(ref)} {container}={image}"
    clean: dict[str, Any] = {"container": container, "image": image}
    back = None
    previous = params.get("from_image")
    if previous is not None:
        if not _IMAGE.match(str(previous)):
            raise ValueError(f"bad image reference {previous!r}")
        clean["from_image"] = str(previous)
        back = f"kubectl {_ns(ref)}set image {_resource(ref)} {container}={previous}"
    return cmd, back, clean


def _delete_pod(
    ref: ObjectRef, params: Mapping[str, Any]
) -> tuple[str, str | None, dict[str, Any]]:
    return f"kubectl {_ns(ref)}delete pod {ref.name}", None, {}


def _node(
    verb: str, inverse: str
) -> Callable[[ObjectRef, Mapping[str, Any]], tuple[str, str | None, dict[str, Any]]]:
    def build(ref: ObjectRef, params: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
        return f"kubectl {verb} {ref.name}", f"kubectl {inverse} {ref.name}", {}

    return build


def _cronjob(
    suspend: bool,
) -> Callable[[ObjectRef, Mapping[str, Any]], tuple[str, str | None, dict[str, Any]]]:
    def patch(value: bool) -> str:
        return json.dumps({"spec": {"suspend": value}}, separators=(",", ":"))

    def build(ref: ObjectRef, params: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
        cmd = f"kubectl {_ns(ref)}patch cronjob/{ref.name} --type=merge -p '{patch(suspend)}'"
        back = f"kubectl {_ns(ref)}patch cronjob/{ref.name} --type=merge -p '{patch(not suspend)}'"
        return cmd, back, {}

    return build


def _helm_rollback(
    ref: ObjectRef, params: Mapping[str, Any]
) -> tuple[str, str | None, dict[str, Any]]:
    release = str(params.get("release", ""))
    if not _RELEASE.match(release):
        raise ValueError(f"bad helm release name {release!r}")
    revision = _replicas(params.get("revision", 0), "revision")
    cmd = f"helm rollback {release}" + (f" {revision}" if revision else "") + f" -n {ref.namespace}"
    return cmd, None, {"release": release, "revision": revision}


_BUILDERS: dict[
    str,
    tuple[
        tuple[str, ...],
        Callable[[ObjectRef, Mapping[str, Any]], tuple[str, str | None, dict[str, Any]]],
    ],
] = {
    "rollout_restart": (WORKLOADS, _rollout_restart),
    "rollout_undo": (WORKLOADS, _rollout_undo),
    "scale": (("Deployment", "StatefulSet", "HorizontalPodAutoscaler"), _scale),
    "set_resources": (WORKLOADS, _set_resources),
    "set_image": (WORKLOADS, _set_image),
    "delete_pod": (("Pod",), _delete_pod),
    "cordon": (("Node",), _node("cordon", "uncordon")),
    "uncordon": (("Node",), _node("uncordon", "cordon")),
    "suspend_cronjob": (("CronJob",), _cronjob(True)),
    "resume_cronjob": (("CronJob",), _cronjob(False)),
    "helm_rollback": (WORKLOADS, _helm_rollback),
}
KINDS = tuple(_BUILDERS)


def build_action(
    kind: str, target: str, params: Mapping[str, Any] | None = None, *, why: str = ""
) -> Action:
    """Validate a proposal and render it.

    Raises:
        ValueError: for an unknown kind, a target of the wrong kind or a bad parameter.
    """
    if kind not in _BUILDERS:
        raise ValueError(f"unknown action kind {kind!r}")
    kinds, builder = _BUILDERS[kind]
    ref = _ref(target, kinds)
    kubectl, rollback, clean = builder(ref, params or {})
    return Action(
        kind=kind, target=str(ref), kubectl=kubectl, params=clean, rollback=rollback, why=why
    )
