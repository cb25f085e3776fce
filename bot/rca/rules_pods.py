"""Rules about containers: pulls, config, OOM, probes, throttling and what the logs say."""

from __future__ import annotations

import re

from bot.rca.facts import Container, Facts, mebibytes, quantity
from bot.rca.model import Action, EvidenceItem, Hypothesis
from bot.rca.rules_k8s import _ev, _event_item, _safe

_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
_CONFIG_REF = re.compile(
    r'(configmap|secret)s? "([^"]+)" not found'
    r"|couldn't find key (\S+) in (ConfigMap|Secret) ([\w./-]+)",
    re.I,
)


def _first(items: list[Container]) -> Container | None:
    return items[0] if items else None


def image_pull(f: Facts) -> Hypothesis | None:
    stuck = [c for c in f.containers if c.waiting.get("reason") in _PULL_REASONS]
    events = [e for e in f.warnings("Failed") if "pull" in str(e.get("message", "")).lower()]
    if not stuck and not events:
        return None
    container = _first(stuck)
    image = (container.spec.get("image") if container else None) or ""
    detail = (
        str(events[0].get("message", ""))
        if events
        else str(container.waiting.get("message", "") if container else "")
    )
    why = "the image cannot be pulled"
    lowered = detail.lower()
    if "not found" in lowered or "manifest unknown" in lowered:
        why = "the tag does not exist in the registry"
    elif "unauthorized" in lowered or "denied" in lowered or "authentication" in lowered:
        why = "the registry refuses the credentials (imagePullSecrets)"
    elif "timeout" in lowered or "i/o timeout" in lowered or "no such host" in lowered:
        why = "the registry cannot be reached"
    evidence: list[EvidenceItem] = []
    if container:
        evidence.append(
            _ev(
                "kubernetes",
                f"container {container.name} waiting: {container.waiting.get('reason')} ({image})",
                container.pod,
            )
        )
    evidence += [_event_item(e) for e in events[:2]]
    return Hypothesis(
        category="image_pull",
        object=f.fault_object(),
        summary=f"image {image or '?'} cannot be pulled: {why}",
        root_cause=f"The kubelet cannot pull {image or 'the image'}: {why}. {detail[:300]}",
        confidence=0.95,
        evidence=evidence,
        rule="image_pull",
    )


def init_container_failed(f: Facts) -> Hypothesis | None:
    broken = [c for c in f.containers if c.init and c.failing]
    if not broken:
        return None
    c = broken[0]
    term = c.terminated
    line = f.crash_lines.get(c.key)
    evidence = [
        _ev(
            "kubernetes",
            f"init container {c.name} {c.waiting.get('reason') or term.get('reason', '')} "
            f"(exit {term.get('exitCode', '?')}), restarts {c.restarts}",
            c.pod,
        )
    ]
    if line:
        evidence.append(_ev("logs", line, c.pod))
    return Hypothesis(
        category="init_container_failed",
        object=f.fault_object(),
        summary=f"init container {c.name} fails, so the pod never starts"
        + (f": {line[:120]}" if line else ""),
        root_cause=(
            f"Init container {c.name} exits with {term.get('exitCode', 'an error')}; the app "
            "containers only start after every init container succeeds."
            + (f" It reports: {line}" if line else "")
        ),
        confidence=0.9,
        evidence=evidence,
        rule="init_container_failed",
    )


