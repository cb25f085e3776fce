"""Incident-memory benchmark, sections 3-5: index scale, build/save/load, process memory.

Driven by bench/rag.py (which documents the whole benchmark); the memory section's worker
runs here in a fresh interpreter: ``python -m bench.rag_scale BACKEND`` from the project root.

**Why the scale vectors are synthetic.** Embedding 100k texts takes ~40 min at ~42 texts/s,
and 100k *random* unit vectors would be meaningless: in 384 dimensions every random vector is
about equally far from every other, so HNSW recall collapses and the distances look nothing
like an incident history. Instead the real embeddings of the labeled documents and queries
(backend of the first ``--backends``) serve as centres. An incident history is dominated by
recurrences: the same alert on the same service, reworded. So each synthetic "family" is a
real centre plus noise (cosine ~0.8 to it: the same mechanism elsewhere) and each document is
its family's point plus noise (spread drawn per family), about 20 documents per family, so a
new alert's nearest stored neighbour has cosine ~0.75-0.95 like a real near-duplicate (the
distribution is printed). A fraction of documents are uniformly random directions (incidents
unlike anything else). Queries are held-out points of the same process. Recall is also
printed separately for queries whose nearest neighbour is below cosine 0.5 (the random ones):
for those the "neighbours" are noise whichever index finds them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.rag_common import ONNX_CACHE, ROOT, TOP, bench_encoder, load_labeled, pct, target
from rag.index import EXACT_MAX, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, VectorIndex
from rag.memory import IncidentMemory

TARGET_P99_MS = 5.0
TARGET_SCALE_RECALL = 0.95
TARGET_RSS_MIB = 400
BOT_MODULES = ("bot.runtime", "handlers.server")
# Synthetic history (see the module docstring).
FAMILY_SIZE = 20
FAMILY_SPREAD = 0.5  # noise length around a real centre: cosine ~0.8
POINT_SPREAD = (0.25, 0.6)  # per-family noise length around the family point
RANDOM_FRACTION = 0.05
NO_NEIGHBOUR = 0.5  # queries whose exact nearest neighbour is below this cosine


# -- 3/4. scale --------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(out)
    return out


def synthesize(centres: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` unit vectors in families around ``centres`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    dim = centres.shape[1]
    families = max(1, count // FAMILY_SIZE)
    scale = np.float32(1 / np.sqrt(dim))
    noise = rng.standard_normal((families, dim), dtype=np.float32) * scale * FAMILY_SPREAD
    points = _unit(centres[rng.integers(0, len(centres), families)] + noise)
    spread = rng.uniform(*POINT_SPREAD, size=families).astype(np.float32) * scale
    which = rng.integers(0, families, count)
    out = rng.standard_normal((count, dim), dtype=np.float32)
    loose = rng.random(count) < RANDOM_FRACTION  # these stay pure random directions
    out[~loose] = points[which[~loose]] + out[~loose] * spread[which[~loose], None]
    return _unit(out)


def nn_profile(scores: np.ndarray) -> dict[str, float]:
    """Percentiles of nearest-neighbour cosines and the share in 0.75-0.95."""
    out = {f"p{q}": float(np.quantile(scores, q / 100)) for q in (10, 25, 50, 75, 90)}
    out["share_075_095"] = float(((scores >= 0.75) & (scores <= 0.95)).mean())
    return out


def real_profile(doc_vectors: np.ndarray, query_vectors: np.ndarray) -> dict[str, Any]:
    """Nearest-neighbour cosines in the labeled set: document → other document, query → doc."""
    sims = doc_vectors @ doc_vectors.T
    np.fill_diagonal(sims, -1.0)
    return {
        "doc_to_doc": nn_profile(sims.max(axis=1)),
        "query_to_doc": nn_profile((query_vectors @ doc_vectors.T).max(axis=1)),
    }


def _search_times(index: VectorIndex, queries: np.ndarray) -> list[float]:
    """Milliseconds of ``index.search(query, 5)`` per query, one at a time, after warm-up."""
    for row in queries[:20]:
        index.search(row, TOP)
    times = []
    for row in queries:
        started = time.perf_counter()
        index.search(row, TOP)
        times.append((time.perf_counter() - started) * 1000)
    return times


def scale_run(
    docs: np.ndarray,
    queries: np.ndarray,
    workdir: Path,
    *,
    exact_max: int = EXACT_MAX,
    flat_queries: int = 200,
) -> dict[str, Any]:
    """Build, search, save and load a VectorIndex of ``docs``; compare with brute force."""
    n, dim = docs.shape
    path = workdir / f"index-{n}.faiss"
    index = VectorIndex(path, model_id="bench-synthetic", dim=dim, exact_max=exact_max)
    started = time.perf_counter()
    index.rebuild(np.arange(n, dtype=np.int64), docs)
    out: dict[str, Any] = {"docs": n, "queries": len(queries), "kind": index.kind}
    out["build_s"] = time.perf_counter() - started

    exact = faiss.IndexFlatIP(dim)
    exact.add(docs)
    truth_scores, truth = exact.search(queries, TOP)
    out["nn_cosine"] = nn_profile(truth_scores[:, 0])

    found = np.array(
        [
            len({i for i, _ in hits} & set(want.tolist())) / TOP
            for hits, want in zip(index.search_many(queries, TOP), truth, strict=True)
        ]
    )
    lonely = truth_scores[:, 0] < NO_NEIGHBOUR
    out["recall_at_5"] = float(found.mean())
    out["recall_at_5_with_neighbour"] = float(found[~lonely].mean()) if (~lonely).any() else None
    out["recall_at_5_no_neighbour"] = float(found[lonely].mean()) if lonely.any() else None
    times = _search_times(index, queries)
    out.update(p50_ms=pct(times, 0.5), p99_ms=pct(times, 0.99))
    # FAISS runs even one query on an OpenMP team; on a busy machine its barrier waits for
    # a descheduled thread. The same loop with one thread shows what that costs.
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        times = _search_times(index, queries)
    finally:
        faiss.omp_set_num_threads(threads)
    out.update(p50_1thread_ms=pct(times, 0.5), p99_1thread_ms=pct(times, 0.99))
    out["queries_no_neighbour"] = int(lonely.sum())

    flat_times = []
    for row in queries[:flat_queries]:
        started = time.perf_counter()
        exact.search(row[None, :], TOP)
        flat_times.append((time.perf_counter() - started) * 1000)
    out.update(exact_p50_ms=pct(flat_times, 0.5), exact_p99_ms=pct(flat_times, 0.99))
    del exact

    started = time.perf_counter()
    index.save()
    out["save_s"] = time.perf_counter() - started
    out["file_mb"] = path.stat().st_size / 1e6
    started = time.perf_counter()
    loaded = VectorIndex.open(path, model_id="bench-synthetic", dim=dim, exact_max=exact_max)
    out["load_s"] = time.perf_counter() - started
    same = all(loaded.search(row, TOP) == index.search(row, TOP) for row in queries[:20])
    out["load_ok"] = loaded.stale_reason is None and len(loaded) == n and same
    return out


def print_scale(results: Sequence[dict[str, Any]], real: dict[str, Any] | None) -> None:
    """Sections 3 and 4."""
    print(
        f"\n## 3. scale: VectorIndex (flat ≤ {EXACT_MAX:,}, above HNSW M={HNSW_M} "
        f"efConstruction={HNSW_EF_CONSTRUCTION} efSearch={HNSW_EF_SEARCH}), synthetic vectors"
    )
    print(
        f"data: families of ~{FAMILY_SIZE} near-duplicates around real labeled-set embeddings, "
        f"{RANDOM_FRACTION:.0%} random directions; queries held out"
    )

    def dist(p: dict[str, float]) -> str:
        return (
            f"p10 {p['p10']:.3f} p25 {p['p25']:.3f} p50 {p['p50']:.3f} p75 {p['p75']:.3f} "
            f"p90 {p['p90']:.3f} (in 0.75-0.95: {p['share_075_095']:.0%})"
        )

    if real is not None:
        print(f"real labeled set, doc → nearest other doc cosine: {dist(real['doc_to_doc'])}")
        print(f"real labeled set, query → nearest doc cosine:     {dist(real['query_to_doc'])}")
    for r in results:
        print(f"synthetic {r['docs']:>7,}, query → nearest doc cosine: {dist(r['nn_cosine'])}")
    print(
        f"{'docs':>8} {'kind':5}{'p50 ms':>8}{'p99 ms':>8}{'recall@5':>9}{'(has nb)':>9}"
        f"{'(no nb)':>8}{'exact p50':>10}{'p99':>7}{'speedup':>8}{'1-thread p50':>13}{'p99':>7}"
    )
    for r in results:
        nb, no_nb = r["recall_at_5_with_neighbour"], r["recall_at_5_no_neighbour"]
        print(
            f"{r['docs']:>8,} {r['kind']:5}{r['p50_ms']:>8.3f}{r['p99_ms']:>8.3f}"
            f"{r['recall_at_5']:>9.4f}{nb if nb is not None else float('nan'):>9.4f}"
            f"{no_nb if no_nb is not None else float('nan'):>8.3f}{r['exact_p50_ms']:>10.2f}"
            f"{r['exact_p99_ms']:>7.2f}{r['exact_p50_ms'] / r['p50_ms']:>7.1f}x"
            f"{r['p50_1thread_ms']:>13.3f}{r['p99_1thread_ms']:>7.3f}"
        )
    print(
        f"recall vs exact IndexFlatIP over {results[0]['queries']} queries; '(no nb)': the "
        f"{results[-1]['queries_no_neighbour']} queries whose nearest doc has cosine < "
        f"{NO_NEIGHBOUR} (random directions); exact = brute-force single query, same data; "
        f"1-thread = VectorIndex search again with faiss.omp_set_num_threads(1)"
    )
    for r in results:
        if r["docs"] >= 100_000:
            print(
                f"at {r['docs']:,}: p99 {r['p99_ms']:.2f} ms, "
                + target(r["p99_ms"], TARGET_P99_MS, at_most=True, unit=" ms")
                + f"; recall@5 {r['recall_at_5']:.4f}, "
                + target(r["recall_at_5"], TARGET_SCALE_RECALL)
            )
    print("\n## 4. index build / save / load (VectorIndex.rebuild, save, open)")
    print(
        f"{'docs':>8} {'kind':5}{'build s':>9}{'save s':>8}{'load s':>8}{'file MB':>9}  reload ok"
    )
    for r in results:
        print(
            f"{r['docs']:>8,} {r['kind']:5}{r['build_s']:>9.2f}{r['save_s']:>8.2f}"
            f"{r['load_s']:>8.2f}{r['file_mb']:>9.1f}  {r['load_ok']}"
        )


# -- 5. process memory -------------------------------------------------------------------


def memory_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in MiB, from /proc/self/status."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[f"{key[2:].lower()}_mib"] = int(value.split()[0]) // 1024
    return out


def rss_worker(
    backend: str, onnx_cache: Path = ONNX_CACHE, modules: Sequence[str] = BOT_MODULES
) -> dict[str, Any]:
    """RSS of this process as the bot would grow it: imports, memory, model, 20 incidents."""
    steps = {"interpreter + numpy, faiss, rag.memory": memory_status()}
    for name in modules:
        importlib.import_module(name)
    steps[f"+ {', '.join(modules) or 'no bot modules'}"] = memory_status()
    docs, queries = load_labeled()
    with tempfile.TemporaryDirectory() as tmp:
        memory = IncidentMemory(Path(tmp), bench_encoder(backend, onnx_cache), hybrid=True)
        with memory:
            memory.add(docs[:1])  # embeds: loads the model
            steps["+ model loaded (1 incident added)"] = memory_status()
            for doc, query in zip(docs[1:20], queries[:19], strict=True):
                memory.add([doc])
                memory.search(query.text, top=TOP)
            steps["+ 20 incidents added, 19 searches"] = memory_status()
    return {"steps": steps, "torch_imported": "torch" in sys.modules}


def run_rss_worker(backend: str, onnx_cache: Path, modules: Sequence[str]) -> dict[str, Any]:
    """:func:`rss_worker` in a fresh interpreter."""
    command = [sys.executable, "-m", "bench.rag_scale", backend]
    command += ["--onnx-cache", str(onnx_cache), "--modules", ",".join(modules)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"RSS worker for {backend} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def print_rss(results: dict[str, dict[str, Any]]) -> None:
    """Section 5."""
    print("\n## 5. process memory (fresh process per backend; VmRSS / VmHWM MiB)")
    for backend, r in results.items():
        print(f"{backend}: (torch imported: {r['torch_imported']})")
        steps = list(r["steps"].items())
        for name, s in steps:
            print(f"  {name:44}{s['rss_mib']:>6} / {s['hwm_mib']:>5}")
        base, last = steps[1][1], steps[-1][1]
        print(
            f"  model and memory add {last['rss_mib'] - base['rss_mib']} MiB to the bot's "
            f"{base['rss_mib']}; whole bot RSS {last['rss_mib']} MiB, "
            + target(last["rss_mib"], TARGET_RSS_MIB, at_most=True, unit=" MiB")
            + f"; peak (VmHWM) {last['hwm_mib']} MiB, "
            + target(last["hwm_mib"], TARGET_RSS_MIB, at_most=True, unit=" MiB")
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one RSS measurement (bench/rag.py section 5)")
    parser.add_argument("backend")
    parser.add_argument("--onnx-cache", type=Path, default=ONNX_CACHE)
    parser.add_argument("--modules", default=",".join(BOT_MODULES))
    args = parser.parse_args()
    modules = [m for m in args.modules.split(",") if m]
    print(json.dumps(rss_worker(args.backend, args.onnx_cache, modules)))
