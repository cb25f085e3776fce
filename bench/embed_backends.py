"""Embedding backends: torch (sentence-transformers) vs ONNX fp32 vs ONNX int8 (issue 4).

Prints numbers, asserts nothing. Run: ``.venv/bin/python bench/embed_backends.py``.

Each backend runs in its own fresh process (so RSS is that backend's alone): load time, one-text
latency p50/p99 over 200 incident-like texts (~60-120 tokens), throughput in batches of 32, the
vectors of those texts and of the retrieval sets, and VmRSS/VmHWM from /proc/self/status. The
timing rounds of the three processes are interleaved, so that load from other work on the
machine falls on all backends alike. A second process per backend first imports the bot's
serving stack (handlers.server, rag.memory, faiss, kubernetes, anthropic): the RSS of the whole
bot with the model loaded.

Retrieval: a synthetic set of 300 incident documents and 60 alert-style queries (relevant = same
failure category and service), and rag/labeled/{incidents,queries}.jsonl when both are present.
Agreement with torch: max cosine deviation per text and top-5 overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

BACKENDS = ("torch", "onnx-fp32", "onnx-int8", "onnx-int8-spin")
LABELED = ROOT / "rag" / "labeled"

# --- realistic incident texts -------------------------------------------------------------

SERVICES = ["cart", "checkout", "payments", "search", "orders", "auth", "inventory", "email"]
NAMESPACES = ["shop", "prod", "payments", "platform", "data"]
# category -> (alert summaries, log lines, root causes, actions). {s}=service {ns}=namespace
# {n}=number {m}=memory {node}=node name. Wording differs between documents and queries.
CATEGORIES: dict[str, tuple[list[str], list[str], list[str], list[str]]] = {
    "oom_killed": (
        [
            "KubePodCrashLooping: {ns}/{s} restarted {n} times, last state OOMKilled exit 137",
            "Container {s} in {ns} terminated: OOMKilled, memory limit {m}Mi reached",
        ],
        [
            "java.lang.OutOfMemoryError: Java heap space at com.shop.{s}.CacheLoader.load",
            "fatal error: runtime: out of memory goroutine {n} [running]",
            'container_memory_working_set_bytes{{container="{s}"}} = {m}Mi of {m}Mi limit',
        ],
        [
            "memory limit too low after the cache size was raised in the last rollout",
            "unbounded in-process cache grew until the container hit its memory limit",
        ],
        ["raised the memory limit to 1Gi and capped the cache", "rollout undo to revision {n}"],
    ),
    "image_pull": (
        [
            "KubePodNotReady: {ns}/{s} stuck in ImagePullBackOff for {n} minutes",
            "Pods of {s} cannot start: ErrImagePull from registry.example.com",
        ],
        [
            'Failed to pull image "registry.example.com/{s}:v1.{n}.0": manifest unknown',
            "Back-off pulling image registry.example.com/{s}: 401 Unauthorized",
        ],
        ["the image tag was never pushed by CI", "the registry pull secret expired"],
        ["fixed the tag in the deployment", "rotated the imagePullSecret"],
    ),
    "dependency_unavailable": (
        [
            "{s} 5xx ratio above 5% in {ns}: upstream errors",
            "HighErrorRate {s}: connection refused to postgres",
        ],
        [
            "dial tcp 10.0.{n}.12:5432: connect: connection refused",
            "redis.exceptions.ConnectionError: Error 111 connecting to redis:6379",
            "upstream request timeout after 30000ms calling payments-api",
        ],
        ["the database primary failed over and clients kept stale connections"],
        ["restarted {s} to reconnect; added connection retry with backoff"],
    ),
    "dns_failure": (
        [
            "{s} cannot resolve its dependencies in {ns}",
            "CoreDNS errors spike; {s} lookups fail",
        ],
        [
            "dial tcp: lookup postgres.{ns}.svc.cluster.local on 10.96.0.10:53: no such host",
            "getaddrinfo ENOTFOUND redis-master.{ns}",
            "SERVFAIL for api.partner.example.com from coredns",
        ],
        ["CoreDNS pods were throttled and dropped queries", "a wrong search domain in ndots"],
        ["scaled CoreDNS to 4 replicas", "fixed the service name in the config"],
    ),
    "certificate_expired": (
        [
            "{s} TLS handshake failures to the partner API",
            "ProbeSSLCertExpiry: certificate for {s}.example.com expired",
        ],
        [
            "x509: certificate has expired or is not yet valid: current time is after",
            "SSL routines:tls_process_server_certificate:certificate verify failed",
        ],
        ["cert-manager renewal failed because the ACME challenge was blocked"],
        ["renewed the certificate and fixed the ingress for the HTTP-01 challenge"],
    ),
    "disk_full": (
        [
            "{s} write errors: no space left on device",
            "KubePersistentVolumeFillingUp: {s}-data in {ns} is 98% full",
        ],
        [
            'ERROR: could not extend file "base/16384/{n}": No space left on device',
            "OSError: [Errno 28] No space left on device: '/var/lib/{s}/wal'",
        ],
        ["log files were never rotated on the data volume", "WAL archiving stalled"],
        ["expanded the PVC to 50Gi and enabled log rotation"],
    ),
    "liveness_probe": (
        [
            "{s} restarted by kubelet: liveness probe failed",
            "KubePodCrashLooping {ns}/{s}: Liveness probe failed: HTTP probe failed",
        ],
        [
            'Liveness probe failed: Get "http://10.1.{n}.4:8080/healthz": context deadline',
            "Killing container {s}: failed liveness probe, will be restarted",
        ],
        ["liveness timeout of 1s too short during garbage collection pauses"],
        ["raised timeoutSeconds to 5 and failureThreshold to 6"],
    ),
    "readiness_probe": (
        [
            "{s} has 0 of {n} pods ready in {ns}",
            "KubeDeploymentReplicasMismatch {s}: readiness probe failing",
        ],
        [
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
            "warming cache, /ready returns 503 until {n} keys loaded",
        ],
        ["readiness depends on a downstream that was slow to answer"],
        ["made readiness check only local state"],
    ),
    "unschedulable_resources": (
        [
            "{s} pods Pending in {ns}: insufficient cpu",
            "KubePodNotScheduled {s}: 0/{n} nodes are available",
        ],
        [
            "0/{n} nodes are available: {n} Insufficient memory, 2 Insufficient cpu",
            "FailedScheduling: pod didn't fit on any node, preemption not helpful",
        ],
        ["requests of 4 CPU per pod exceed any node's free capacity"],
        ["lowered requests to 500m and added a node to the pool"],
    ),
    "pvc_pending": (
        [
            "{s}-0 Pending: PersistentVolumeClaim is not bound",
            "KubePersistentVolumeClaimPending data-{s}-0 in {ns}",
        ],
        [
            "waiting for a volume to be created by external provisioner ebs.csi.aws.com",
            'storageclass.storage.k8s.io "fast-ssd" not found',
        ],
        ["the StorageClass named in the claim does not exist in this cluster"],
        ["changed the claim to the gp3 StorageClass"],
    ),
    "node_not_ready": (
        [
            "KubeNodeNotReady: {node} has been NotReady for {n} minutes",
            "Pods of {s} on {node} stuck Terminating, node Unknown",
        ],
        [
            "Kubelet stopped posting node status. NodeStatusUnknown",
            "PLEG is not healthy: pleg was last seen active 3m{n}s ago",
        ],
        ["the node's container runtime hung after a kernel upgrade"],
        ["cordoned and drained {node}, replaced the instance"],
    ),
    "cpu_throttling": (
        [
            "{s} p99 latency above 2s in {ns}",
            "CPUThrottlingHigh: {s} throttled {n}% of periods",
        ],
        [
            "container_cpu_cfs_throttled_periods_total rising for {s}",
            "request took 2{n}00ms, deadline 1000ms exceeded",
        ],
        ["CPU limit of 200m throttles the JIT warm-up and request bursts"],
        ["removed the CPU limit and set a request of 500m"],
    ),
    "missing_config": (
        [
            "{s} CrashLoopBackOff in {ns}: CreateContainerConfigError",
            "{s} exits at start: required environment variable missing",
        ],
        [
            "Error: couldn't find key DATABASE_URL in ConfigMap {ns}/{s}-config",
            "KeyError: 'STRIPE_API_KEY' in settings.py line {n}",
        ],
        ["the rollout referenced a ConfigMap key that was renamed"],
        ["restored the key in the ConfigMap and restarted"],
    ),
    "permission_denied": (
        [
            "{s} errors listing pods: forbidden",
            "{s} cannot read its secret: RBAC denied",
        ],
        [
            'pods is forbidden: User "system:serviceaccount:{ns}:{s}" cannot list resource',
            "AccessDenied: not authorized to perform s3:GetObject on arn:aws:s3:::{s}-assets",
        ],
        ["the Role lost the list verb in a Helm chart upgrade"],
        ["added the verb back to the Role binding of the service account"],
    ),
    "resource_contention": (
        [
            "{s} requests time out waiting for database connections",
            "HikariPool exhausted in {s}: connection is not available",
        ],
        [
            "HikariPool-1 - Connection is not available, request timed out after 30000ms",
            "sqlite3.OperationalError: database is locked",
            "pq: sorry, too many clients already",
        ],
        ["connection pool of 10 too small after traffic doubled", "a long transaction held locks"],
        ["raised the pool to 40 and added pgbouncer"],
    ),
}

QUERY_PREFIX = ["[FIRING:1]", "alert:", "Slack: on-call paged for", "PagerDuty:", ""]


def _fill(template: str, rng: random.Random, service: str) -> str:
    return template.format(
        s=service,
        ns=rng.choice(NAMESPACES),
        n=rng.randint(2, 97),
        m=rng.choice([256, 512, 768, 1024]),
        node=f"ip-10-0-{rng.randint(1, 250)}-{rng.randint(1, 250)}.ec2.internal",
    )


def incident_texts(count: int, seed: int = 7) -> list[str]:
    """Alert summaries followed by log lines, ~60-120 tokens each."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        summaries, logs, causes, _ = CATEGORIES[rng.choice(list(CATEGORIES))]
        service = rng.choice(SERVICES)
        lines = [_fill(rng.choice(summaries), rng, service)]
        lines += [_fill(rng.choice(logs), rng, service) for _ in range(rng.randint(2, 4))]
        if rng.random() < 0.7:
            lines.append("suspected: " + _fill(rng.choice(causes), rng, service))
        lines.append(
            f"labels: namespace={rng.choice(NAMESPACES)} deployment={service} "
            f"severity={rng.choice(['warning', 'critical'])}"
        )
        texts.append("\n".join(lines))
    return texts