def missing_config(f: Facts) -> Hypothesis | None:
    evidence: list[EvidenceItem] = []
    what = ""
    for c in f.containers:
        message = str(c.waiting.get("message", ""))
        if c.waiting.get("reason") == "CreateContainerConfigError" or _CONFIG_REF.search(message):
            evidence.append(
                _ev("kubernetes", f"container {c.name} {c.waiting.get('reason')}: {message}", c.pod)
            )
            what = what or message
    for event in f.warnings("Failed", "FailedMount"):
        message = str(event.get("message", ""))
        if _CONFIG_REF.search(message):
            evidence.append(_event_item(event))
            what = what or message
    signals = f.focus_signals("missing_env", "missing_file")
    for s in signals[:2]:
        evidence.append(_ev("logs", s.signal.line, s.container.pod))
        var = s.signal.detail.get("variable") or s.signal.detail.get("path") or ""
        what = (
            what
            or f"{'environment variable' if s.signal.kind == 'missing_env' else 'file'} {var} "
            "is missing"
        )
    if not evidence:
        return None
    explicit = any(e.source != "logs" for e in evidence)
    return Hypothesis(
        category="missing_config",
        object=f.fault_object(),
        summary=f"missing configuration: {what[:160]}",
        root_cause=(
            f"The container needs configuration that is not there: {what}. The pod cannot start "
            "(or exits right away) until the ConfigMap/Secret/key or variable exists."
        ),
        confidence=0.92 if explicit else 0.82,
        evidence=evidence[:5],
        rule="missing_config",
    )


def config_error(f: Facts) -> Hypothesis | None:
    signals = f.focus_signals("config_parse")
    if not signals:
        return None
    s = signals[0]
    return Hypothesis(
        category="config_error",
        object=f.fault_object(),
        summary=f"invalid configuration: {s.signal.line[:160]}",
        root_cause=(
            f"Container {s.container.name} refuses its configuration and exits: {s.signal.line}. "
            "The configuration exists but a value, flag or file does not parse."
        ),
        confidence=0.83,
        evidence=[_ev("logs", x.signal.line, x.container.pod) for x in signals[:3]] + _exits(f),
        rule="config_error",
    )


def _exits(f: Facts) -> list[EvidenceItem]:
    out = []
    for c in f.failing()[:2]:
        term = c.terminated
        if term:
            out.append(
                _ev(
                    "kubernetes",
                    f"container {c.name} exit {term.get('exitCode')} "
                    f"({term.get('reason', '')}), restarts {c.restarts}",
                    c.pod,
                )
            )
    return out


def oom_killed(f: Facts) -> Hypothesis | None:
    # An OOM kill long before the alert (a week-old lastState) is history, not the cause.
    killed = [
        c
        for c in f.containers
        if c.terminated.get("reason") == "OOMKilled" and f.happened_recently(c.terminated)
    ]
    if not killed:
        return None
    c = killed[0]
    limit = c.limit("memory")
    evidence = [
        _ev(
            "kubernetes",
            f"container {c.name} lastState.terminated.reason=OOMKilled "
            f"(exit {c.terminated.get('exitCode', 137)}), restarts {c.restarts}",
            c.pod,
        )
    ]
    if limit:
        evidence.append(_ev("kubernetes", f"memory limit {limit}", c.pod))
    peak = max((s.peak or 0.0 for s in f.bundle.series("memory_working_set_bytes")), default=0.0)
    if peak:
        evidence.append(_ev("prometheus", f"working set peaked at {mebibytes(peak)}", c.pod))
    for s in f.focus_signals("oom_hint")[:1]:
        evidence.append(_ev("logs", s.signal.line, s.container.pod))
    actions: list[Action] = []
    obj = f.fault_object()
    size = quantity(limit)
    if obj and size:
        actions = _safe(
            "set_resources",
            obj,
            {
                "container": c.name,
                "limits": {"memory": mebibytes(size * 2)},
                "from_limits": {"memory": limit},
            },
            f"double the memory limit {limit} → {mebibytes(size * 2)}",
        )
    summary = f"{c.name} is OOMKilled" + (f" at its {limit} memory limit" if limit else "")
    if peak:
        summary += f"; working set peaks at {mebibytes(peak)}"
    return Hypothesis(
        category="oom_killed",
        object=obj,
        summary=summary,
        root_cause=(
            f"Container {c.name} exceeds its memory limit{f' of {limit}' if limit else ''} and the "
            f"kernel kills it (OOMKilled, exit 137); it has restarted {c.restarts} times. Either "
            "the workload needs more memory than it declares or it leaks."
        ),
        confidence=0.95,
        evidence=evidence,
        actions=actions,
        rule="oom_killed",
    )


