"""Fixtures shared by the Claude agent tests: the Anthropic emulator and a real SDK client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest

from sandbox.anthropic import AnthropicSandbox

KEY = "sk-ant-test-key"


@pytest.fixture
async def sandbox() -> AsyncIterator[AnthropicSandbox]:
    async with AnthropicSandbox(KEY) as sb:
        yield sb


@pytest.fixture
async def client(sandbox: AnthropicSandbox) -> AsyncIterator[anthropic.AsyncAnthropic]:
    # max_retries=0: tests script errors and want to see them, not the SDK's retries.
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=sandbox.base_url, max_retries=0, timeout=3.0
    ) as c:
        yield c