def synthetic_retrieval(
    docs: int = 300, queries: int = 60, seed: int = 11
) -> tuple[list[str], list[str], list[set[int]]]:
    """Documents shaped like rag.text.embed_text, queries like fresh alerts."""
    rng = random.Random(seed)
    keys, doc_texts = [], []
    for _ in range(docs):
        category = rng.choice(list(CATEGORIES))
        service = rng.choice(SERVICES)
        summaries, logs, causes, actions = CATEGORIES[category]
        keys.append((category, service))
        doc_texts.append(
            "\n".join(
                [
                    _fill(summaries[0], rng, service),
                    f"category: {category.replace('_', ' ')}",
                    f"object: Deployment {service}",
                    "root cause: " + _fill(rng.choice(causes), rng, service),
                    "evidence: " + _fill(rng.choice(logs), rng, service),
                    "action: " + _fill(rng.choice(actions), rng, service),
                ]
            )
        )
    query_texts, relevant = [], []
    present = sorted(set(keys))
    for _ in range(queries):
        category, service = rng.choice(present)
        summaries, logs, _, _ = CATEGORIES[category]
        query_texts.append(
            f"{rng.choice(QUERY_PREFIX)} "
            + _fill(summaries[-1], rng, service)
            + "\n"
            + _fill(rng.choice(logs), rng, service)
        )
        relevant.append({i for i, key in enumerate(keys) if key == (category, service)})
    return doc_texts, query_texts, relevant