def _probe_events(f: Facts, probe: str) -> list[dict[str, object]]:
    return [
        e
        for e in f.warnings("Unhealthy", "Killing")
        if f"{probe} probe" in str(e.get("message", "")).lower()
    ]


def liveness_probe(f: Facts) -> Hypothesis | None:
    events = _probe_events(f, "liveness")
    kills = [
        e
        for e in events
        if e.get("reason") == "Killing" or "will be restarted" in str(e.get("message", ""))
    ]
    restarted = [
        c for c in f.containers if c.restarts > 0 and c.terminated.get("reason") != "OOMKilled"
    ]
    if not events or not (kills or restarted):
        return None
    c = restarted[0] if restarted else None
    evidence = [_event_item(e) for e in events[:3]]
    if c:
        evidence.append(
            _ev(
                "kubernetes",
                f"container {c.name} restarts {c.restarts}, "
                f"last exit {c.terminated.get('exitCode', '?')}",
                c.pod,
            )
        )
    probe = (c.spec.get("livenessProbe") if c else None) or {}
    return Hypothesis(
        category="liveness_probe",
        object=f.fault_object(),
        summary="the liveness probe fails and the kubelet restarts the container",
        root_cause=(
            "The kubelet kills the container because its liveness probe fails "
            f"({str(events[0].get('message', ''))[:200]}). "
            + (
                f"Probe: timeout {probe.get('timeoutSeconds', 1)}s, "
                f"period {probe.get('periodSeconds', 10)}s, "
                f"failureThreshold {probe.get('failureThreshold', 3)}. "
                if probe
                else ""
            )
            + "The app answers too slowly or not at all on its health endpoint."
        ),
        confidence=0.86,
        evidence=evidence,
        rule="liveness_probe",
    )


def readiness_probe(f: Facts) -> Hypothesis | None:
    events = _probe_events(f, "readiness")
    if not events:
        return None
    unready = [c for c in f.containers if not c.init and not c.ready]
    return Hypothesis(
        category="readiness_probe",
        object=f.fault_object(),
        summary="pods are not ready: the readiness probe fails",
        root_cause=(
            f"The readiness probe fails ({str(events[0].get('message', ''))[:200]}), so the pods "
            "are taken out of their Services' endpoints."
        ),
        confidence=0.8 if unready else 0.6,
        evidence=[_event_item(e) for e in events[:3]]
        + [_ev("kubernetes", f"container {c.name} ready=false", c.pod) for c in unready[:2]],
        rule="readiness_probe",
    )


def cpu_throttling(f: Facts) -> Hypothesis | None:
    ratio = max((s.peak or 0.0 for s in f.bundle.series("cpu_throttling_ratio")), default=0.0)
    alerted = f.bundle.alertname == "CPUThrottlingHigh"
    if ratio < 0.25 and not alerted:
        return None
    c = next((x for x in f.containers if x.name == f.bundle.labels.get("container")), None)
    c = c or next((x for x in f.containers if x.limit("cpu")), None)
    limit = c.limit("cpu") if c else None
    evidence = []
    if ratio:
        evidence.append(
            _ev("prometheus", f"CFS throttling ratio peaks at {ratio:.0%}", c.pod if c else "")
        )
    if limit and c:
        evidence.append(_ev("kubernetes", f"container {c.name} cpu limit {limit}", c.pod))
    if alerted:
        evidence.append(
            _ev(
                "alert",
                f.bundle.annotations.get("description", "CPUThrottlingHigh"),
                c.pod if c else "",
            )
        )
    actions: list[Action] = []
    cores = quantity(limit)
    obj = f.fault_object()
    if c and obj and cores:
        new = f"{int(cores * 2 * 1000)}m"
        actions = _safe(
            "set_resources",
            obj,
            {"container": c.name, "limits": {"cpu": new}, "from_limits": {"cpu": limit}},
            f"double the CPU limit {limit} → {new}",
        )
    return Hypothesis(
        category="cpu_throttling",
        object=obj,
        summary=f"CPU throttled at its {limit or '?'} limit"
        + (f" ({ratio:.0%} of periods)" if ratio else ""),
        root_cause=(
            "The container hits its CPU limit"
            + (f" of {limit}" if limit else "")
            + " and the kernel's CFS "
            "quota throttles it, which shows up as latency and timeouts rather than crashes."
        ),
        confidence=0.85 if ratio >= 0.25 else 0.7,
        evidence=evidence,
        actions=actions,
        rule="cpu_throttling",
    )


