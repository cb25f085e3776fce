"""The Claude analyzer: an agent with read-only tools that refines the rule analyzer's result.

The loop::

    user: system prompt + fenced evidence + rule findings
    ┌─▶ assistant: tool_use …            (at most ``max_steps`` rounds)
    └── user: tool_result … (masked, fenced, truncated)
        assistant: final JSON             (forced with tool_choice "none" when a budget ends)
        [user: "not valid: <error>" → assistant: JSON]   (one retry)

It is bounded three ways: ``max_steps`` tool rounds, ``wall_time`` seconds for the whole
analysis, and ``token_budget`` tokens of cumulative usage. When steps or tokens run out the
model is asked once for its final answer without tools; when the wall clock runs out, or
the API fails in any way (rate limit, overload, 5xx, timeout, connection), or the answer
is still invalid after one retry, the rule analyzer's result is returned with a
``missing_data`` line saying why (DESIGN principle 5). :meth:`ClaudeAnalyzer.analyze` never
raises.

The model never holds a write capability (principle 2): its tools only read, and the
actions it proposes become :class:`~bot.rca.model.Action` objects only through
:func:`bot.rca.actions.build_action` — a proposal that does not build, or that targets
something outside the incident, is dropped and named in ``missing_data``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import anthropic
from anthropic.types import (
    Message,
    MessageParam,
    TextBlockParam,
    ToolChoiceNoneParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlock,
    ToolUseBlockParam,
)

from bot.config import Settings
from bot.kube import KubeReader
from bot.masking import mask
from bot.rca.actions import build_action
from bot.rca.bundle import Bundle
from bot.rca.model import Action, Analysis, EvidenceItem, Hypothesis
from bot.rca.prompt import (
    FINAL_NOW,
    RETRY_TEMPLATE,
    SYSTEM_PROMPT,
    ClaudeResult,
    HypothesisOut,
    ResultError,
    build_user_message,
    fence,
    parse_result,
)
from bot.rca.tools import PromQuery, ReadOnlyTools, ref_for
from bot.targets import ObjectRef

log = logging.getLogger(__name__)

ANALYZER: Final = "claude"
MAX_ACTIONS: Final = 5
MAX_ALTERNATIVES: Final = 3
_TEXT_LIMIT: Final = 600
_WHY_LIMIT: Final = 300
_SAFE_TOKEN: Final = re.compile(r"^[A-Za-z0-9_.\-/]{1,120}$")
# An approver reads ``why`` next to the canonical kubectl: it must not carry a second command.
_COMMANDISH: Final = re.compile(
    r"kubectl|helm\s|curl\s|wget\s|\bsudo\b|\brm\s+-|\bsh\s+-c|bash|[;&|`$<>]", re.IGNORECASE
)


class _Fallback(Exception):
    """The analysis cannot produce a valid result; ``note`` says why."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


@dataclass
class _Run:
    """The state of one conversation."""

    tools: ReadOnlyTools
    messages: list[MessageParam]
    tokens: int = 0
    steps: int = 0
    notes: list[str] = field(default_factory=list)