def labeled_set() -> tuple[list[str], list[str], list[set[int]]] | None:
    """rag/labeled incidents and queries with their ``relevant`` incident ids, if present."""
    incidents, queries = LABELED / "incidents.jsonl", LABELED / "queries.jsonl"
    if not (incidents.is_file() and queries.is_file()) or not queries.read_text().strip():
        return None
    from rag.text import embed_text, parse_doc

    docs = [parse_doc(json.loads(line)) for line in incidents.read_text().splitlines() if line]
    position = {doc.incident_id: i for i, doc in enumerate(docs)}
    query_texts, relevant = [], []
    for line in queries.read_text().splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        text = next(obj[k] for k in ("query", "text", "q") if k in obj)
        query_texts.append(str(text))
        relevant.append({position[i] for i in obj.get("relevant", []) if i in position})
    return [embed_text(doc) for doc in docs], query_texts, relevant


# --- one backend, in its own process ------------------------------------------------------


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, MiB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) // 1024
    return out


def _encoder(backend: str, cache_dir: Path) -> Any:
    """An object with ``encode(list[str]) -> ndarray``, loaded."""
    if backend == "torch":
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        from rag.onnx_embed import default_model_path

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        torch.set_num_threads(os.cpu_count() or 1)
        model = SentenceTransformer(str(default_model_path()), device="cpu")

        class _Torch:
            def encode(self, texts: list[str]) -> np.ndarray:
                return model.encode(
                    texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False
                )

        return _Torch()
    from rag.onnx_embed import OnnxEncoder

    encoder = OnnxEncoder(
        cache_dir=cache_dir,
        quantized=backend.startswith("onnx-int8"),
        allow_spinning=backend.endswith("-spin"),
    )
    encoder.load()
    return encoder


