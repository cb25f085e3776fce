"""The read-only tools Claude may call while it investigates.

The model holds no write capability (DESIGN principle 2): every tool here reads, through
:class:`bot.kube.KubeReader` (GET only, no Secrets), a Prometheus range-query callable, or
the evidence bundle already collected. Inputs are validated by pydantic models — which also
give the JSON Schemas the API needs — so a model-chosen name cannot walk the API path
(``../secrets``), and kinds are limited to :data:`bot.kube.RESOURCES`.

A tool never raises: failures come back as ``"error: …"`` text the model can reason about.
Every result is masked (:func:`bot.masking.mask`) and cut at ``max_output`` characters.
Without a cluster connection the Kubernetes tools answer from the bundle instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.errors import KubeError
from bot.kube import RESOURCES, KubeReader
from bot.masking import mask, mask_env, mask_mapping
from bot.rca.bundle import Bundle, KubeObject, MetricSeries
from bot.rca.prompt import (
    describe_rollout,
    describe_series,
    event_line,
    event_time,
    summarize_object,
    tail,
)
from bot.targets import ObjectRef

log = logging.getLogger(__name__)

PromQuery = Callable[[str, datetime, datetime], Awaitable[list[MetricSeries]]]
"""``(promql, start, end) -> series``: one range query; raises on failure."""

NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9.:]{0,251}[a-z0-9])?$"
_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_SELECTOR_PATTERN: Final = r"^[A-Za-z0-9_.\-/=!,() ]{0,500}$"
_KINDS: Final = sorted(RESOURCES)
_CLUSTER_KINDS: Final = frozenset(k for k, r in RESOURCES.items() if not r.namespaced)
_MAX_ITEMS: Final = 40
_DROPPED_META: Final = ("managedFields",)
_LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"


# --------------------------------------------------------------------------- inputs


def _kind() -> Any:
    return Field(json_schema_extra={"enum": list(_KINDS)}, description="Kubernetes kind")


def _namespace() -> Any:
    return Field(
        default="",
        pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$",
        description="namespace; empty for cluster-scoped kinds",
    )


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GetObject(_Input):
    """Fetch one Kubernetes object (metadata, spec and status; managedFields dropped).

    Use it to read a workload's pod template, resources, probes, env, an HPA's or quota's
    spec and status, a Node's conditions. Secrets cannot be read.
    """

    kind: str = _kind()
    namespace: str = _namespace()
    name: str = Field(pattern=NAME_PATTERN)


class ListObjects(_Input):
    """List objects of a kind with a one-line-per-item summary (not full objects).

    Supports Kubernetes label and field selectors, e.g. label_selector "app=cart",
    field_selector "spec.nodeName=node-a" or "status.phase=Pending".
    """

    kind: str = _kind()
    namespace: str = _namespace()
    label_selector: str = Field(default="", pattern=_SELECTOR_PATTERN)
    field_selector: str = Field(default="", pattern=_SELECTOR_PATTERN)


class GetEvents(_Input):
    """Events whose involvedObject is the given object, oldest first."""

    kind: str = _kind()
    namespace: str = _namespace()
    name: str = Field(pattern=NAME_PATTERN)


class GetLogs(_Input):
    """The tail of one container's log; previous=true reads the last terminated instance."""

    namespace: str = Field(pattern=_LABEL_PATTERN)
    pod: str = Field(pattern=NAME_PATTERN)
    container: str = Field(pattern=_LABEL_PATTERN)
    previous: bool = False
    tail_lines: int = Field(default=100, ge=1, le=500)


class PrometheusQuery(_Input):
    """Run a PromQL range query over the last `minutes` before the investigation clock."""

    query: str = Field(min_length=1, max_length=2000)
    minutes: int = Field(default=30, ge=1, le=360)


class RolloutDiff(_Input):
    """What the latest rollout of the affected workload changed (image, env, resources …)."""