class ClaudeAnalyzer:
    """Refines a rule analysis with Claude and read-only tools.

    Args:
        client: The Anthropic client (its ``max_retries`` and ``timeout`` apply per request).
        model: Model name, e.g. ``claude-sonnet-4-5``.
        tools: The read-only tools; bound to each incident's bundle in :meth:`analyze`.
        max_steps: Tool rounds before the model must answer.
        wall_time: Seconds for the whole analysis, retries and tools included.
        token_budget: Cumulative input + output tokens after which no more tools run.
        max_tokens: ``max_tokens`` of each request.
    """

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        *,
        model: str,
        tools: ReadOnlyTools,
        max_steps: int = 8,
        wall_time: float = 60.0,
        token_budget: int = 60_000,
        max_tokens: int = 2048,
    ) -> None:
        self._client = client
        self.model = model
        self._tools = tools
        self.max_steps = max_steps
        self.wall_time = wall_time
        self.token_budget = token_budget
        self.max_tokens = max_tokens

    async def close(self) -> None:
        """Close the HTTP client (its connection pool)."""
        await self._client.close()

    async def analyze(
        self, bundle: Bundle, rules: Analysis, *, similar: Sequence[Mapping[str, Any]] = ()
    ) -> Analysis:
        """Investigate ``bundle``; on any failure, ``rules`` with a note. Never raises.

        Args:
            bundle: The incident's evidence.
            rules: The rule analyzer's result: context for the model and the fallback.
            similar: Similar past incidents from the incident index.
        """
        run = _Run(
            tools=self._tools.with_bundle(bundle),
            messages=[{"role": "user", "content": build_user_message(bundle, rules, similar)}],
        )
        try:
            result = await asyncio.wait_for(self._investigate(run), self.wall_time)
            analysis = self._to_analysis(result, bundle, rules, run.notes)
        except TimeoutError:
            return _fallback(rules, f"claude: timed out after {self.wall_time:g}s")
        except _Fallback as exc:
            return _fallback(rules, exc.note)
        except anthropic.RateLimitError:
            return _fallback(rules, "claude: rate limited")
        except anthropic.APIStatusError as exc:
            kind = f" ({exc.type})" if exc.type else ""
            return _fallback(rules, f"claude: api error {exc.status_code}{kind}")
        except anthropic.APITimeoutError:
            return _fallback(rules, "claude: request timed out")
        except anthropic.APIConnectionError:
            return _fallback(rules, "claude: api unreachable (connection error)")
        except anthropic.AnthropicError as exc:
            return _fallback(rules, f"claude: {type(exc).__name__}")
        except Exception as exc:  # principle 5: the RCA still goes out
            log.exception("claude analyzer failed")
            return _fallback(rules, f"claude: internal error ({type(exc).__name__})")
        log.info("claude analysis: %d tool steps, %d tokens", run.steps, run.tokens)
        return analysis

    # ----------------------------------------------------------------- the conversation

    async def _investigate(self, run: _Run) -> ClaudeResult:
        answer = await self._tool_loop(run)
        try:
            return parse_result(answer)
        except ResultError as exc:
            log.info("claude answer invalid, retrying once: %s", exc)
            run.messages.append({"role": "assistant", "content": answer.strip() or "(no answer)"})
            problem = str(exc)[:1500]
            run.messages.append({"role": "user", "content": RETRY_TEMPLATE.format(problem=problem)})
        retry = await self._ask(run, final=True)
        try:
            return parse_result(_text(retry))
        except ResultError as exc:
            log.info("claude answer invalid after retry: %s", exc)
            raise _Fallback("claude: invalid output after retry; rules result used") from None

    async def _tool_loop(self, run: _Run) -> str:
        """Converse until the model answers in text; return that text."""
        while True:
            response = await self._ask(run, final=False)
            calls = [b for b in response.content if isinstance(b, ToolUseBlock)]
            if not calls:
                return _text(response)
            run.steps += 1
            run.messages.append(_assistant(response))
            over_budget = run.tokens > self.token_budget
            if over_budget:
                results = [_not_run(b.id) for b in calls]
                run.notes.append(
                    f"claude: token budget ({self.token_budget}) used up after {run.steps} "
                    "tool steps; answered without more tools"
                )
            else:
                results = list(await asyncio.gather(*(self._run_tool(run, b) for b in calls)))
            if over_budget or run.steps >= self.max_steps:
                if not over_budget:
                    run.notes.append(f"claude: stopped after {run.steps} tool steps")
                final: list[ToolResultBlockParam | TextBlockParam] = [*results]
                final.append({"type": "text", "text": FINAL_NOW})
                run.messages.append({"role": "user", "content": final})
                return _text(await self._ask(run, final=True))
            run.messages.append({"role": "user", "content": list(results)})

    async def _ask(self, run: _Run, *, final: bool) -> Message:
        tools: list[ToolParam] = [
            {"name": t["name"], "description": t["description"], "input_schema": t["input_schema"]}
            for t in run.tools.definitions
        ]
        # Tools stay defined on the final turns: the history holds tool_use blocks, and the
        # API requires tools whenever it does. tool_choice "none" forbids new calls.
        choice: ToolChoiceNoneParam | anthropic.Omit = {"type": "none"} if final else anthropic.omit
        response = await self._client.messages.create(
            model=self.model,
            max_tokens=self.max_tokens,
            system=SYSTEM_PROMPT,
            messages=run.messages,
            tools=tools,
            tool_choice=choice,
        )
        run.tokens += response.usage.input_tokens + response.usage.output_tokens
        return response

    async def _run_tool(self, run: _Run, block: ToolUseBlock) -> ToolResultBlockParam:
        tool_input = block.input if isinstance(block.input, dict) else {}
        output = await run.tools.call(block.name, tool_input)
        return {
            "type": "tool_result",
            "tool_use_id": block.id,
            "content": fence(
                output, source=f"tool:{block.name}", ref=ref_for(block.name, tool_input)
            ),
            "is_error": output.startswith("error:"),
        }

    # ----------------------------------------------------------------- the result

    def _to_analysis(
        self, result: ClaudeResult, bundle: Bundle, rules: Analysis, notes: list[str]
    ) -> Analysis:
        missing = [*rules.missing_data, *notes]
        actions: list[Action] = []
        read = 2 * MAX_ACTIONS  # a flood of proposals is not worth judging one by one
        if len(result.actions) > read:
            missing.append(f"claude: {len(result.actions) - read} further proposed actions ignored")
        for proposal in result.actions[:read]:
            try:
                action = build_action(proposal.kind, proposal.target, proposal.params)
                _check_scope(action, bundle)
            except (ValueError, TypeError):
                missing.append(
                    f"claude: dropped proposed action {_safe(proposal.kind)} on "
                    f"{_safe(proposal.target)} (refused by the action catalogue or out of scope)"
                )
                continue
            if len(actions) < MAX_ACTIONS and all(a.kubectl != action.kubectl for a in actions):
                actions.append(replace(action, why=_why(proposal.why)))
        chosen = _matching(result)
        primary = Hypothesis(
            category=result.category,
            object=result.object if result.category != "not_an_incident" else None,
            summary=_clean(result.summary, _TEXT_LIMIT),
            root_cause=_clean(result.root_cause, 3000),
            confidence=result.confidence,
            evidence=[
                EvidenceItem(e.source, _clean(e.text, _TEXT_LIMIT), _clean(e.ref, 300))
                for e in result.evidence[:12]
            ],
            trigger=_clean(result.trigger, _TEXT_LIMIT) if result.trigger else None,
            actions=actions,
            against=[_clean(a, _TEXT_LIMIT) for a in (chosen.evidence_against if chosen else [])],
            rule=ANALYZER,
        )
        others = sorted(
            (h for h in result.hypotheses if h is not chosen),
            key=lambda h: h.confidence,
            reverse=True,
        )
        alternatives = [_alternative(h) for h in others[:MAX_ALTERNATIVES]]
        return Analysis(
            primary=primary, alternatives=alternatives, missing_data=missing, analyzer=ANALYZER
        )


