"""The Claude analyzer against AnthropicSandbox, through the real anthropic SDK on loopback.

The cluster behind the tools is a KubeSandbox read through the real KubeReader, so a tool
call in these tests is a real HTTP GET. The builders at the top are shared with
``test_injection.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import pytest

from bot.config import Settings
from bot.kube import KubeReader, make_api_client
from bot.rca.bundle import Bundle, ContainerLogs, MetricSeries, RolloutDiff, TemplateChange
from bot.rca.claude import ClaudeAnalyzer, make_claude
from bot.rca.model import Analysis, EvidenceItem, Hypothesis
from bot.rca.prompt import RESULT_SCHEMA, SYSTEM_PROMPT, ResultError, parse_result
from bot.rca.tools import ReadOnlyTools
from bot.targets import ObjectRef
from sandbox.anthropic import AnthropicSandbox, delay, error, malformed, text, tool_calls, tool_use
from sandbox.kube import KubeSandbox
from tests.rca.conftest import KEY

MODEL = "claude-sonnet-4-6"  # claude-sonnet-4-5 raises a DeprecationWarning in anthropic 2.12
NOW = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
POD = "cart-7d9f8b6c4-x2x9q"
SECRET = "hunter2-Sup3rS3cret"
SECRET_LINE = f"connecting to postgres://cart:{SECRET}@db.shop:5432/cart password={SECRET}"


# --------------------------------------------------------------------------- builders


def deployment(**annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "cart",
            "namespace": "shop",
            "labels": {"app": "cart"},
            "annotations": {"deployment.kubernetes.io/revision": "7", **annotations},
            "creationTimestamp": "2026-09-02T08:00:00Z",
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "cart"}},
            "template": {
                "metadata": {"labels": {"app": "cart"}},
                "spec": {
                    "containers": [
                        {
                            "name": "cart",
                            "image": "registry.example.com/shop/cart:3.8.0",
                            "env": [{"name": "CACHE_MAX_ITEMS", "value": "500000"}],
                            "resources": {"limits": {"memory": "256Mi", "cpu": "1"}},
                        }
                    ]
                },
            },
        },
        "status": {"replicas": 2, "readyReplicas": 0, "updatedReplicas": 2},
    }


def pod(labels: dict[str, str] | None = None, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": POD,
            "namespace": "shop",
            "labels": {"app": "cart", **(labels or {})},
            "annotations": annotations,
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "cart-7d9f8b6c4"}
            ],
            "creationTimestamp": "2026-11-20T10:01:56Z",
        },
        "spec": {
            "nodeName": "node-b",
            "containers": [
                {
                    "name": "cart",
                    "image": "registry.example.com/shop/cart:3.8.0",
                    "resources": {"limits": {"memory": "256Mi"}},
                }
            ],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "cart",
                    "ready": False,
                    "restartCount": 6,
                    "image": "registry.example.com/shop/cart:3.8.0",
                    "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {
                        "terminated": {
                            "reason": "OOMKilled",
                            "exitCode": 137,
                            "finishedAt": "2026-11-20T10:12:40Z",
                        }
                    },
                }
            ],
        },
    }


def event(message: str = "Back-off restarting failed container cart") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{POD}.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": POD, "namespace": "shop"},
        "type": "Warning",
        "reason": "BackOff",
        "message": message,
        "count": 9,
        "lastTimestamp": "2026-11-20T10:14:00Z",
    }


def logs(previous: str = "", current: str = "starting cart 3.8.0") -> dict[str, dict[str, str]]:
    previous = previous or f"{SECRET_LINE}\nloading cache: 500000 items\nkilled"
    return {f"shop/{POD}/cart": {"current": current, "previous": previous}}


def make_bundle(
    objects: list[dict[str, Any]] | None = None,
    log_map: dict[str, dict[str, str]] | None = None,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Bundle:
    objects = objects if objects is not None else [deployment(), pod(), event()]
    log_map = log_map if log_map is not None else logs()
    by_ref = {
        ObjectRef(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace", "")): o
        for o in objects
        if o["kind"] != "Event"
    }
    container_logs = {}
    for key, streams in log_map.items():
        _, pod_name, container = key.split("/")
        container_logs[f"{pod_name}/{container}"] = ContainerLogs(
            pod_name, container, streams.get("current", ""), streams.get("previous", "")
        )
    return Bundle(
        alertname="KubePodCrashLooping",
        labels={
            "alertname": "KubePodCrashLooping",
            "namespace": "shop",
            "pod": POD,
            **(labels or {}),
        },
        annotations={"summary": "Pod is crash looping.", **(annotations or {})},
        namespace="shop",
        now=NOW,
        target=ObjectRef("Pod", POD, "shop"),
        objects=by_ref,
        events=[o for o in objects if o["kind"] == "Event"],
        logs=container_logs,
        rollout=RolloutDiff(
            workload=ObjectRef("Deployment", "cart", "shop"),
            current=ObjectRef("ReplicaSet", "cart-7d9f8b6c4", "shop"),
            previous=ObjectRef("ReplicaSet", "cart-5b8c7d9f6", "shop"),
            current_revision="7",
            previous_revision="6",
            rolled_out_at="2026-11-20T10:01:55Z",
            changes=(
                TemplateChange("env", "cart", "CACHE_MAX_ITEMS=100000", "CACHE_MAX_ITEMS=500000"),
            ),
        ),
    )


def make_rules() -> Analysis:
    return Analysis(
        primary=Hypothesis(
            category="app_crash",
            object="shop/Deployment/cart",
            summary="cart crashes",
            root_cause="the container exits",
            confidence=0.5,
            evidence=[EvidenceItem("kubernetes", "restartCount=6", f"shop/Pod/{POD}")],
        ),
        missing_data=["prometheus: no server configured"],
        analyzer="rules",
    )


def answer(
    category: str = "oom_killed",
    obj: str | None = "shop/Deployment/cart",
    *,
    actions: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> str:
    """A final answer as the model would write it."""
    body: dict[str, Any] = {
        "category": category,
        "object": obj,
        "summary": "cart is OOMKilled at its 256Mi limit",
        "root_cause": "Revision 7 raised CACHE_MAX_ITEMS to 500000; the cache outgrows 256Mi.",
        "trigger": "rollout to revision 7 at 10:01",
        "confidence": 0.9,
        "evidence": [
            {
                "source": "kubernetes",
                "text": "lastState OOMKilled exit 137",
                "ref": f"shop/Pod/{POD}",
            }
        ],
        "hypotheses": [
            {
                "category": category,
                "object": obj,
                "confidence": 0.9,
                "evidence_for": ["OOMKilled x6"],
                "evidence_against": ["no memory metrics to confirm the growth"],
            },
            {
                "category": "app_crash",
                "object": "shop/Deployment/cart",
                "confidence": 0.2,
                "summary": "the app panics",
                "evidence_for": ["restarts"],
                "evidence_against": ["exit 137 is a kill, not a panic"],
            },
        ],
        "actions": actions
        if actions is not None
        else [
            {
                "kind": "set_resources",
                "target": "shop/Deployment/cart",
                "params": {"container": "cart", "limits": {"memory": "512Mi"}},
                "why": "give the larger cache room",
            }
        ],
    }
    body.update(overrides)
    return json.dumps(body)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def cluster() -> AsyncIterator[KubeSandbox]:
    async with KubeSandbox([deployment(), pod(), event()], logs()) as kube:
        yield kube


@pytest.fixture
def kube(cluster: KubeSandbox) -> Iterator[KubeReader]:
    api = make_api_client(Settings(kube_mode="url", kube_url=cluster.base_url))
    assert api is not None
    reader = KubeReader(api, timeout=2.0)
    yield reader
    reader.close()


def make_analyzer(
    client: anthropic.AsyncAnthropic, kube: KubeReader | None = None, **kwargs: Any
) -> ClaudeAnalyzer:
    return ClaudeAnalyzer(client, model=MODEL, tools=ReadOnlyTools(kube, None), **kwargs)


def messages_of(sandbox: AnthropicSandbox, index: int) -> list[dict[str, Any]]:
    body = sandbox.requests[index].body
    assert body is not None
    return list(body["messages"])


def tool_results(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in message["content"] if b["type"] == "tool_result"]


# --------------------------------------------------------------------------- the conversation


async def test_tool_use_conversation_gives_claude_analysis(
    sandbox: AnthropicSandbox,
    client: anthropic.AsyncAnthropic,
    kube: KubeReader,
    cluster: KubeSandbox,
) -> None:
    sandbox.script(
        tool_use("get_object", {"kind": "Deployment", "namespace": "shop", "name": "cart"}),
        tool_use(
            "get_logs", {"namespace": "shop", "pod": POD, "container": "cart", "previous": True}
        ),
        text(answer()),
    )
    analysis = await make_analyzer(client, kube).analyze(make_bundle(), make_rules())

    assert analysis.analyzer == "claude"
    assert analysis.primary.category == "oom_killed"
    assert analysis.primary.object == "shop/Deployment/cart"
    assert analysis.primary.trigger == "rollout to revision 7 at 10:01"
    assert analysis.primary.against == ["no memory metrics to confirm the growth"]
    assert [a.category for a in analysis.alternatives] == ["app_crash"]
    assert analysis.missing_data == ["prometheus: no server configured"]
    [action] = analysis.primary.actions
    assert (
        action.kubectl
        == "kubectl -n shop set resources deployment/cart -c cart --limits=memory=512Mi"
    )
    assert action.why == "give the larger cache room"

    # Three calls; each tool_result answers the previous tool_use, fenced as data.
    assert len(sandbox.requests) == 3
    first = sandbox.requests[0].body
    assert first is not None
    assert first["system"] == SYSTEM_PROMPT and first["model"] == MODEL
    assert {t["name"] for t in first["tools"]} == {
        "get_object",
        "list_objects",
        "get_events",
        "get_logs",
        "rollout_diff",
    }
    second = messages_of(sandbox, 1)
    tool_id = sandbox.requests[0].response["content"][0]["id"]
    [result] = tool_results(second[-1])
    assert result["tool_use_id"] == tool_id
    assert result["content"].startswith(
        '<untrusted_data source="tool:get_object" ref="shop/Deployment/cart">'
    )
    assert "CACHE_MAX_ITEMS" in result["content"]
    [logs_result] = tool_results(messages_of(sandbox, 2)[-1])
    assert "loading cache: 500000 items" in logs_result["content"]
    # The tools really read the cluster, with GETs only.
    assert any("/deployments/cart" in path for _, path in cluster.requests)
    assert any(
        f"/pods/{POD}/log" in path and "previous=true" in path for _, path in cluster.requests
    )
    assert {method for method, _ in cluster.requests} == {"GET"}


async def test_secrets_never_reach_the_api(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic, kube: KubeReader
) -> None:
    sandbox.script(
        tool_use(
            "get_logs", {"namespace": "shop", "pod": POD, "container": "cart", "previous": True}
        ),
        text(answer()),
    )
    bundle = make_bundle(annotations={"description": f"db password={SECRET}"})
    analysis = await make_analyzer(client, kube).analyze(bundle, make_rules())

    assert analysis.analyzer == "claude"
    assert len(sandbox.requests) == 2
    for request in sandbox.requests:
        assert SECRET not in request.raw
    assert "loading cache" in sandbox.requests[1].raw  # the log itself did get through


async def test_parallel_tool_calls_answered_together(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic, kube: KubeReader
) -> None:
    sandbox.script(
        tool_calls(
            ("get_events", {"kind": "Pod", "namespace": "shop", "name": POD}),
            ("rollout_diff", {}),
            ("get_object", {"kind": "Secret", "namespace": "shop", "name": "db"}),
        ),
        text(answer()),
    )
    analysis = await make_analyzer(client, kube).analyze(make_bundle(), make_rules())
    assert analysis.analyzer == "claude"
    results = tool_results(messages_of(sandbox, 1)[-1])
    assert len(results) == 3
    assert "BackOff" in results[0]["content"] and "x9" in results[0]["content"]
    assert "CACHE_MAX_ITEMS=100000 → CACHE_MAX_ITEMS=500000" in results[1]["content"]
    assert results[2]["is_error"] is True and "Secrets are never read" in results[2]["content"]


# --------------------------------------------------------------------------- API failures


@pytest.mark.parametrize(
    ("turn", "note"),
    [
        (error(429, "rate_limit_error", "slow down", retry_after=1), "claude: rate limited"),
        (error(529, "overloaded_error", "Overloaded"), "claude: api error 529 (overloaded_error)"),
        (error(500, "api_error", "boom"), "claude: api error 500 (api_error)"),
    ],
)
async def test_api_errors_fall_back_to_rules(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic, turn: Any, note: str
) -> None:
    sandbox.script(turn)
    rules = make_rules()
    analysis = await make_analyzer(client).analyze(make_bundle(), rules)
    assert analysis.analyzer == "rules"
    assert analysis.primary is rules.primary
    assert analysis.missing_data == ["prometheus: no server configured", note]
    assert rules.missing_data == ["prometheus: no server configured"]  # not mutated


async def test_rate_limit_is_not_retried_with_max_retries_zero(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(error(429, "rate_limit_error", "slow down", retry_after=1), text(answer()))
    analysis = await make_analyzer(client).analyze(make_bundle(), make_rules())
    assert analysis.missing_data[-1] == "claude: rate limited"
    assert len(sandbox.requests) == 1 and sandbox.remaining == 1


async def test_request_timeout_falls_back_quickly(sandbox: AnthropicSandbox) -> None:
    sandbox.script(delay(5.0, text(answer())))
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=sandbox.base_url, max_retries=0, timeout=0.3
    ) as impatient:
        started = time.monotonic()
        analysis = await make_analyzer(impatient).analyze(make_bundle(), make_rules())
        elapsed = time.monotonic() - started
    assert analysis.analyzer == "rules"
    assert analysis.missing_data[-1] == "claude: request timed out"
    assert elapsed < 2.0


async def test_wall_time_bounds_the_whole_analysis(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(delay(5.0, text(answer())))
    started = time.monotonic()
    analysis = await make_analyzer(client, wall_time=0.4).analyze(make_bundle(), make_rules())
    assert time.monotonic() - started < 1.5
    assert analysis.missing_data[-1] == "claude: timed out after 0.4s"


async def test_unreachable_api_falls_back(kube: KubeReader) -> None:
    async with AnthropicSandbox(KEY) as gone:
        url = gone.base_url
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=url, max_retries=0, timeout=1.0
    ) as nowhere:
        analysis = await make_analyzer(nowhere).analyze(make_bundle(), make_rules())
    assert analysis.missing_data[-1] == "claude: api unreachable (connection error)"


async def test_wrong_key_falls_back(sandbox: AnthropicSandbox) -> None:
    async with anthropic.AsyncAnthropic(
        api_key="sk-wrong", base_url=sandbox.base_url, max_retries=0
    ) as bad:
        analysis = await make_analyzer(bad).analyze(make_bundle(), make_rules())
    assert analysis.missing_data[-1] == "claude: api error 401 (authentication_error)"


# --------------------------------------------------------------------------- invalid answers


async def test_malformed_then_valid_succeeds_after_one_retry(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(malformed("The pod ran out of memory, I think."), text(answer()))
    analysis = await make_analyzer(client).analyze(make_bundle(), make_rules())
    assert analysis.analyzer == "claude" and analysis.primary.category == "oom_killed"
    assert len(sandbox.requests) == 2
    retry = messages_of(sandbox, 1)
    assert retry[-2] == {"role": "assistant", "content": "The pod ran out of memory, I think."}
    assert "not valid: the answer contains no JSON object" in retry[-1]["content"]
    body = sandbox.requests[1].body
    assert body is not None and body["tool_choice"] == {"type": "none"}


async def test_malformed_twice_falls_back(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(malformed('{"category": "oom_kil'), malformed("still not JSON"))
    analysis = await make_analyzer(client).analyze(make_bundle(), make_rules())
    assert analysis.analyzer == "rules"
    assert analysis.missing_data[-1] == "claude: invalid output after retry; rules result used"
    assert len(sandbox.requests) == 2


async def test_unknown_category_is_invalid(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(text(answer("memory_leak")), text(answer("kernel_bug")))
    analysis = await make_analyzer(client).analyze(make_bundle(), make_rules())
    assert analysis.analyzer == "rules"
    retry = messages_of(sandbox, 1)[-1]["content"]
    assert "category: Value error, 'memory_leak' is not a category of the vocabulary" in retry


async def test_fenced_json_and_truncated_answer(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(
        text(answer()[:80], stop_reason="max_tokens"),
        text("```json\n" + answer("app_crash") + "\n```"),
    )
    analysis = await make_analyzer(client).analyze(make_bundle(), make_rules())
    assert analysis.analyzer == "claude" and analysis.primary.category == "app_crash"
    assert "not valid JSON" in messages_of(sandbox, 1)[-1]["content"]


# --------------------------------------------------------------------------- budgets


async def test_max_steps_forces_a_final_answer(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic, kube: KubeReader
) -> None:
    sandbox.script(
        tool_use("rollout_diff", {}),
        tool_use("get_events", {"kind": "Pod", "namespace": "shop", "name": POD}),
        text(answer()),
    )
    analysis = await make_analyzer(client, kube, max_steps=2).analyze(make_bundle(), make_rules())
    assert analysis.analyzer == "claude"
    assert "claude: stopped after 2 tool steps" in analysis.missing_data
    assert len(sandbox.requests) == 3
    final = sandbox.requests[2].body
    assert final is not None and final["tool_choice"] == {"type": "none"}
    last = final["messages"][-1]["content"]
    assert last[0]["type"] == "tool_result" and "BackOff" in last[0]["content"]
    assert last[-1]["type"] == "text" and "no more tool calls" in last[-1]["text"]


async def test_max_steps_then_tool_use_again_falls_back(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    # The "model" ignores tool_choice none: the sandbox refuses, the analyzer degrades.
    sandbox.script(tool_use("rollout_diff", {}), tool_use("rollout_diff", {}))
    analysis = await make_analyzer(client, max_steps=1).analyze(make_bundle(), make_rules())
    assert analysis.analyzer == "rules"
    assert analysis.missing_data[-1].startswith("claude: api error 500")


async def test_token_budget_stops_tools(
    sandbox: AnthropicSandbox,
    client: anthropic.AsyncAnthropic,
    kube: KubeReader,
    cluster: KubeSandbox,
) -> None:
    sandbox.script(
        tool_use(
            "get_logs", {"namespace": "shop", "pod": POD, "container": "cart"}, usage=(900, 200)
        ),
        text(answer()),
    )
    analyzer = make_analyzer(client, kube, token_budget=1000)
    analysis = await analyzer.analyze(make_bundle(), make_rules())
    assert analysis.analyzer == "claude"
    assert any("token budget (1000) used up" in m for m in analysis.missing_data)
    assert not any("/log" in path for _, path in cluster.requests)  # the tool did not run
    final = sandbox.requests[1].body
    assert final is not None and final["tool_choice"] == {"type": "none"}
    [result] = tool_results(final["messages"][-1])
    assert result["is_error"] is True and "budget" in result["content"]


# --------------------------------------------------------------------------- the result


async def test_actions_only_through_the_catalogue(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    proposals = [
        {"kind": "rollout_undo", "target": "shop/Deployment/cart", "params": {}, "why": "undo 7"},
        {"kind": "rollout_undo", "target": "shop/Deployment/cart", "params": {}},  # duplicate
        {"kind": "scale", "target": "shop/Deployment/cart", "params": {"replicas": "lots"}},
        {"kind": "rollout_restart", "target": "payments/Deployment/api", "params": {}},
        {"kind": "cordon", "target": "Node/node-z", "params": {}},
        {"kind": "cordon", "target": "Node/node-b", "params": {}},
        {
            "kind": "delete_pod",
            "target": f"shop/Pod/{POD}",
            "params": {},
            "why": "then run kubectl delete ns shop",
        },
    ]
    sandbox.script(text(answer(actions=proposals)))
    analysis = await make_analyzer(client).analyze(make_bundle(), make_rules())
    assert [a.kubectl for a in analysis.primary.actions] == [
        "kubectl -n shop rollout undo deployment/cart",
        "kubectl cordon node-b",
        f"kubectl -n shop delete pod {POD}",
    ]
    assert analysis.primary.actions[0].why == "undo 7"
    assert analysis.primary.actions[2].why == "(explanation withheld: it contained command text)"
    dropped = [m for m in analysis.missing_data if m.startswith("claude: dropped")]
    assert dropped == [
        "claude: dropped proposed action scale on shop/Deployment/cart (refused by the action "
        "catalogue or out of scope)",
        "claude: dropped proposed action rollout_restart on payments/Deployment/api (refused "
        "by the action catalogue or out of scope)",
        "claude: dropped proposed action cordon on Node/node-z (refused by the action "
        "catalogue or out of scope)",
    ]


async def test_not_an_incident_has_no_object(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(text(answer("not_an_incident", None, actions=[], hypotheses=[])))
    analysis = await make_analyzer(client).analyze(make_bundle(), make_rules())
    assert analysis.primary.category == "not_an_incident" and analysis.primary.object is None
    report = analysis.to_report({"alertname": "Watchdog", "severity": "none", "namespace": ""})
    assert report["incident"]["object"] is None and report["analyzer"] == "claude"


async def test_evidence_text_masked_again(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    evidence = [{"source": "logs", "text": SECRET_LINE, "ref": f"shop/Pod/{POD}"}]
    sandbox.script(text(answer(evidence=evidence)))
    analysis = await make_analyzer(client).analyze(make_bundle(), make_rules())
    [item] = analysis.primary.evidence
    assert item.source == "logs" and item.ref == f"shop/Pod/{POD}"
    assert SECRET not in item.text


def test_parse_result_rules() -> None:
    assert parse_result(answer()).category == "oom_killed"
    assert parse_result("Here you go:\n" + answer() + "\nDone.").confidence == 0.9
    for bad, why in [
        ("[]", "no JSON object"),
        (answer(obj=None), "needs the object at fault"),
        (answer(obj="cart"), "is not <namespace>/<Kind>/<name>"),
        (answer(confidence=1.5), "confidence"),
        (answer(evidence=[]), "evidence"),
        (answer(evidence=[{"source": "gossip", "text": "x", "ref": "shop/Pod/a"}]), "source"),
    ]:
        with pytest.raises(ResultError, match=why):
            parse_result(bad)


def test_schema_and_system_prompt_agree() -> None:
    assert set(RESULT_SCHEMA["required"]) >= {"category", "object", "summary", "confidence"}
    assert json.dumps(RESULT_SCHEMA, separators=(",", ":")) in SYSTEM_PROMPT
    assert "- oom_killed: container killed for exceeding its memory limit" in SYSTEM_PROMPT
    assert "evidence FOR and evidence AGAINST" in SYSTEM_PROMPT


def test_make_claude(sandbox: AnthropicSandbox) -> None:
    assert make_claude(Settings()) is None
    analyzer = make_claude(
        Settings(
            anthropic_api_key=KEY, anthropic_base_url="http://127.0.0.1:9", anthropic_model=MODEL
        )
    )
    assert analyzer is not None and analyzer.model == MODEL


# --------------------------------------------------------------------------- the tools alone


async def test_tools_refuse_bad_input(kube: KubeReader) -> None:
    tools = ReadOnlyTools(kube, None, make_bundle())
    assert (await tools.call("delete_namespace", {"name": "prod"})).startswith(
        "error: unknown tool"
    )
    traversal = {"kind": "Pod", "namespace": "shop", "name": "../../secrets/db"}
    assert (await tools.call("get_object", traversal)).startswith("error: invalid input: name")
    assert (
        await tools.call("get_object", {"kind": "Secret", "namespace": "shop", "name": "db"})
    ).startswith("error:")
    assert "not found" in await tools.call(
        "get_object", {"kind": "Pod", "namespace": "shop", "name": "nope"}
    )
    assert "give a namespace" in await tools.call("get_object", {"kind": "Pod", "name": POD})
    assert (await tools.call("prometheus_query", {"query": "up"})).startswith("error: unknown tool")


async def test_tools_list_is_a_summary_and_output_is_cut(kube: KubeReader) -> None:
    tools = ReadOnlyTools(kube, None, make_bundle(), max_output=120)
    listed = await tools.call(
        "list_objects", {"kind": "Pod", "namespace": "shop", "label_selector": "app=cart"}
    )
    assert listed.startswith("1 Pod:\nPod shop/" + POD)
    assert "[truncated:" in listed
    assert len(listed) < 200


async def test_tools_without_a_cluster_answer_from_the_bundle() -> None:
    tools = ReadOnlyTools(None, None, make_bundle())
    assert "restartCount: 6" in await tools.call(
        "get_object", {"kind": "Pod", "namespace": "shop", "name": POD}
    )
    assert "BackOff" in await tools.call(
        "get_events", {"kind": "Pod", "namespace": "shop", "name": POD}
    )
    logs_text = await tools.call(
        "get_logs", {"namespace": "shop", "pod": POD, "container": "cart", "previous": True}
    )
    assert "loading cache" in logs_text and SECRET not in logs_text
    listed = await tools.call("list_objects", {"kind": "Deployment", "namespace": "shop"})
    assert listed.startswith("1 Deployment:")


async def test_prometheus_tool_queries_the_investigation_window() -> None:
    seen: list[tuple[str, datetime, datetime]] = []

    async def query(promql: str, start: datetime, end: datetime) -> list[MetricSeries]:
        seen.append((promql, start, end))
        return [MetricSeries("q", promql, {"pod": POD}, ((1.0, 100.0), (2.0, 268e6)))]

    tools = ReadOnlyTools(None, query, make_bundle())
    assert "prometheus_query" in tools.names
    out = await tools.call(
        "prometheus_query", {"query": "container_memory_working_set_bytes", "minutes": 15}
    )
    assert seen == [("container_memory_working_set_bytes", NOW - timedelta(minutes=15), NOW)]
    assert "peak 2.68e+08" in out