_TOOLS: Final[dict[str, type[_Input]]] = {
    "get_object": GetObject,
    "list_objects": ListObjects,
    "get_events": GetEvents,
    "get_logs": GetLogs,
    "prometheus_query": PrometheusQuery,
    "rollout_diff": RolloutDiff,
}


def _schema(model: type[_Input]) -> dict[str, Any]:
    schema = model.model_json_schema()
    properties = {
        name: {k: v for k, v in prop.items() if k != "title"}
        for name, prop in (schema.get("properties") or {}).items()
    }
    return {
        "type": "object",
        "properties": properties,
        "required": schema.get("required", []),
        "additionalProperties": False,
    }


def _description(model: type[_Input]) -> str:
    return " ".join((model.__doc__ or "").split())


def ref_for(name: str, tool_input: Mapping[str, Any]) -> str:
    """The object a tool call is about, for the fence around its result."""
    ns = str(tool_input.get("namespace") or "")
    if name in ("get_object", "get_events"):
        kind, obj = str(tool_input.get("kind", "")), str(tool_input.get("name", ""))
        return str(ObjectRef(kind, obj, "" if kind in _CLUSTER_KINDS else ns))
    if name == "get_logs":
        return f"{ns}/Pod/{tool_input.get('pod', '')}"
    if name == "list_objects":
        return f"{ns}/{tool_input.get('kind', '')}" if ns else str(tool_input.get("kind", ""))
    return name


# --------------------------------------------------------------------------- the tools


