"""AnthropicSandbox against the real anthropic SDK (and raw HTTP for what the SDK won't send)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest

from sandbox.anthropic import AnthropicSandbox, delay, error, malformed, text, tool_calls, tool_use

KEY = "sk-ant-test-key"
MODEL = "claude-sonnet-4-6"  # 4-5 is deprecated in anthropic 2.12 (a DeprecationWarning)
TOOL = {"name": "get_logs", "description": "logs", "input_schema": {"type": "object"}}


@pytest.fixture
async def sandbox() -> AsyncIterator[AnthropicSandbox]:
    async with AnthropicSandbox(KEY) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: AnthropicSandbox) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=sandbox.base_url, max_retries=0, timeout=2.0
    ) as c:
        yield c


async def create(client: anthropic.AsyncAnthropic, **kwargs: Any) -> anthropic.types.Message:
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "hi"}],
    }
    params.update(kwargs)
    message: anthropic.types.Message = await client.messages.create(**params)
    return message


async def raw_post(
    sandbox: AnthropicSandbox, body: Any, headers: dict[str, str]
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{sandbox.base_url}/v1/messages", json=body, headers=headers
        ) as resp:
            return resp.status, await resp.json()


def tool_exchange(tool_use_id: str, answered: str | None) -> list[dict[str, Any]]:
    user_reply: list[dict[str, Any]] = [{"type": "text", "text": "go on"}]
    if answered is not None:
        user_reply.insert(0, {"type": "tool_result", "tool_use_id": answered, "content": "ok"})
    return [
        {"role": "user", "content": "why is cart down?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": tool_use_id, "name": "get_logs", "input": {}}],
        },
        {"role": "user", "content": user_reply},
    ]


# --------------------------------------------------------------------------- auth and headers


async def test_text_reply_parsed_by_sdk(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(text("hello there"))
    message = await create(client)
    assert message.id.startswith("msg_")
    assert message.role == "assistant" and message.type == "message"
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text == "hello there"
    assert message.usage.input_tokens >= 1 and message.usage.output_tokens >= 1
    recorded = sandbox.requests[0]
    assert recorded.status == 200 and recorded.body is not None
    assert recorded.body["messages"] == [{"role": "user", "content": "hi"}]
    assert recorded.headers.get("anthropic-version")
    sent_key = recorded.headers.get("x-api-key") or recorded.headers["Authorization"]
    assert KEY in sent_key


async def test_wrong_key_is_401(sandbox: AnthropicSandbox) -> None:
    sandbox.script(text("never"))
    async with anthropic.AsyncAnthropic(
        api_key="sk-wrong", base_url=sandbox.base_url, max_retries=0
    ) as bad:
        with pytest.raises(anthropic.AuthenticationError) as info:
            await create(bad)
    assert info.value.type == "authentication_error"
    assert sandbox.remaining == 1  # refused before the "model" ran


async def test_x_api_key_accepted_and_missing_key_refused(sandbox: AnthropicSandbox) -> None:
    sandbox.script(text("ok"))
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    status, _ = await raw_post(sandbox, body, {"x-api-key": KEY, "anthropic-version": "2023-06-01"})
    assert status == 200
    status, payload = await raw_post(sandbox, body, {"anthropic-version": "2023-06-01"})
    assert status == 401
    assert payload["type"] == "error" and payload["error"]["type"] == "authentication_error"


async def test_version_header_required(sandbox: AnthropicSandbox) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    status, payload = await raw_post(sandbox, body, {"x-api-key": KEY})
    assert status == 400
    assert payload["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"model": MODEL, "max_tokens": 10, "messages": []}, "messages"),
        (
            {"model": MODEL, "max_tokens": 10, "messages": [{"role": "assistant", "content": "x"}]},
            "first message",
        ),
    ],
)
async def test_request_shape_checked(
    sandbox: AnthropicSandbox, body: dict[str, Any], fragment: str
) -> None:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    status, payload = await raw_post(sandbox, body, headers)
    assert status == 400
    assert fragment in payload["error"]["message"]


async def test_roles_must_alternate(client: anthropic.AsyncAnthropic) -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(anthropic.BadRequestError) as info:
        await create(client, messages=messages)
    assert "alternate" in str(info.value.api_message)


# --------------------------------------------------------------------------- tool use


async def test_tool_use_turn(sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic) -> None:
    sandbox.script(tool_use("get_logs", {"pod": "cart-1"}, text="Checking logs."))
    message = await create(client, tools=[TOOL])
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    call = message.content[1]
    assert call.type == "tool_use"
    assert call.id.startswith("toolu_") and call.name == "get_logs"
    assert call.input == {"pod": "cart-1"}


async def test_parallel_tool_calls_get_distinct_ids(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(tool_calls(("get_logs", {"a": 1}), ("get_logs", {"a": 2})))
    message = await create(client, tools=[TOOL])
    ids = [b.id for b in message.content if b.type == "tool_use"]
    assert len(set(ids)) == 2


async def test_tool_result_must_answer_previous_tool_use(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(text("fine"))
    ok = await create(client, tools=[TOOL], messages=tool_exchange("toolu_1", "toolu_1"))
    assert ok.content[0].type == "text"

    with pytest.raises(anthropic.BadRequestError) as missing:
        await create(client, tools=[TOOL], messages=tool_exchange("toolu_1", None))
    assert "without `tool_result` blocks immediately after: toolu_1" in str(
        missing.value.api_message
    )

    with pytest.raises(anthropic.BadRequestError) as stray:
        await create(client, tools=[TOOL], messages=tool_exchange("toolu_1", "toolu_9"))
    assert "unexpected `tool_use_id`" in str(stray.value.api_message)


async def test_tool_blocks_need_tools_defined(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await create(client, messages=tool_exchange("toolu_1", "toolu_1"))
    assert "must define tools" in str(info.value.api_message)


async def test_script_calling_an_unoffered_tool_is_a_script_error(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(tool_use("get_logs", {}), tool_use("get_logs", {}))
    with pytest.raises(anthropic.InternalServerError):
        await create(client)
    with pytest.raises(anthropic.InternalServerError) as info:
        await create(client, tools=[TOOL], tool_choice={"type": "none"})
    assert "not offered" in str(info.value.api_message)


# --------------------------------------------------------------------------- scripted failures


async def test_scripted_errors(sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic) -> None:
    sandbox.script(
        error(429, "rate_limit_error", "slow down", retry_after=7),
        error(529),
        error(500, message="boom"),
    )
    with pytest.raises(anthropic.RateLimitError) as limited:
        await create(client)
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
        "request_id": limited.value.body["request_id"],  # type: ignore[index]
    }
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        await create(client)
    assert overloaded.value.type == "overloaded_error"
    with pytest.raises(anthropic.InternalServerError) as internal:
        await create(client)
    assert internal.value.api_message == "boom"


async def test_exhausted_script_answers_500(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        await create(client)
    assert info.value.api_message == "sandbox script exhausted"


async def test_delay_beyond_client_timeout(sandbox: AnthropicSandbox) -> None:
    sandbox.script(delay(3.0, text("too late")), text("on time"))
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=sandbox.base_url, max_retries=0, timeout=0.2
    ) as impatient:
        started = time.monotonic()
        with pytest.raises(anthropic.APITimeoutError):
            await create(impatient)
        assert time.monotonic() - started < 1.5
        assert (await create(impatient)).content[0].text == "on time"  # type: ignore[union-attr]
    assert len(sandbox.requests) == 2


async def test_malformed_is_a_plain_200(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(malformed('{"category": "oom_kil'))
    message = await create(client)
    assert message.stop_reason == "end_turn"
    assert message.content[0].text == '{"category": "oom_kil'  # type: ignore[union-attr]


async def test_scripted_usage_and_stop_reason(
    sandbox: AnthropicSandbox, client: anthropic.AsyncAnthropic
) -> None:
    sandbox.script(text("cut", stop_reason="max_tokens", usage=(1234, 56)))
    message = await create(client)
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (1234, 56)