def worker(backend: str, job: Path, out_dir: Path, bot: bool) -> None:
    """Load one backend, then serve the driver's commands (one JSON line each, on stdin).

    The driver interleaves the backends' timing rounds, so that the load the other helpers
    put on the shared cores hits all of them alike.
    """
    spec = json.loads(job.read_text())
    texts: list[str] = spec["texts"]
    ready: dict[str, Any] = {"backend": backend}
    if bot:  # the bot's serving stack, imported as `incident-bot serve` would
        import anthropic  # noqa: F401
        import faiss  # noqa: F401
        import kubernetes.client  # noqa: F401

        import handlers.server  # noqa: F401
        import rag.memory  # noqa: F401

        ready["rss_bot_imports_mib"] = _status()["VmRSS"]
    start = time.perf_counter()
    encoder = _encoder(backend, Path(spec["cache_dir"]))
    ready["load_s"] = time.perf_counter() - start
    start = time.perf_counter()
    encoder.encode(["warm-up"])
    ready["first_encode_s"] = time.perf_counter() - start
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        reply: dict[str, Any] = {}
        if command["cmd"] == "latency":  # one text per call, milliseconds
            latencies = []
            for text in texts[command["start"] : command["end"]]:
                t0 = time.perf_counter()
                encoder.encode([text])
                latencies.append((time.perf_counter() - t0) * 1000)
            reply["ms"] = latencies
        elif command["cmd"] == "throughput":  # all texts in one call (batches of <= 32)
            t0 = time.perf_counter()
            vectors = encoder.encode(texts)
            reply["per_s"] = len(texts) / (time.perf_counter() - t0)
            np.save(out_dir / f"{backend}-texts.npy", vectors)
        elif command["cmd"] == "retrieval":  # the history import's batches, then queries
            for name in spec["sets"]:
                for part in ("docs", "queries"):
                    vectors = encoder.encode(spec["sets"][name][part])
                    np.save(out_dir / f"{backend}-{name}-{part}.npy", vectors)
        elif command["cmd"] == "status":
            status = _status()
            reply = {"rss_mib": status["VmRSS"], "hwm_mib": status["VmHWM"]}
            reply["torch_imported"] = "torch" in sys.modules
        print(json.dumps(reply), flush=True)


