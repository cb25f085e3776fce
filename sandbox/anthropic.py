"""A loopback emulator of the Anthropic Messages API for tests and demos.

:class:`AnthropicSandbox` is an aiohttp server that the real ``anthropic`` SDK talks to
unmodified, via ``AsyncAnthropic(base_url=sandbox.base_url)``. It checks what the real API
checks before a model ever runs — the key (``x-api-key`` or ``Authorization: Bearer``), the
``anthropic-version`` header, the request shape (model, max_tokens, alternating roles, every
``tool_use`` answered by a ``tool_result`` in the next user turn and no stray results) — and
answers those failures with the real error bodies. What the "model" says is scripted::

    sandbox.script(
        tool_use("get_logs", {"namespace": "shop", "pod": "cart-x", "container": "cart"}),
        text('{"category": "oom_killed", ...}'),
        error(429, "rate_limit_error", "slow down", retry_after=1),
        delay(2.0, text("late")),
        malformed("Sure! The pod ran out of memory."),
    )

Each request that passes validation consumes one turn; once the script is exhausted the
sandbox answers 500 ``api_error`` "sandbox script exhausted". Every request (valid or not) is
recorded in :attr:`AnthropicSandbox.requests`. Streaming is not served.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from aiohttp import web

from sandbox.loopback import LoopbackServer

JSONDict = dict[str, Any]

_TOOL_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TOOL_CHOICES: Final = frozenset({"auto", "any", "tool", "none"})
_BLOCK_TYPES: Final = frozenset({"text", "image", "document", "tool_use", "tool_result"})
_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


# --------------------------------------------------------------------------- script turns


@dataclass(frozen=True)
class Reply:
    """A successful (200) answer: content blocks and why the "model" stopped."""

    content: tuple[JSONDict, ...]
    stop_reason: str
    usage: tuple[int, int] | None = None  # (input_tokens, output_tokens); None = estimate


@dataclass(frozen=True)
class Failure:
    """An error answer with the real error body."""

    status: int
    type: str
    message: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Delayed:
    """Wait ``seconds`` before answering with ``turn``."""

    seconds: float
    turn: Turn


Turn = Reply | Failure | Delayed


def tool_use(
    name: str,
    input: JSONDict,
    *,
    text: str | None = None,
    usage: tuple[int, int] | None = None,
) -> Reply:
    """A turn in which the model calls one tool (``stop_reason="tool_use"``).

    Args:
        name: The tool's name; it must be among the request's tools.
        input: The tool input.
        text: Optional text block before the call ("I'll check the logs").
        usage: ``(input_tokens, output_tokens)`` to report instead of the estimate.
    """
    return tool_calls((name, input), text=text, usage=usage)


def tool_calls(
    *calls: tuple[str, JSONDict], text: str | None = None, usage: tuple[int, int] | None = None
) -> Reply:
    """A turn in which the model calls several tools at once (parallel tool use)."""
    blocks: list[JSONDict] = [{"type": "text", "text": text}] if text else []
    for name, tool_input in calls:
        blocks.append({"type": "tool_use", "name": name, "input": tool_input})
    return Reply(tuple(blocks), "tool_use", usage)


def text(
    content: str, *, stop_reason: str = "end_turn", usage: tuple[int, int] | None = None
) -> Reply:
    """A turn in which the model answers with text (``end_turn`` unless told otherwise)."""
    return Reply(({"type": "text", "text": content},), stop_reason, usage)


def malformed(raw_text: str) -> Reply:
    """A 200 whose text is not the JSON the bot asked for (prose, truncated JSON, …)."""
    return text(raw_text)


def error(
    status: int, type: str | None = None, message: str = "", retry_after: float | None = None
) -> Failure:
    """An error answer, e.g. ``error(429, "rate_limit_error", "…", retry_after=1)``.

    Args:
        status: HTTP status.
        type: ``error.type``; defaults to the API's type for ``status``.
        message: ``error.message``.
        retry_after: Seconds sent in the ``retry-after`` header, if any.
    """
    kind = type or _ERROR_TYPES.get(status, "api_error")
    return Failure(status, kind, message or kind.replace("_", " "), retry_after)


def delay(seconds: float, turn: Turn) -> Delayed:
    """Answer with ``turn`` after ``seconds`` (to exercise client and wall-clock timeouts)."""
    return Delayed(seconds, turn)


# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the sandbox received and answered it."""

    method: str
    path: str
    headers: dict[str, str]
    raw: str  # the body as sent (decoded UTF-8)
    body: JSONDict | None  # the parsed body, when it was a JSON object
    status: int
    at: float
    response: JSONDict = field(default_factory=dict)