def _matching(result: ClaudeResult) -> HypothesisOut | None:
    """The hypothesis entry that is the final answer (same category, same object)."""
    for h in result.hypotheses:
        if h.category == result.category and h.object == result.object:
            return h
    for h in result.hypotheses:
        if h.category == result.category:
            return h
    return None


def _alternative(h: HypothesisOut) -> Hypothesis:
    ref = h.object or ""
    return Hypothesis(
        category=h.category,
        object=h.object,
        summary=_clean(h.summary, _TEXT_LIMIT) or f"{h.category} ({h.object or 'no object'})",
        root_cause="",
        confidence=h.confidence,
        evidence=[EvidenceItem(ANALYZER, _clean(t, _TEXT_LIMIT), ref) for t in h.evidence_for[:6]],
        against=[_clean(t, _TEXT_LIMIT) for t in h.evidence_against[:6]],
        rule=ANALYZER,
    )


def _check_scope(action: Action, bundle: Bundle) -> None:
    """Refuse targets outside the incident: another namespace, or a Node not involved.

    Raises:
        ValueError: the target is out of scope.
    """
    ref = ObjectRef.parse(action.target)
    if ref.kind == "Node":
        involved = {r.name for r, _ in bundle.of_kind("Node")}
        involved |= {str((o.get("spec") or {}).get("nodeName")) for _, o in bundle.pods()}
        if bundle.target is not None and bundle.target.kind == "Node":
            involved.add(bundle.target.name)
        if ref.name not in involved:
            raise ValueError(f"node {ref.name} is not part of the incident")
    elif bundle.namespace and ref.namespace != bundle.namespace:
        raise ValueError(f"namespace {ref.namespace} is not the incident's")


def _safe(value: str) -> str:
    """A model-chosen identifier, echoed only when it cannot carry shell or prose."""
    return value if _SAFE_TOKEN.match(value) else "(unprintable)"


def _why(text: str) -> str:
    why = _clean(" ".join(text.split()), _WHY_LIMIT)
    return "(explanation withheld: it contained command text)" if _COMMANDISH.search(why) else why


def _clean(text: str | None, limit: int) -> str:
    """Model text as it may be shown: masked again, one paragraph, bounded."""
    cleaned = mask(text or "").strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _text(response: Message) -> str:
    return "".join(b.text for b in response.content if b.type == "text")


def _assistant(response: Message) -> MessageParam:
    content: list[TextBlockParam | ToolUseBlockParam] = []
    for block in response.content:
        if block.type == "text" and block.text.strip():
            content.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            content.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
    return {"role": "assistant", "content": content}


def _not_run(tool_use_id: str) -> ToolResultBlockParam:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": "not run: the investigation's token budget is used up",
        "is_error": True,
    }


def _fallback(rules: Analysis, note: str) -> Analysis:
    log.warning("%s", note)
    return Analysis(
        primary=rules.primary,
        alternatives=list(rules.alternatives),
        missing_data=[*rules.missing_data, note],
        analyzer=rules.analyzer,
    )


def make_claude(
    settings: Settings,
    *,
    kube: KubeReader | None = None,
    prometheus: PromQuery | None = None,
    timeout: float = 30.0,
) -> ClaudeAnalyzer | None:
    """The Claude analyzer the settings ask for; None without ``ANTHROPIC_API_KEY``.

    Args:
        settings: ``anthropic_api_key``, ``anthropic_base_url`` and ``anthropic_model``.
        kube: Read-only cluster access for the tools.
        prometheus: A range-query callable for the ``prometheus_query`` tool.
        timeout: Seconds per API request (the analysis as a whole is bounded by
            ``ClaudeAnalyzer.wall_time``).
    """
    if not settings.anthropic_api_key:
        return None
    client = anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        max_retries=2,
        timeout=timeout,
    )
    return ClaudeAnalyzer(
        client, model=settings.anthropic_model, tools=ReadOnlyTools(kube, prometheus)
    )
