"""Investigations: collect evidence, run the rule analyzer, deepen with Claude when configured.

The same :class:`Investigator` serves the pipeline (every new incident), the CLI's live
forms and ``investigate --scenario`` (a sandbox API server and, when the binaries exist, a
real Prometheus loaded with the scenario's metrics).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.collect.kubernetes import KubeCollector
from bot.collect.prometheus import PromCollector
from bot.config import Settings
from bot.errors import ConfigError
from bot.kube import RESOURCES, KubeReader, make_api_client
from bot.masking import mask
from bot.rca.analyzer import analyze
from bot.rca.bundle import Bundle
from bot.rca.history import rerank
from bot.rca.model import Analysis
from bot.targets import ObjectRef, WorkloadResolver
from bot.webhook import WebhookPayload, parse_webhook
from policies.engine import Policy, PolicyError, judge, load_policy
from policies.kubectl import parse_kubectl

if TYPE_CHECKING:
    from bot.rca.claude import ClaudeAnalyzer
    from rag.memory import IncidentMemory
    from sandbox.scenario import Scenario

log = logging.getLogger(__name__)

# The kube-state-metrics label that names each kind (how alerts would name it).
OBJECT_LABELS = {
    "Pod": "pod",
    "Deployment": "deployment",
    "StatefulSet": "statefulset",
    "DaemonSet": "daemonset",
    "Job": "job_name",
    "CronJob": "cronjob",
    "HorizontalPodAutoscaler": "horizontalpodautoscaler",
    "PersistentVolumeClaim": "persistentvolumeclaim",
    "Node": "node",
    "Service": "service",
    "ResourceQuota": "resourcequota",
}


@dataclass
class Investigation:
    """One investigation's bundle, analysis and §3 report."""

    bundle: Bundle
    analysis: Analysis
    report: dict[str, Any]
    similar: list[dict[str, Any]] = field(default_factory=list)