class _Invalid(Exception):
    """A request the real API would refuse before running a model."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- the server


class AnthropicSandbox(LoopbackServer):
    """An in-process Anthropic Messages API on 127.0.0.1.

    Args:
        api_key: The only key accepted (as ``x-api-key`` or ``Authorization: Bearer``).
        clock: Monotonic clock used to time-stamp recorded requests.

    Attributes:
        requests: Every request received, in order.
    """

    def __init__(
        self, api_key: str = "sk-ant-sandbox", *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._clock = clock
        self._script: deque[Turn] = deque()
        self._ids = itertools.count(1)
        super().__init__()

    # ----------------------------------------------------------------- lifecycle

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        return app

    # ------------------------------------------------------------ scripting

    def script(self, *turns: Turn) -> None:
        """Append turns; each valid request consumes the next one."""
        self._script.extend(turns)

    @property
    def remaining(self) -> int:
        """Turns not consumed yet."""
        return len(self._script)

    # ------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = (await request.read()).decode("utf-8", "replace")
        parsed: Any = None
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else None
        # Recorded on arrival (status 0) so a request whose client gave up still shows.
        index = len(self.requests)
        self.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.headers), raw, body, 0, self._clock()
            )
        )
        try:
            status, payload, headers = await self._answer(request, raw, body)
        except _Invalid as bad:
            status, payload, headers = bad.status, self._error_body(bad.status, bad.message), {}
        self.requests[index] = replace(self.requests[index], status=status, response=payload)
        headers = {"request-id": payload.get("request_id") or _request_id(), **headers}
        return web.json_response(payload, status=status, headers=headers)

    async def _answer(
        self, request: web.Request, raw: str, body: JSONDict | None
    ) -> tuple[int, JSONDict, dict[str, str]]:
        if request.path.rstrip("/") != "/v1/messages":
            raise _Invalid(404, f"Not found: {request.method} {request.path}")
        if request.method != "POST":
            raise _Invalid(405, f"Method not allowed: {request.method}")
        self._check_auth(request)
        if not request.headers.get("anthropic-version"):
            raise _Invalid(400, "anthropic-version: header is required")
        if body is None:
            raise _Invalid(400, "The request body is not valid JSON.")
        _check_body(body)
        if not self._script:
            return 500, self._error_body(500, "sandbox script exhausted", "api_error"), {}
        turn = self._script.popleft()
        while isinstance(turn, Delayed):
            await asyncio.sleep(turn.seconds)
            turn = turn.turn
        if isinstance(turn, Failure):
            headers = {}
            if turn.retry_after is not None:
                headers["retry-after"] = f"{turn.retry_after:g}"
            return turn.status, self._error_body(turn.status, turn.message, turn.type), headers
        return 200, self._message(turn, body, raw), {}

    def _check_auth(self, request: web.Request) -> None:
        key = request.headers.get("x-api-key")
        auth = request.headers.get("Authorization", "")
        bearer = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        if key is None and bearer is None:
            raise _Invalid(401, "x-api-key header is required")
        if self.api_key not in (key, bearer):
            raise _Invalid(401, "invalid x-api-key")

    def _message(self, turn: Reply, body: JSONDict, raw: str) -> JSONDict:
        offered = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
        choice = (body.get("tool_choice") or {}).get("type", "auto")
        content: list[JSONDict] = []
        for block in turn.content:
            if block["type"] == "tool_use":
                if block["name"] not in offered or choice == "none":
                    # A real model cannot call a tool it was not offered: the test's script
                    # disagrees with the request, which the test should hear about.
                    raise _Invalid(
                        500, f"sandbox script: tool_use {block['name']!r} but it is not offered"
                    )
                block = {**block, "id": f"toolu_{next(self._ids):04d}{secrets.token_hex(8)}"}
            content.append(block)
        if turn.usage is not None:
            input_tokens, output_tokens = turn.usage
        else:
            input_tokens = max(1, len(raw) // 4)
            output_tokens = max(1, len(json.dumps(content)) // 4)
        return {
            "id": f"msg_{next(self._ids):04d}{secrets.token_hex(10)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": turn.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }

    @staticmethod
    def _error_body(status: int, message: str, kind: str | None = None) -> JSONDict:
        return {
            "type": "error",
            "error": {"type": kind or _ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": _request_id(),
        }


def _request_id() -> str:
    return "req_" + secrets.token_hex(12)


# --------------------------------------------------------------------------- validation


def _check_body(body: JSONDict) -> None:
    """Raise :class:`_Invalid` (400) where the real API would refuse the request."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Invalid(400, "model: Field required")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _Invalid(400, "max_tokens: Field required (a positive integer)")
    if body.get("stream"):
        raise _Invalid(400, "stream: the sandbox does not serve streaming")
    _check_system(body.get("system"))
    tools = _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"), tools)
    _check_messages(body.get("messages"), has_tools=bool(tools))


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or not all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    ):
        raise _Invalid(400, "system: Input should be a string or a list of text blocks")