class ReadOnlyTools:
    """Tool definitions and their execution for one investigation.

    Args:
        kube: Read-only Kubernetes access, or None (then the bundle answers).
        prometheus: A range-query callable, or None (then ``prometheus_query`` is not
            offered).
        bundle: The incident's evidence (``now``, ``rollout`` and the fallback data); bind
            one later with :meth:`with_bundle`.
        max_output: Characters per result; longer results are cut with a note.
        timeout: Seconds allowed per tool call.
    """

    def __init__(
        self,
        kube: KubeReader | None,
        prometheus: PromQuery | None,
        bundle: Bundle | None = None,
        *,
        max_output: int = 6000,
        timeout: float = 10.0,
    ) -> None:
        self._kube = kube
        self._prometheus = prometheus
        self._bundle = bundle
        self.max_output = max_output
        self.timeout = timeout

    def with_bundle(self, bundle: Bundle) -> ReadOnlyTools:
        """The same tools, bound to another incident's evidence."""
        return ReadOnlyTools(
            self._kube,
            self._prometheus,
            bundle,
            max_output=self.max_output,
            timeout=self.timeout,
        )

    @property
    def names(self) -> list[str]:
        """The tools offered (``prometheus_query`` only with a Prometheus)."""
        return [n for n in _TOOLS if n != "prometheus_query" or self._prometheus is not None]

    @property
    def definitions(self) -> list[dict[str, Any]]:
        """The tool definitions for the Messages API ``tools`` parameter."""
        return [
            {
                "name": name,
                "description": _description(_TOOLS[name]),
                "input_schema": _schema(_TOOLS[name]),
            }
            for name in self.names
        ]

    async def call(self, name: str, input: Mapping[str, Any]) -> str:
        """Run one tool; the result is masked text, never an exception.

        Args:
            name: The tool's name.
            input: The model's input for it.

        Returns:
            The result, or ``"error: …"``; masked and at most ``max_output`` characters
            (plus a truncation note).
        """
        try:
            if name not in self.names:
                raise _ToolError(f"unknown tool {name!r}; available: {', '.join(self.names)}")
            try:
                args = _TOOLS[name].model_validate(dict(input))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                    for e in exc.errors()[:4]
                )
                raise _ToolError(f"invalid input: {problems}") from None
            if getattr(args, "kind", "Pod") not in RESOURCES:
                raise _ToolError(
                    f"kind must be one of {', '.join(_KINDS)} (Secrets are never read)"
                )
            text = await asyncio.wait_for(self._dispatch(name, args), self.timeout)
        except _ToolError as exc:
            text = f"error: {exc}"
        except TimeoutError:
            text = f"error: {name} timed out after {self.timeout:g}s"
        except KubeError as exc:
            text = f"error: kubernetes: {exc}"
        except Exception as exc:  # a tool must never break the investigation
            log.warning("tool %s failed", name, exc_info=True)
            text = f"error: {type(exc).__name__}: {exc}"
        return self._finish(text)

    def _finish(self, text: str) -> str:
        masked = mask(text)
        if len(masked) <= self.max_output:
            return masked
        cut = len(masked) - self.max_output
        return (
            masked[: self.max_output]
            + f"\n… [truncated: {cut} more characters; narrow the request]"
        )

    async def _dispatch(self, name: str, args: _Input) -> str:
        if isinstance(args, GetObject):
            return await self._get_object(args)
        if isinstance(args, ListObjects):
            return await self._list_objects(args)
        if isinstance(args, GetEvents):
            return await self._get_events(args)
        if isinstance(args, GetLogs):
            return await self._get_logs(args)
        if isinstance(args, PrometheusQuery):
            return await self._prometheus_query(args)
        return self._rollout_diff()

    # ----------------------------------------------------------------- kubernetes

    def _scope(self, kind: str, namespace: str) -> str | None:
        if kind in _CLUSTER_KINDS:
            return None
        if not namespace:
            raise _ToolError(f"{kind} is namespaced: give a namespace")
        return namespace

    async def _get_object(self, args: GetObject) -> str:
        ns = self._scope(args.kind, args.namespace)
        if self._kube is not None:
            obj = await self._kube.get(args.kind, ns, args.name)
        else:
            obj = self._from_bundle(ObjectRef(args.kind, args.name, ns or ""))
        if obj is None:
            return f"error: {args.kind} {ns + '/' if ns else ''}{args.name} not found"
        return _dump(obj)

    async def _list_objects(self, args: ListObjects) -> str:
        ns = self._scope(args.kind, args.namespace) if args.namespace else None
        if self._kube is not None:
            items = await self._kube.list_objects(
                args.kind,
                ns,
                label_selector=args.label_selector or None,
                field_selector=args.field_selector or None,
            )
        else:
            items = self._list_bundle(args.kind, ns, args.label_selector, args.field_selector)
        if not items:
            return f"no {args.kind} found"
        lines = [_one_line(item) for item in items[:_MAX_ITEMS]]
        if len(items) > _MAX_ITEMS:
            lines.append(f"… {len(items) - _MAX_ITEMS} more; narrow with a selector")
        return f"{len(items)} {args.kind}:\n" + "\n".join(lines)

    async def _get_events(self, args: GetEvents) -> str:
        ns = self._scope(args.kind, args.namespace)
        if self._kube is not None:
            selector = f"involvedObject.kind={args.kind},involvedObject.name={args.name}"
            events = await self._kube.list_objects("Event", ns, field_selector=selector)
        else:
            events = self._bundle_required().events_for(ObjectRef(args.kind, args.name, ns or ""))
        if not events:
            return f"no events for {args.kind}/{args.name}"
        events.sort(key=event_time)
        return "\n".join(event_line(e) for e in events[-_MAX_ITEMS:])

    async def _get_logs(self, args: GetLogs) -> str:
        if self._kube is not None:
            text = await self._kube.logs(
                args.namespace,
                args.pod,
                args.container,
                previous=args.previous,
                tail_lines=args.tail_lines,
            )
        else:
            entry = self._bundle_required().logs.get(f"{args.pod}/{args.container}")
            if entry is None:
                return f"error: no logs collected for {args.pod}/{args.container}"
            text = tail(entry.previous if args.previous else entry.current, args.tail_lines, 10**6)
        return text if text.strip() else "(empty log)"

    def _bundle_required(self) -> Bundle:
        if self._bundle is None:
            raise _ToolError("no evidence bundle bound to the tools")
        return self._bundle

    def _from_bundle(self, ref: ObjectRef) -> KubeObject | None:
        bundle = self._bundle_required()
        return bundle.get(ref) or bundle.get(dataclasses.replace(ref, namespace=""))

    def _list_bundle(
        self, kind: str, ns: str | None, label_selector: str, field_selector: str
    ) -> list[KubeObject]:
        if field_selector:
            raise _ToolError("field selectors need cluster access; none is configured")
        wanted = _equality_selector(label_selector)
        out = []
        for ref, obj in self._bundle_required().of_kind(kind):
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if (ns is None or ref.namespace == ns) and all(
                labels.get(k) == v for k, v in wanted.items()
            ):
                out.append(obj)
        return out

    # ----------------------------------------------------------------- prometheus, rollout

    async def _prometheus_query(self, args: PrometheusQuery) -> str:
        assert self._prometheus is not None  # not offered otherwise
        end = self._bundle_required().now
        series = await self._prometheus(args.query, end - timedelta(minutes=args.minutes), end)
        if not series:
            return "no series"
        lines = [describe_series(s) for s in series[:20]]
        if len(series) > 20:
            lines.append(f"… {len(series) - 20} more series; aggregate with sum by (…)")
        return "\n".join(lines)

    def _rollout_diff(self) -> str:
        rollout = self._bundle_required().rollout
        if rollout is None:
            return "no recent rollout found for the affected workload"
        return describe_rollout(rollout)


