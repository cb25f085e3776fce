"""The pipeline puts metric charts into the incident thread when Prometheus is configured."""

from __future__ import annotations

from pathlib import Path

from tests.bot.test_chart_post import PrometheusStub, uploaded_files
from tests.handlers.test_spine import CART
from tests.stack import message_text, running_stack


async def test_oom_thread_gets_charts_after_the_rca(tmp_path: Path) -> None:
    async with PrometheusStub() as prometheus:
        async with running_stack(tmp_path, prometheus_url=prometheus.base_url) as stack:
            assert (await stack.post(CART))[0] == 200

            def charts() -> list[object]:
                threads = stack.threads()
                if not threads:
                    return []
                channel = stack.slack.channels()[0]
                return list(uploaded_files(stack.slack, channel, threads[0][0]["ts"]))

            await stack.wait(lambda: len(charts()) >= 1, within=20)
            thread = stack.threads()[0]
            rca_at = next(i for i, m in enumerate(thread) if "Root cause" in message_text(m))
            chart_at = next(i for i, m in enumerate(thread) if m.get("files"))
            assert rca_at < chart_at  # the charts never hold up the RCA reply
            assert any(
                "container_memory_working_set_bytes" in f.get("query", "") for f in prometheus.forms
            )