def _check_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise _Invalid(400, "tools: Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _Invalid(400, f"tools.{i}: Input should be an object")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _Invalid(400, f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if name in names:
            raise _Invalid(400, f"tools: Tool names must be unique ({name!r})")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise _Invalid(400, f"tools.{i}.input_schema.type: Input should be 'object'")
        names.add(name)
    return names


def _check_tool_choice(choice: Any, tools: set[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in _TOOL_CHOICES:
        raise _Invalid(
            400, "tool_choice: Input tag does not match any of 'auto', 'any', 'tool', 'none'"
        )
    if choice["type"] in ("any", "tool") and not tools:
        raise _Invalid(400, "tool_choice: may only be specified while providing tools")
    if choice["type"] == "tool" and choice.get("name") not in tools:
        raise _Invalid(400, f"tool_choice.name: Tool {choice.get('name')!r} not found in tools")


def _check_messages(messages: Any, *, has_tools: bool) -> None:
    if not isinstance(messages, list) or not messages:
        raise _Invalid(400, "messages: at least one message is required")
    pending: set[str] = set()  # tool_use ids the next user turn must answer
    previous_role = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _Invalid(400, f"messages.{i}: Input should be an object")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _Invalid(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise _Invalid(400, 'messages: first message must use the "user" role')
        if role == previous_role:
            raise _Invalid(400, f"messages.{i}: roles must alternate between user and assistant")
        blocks = _blocks(message.get("content"), f"messages.{i}.content")
        uses = [b for b in blocks if b["type"] == "tool_use"]
        results = [b for b in blocks if b["type"] == "tool_result"]
        if (uses or results) and not has_tools:
            raise _Invalid(
                400, "Requests which include `tool_use` or `tool_result` blocks must define tools."
            )
        if role == "assistant":
            if results:
                raise _Invalid(400, f"messages.{i}: tool_result blocks belong in a user message")
            if pending:
                raise _Invalid(400, _unanswered(i - 1, pending))
            ids = [b.get("id") for b in uses]
            if any(not isinstance(x, str) or not x for x in ids) or len(set(ids)) != len(ids):
                raise _Invalid(400, f"messages.{i}: tool_use blocks need unique ids")
            pending = {str(x) for x in ids}
        else:
            if uses:
                raise _Invalid(400, f"messages.{i}: tool_use blocks belong in an assistant message")
            answered = [b.get("tool_use_id") for b in results]
            stray = [x for x in answered if x not in pending]
            if stray:
                raise _Invalid(
                    400,
                    f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {stray[0]}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message.",
                )
            if pending - set(answered):
                raise _Invalid(400, _unanswered(i - 1, pending - set(answered)))
            if len(set(answered)) != len(answered):
                raise _Invalid(400, f"messages.{i}: duplicate tool_result for one tool_use id")
            pending = set()
        previous_role = role
    if pending:
        raise _Invalid(400, _unanswered(len(messages) - 1, pending))


def _unanswered(index: int, ids: set[str]) -> str:
    return (
        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
        f"after: {', '.join(sorted(ids))}. Each `tool_use` block must have a corresponding "
        "`tool_result` block in the next message."
    )


def _blocks(content: Any, where: str) -> list[JSONDict]:
    if isinstance(content, str):
        if not content:
            raise _Invalid(400, f"{where}: text content blocks must be non-empty")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise _Invalid(400, f"{where}: Input should be a non-empty string or list of blocks")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            raise _Invalid(400, f"{where}.{j}.type: unknown content block type")
        if block["type"] == "text" and not (
            isinstance(block.get("text"), str) and block["text"].strip()
        ):
            raise _Invalid(
                400, f"{where}.{j}: text content blocks must contain non-whitespace text"
            )
        if block["type"] == "tool_result":
            inner = block.get("content", "")
            if not isinstance(inner, str) and not (
                isinstance(inner, list) and all(isinstance(b, dict) for b in inner)
            ):
                raise _Invalid(400, f"{where}.{j}.content: Input should be a string or a list")
    return content
