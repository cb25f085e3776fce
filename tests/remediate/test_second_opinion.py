"""The LLM second opinion: it may raise risk or veto, never lower risk; failures change nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic
import pytest

from bot.rca.model import Action
from bot.remediate.second_opinion import Opinion, SecondOpinion, combine
from sandbox.anthropic import AnthropicSandbox, Turn, error, text, tool_use

KEY = "sk-ant-test-key"
ACTION = Action(
    kind="rollout_restart",
    target="shop/Deployment/cart",
    kubectl="kubectl -n shop rollout restart deployment/cart",
    rollback=None,
    why="pods stuck after a config reload",
)


@pytest.fixture
async def sandbox() -> AsyncIterator[AnthropicSandbox]:
    async with AnthropicSandbox(KEY) as sb:
        yield sb


@pytest.fixture
async def reviewer(sandbox: AnthropicSandbox) -> AsyncIterator[SecondOpinion]:
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=sandbox.base_url, max_retries=0, timeout=3.0
    ) as client:
        yield SecondOpinion(client, model="claude-sonnet-4-6")


async def _review(reviewer: SecondOpinion, risk: str = "medium") -> Opinion:
    return await reviewer.review(
        ACTION,
        policy_risk=risk,
        verdict="allowed",
        policy_reasons=["allowed by 'kubectl rollout restart'"],
        impact="3 replicas, 3 ready; Services cart",
        cluster="cart is OOMKilled; password=hunter2 in env",
    )


async def test_raises_risk_and_vetoes(reviewer: SecondOpinion, sandbox: AnthropicSandbox) -> None:
    sandbox.script(tool_use("review", {"risk": "high", "veto": True, "reasons": ["all pods"]}))
    opinion = await _review(reviewer)
    assert opinion.risk == "high" and opinion.raised and opinion.veto
    assert opinion.reasons == ["all pods"]
    sent = json.loads(sandbox.requests[-1].raw)
    assert sent["tool_choice"] == {"type": "tool", "name": "review"}
    prompt = sent["messages"][0]["content"]
    assert "hunter2" not in prompt and "<data>" in prompt
    assert "kubectl -n shop rollout restart deployment/cart" in prompt


async def test_never_lowers_risk(reviewer: SecondOpinion, sandbox: AnthropicSandbox) -> None:
    sandbox.script(tool_use("review", {"risk": "low", "veto": False, "reasons": ["safe"]}))
    opinion = await _review(reviewer, risk="high")
    assert opinion.risk == "high" and not opinion.raised
    assert any("never lowered" in r for r in opinion.reasons)


@pytest.mark.parametrize(
    "turn",
    [
        error(529, "overloaded_error", "Overloaded"),
        error(500),
        text("I think it is fine."),  # no tool call (the emulator allows it despite tool_choice)
        tool_use("review", {"risk": "extreme", "veto": False, "reasons": []}),
        tool_use("review", {"risk": "high", "veto": "yes", "reasons": []}),
    ],
)
async def test_failures_leave_policy_judgement(
    reviewer: SecondOpinion, sandbox: AnthropicSandbox, turn: Turn
) -> None:
    sandbox.script(turn)
    opinion = await _review(reviewer, risk="medium")
    assert opinion.risk == "medium" and not opinion.veto
    assert not opinion.available
    assert "unavailable" in opinion.reasons[0]


def test_combine_rules() -> None:
    assert combine("low", {"risk": "medium", "veto": False, "reasons": []}).risk == "medium"
    assert combine("medium", {"risk": "medium", "veto": False, "reasons": []}).raised is False
    with pytest.raises(ValueError):
        combine("low", ["risk", "high"])
    with pytest.raises(ValueError):
        combine("low", {"risk": "high", "veto": False, "reasons": "x"})
