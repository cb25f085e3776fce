"""Rules-path investigation latency per scenario, through the sandbox API server.

Prints numbers, asserts nothing. Run: ``.venv/bin/python bench/investigate.py [--rounds N]``.
For each scenario the sandbox API server is started once; then the investigation (owner
resolution, evidence collection over HTTP with the real client, rule analysis, masking) is
timed ``rounds`` times. Prometheus is not configured here, so its time is not included.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.investigate import Investigator, first_alert  # noqa: E402
from bot.kube import KubeReader, make_api_client  # noqa: E402
from bot.webhook import parse_webhook  # noqa: E402
from sandbox.kube import KubeSandbox  # noqa: E402
from sandbox.scenario import load_scenario  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(rounds: int) -> None:
    settings = Settings.from_env({})
    all_times: list[float] = []
    rows = []
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        scenario = load_scenario(path)
        labels, annotations = first_alert(parse_webhook(scenario.webhook))
        async with KubeSandbox.from_scenario(scenario) as cluster:
            api = make_api_client(replace(settings, kube_mode="url", kube_url=cluster.base_url))
            assert api is not None
            kube = KubeReader(api, timeout=settings.kube_timeout)
            try:
                times = []
                for _ in range(rounds):
                    # a fresh investigator per round: no owner cache carried over
                    investigator = Investigator(kube)
                    started = time.perf_counter()
                    await investigator.rules(labels, annotations, now=scenario.now)
                    times.append(time.perf_counter() - started)
            finally:
                kube.close()
        all_times.extend(times)
        rows.append((scenario.name, statistics.median(times), max(times)))
    print(
        f"# rules-path investigation latency, {rounds} rounds per scenario, {len(rows)} scenarios"
    )
    for name, median, worst in sorted(rows, key=lambda r: -r[1])[:10]:
        print(f"  {name:48} p50 {median * 1000:6.1f} ms  max {worst * 1000:6.1f} ms")
    print(
        f"overall: p50 {statistics.median(all_times) * 1000:.1f} ms, "
        f"p99 {pct(all_times, 0.99) * 1000:.1f} ms over {len(all_times)} investigations"
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))


if __name__ == "__main__":
    cli()
