"""Pod logs as the API server, and the kubelet behind it, serve them.

Also the query-parameter parsing the log endpoint shares with the other handlers: booleans
and integers are read the way Go's ``strconv`` reads them, and a malformed value is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sandbox.kube_registry import ResourceType
from sandbox.kube_store import StatusError, invalid_cause, rfc3339

__all__ = ["query_flag", "query_int", "read_pod_log"]

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"", "0", "f", "F", "false", "FALSE", "False"}
_LEADING_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)\s?")
_LOG_OPTIONS = ResourceType("PodLogOptions", "", ("v1",), "pods", namespaced=True)
_PULL_FAILURES = {
    "ErrImagePull": "image can't be pulled",
    "ImagePullBackOff": "trying and failing to pull image",
}


def query_flag(query: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter (absent is false).

    Raises:
        StatusError: 400, the value is not a Go boolean.
    """
    value = query.get(name, "")
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise StatusError.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def query_int(query: Mapping[str, str], name: str) -> int | None:
    """An integer query parameter, or None when absent or empty.

    Raises:
        StatusError: 400, the value is not an integer.
    """
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        message = f'strconv.ParseInt: parsing "{value}": invalid syntax'
        raise StatusError.bad_request(message) from None


def read_pod_log(
    pod: Mapping[str, Any],
    logs: Mapping[str, Mapping[str, str]],
    query: Mapping[str, str],
    now: datetime,
) -> bytes:
    """The body of ``GET .../pods/{name}/log`` for a stored pod.

    Args:
        pod: The pod object.
        logs: ``"<namespace>/<pod>/<container>"`` -> ``{"current": ..., "previous": ...}``.
        query: The request's query: container, previous, tailLines, limitBytes, timestamps.
        now: Timestamp for lines that carry none of their own (``timestamps=true``).

    Returns:
        The log text, UTF-8 encoded, cut to ``tailLines`` lines and then ``limitBytes`` bytes.

    Raises:
        StatusError: 400 for a missing/unknown container or a log that does not exist (with
            the message a real cluster gives), 422 for out-of-range options.
    """
    metadata = pod["metadata"]
    container = _container(pod, query.get("container", ""))
    previous = query_flag(query, "previous")
    tail_lines = query_int(query, "tailLines")
    limit_bytes = query_int(query, "limitBytes")
    causes = []
    if tail_lines is not None and tail_lines < 0:
        causes.append(invalid_cause("tailLines", tail_lines, "must be greater than or equal to 0"))
    if limit_bytes is not None and limit_bytes < 1:
        causes.append(invalid_cause("limitBytes", limit_bytes, "must be greater than 0"))
    if causes:
        raise StatusError.invalid(_LOG_OPTIONS, "", causes)
    key = f"{metadata.get('namespace')}/{metadata['name']}/{container}"
    text = (logs.get(key) or {}).get("previous" if previous else "current", "")
    if not text:
        _explain_missing(pod, container, previous=previous)
    if query_flag(query, "timestamps"):
        text = _with_timestamps(text, now)
    if tail_lines is not None:
        text = "".join(text.splitlines(keepends=True)[-tail_lines:] if tail_lines else [])
    data = text.encode()
    return data if limit_bytes is None else data[:limit_bytes]


def _container(pod: Mapping[str, Any], requested: str) -> str:
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for c in spec.get("containers") or []]
    init_names = [str(c.get("name")) for c in spec.get("initContainers") or []]
    if requested:
        if requested not in names + init_names:
            raise StatusError.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    message = (
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    )
    if init_names:
        message += f" or one of the init containers: [{' '.join(init_names)}]"
    raise StatusError.bad_request(message)


def _explain_missing(pod: Mapping[str, Any], container: str, *, previous: bool) -> None:
    """Raise the error a real cluster gives when a container has no such log.

    Logs present in the scenario are always served; this only explains their absence, so a
    pod that never started answers like a real one instead of with an empty log.
    """
    name = pod["metadata"]["name"]
    if not (pod.get("spec") or {}).get("nodeName"):
        raise StatusError.bad_request(f"pod {name} does not have a host assigned")
    if previous:
        message = f'previous terminated container "{container}" in pod "{name}" not found'
        raise StatusError.bad_request(message)
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    status: Mapping[str, Any] = next((s for s in statuses if s.get("name") == container), {})
    state, last = status.get("state") or {}, status.get("lastState") or {}
    waiting = state.get("waiting")
    if waiting and "running" not in state and "terminated" not in last:
        reason = str(waiting.get("reason", ""))
        explained = _PULL_FAILURES.get(reason, reason)
        message = f'container "{container}" in pod "{name}" is waiting to start: {explained}'
        raise StatusError.bad_request(message)


def _with_timestamps(text: str, now: datetime) -> str:
    """Prefix each line with an RFC 3339 timestamp, reusing one the line starts with."""
    fallback = rfc3339(now)
    lines = []
    for line in text.splitlines(keepends=True):
        match = _LEADING_TIMESTAMP.match(line)
        lines.append(f"{match[1] if match else fallback} {line}")
    return "".join(lines)