class _Worker:
    """A backend's worker process, driven one JSON line at a time."""

    def __init__(self, backend: str, job: Path, out_dir: Path, *, bot: bool = False) -> None:
        command = [sys.executable, __file__, "--worker", backend, "--job", str(job)]
        command += ["--out", str(out_dir)] + (["--bot"] if bot else [])
        self.backend = backend
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.ready = self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.backend} worker died (exit {self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def measure(job: Path, out: Path, count: int, rounds: int = 5) -> dict[str, dict[str, Any]]:
    """Interleaved timing rounds over the backends, then their vectors and RSS."""
    workers = [_Worker(b, job, out) for b in BACKENDS]  # loaded one after another
    results = {w.backend: {**w.ready, "ms": [], "per_s": []} for w in workers}
    step = -(-count // rounds)
    for r in range(rounds):
        turn = r % len(workers)
        order = workers[turn:] + workers[:turn]  # nobody always runs first
        for w in order:
            results[w.backend]["ms"] += w.ask("latency", start=r * step, end=(r + 1) * step)["ms"]
        for w in order[:: 1 if r % 2 else -1]:
            results[w.backend]["per_s"].append(w.ask("throughput")["per_s"])
    for w in workers:
        w.ask("retrieval")
        results[w.backend].update(w.ask("status"))
        w.close()
    for w in (_Worker(b, job, out, bot=True) for b in BACKENDS[:3]):  # one at a time
        w.ask("latency", start=0, end=20)
        w.ask("retrieval")
        results[w.backend]["bot_rss_mib"] = w.ask("status")["rss_mib"]
        results[w.backend]["bot_imports_mib"] = w.ready["rss_bot_imports_mib"]
        w.close()
    for numbers in results.values():
        numbers["p50_ms"] = float(np.percentile(numbers["ms"], 50))
        numbers["p99_ms"] = float(np.percentile(numbers["ms"], 99))
        numbers["batch_per_s"] = float(np.median(numbers["per_s"]))
    return results


def _retrieval(
    docs: np.ndarray, queries: np.ndarray, relevant: list[set[int]]
) -> tuple[float, np.ndarray]:
    top = np.argsort(-(queries @ docs.T), axis=1)[:, :5]
    recalls = [
        len(rel & set(row)) / min(5, len(rel))
        for row, rel in zip(top, relevant, strict=True)
        if rel
    ]
    return float(np.mean(recalls)), top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=BACKENDS)
    parser.add_argument("--job", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--bot", action="store_true")
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "incident-bot-bench-onnx",
        help="where the ONNX export is kept between runs",
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.job, args.out, args.bot)
        return

    from tokenizers import Tokenizer

    from rag.onnx_embed import default_model_path, find_export

    texts = incident_texts(args.texts)
    tokenizer = Tokenizer.from_file(str(default_model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    print(
        f"{len(texts)} texts, tokens min {min(lengths)} median {int(np.median(lengths))} "
        f"max {max(lengths)}; cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}"
    )
    sets: dict[str, tuple[list[str], list[str], list[set[int]]]] = {
        "synthetic": synthetic_retrieval()
    }
    labeled = labeled_set()
    if labeled is not None:
        sets["labeled"] = labeled
    else:
        print("rag/labeled/queries.jsonl absent or empty: synthetic retrieval set only")

    if find_export(default_model_path(), cache_dir=args.cache_dir) is None:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rag.onnx_embed", "export", "--out-dir", str(args.cache_dir)],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        print(f"ONNX export (torch trace + fusion + int8): {time.perf_counter() - t0:.1f} s")
    sizes = {p.name: p.stat().st_size / 1e6 for p in args.cache_dir.glob("*.onnx")}
    print("files: " + ", ".join(f"{name} {mb:.1f} MB" for name, mb in sorted(sizes.items())))

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        job = out / "job.json"
        job.write_text(
            json.dumps(
                {
                    "texts": texts,
                    "cache_dir": str(args.cache_dir),
                    "sets": {k: {"docs": v[0], "queries": v[1]} for k, v in sets.items()},
                }
            )
        )
        results = measure(job, out, len(texts))
        vectors = {b: np.load(out / f"{b}-texts.npy") for b in BACKENDS}
        retrieval = {
            (b, name): _retrieval(
                np.load(out / f"{b}-{name}-docs.npy"),
                np.load(out / f"{b}-{name}-queries.npy"),
                sets[name][2],
            )
            for b in BACKENDS
            for name in sets
        }

    base = results["torch"]
    print(
        f"\n{'backend':15} {'load s':>6} {'p50 ms':>7} {'p99 ms':>7} {'speedup':>7} "
        f"{'texts/s':>8} {'x':>5} {'RSS MiB':>8} {'HWM':>6} {'bot RSS':>8} "
        f"{'cos min/mean':>13} torch?"
    )
    for b in BACKENDS:
        r = results[b]
        cos = (vectors[b] * vectors["torch"]).sum(axis=1)
        print(
            f"{b:15} {r['load_s']:6.2f} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f} "
            f"{base['p50_ms'] / r['p50_ms']:6.2f}x {r['batch_per_s']:8.1f} "
            f"{r['batch_per_s'] / base['batch_per_s']:4.1f}x {r['rss_mib']:8d} "
            f"{r['hwm_mib']:6d} {r.get('bot_rss_mib', '-'):>8} "
            f"{cos.min():6.4f}/{cos.mean():6.4f} {r['torch_imported']}"
        )
    print(
        f"p50/p99: {len(texts)} one-text calls per backend in 5 interleaved rounds; texts/s: "
        "median of 5 calls encoding all texts (batches of <= 32); RSS/HWM after everything;\n"
        f"bot RSS: serving stack imported ({results['torch']['bot_imports_mib']} MiB), backend "
        "loaded, 20 queries and the retrieval documents encoded; load average now "
        f"{os.getloadavg()[0]:.2f}"
    )
    for name in sets:
        torch_recall, torch_top = retrieval[("torch", name)]
        parts = []
        for b in BACKENDS:
            recall, top = retrieval[(b, name)]
            overlap = np.mean(
                [len(set(a) & set(t)) / 5 for a, t in zip(top, torch_top, strict=True)]
            )
            parts.append(
                f"  {b:15} {recall:.3f} (Δ {recall - torch_recall:+.3f}), "
                f"top-5 overlap with torch {overlap:.3f}"
            )
        n_docs, n_queries = len(sets[name][0]), len(sets[name][1])
        print(f"recall@5, {name} set ({n_docs} docs, {n_queries} queries):", *parts, sep="\n")


if __name__ == "__main__":
    main()