class Investigator:
    """Evidence → rules → (Claude). Dependencies are injected; see :meth:`from_settings`."""

    def __init__(
        self,
        kube: KubeReader | None,
        *,
        prometheus_url: str | None = None,
        evidence_timeout: float = 8.0,
        claude: ClaudeAnalyzer | None = None,
        policy: Policy | None = None,
    ) -> None:
        self._kube = kube
        self._resolver = WorkloadResolver(kube)
        self._collector = KubeCollector(kube, timeout=evidence_timeout)
        self._prom = PromCollector(prometheus_url or None, timeout=min(5.0, evidence_timeout))
        self.claude = claude
        self.policy = policy if policy is not None else load_policy()
        # Incident memory: similar past incidents for each report (set by the runtime/CLI).
        self.memory: IncidentMemory | None = None
        self.similar_top = 5
        self.similar_min_score = 0.5
        self.similar_timeout = 5.0

    @classmethod
    def from_settings(cls, settings: Settings, kube: KubeReader | None) -> Investigator:
        """The investigator a running bot uses (Claude only with an API key)."""
        try:
            policy = load_policy([Path(p) for p in settings.policy_files] or None)
        except PolicyError as exc:
            raise ConfigError("INCIDENT_BOT_POLICY", str(exc)) from None
        investigator = cls(
            kube,
            prometheus_url=settings.prometheus_url,
            evidence_timeout=settings.evidence_timeout,
            policy=policy,
        )
        if settings.anthropic_api_key:
            from bot.rca.claude import make_claude

            prometheus = investigator._prom.query if settings.prometheus_url else None
            investigator.claude = make_claude(settings, kube=kube, prometheus=prometheus)
        return investigator

    async def close(self) -> None:
        """Release the Claude client, if any."""
        if self.claude is not None:
            await self.claude.close()

    async def rules(
        self,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        *,
        now: datetime,
        target: ObjectRef | None = None,
        exclude: tuple[str, ...] = (),
    ) -> Investigation:
        """Collect evidence and run the rule analyzer (fast: no LLM).

        ``exclude``: incident ids never returned as similar (the incident itself).
        """
        if target is None:
            target = await self._resolver.resolve(labels)
        namespace = labels.get("namespace", target.namespace if target else "")
        bundle = await self._collector.collect(
            labels,
            annotations,
            alertname=labels.get("alertname", "unnamed"),
            namespace=namespace,
            target=target,
            now=now,
        )
        pods = [ref.name for ref, _ in bundle.pods()]
        series, missing = await self._prom.collect(labels, namespace=namespace, pods=pods, now=now)
        bundle.metrics.update(series)
        bundle.missing.extend(missing)
        analysis = analyze(bundle)
        similar = await self.similar(labels, annotations, analysis, exclude=exclude)
        return self._investigation(bundle, analysis, similar)

    def _investigation(
        self, bundle: Bundle, analysis: Analysis, similar: list[dict[str, Any]]
    ) -> Investigation:
        """Re-rank actions by what worked on similar incidents; build the §3 report."""
        notes: dict[int, str] = {}
        if similar and analysis.primary.actions:
            ranked = rerank(analysis.primary.actions, similar)
            analysis.primary.actions = [action for action, _ in ranked]
            for index, (_, history) in enumerate(ranked):
                note = history.note()
                if note:
                    notes[index] = note
        out = report(analysis, bundle.labels, bundle.target, self.policy, similar=similar)
        for index, note in notes.items():
            if index < len(out["actions"]):
                out["actions"][index]["history"] = note
        return Investigation(bundle, analysis, out, similar)

    async def similar(
        self,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        analysis: Analysis,
        *,
        exclude: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        """Similar past incidents (memory) for this alert and analysis; [] without memory.

        A failure or a slow search costs the report its ``similar`` list, named in
        ``missing_data`` — never the report itself.
        """
        if self.memory is None:
            return []
        from rag.text import query_text_for_alert

        primary = analysis.primary
        summary = f"{primary.category.replace('_', ' ')}: {primary.summary}"
        text = query_text_for_alert(
            labels.get("alertname", ""), labels, annotations, summary=summary
        )
        try:
            found = await asyncio.wait_for(
                self.memory.asearch(
                    text,
                    top=self.similar_top,
                    min_score=self.similar_min_score,
                    exclude=exclude,
                    category=primary.category,
                ),
                self.similar_timeout,
            )
        except TimeoutError:
            analysis.missing_data.append(
                f"incident memory: no answer within {self.similar_timeout:g}s"
            )
            return []
        except Exception as exc:
            log.warning("incident memory search failed: %s", exc)
            analysis.missing_data.append(f"incident memory: {type(exc).__name__}: {exc}")
            return []
        return [{**s.to_dict(), **s.to_contract()} for s in found]

    async def deepen(self, first: Investigation) -> Investigation | None:
        """Ask Claude to deepen the rules result; None when Claude is not configured."""
        if self.claude is None:
            return None
        analysis = await self.claude.analyze(first.bundle, first.analysis, similar=first.similar)
        return self._investigation(first.bundle, analysis, first.similar)

    async def full(
        self, labels: Mapping[str, str], annotations: Mapping[str, str], *, now: datetime
    ) -> Investigation:
        """Rules, then Claude when configured (the CLI's one-shot form)."""
        first = await self.rules(labels, annotations, now=now)
        deeper = await self.deepen(first)
        return deeper or first


def judged_actions(
    analysis: Analysis, labels: Mapping[str, str], policy: Policy | None
) -> list[dict[str, Any]] | None:
    """Each suggested action with the policy's verdict, risk and reasons (§3 ``actions``).

    The action's own kubectl rendering goes through the same parser and engine as
    ``policy check``, so what the thread shows is exactly what an approval would judge.
    """
    if policy is None:
        return None
    out = []
    for action in analysis.primary.actions:
        judgement = judge(parse_kubectl(action.kubectl), policy, labels=labels)
        out.append(
            {
                "kind": action.kind,
                "kubectl": action.kubectl,
                "risk": judgement.risk,
                "verdict": judgement.verdict,
                "reasons": list(judgement.reasons),
                "rollback": action.rollback,
            }
        )
    return out


def report(
    analysis: Analysis,
    labels: Mapping[str, str],
    target: ObjectRef | None,
    policy: Policy | None = None,
    *,
    similar: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The §3 object with every free text masked (it goes to Slack, the CLI and the index)."""
    incident = {
        "alertname": labels.get("alertname", "unnamed"),
        "severity": labels.get("severity", ""),
        "namespace": labels.get("namespace", ""),
        "object": str(target) if target else None,
    }
    out = analysis.to_report(
        incident, judged_actions=judged_actions(analysis, labels, policy), similar=similar
    )
    for key in ("summary", "root_cause", "trigger"):
        if isinstance(out.get(key), str):
            out[key] = mask(out[key])
    for item in out["evidence"]:
        item["text"] = mask(item["text"])
    out["missing_data"] = [mask(m) for m in out["missing_data"]]
    if "alternative" in out:
        out["alternative"]["summary"] = mask(str(out["alternative"]["summary"]))
    return out


def first_alert(payload: WebhookPayload) -> tuple[dict[str, str], dict[str, str]]:
    """Labels and annotations of the first firing alert (else the first alert)."""
    alert = next((a for a in payload.alerts if a.status == "firing"), payload.alerts[0])
    return dict(alert.labels), dict(alert.annotations)


async def investigate_alert(body: bytes, settings: Settings) -> dict[str, Any]:
    """Investigate a webhook body against the cluster the settings point at.

    Raises:
        PayloadError: when ``body`` is not a valid notification.
        ConfigError: when the configured cluster access cannot be set up.
    """
    payload = parse_webhook(body)
    labels, annotations = first_alert(payload)
    alert = next((a for a in payload.alerts if a.status == "firing"), payload.alerts[0])
    return await _live(settings, labels, annotations, now=alert.startsAt)


async def investigate_object(namespace: str, object_ref: str, settings: Settings) -> dict[str, Any]:
    """Investigate ``Kind/name`` in ``namespace`` of the live cluster, now.

    Raises:
        ValueError: when ``object_ref`` is not ``Kind/name`` of a readable kind.
    """
    kind, _, name = object_ref.partition("/")
    if not kind or not name or kind not in RESOURCES:
        raise ValueError(
            f"--object must be Kind/name with Kind one of {', '.join(sorted(RESOURCES))}; "
            f"got {object_ref!r}"
        )
    labels = {"alertname": "ManualInvestigation", "namespace": namespace, "severity": "none"}
    label = OBJECT_LABELS.get(kind)
    if label:
        labels[label] = name
    target = ObjectRef(kind, name, "" if kind == "Node" else namespace)
    return await _live(settings, labels, {}, now=datetime.now(UTC), target=target)


async def _live(
    settings: Settings,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    *,
    now: datetime,
    target: ObjectRef | None = None,
) -> dict[str, Any]:
    api = make_api_client(settings)
    kube = KubeReader(api, timeout=settings.kube_timeout) if api else None
    investigator = Investigator.from_settings(settings, kube)
    try:
        first = await investigator.rules(labels, annotations, now=now, target=target)
        deeper = await investigator.deepen(first)
        return (deeper or first).report
    finally:
        await investigator.close()
        if kube is not None:
            kube.close()


async def investigate_scenario(scenario: Scenario, settings: Settings) -> dict[str, Any]:
    """Serve the scenario's cluster (and metrics) on loopback and investigate its alert.

    Raises:
        PayloadError: when the scenario's webhook is not a valid notification.
    """
    from sandbox.kube import KubeSandbox

    payload = parse_webhook(scenario.webhook)
    labels, annotations = first_alert(payload)
    async with AsyncExitStack() as stack:
        cluster = await stack.enter_async_context(KubeSandbox.from_scenario(scenario))
        prometheus_url: str | None = settings.prometheus_url
        if scenario.metrics and not prometheus_url:
            prometheus_url = await _scenario_prometheus(stack, scenario)
        local = replace(settings, kube_mode="url", kube_url=cluster.base_url)
        api = make_api_client(local)
        assert api is not None
        kube = KubeReader(api, timeout=settings.kube_timeout)
        stack.callback(kube.close)
        investigator = Investigator.from_settings(
            replace(settings, prometheus_url=prometheus_url or ""), kube
        )
        stack.push_async_callback(investigator.close)
        await _attach_memory(stack, investigator, settings)
        result = await investigator.full(labels, annotations, now=scenario.now)
        return result.report


async def _attach_memory(
    stack: AsyncExitStack, investigator: Investigator, settings: Settings
) -> None:
    """Use the incident memory of the data dir for ``similar``, when a history was imported."""
    if not (settings.memory_dir / "history.db").exists():
        return
    from rag.embed import make_encoder
    from rag.memory import IncidentMemory

    try:
        encoder = make_encoder(settings.embed_model, settings.embed_backend)
        memory = await IncidentMemory(settings.memory_dir, encoder, hybrid=True).aopen()
    except Exception as exc:  # the report is still produced; similar stays empty
        log.warning("incident memory unavailable: %s", exc)
        return
    stack.push_async_callback(memory.aclose)
    investigator.memory = memory
    investigator.similar_top = settings.similar_top
    investigator.similar_min_score = settings.similar_min_score
    investigator.similar_timeout = 60.0  # a one-shot CLI waits for the model to load


async def _scenario_prometheus(stack: AsyncExitStack, scenario: Scenario) -> str | None:
    """A real Prometheus holding the scenario's metrics, when the binaries exist."""
    from sandbox.realstack import find_binary

    if not (find_binary("prometheus") and find_binary("promtool")):
        return None
    from sandbox.backfill import scenario_prometheus

    workdir = Path(tempfile.mkdtemp(prefix="incident-bot-prom-"))
    stack.callback(shutil.rmtree, workdir, True)
    try:
        url: str = await stack.enter_async_context(
            scenario_prometheus(scenario.metrics, scenario.now, workdir)
        )
    except Exception as exc:  # degrade: investigate without metrics, and say so
        log.warning("could not load the scenario's metrics into Prometheus: %s", exc)
        return None
    return url