class _ToolError(Exception):
    """A tool call that cannot be served; its message goes back to the model."""


# --------------------------------------------------------------------------- rendering


def _dump(obj: KubeObject) -> str:
    """The object as YAML, without managedFields, env and ConfigMap values masked by name."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _DROPPED_META}
    if _LAST_APPLIED in (meta.get("annotations") or {}):
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != _LAST_APPLIED}
    clean = _mask_env_values({**obj, "metadata": meta})
    if obj.get("kind") == "ConfigMap" and isinstance(obj.get("data"), dict):
        clean["data"] = mask_mapping({str(k): str(v) for k, v in obj["data"].items()})
    return yaml.safe_dump(clean, sort_keys=False, default_flow_style=False, width=120)


def _mask_env_values(node: Any) -> Any:
    """A copy with every ``{"name": N, "value": V}`` (an env entry) masked by its name.

    ``mask`` would catch ``DB_PASSWORD=…`` in text, but in YAML the name and the value
    sit on different lines; judging by the name here is exact.
    """
    if isinstance(node, list):
        return [_mask_env_values(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {k: _mask_env_values(v) for k, v in node.items()}
    if isinstance(copy.get("name"), str) and isinstance(copy.get("value"), str):
        copy["value"] = mask_env(copy["name"], copy["value"])
    return copy


def _one_line(obj: KubeObject) -> str:
    """The first line of the object's summary plus its status headline."""
    lines = summarize_object(obj).splitlines()
    head = lines[0]
    kind = obj.get("kind")
    if (
        kind in ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
        and len(lines) > 1
    ):
        head += " | " + lines[1]
    if kind == "Pod":
        states = [line.strip() for line in lines if line.strip().startswith("ready=")]
        head += "".join(f" | {s}" for s in states[:3])
    if kind == "Event":
        head = event_line(obj)
    return head


def _equality_selector(selector: str) -> dict[str, str]:
    """``a=b,c==d`` as a dict; anything else needs a real API server."""
    wanted = {}
    for part in filter(None, (p.strip() for p in selector.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or key.endswith("!"):
            raise _ToolError("without cluster access only k=v label selectors work")
        wanted[key.strip()] = value.removeprefix("=").strip()
    return wanted
