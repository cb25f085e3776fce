"""With Claude configured, the RCA reply is posted from the rules, then edited in place."""

from __future__ import annotations

from pathlib import Path

from sandbox.anthropic import AnthropicSandbox, error, text, tool_use
from tests.handlers.test_spine import CART
from tests.rca.test_claude import answer
from tests.stack import message_text, running_stack


async def test_claude_result_updates_the_same_reply(tmp_path: Path) -> None:
    async with AnthropicSandbox() as claude:
        claude.script(
            tool_use("get_object", {"kind": "Deployment", "namespace": "shop", "name": "cart"}),
            text(answer(root_cause="Revision 7 raised CACHE_MAX_ITEMS to 500000 (Claude).")),
        )
        async with running_stack(
            tmp_path,
            anthropic_api_key="sk-ant-sandbox",
            anthropic_base_url=claude.base_url,
            anthropic_model="claude-sonnet-4-6",
        ) as stack:
            await stack.post(CART)
            await stack.wait(
                lambda: (
                    len(stack.threads()) == 1
                    and len(stack.threads()[0]) == 2
                    and "(Claude)" in message_text(stack.threads()[0][1])
                ),
                within=15,
            )
            channel = stack.slack.channels()[0]
            reply = stack.threads()[0][1]
            assert "Claude" in message_text(reply)
            # The rules' version came first, then the same message was updated.
            history = stack.slack.revisions(channel, reply["ts"])
            assert history and "Claude is investigating" in message_text(history[0])
            assert len(stack.slack.calls_to("chat.postMessage")) == 2
            # Secrets and write tools never reached the model: only read-only tools exist.
            tools = {t["name"] for t in claude.requests[0].body["tools"]}
            assert tools <= {
                "get_object",
                "list_objects",
                "get_events",
                "get_logs",
                "prometheus_query",
                "rollout_diff",
            }


async def test_claude_failure_keeps_the_rules_reply(tmp_path: Path) -> None:
    async with AnthropicSandbox() as claude:
        claude.script(error(529, "overloaded_error", "Overloaded"))
        async with running_stack(
            tmp_path,
            anthropic_api_key="sk-ant-sandbox",
            anthropic_base_url=claude.base_url,
        ) as stack:
            await stack.post(CART)
            await stack.wait(
                lambda: (
                    len(stack.threads()) == 1
                    and len(stack.threads()[0]) == 2
                    and "claude:" in message_text(stack.threads()[0][1])
                ),
                within=20,
            )
            reply = message_text(stack.threads()[0][1])
            assert "oom_killed" in reply and "rules" in reply
