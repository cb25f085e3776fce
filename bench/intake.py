"""Intake benchmark: durable accept throughput/latency and alert → Slack message latency.

Prints numbers, asserts nothing. Run: ``.venv/bin/python bench/intake.py`` (``make bench``).

Processes: the bot (``incident-bot serve``) and the aiohttp no-op baseline each run in their
own process; this process generates load and hosts the Slack and Kubernetes sandboxes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.kube import KubeSandbox  # noqa: E402
from sandbox.scenario import load_scenario  # noqa: E402
from sandbox.slack import SlackSandbox  # noqa: E402

TOKEN = "bench-token"
SENDERS = 32
LATENCY_SAMPLES = 60


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def webhook(batch: int, size: int, namespace: str = "bench") -> bytes:
    alerts = []
    for i in range(size):
        alerts.append(
            {
                "status": "firing",
                "labels": {
                    "alertname": "KubePodCrashLooping",
                    "namespace": namespace,
                    # 40 workloads: a busy cluster, not one giant incident
                    "pod": f"svc{batch % 40}-7d9f8b6c4-x2x9q",
                    "severity": "warning",
                    "instance": f"b{batch}-{i}",
                },
                "annotations": {"summary": "Pod is crash looping."},
                "startsAt": "2026-11-20T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": f"{batch:08x}{i:08x}",
            }
        )
    body = {
        "version": "4",
        "groupKey": f"bench-{batch}",
        "status": "firing",
        "receiver": "incident-bot",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": alerts,
    }
    return json.dumps(body).encode()


async def load(url: str, bodies: list[tuple[bytes, int]]) -> dict[str, float]:
    """Send every body with SENDERS concurrent senders; return throughput and latency."""
    queue = list(reversed(bodies))
    latencies: list[float] = []
    alerts = 0
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=SENDERS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            nonlocal alerts
            while queue:
                body, count = queue.pop()
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"status {resp.status}")
                latencies.append(time.perf_counter() - started)
                alerts += count

        began = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(SENDERS)))
        took = time.perf_counter() - began
    return {
        "alerts_per_s": alerts / took,
        "requests_per_s": len(latencies) / took,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
    }


async def paced(url: str, bodies: list[tuple[bytes, int]], alerts_per_s: float) -> dict[str, float]:
    """Open-loop load: offer ``alerts_per_s`` on a fixed schedule; latency from the schedule.

    Measuring from the scheduled send time (not the actual one) keeps a stalled server from
    hiding its stall (no coordinated omission).
    """
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    mean_size = sum(n for _, n in bodies) / len(bodies)
    interval = mean_size / alerts_per_s
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes, due: float) -> None:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
            latencies.append(time.perf_counter() - due)

        start = time.perf_counter() + 0.05
        await asyncio.gather(*(one(b, start + i * interval) for i, (b, _) in enumerate(bodies)))
        took = time.perf_counter() - start
    return {
        "alerts_per_s": sum(n for _, n in bodies) / took,
        "requests_per_s": len(bodies) / took,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
    }


def sqlite_fsync_loop(seconds: float = 2.0) -> float:
    """Commits per second of single-row transactions, WAL + synchronous=FULL."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "x.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        count = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (body) VALUES (?)", ("x" * 1500,))
            conn.execute("COMMIT")
            count += 1
        conn.close()
    return count / seconds


def start_process(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return proc, found.group(1)
        if not line and proc.poll() is not None:
            raise RuntimeError(f"{args} exited")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=20)


async def run_noop_server() -> None:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/alertmanager", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", file=sys.stderr, flush=True)
    await asyncio.Event().wait()


async def alert_to_message(bot_url: str, slack: SlackSandbox) -> list[float]:
    """Send one new incident at a time; time until its parent message is in Slack."""
    samples = []
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for i in range(LATENCY_SAMPLES):
            body = webhook(10_000_000 + i, 1, namespace=f"lat-{i}")
            before = len(slack.calls_to("chat.postMessage"))
            started = time.perf_counter()
            async with session.post(f"{bot_url}/alertmanager", data=body, headers=headers) as r:
                await r.read()
            # the emulator is plain state, not an event source: poll it every millisecond
            while len(slack.calls_to("chat.postMessage")) == before:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            samples.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return samples