# Log-derived categories: signal kinds → (category, how to phrase it).
_LOG_CATEGORIES: tuple[tuple[str, tuple[str, ...], str, float], ...] = (
    ("certificate_expired", ("tls_expired", "tls_invalid"), "TLS certificate problem", 0.86),
    ("dns_failure", ("dns",), "name resolution fails", 0.84),
    ("permission_denied", ("rbac_forbidden", "permission_denied"), "permission denied", 0.84),
    ("disk_full", ("disk_full",), "no space left on device", 0.86),
    (
        "resource_contention",
        ("db_locked", "pool_exhausted"),
        "lock / connection pool contention",
        0.8,
    ),
    (
        "dependency_unavailable",
        ("connection_refused", "timeout", "http_5xx"),
        "a downstream is unreachable",
        0.8,
    ),
)


def log_rules(f: Facts) -> list[Hypothesis]:
    """One hypothesis per log-derived category with signals in the failing containers."""
    out = []
    for category, kinds, phrase, confidence in _LOG_CATEGORIES:
        signals = f.focus_signals(*kinds)
        if not signals:
            continue
        s = signals[0]
        detail = s.signal.detail
        subject = (
            detail.get("host")
            or detail.get("path")
            or detail.get("resource")
            or detail.get("user")
            or ""
        )
        hosts = {x.signal.detail.get("host") for x in signals if x.signal.detail.get("host")}
        summary = f"{phrase}" + (f": {subject}" if subject else "") + f" — {s.signal.line[:140]}"
        out.append(
            Hypothesis(
                category=category,
                object=f.fault_object(),
                summary=summary,
                root_cause=(
                    f"Container {s.container.name} logs show {phrase}"
                    + (f" ({', '.join(sorted(h for h in hosts if h))})" if hosts else "")
                    + f": {s.signal.line}"
                ),
                # Repeated, consistent signals in the failing container are stronger.
                confidence=min(0.95, confidence + 0.02 * min(len(signals) - 1, 4)),
                evidence=[_ev("logs", x.signal.line, x.container.pod) for x in signals[:3]]
                + _exits(f),
                rule=category,
            )
        )
    return out


def app_crash(f: Facts) -> Hypothesis | None:
    crashing = [c for c in f.failing() if not c.init and c.terminated.get("reason") != "OOMKilled"]
    signals = f.focus_signals("panic", "exception")
    if not crashing and not signals:
        return None
    c = crashing[0] if crashing else signals[0].container
    term = c.terminated
    line = (signals[0].signal.line if signals else None) or f.crash_lines.get(c.key)
    evidence = _exits(f)
    if line:
        evidence.append(_ev("logs", line, c.pod))
    return Hypothesis(
        category="app_crash",
        object=f.fault_object(),
        summary=f"{c.name} crashes (exit {term.get('exitCode', '?')})"
        + (f": {line[:140]}" if line else ""),
        root_cause=(
            f"The application in {c.name} exits with code {term.get('exitCode', '?')} and is "
            f"restarted ({c.restarts} restarts)." + (f" First error: {line}" if line else "")
        ),
        confidence=0.8 if signals else 0.65,
        evidence=evidence,
        rule="app_crash",
    )


RULES = (
    image_pull,
    init_container_failed,
    missing_config,
    config_error,
    oom_killed,
    liveness_probe,
    readiness_probe,
    cpu_throttling,
    app_crash,
)