async def drain(bot_url: str) -> None:
    """Wait until the bot's worker has processed its backlog."""
    for _ in range(1200):
        async with aiohttp.ClientSession() as s, s.get(f"{bot_url}/metrics") as r:
            text = await r.text()
        if "incident_bot_inbox_depth 0.0" in text:
            return
        await asyncio.sleep(0.5)


async def main(duration_webhooks: int) -> None:
    rng = random.Random(7)
    bodies = []
    for batch in range(duration_webhooks):
        size = rng.randint(1, 10)
        bodies.append((webhook(batch, size), size))
    warm = [(webhook(20_000_000 + i, 1), 1) for i in range(200)]
    paced_bodies = []
    for batch in range(1500):
        size = rng.randint(1, 10)
        paced_bodies.append((webhook(30_000_000 + batch, size), size))

    scenario = load_scenario(ROOT / "scenarios" / "cart-oomkilled.yaml")
    async with SlackSandbox() as slack, KubeSandbox.from_scenario(scenario) as kube:
        routes = ";".join(f"namespace=lat-{i}:#lat-{i}" for i in range(LATENCY_SAMPLES))
        with tempfile.TemporaryDirectory() as data_dir:
            env = {
                **os.environ,
                "SLACK_BOT_TOKEN": "xoxb-sandbox",
                "SLACK_SIGNING_SECRET": "bench",
                "SLACK_API_URL": slack.api_url,
                "INCIDENT_BOT_DEFAULT_CHANNEL": "#bench",
                "INCIDENT_BOT_CHANNEL_ROUTES": routes,
                "INCIDENT_BOT_WEBHOOK_TOKEN": TOKEN,
                "INCIDENT_BOT_DATA_DIR": data_dir,
                "INCIDENT_BOT_HOST": "127.0.0.1",
                "INCIDENT_BOT_PORT": "0",
                "INCIDENT_BOT_KUBE_MODE": "url",
                "INCIDENT_BOT_KUBE_URL": kube.base_url,
                "INCIDENT_BOT_LOG_LEVEL": "WARNING",
            }
            noop, noop_url = start_process([sys.executable, __file__, "--noop"], env)
            try:
                await load(f"{noop_url}/alertmanager", warm)
                base = await load(f"{noop_url}/alertmanager", bodies)
            finally:
                stop(noop)
            fsync_rate = sqlite_fsync_loop()

            bot, bot_url = start_process([sys.executable, "-m", "bot.cli", "serve"], env)
            try:
                await load(f"{bot_url}/alertmanager", warm)
                intake = await load(f"{bot_url}/alertmanager", bodies)
                await drain(bot_url)
                offered = await paced(f"{bot_url}/alertmanager", paced_bodies, 2000)
                await drain(bot_url)
                latency = await alert_to_message(bot_url, slack)
            finally:
                stop(bot)

    alerts = sum(n for _, n in bodies)
    print(f"# intake benchmark: {len(bodies)} webhooks / {alerts} alerts, {SENDERS} senders")
    print(f"{'':28}{'alerts/s':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for name, r in (("aiohttp no-op handler", base), ("incident-bot durable accept", intake)):
        print(
            f"{name:28}{r['alerts_per_s']:>10.0f}{r['requests_per_s']:>9.0f}"
            f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
        )
    print(f"ratio bot / no-op (alerts/s): {intake['alerts_per_s'] / base['alerts_per_s']:.2f}")
    print(
        f"offered 2000 alerts/s open-loop ({len(paced_bodies)} webhooks): accepted "
        f"{offered['alerts_per_s']:.0f} alerts/s, p50 {offered['p50_ms']:.1f} ms, "
        f"p99 {offered['p99_ms']:.1f} ms"
    )
    print(f"raw SQLite fsync loop (WAL, synchronous=FULL): {fsync_rate:.0f} commits/s")
    print(
        f"bot accepted {intake['requests_per_s'] / fsync_rate:.1f}x the raw one-commit-per-"
        "request rate (group commit)"
    )
    print(
        f"alert → first Slack message ({LATENCY_SAMPLES} incidents): "
        f"p50 {statistics.median(latency) * 1000:.0f} ms, p99 {pct(latency, 0.99) * 1000:.0f} ms"
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=3000, help="webhooks in the load phase")
    parser.add_argument("--noop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop:
        asyncio.run(run_noop_server())
    else:
        asyncio.run(main(args.webhooks))


if __name__ == "__main__":
    cli()
