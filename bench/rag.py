"""Incident-memory benchmark: retrieval quality, embedding speed, index scale, memory (issue 4).

Prints numbers and met/missed against the targets, asserts nothing. Run::

    .venv/bin/python bench/rag.py [--quick] [--backends torch,onnx] [--json out.json]

1. **Labeled set** (``rag/labeled``: 356 documents, 188 queries): the documents go into an
   :class:`rag.memory.IncidentMemory` in a temp dir exactly as ``history import`` puts them;
   each query runs through ``IncidentMemory.search`` vector-only and hybrid (FTS5 bm25 fused
   by RRF). recall@5 = |relevant ∩ top 5| / min(|relevant|, 5), MRR@5 = 1 / rank of the first
   relevant result in the top 5 (0 if none), both averaged over queries. Target recall@5 ≥ 0.9.
2. **Embedding speed** per backend: one text per call (200 texts, half alert queries, half
   documents, after warm-up), p50/p99; throughput in calls of 32 query texts; and the
   throughput of the document import in (1) (calls of 64 documents, model batches of 32).
3. **Scale**: single-query search p50/p99 and recall@5 against exact brute force
   (``IndexFlatIP``) at 10k and 100k documents, through :class:`rag.index.VectorIndex` as the
   bot uses it (flat up to ``EXACT_MAX``, HNSW above). Target at 100k: p99 ≤ 5 ms and recall@5
   ≥ 0.95. Exact single-query search at the same size is the baseline.
4. **Build, save, load** of those indexes (``rebuild``, ``save``, ``open``) and file size.
5. **Memory**: VmRSS/VmHWM of a fresh process per backend that imports the bot's runtime
   modules, opens a memory, loads the model and adds and searches 20 incidents as the bot
   does. Target ≤ 400 MiB for the whole bot process with the model loaded.

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
import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's directory heads sys.path and bench/rag.py would shadow the
# ``rag`` package: put the project root there instead.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from bot.masking import mask  # noqa: E402
from rag.embed import Encoder, make_encoder  # noqa: E402
from rag.index import (  # noqa: E402
    EXACT_MAX,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    VectorIndex,
)
from rag.memory import IncidentMemory  # noqa: E402
from rag.text import IncidentDoc, embed_text, parse_doc  # noqa: E402

LABELED = ROOT / "rag" / "labeled"
TOP = 5
TARGET_RECALL = 0.90
TARGET_P99_MS = 5.0
TARGET_SCALE_RECALL = 0.95
TARGET_RSS_MIB = 400
BOT_MODULES = ("bot.runtime", "handlers.server")
# Shared with bench/embed_backends.py, so one ONNX export serves both benchmarks.
ONNX_CACHE = Path(tempfile.gettempdir()) / "incident-bot-bench-onnx"
# Synthetic history (see the module docstring).
FAMILY_SIZE = 20
FAMILY_SPREAD = 0.5  # noise length around a real centre: cosine ~0.8
POINT_SPREAD = (0.25, 0.6)  # per-family noise length around the family point
RANDOM_FRACTION = 0.05
NO_NEIGHBOUR = 0.5  # queries whose exact nearest neighbour is below this cosine


@dataclass(frozen=True)
class Query:
    """A labeled query: alert text and the incident ids an engineer would click."""

    query_id: str
    text: str
    relevant: frozenset[str]
    category: str


def load_labeled(directory: Path = LABELED) -> tuple[list[IncidentDoc], list[Query]]:
    """The labeled documents and queries."""
    lines = (directory / "incidents.jsonl").read_text(encoding="utf-8").splitlines()
    docs = [parse_doc(json.loads(line)) for line in lines if line.strip()]
    queries = []
    for line in (directory / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            relevant = frozenset(row["relevant"])
            queries.append(Query(row["query_id"], row["text"], relevant, row["category"]))
    return docs, queries


def recall_at(found: Sequence[str], relevant: Collection[str], k: int = TOP) -> float:
    """|relevant ∩ top k| / min(|relevant|, k)."""
    return len(set(found[:k]) & set(relevant)) / min(len(relevant), k)


def reciprocal_rank(found: Sequence[str], relevant: Collection[str], k: int = TOP) -> float:
    """1 / rank of the first relevant id in the top ``k``; 0 when there is none."""
    return next((1.0 / rank for rank, i in enumerate(found[:k], 1) if i in relevant), 0.0)


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def target(value: float, goal: float, *, at_most: bool = False, unit: str = "") -> str:
    """``met (+0.031)`` / ``missed by 0.058``, for a goal of ``≥ goal`` (or ``≤`` with at_most)."""
    margin = goal - value if at_most else value - goal
    word = "≤" if at_most else "≥"
    verdict = f"met ({margin:+.3g}{unit})" if margin >= 0 else f"MISSED by {-margin:.3g}{unit}"
    return f"target {word} {goal:g}{unit}: {verdict}"


def memory_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in MiB, from /proc/self/status."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[f"{key[2:].lower()}_mib"] = int(value.split()[0]) // 1024
    return out


def bench_encoder(backend: str, onnx_cache: Path = ONNX_CACHE) -> Encoder:
    """The encoder of ``backend`` (torch, onnx or hash); ONNX files kept in ``onnx_cache``."""
    if backend == "onnx":
        from rag.onnx_embed import OnnxEncoder

        encoder: Encoder = OnnxEncoder(cache_dir=onnx_cache)
        return encoder
    return make_encoder("", backend)


class RecordingEncoder:
    """Wraps an encoder: keeps every text's vector and serves repeats from it.

    The encoders are deterministic, so serving a repeated text (the same query searched
    vector-only and then hybrid; a document whose cosine hybrid search asks for) changes no
    result, only saves time. ``requested`` counts texts asked for, repeats included; calls of
    at least 32 new texts add to ``batch_texts``/``batch_seconds``.
    """

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.vectors: dict[str, np.ndarray] = {}
        self.requested = 0
        self.batch_texts = 0
        self.batch_seconds = 0.0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The inner encoder's vectors of ``texts``."""
        self.requested += len(texts)
        new = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if new:
            started = time.perf_counter()
            vectors = self.inner.encode(new)
            if len(new) >= 32:
                self.batch_seconds += time.perf_counter() - started
                self.batch_texts += len(new)
            self.vectors.update(zip(new, vectors, strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.vectors[t] for t in texts])


# -- 1. labeled set ----------------------------------------------------------------------


def labeled_quality(
    encoder: Encoder, docs: Sequence[IncidentDoc], queries: Sequence[Query], workdir: Path
) -> dict[str, Any]:
    """recall@5 and MRR@5, vector-only and hybrid, through IncidentMemory in ``workdir``.

    Returns the figures plus ``doc_vectors``/``query_vectors`` (numpy, for section 3).
    """
    recorder = RecordingEncoder(encoder)
    out: dict[str, Any] = {"docs": len(docs), "queries": len(queries), "modes": {}}
    per_query: dict[str, np.ndarray] = {}
    with IncidentMemory(workdir, recorder) as memory:
        started = time.perf_counter()
        memory.add(docs)
        out["import_s"] = time.perf_counter() - started
        if recorder.batch_texts:
            out["import_docs_per_s"] = recorder.batch_texts / recorder.batch_seconds
        for mode, hybrid in (("vector", False), ("hybrid", True)):
            asked = recorder.requested
            recalls, ranks = [], []
            categories: dict[str, list[float]] = defaultdict(list)
            for query in queries:
                hits = memory.search(query.text, top=TOP, hybrid=hybrid)
                found = [hit.incident_id for hit in hits]
                recalls.append(recall_at(found, query.relevant))
                ranks.append(reciprocal_rank(found, query.relevant))
                categories[query.category].append(recalls[-1])
            many = [r for r, q in zip(recalls, queries, strict=True) if len(q.relevant) >= 3]
            per_query[mode] = np.array(recalls)
            out["modes"][mode] = {
                "recall_at_5": float(np.mean(recalls)),
                "mrr_at_5": float(np.mean(ranks)),
                "recall_at_5_3plus_relevant": float(np.mean(many)) if many else None,
                "queries_3plus_relevant": len(many),
                # texts beyond the query itself: hybrid asks for the cosine of lexical-only hits
                "extra_texts_encoded_per_query": (recorder.requested - asked) / len(queries) - 1,
                "categories": {c: float(np.mean(v)) for c, v in sorted(categories.items())},
            }
    diff = per_query["hybrid"] - per_query["vector"]
    boot = np.random.default_rng(0).integers(0, len(diff), size=(2000, len(diff)))
    means = diff[boot].mean(axis=1)
    out["hybrid_minus_vector"] = {
        "recall_at_5": float(diff.mean()),
        "ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
        "queries_better": int((diff > 0).sum()),
        "queries_worse": int((diff < 0).sum()),
    }
    out["category_queries"] = dict(Counter(q.category for q in queries))
    out["doc_vectors"] = recorder.encode([embed_text(doc) for doc in docs])
    out["query_vectors"] = recorder.encode([mask(q.text.strip()) for q in queries])
    return out


def print_labeled(backend: str, model_id: str, result: dict[str, Any]) -> None:
    """Section 1 for one backend."""
    print(f"\n## 1. labeled set, {backend} ({model_id})")
    print(
        f"{result['docs']} documents imported in {result['import_s']:.1f} s; "
        f"{result['queries']} queries through IncidentMemory.search(top={TOP})"
    )
    print(
        "recall@5 = |relevant ∩ top5| / min(|relevant|, 5); MRR@5 = 1/rank of the first "
        "relevant hit in the top 5 (0 if none); both averaged over queries"
    )
    modes = result["modes"]
    many = modes["vector"]["queries_3plus_relevant"]
    print(f"{'mode':8}{'recall@5':>10}{'MRR@5':>8}{f'r@5 (≥3 rel, {many} q)':>22}  target")
    for mode, m in modes.items():
        three = m["recall_at_5_3plus_relevant"]
        three_text = f"{three:.3f}" if three is not None else "-"
        print(
            f"{mode:8}{m['recall_at_5']:>10.3f}{m['mrr_at_5']:>8.3f}{three_text:>22}  "
            + target(m["recall_at_5"], TARGET_RECALL)
        )
    d = result["hybrid_minus_vector"]
    verdict = "beats" if d["ci95"][0] > 0 else "is worse than" if d["ci95"][1] < 0 else "ties"
    print(
        f"hybrid - vector recall@5: {d['recall_at_5']:+.3f} (paired bootstrap 95% CI "
        f"{d['ci95'][0]:+.3f}..{d['ci95'][1]:+.3f}; {d['queries_better']} queries better, "
        f"{d['queries_worse']} worse): hybrid {verdict} vector-only"
    )
    extra = modes["hybrid"]["extra_texts_encoded_per_query"]
    print(f"hybrid search also embedded {extra:.2f} document texts per query (lexical-only hits)")
    vec, hyb = modes["vector"]["categories"], modes["hybrid"]["categories"]
    weakest = sorted(vec, key=lambda c: (min(vec[c], hyb[c]), c))[:5]
    print(
        "weakest 5 categories (recall@5): "
        + "; ".join(
            f"{c} ({result['category_queries'][c]} q) vector {vec[c]:.2f} hybrid {hyb[c]:.2f}"
            for c in weakest
        )
    )


# -- 2. embedding speed ------------------------------------------------------------------


def latency_texts(docs: Sequence[IncidentDoc], queries: Sequence[Query], count: int) -> list[str]:
    """``count`` texts, alternating alert queries and document texts (varied lengths)."""
    rng = np.random.default_rng(3)
    asked = [queries[i].text for i in rng.permutation(len(queries))]
    stored = [embed_text(docs[i]) for i in rng.permutation(len(docs))]
    pools = (asked, stored)
    return [pools[i % 2][(i // 2) % len(pools[i % 2])] for i in range(count)]


def embed_speed(
    encoder: Encoder, texts: Sequence[str], batch_texts: Sequence[str]
) -> dict[str, Any]:
    """One-text latency p50/p99 over ``texts`` (after 5 warm-up calls); batch-32 throughput."""
    for text in texts[:5]:
        encoder.encode([text])
    times = []
    for text in texts:
        started = time.perf_counter()
        encoder.encode([text])
        times.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    for i in range(0, len(batch_texts), 32):
        encoder.encode(list(batch_texts[i : i + 32]))
    took = time.perf_counter() - started
    return {
        "texts": len(texts),
        "p50_ms": pct(times, 0.5),
        "p99_ms": pct(times, 0.99),
        "batch32_texts": len(batch_texts),
        "batch32_per_s": len(batch_texts) / took,
    }


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
    command = [sys.executable, str(Path(__file__).resolve()), "--rss-worker", backend]
    command += ["--onnx-cache", str(onnx_cache), "--rss-modules", ",".join(modules)]
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


# -- driver ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns what ``--json`` writes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k only, fewer queries")
    parser.add_argument("--backends", default="torch", help="comma-separated: torch,onnx,hash")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--onnx-cache", type=Path, default=ONNX_CACHE, help="ONNX export dir")
    parser.add_argument("--sizes", help="comma-separated index sizes (default 10000,100000)")
    parser.add_argument("--scale-queries", type=int, help="queries per index size (1000)")
    parser.add_argument("--texts", type=int, help="texts for the one-text latency (200)")
    parser.add_argument(
        "--rss-modules", default=",".join(BOT_MODULES), help="modules imported before the model"
    )
    parser.add_argument("--rss-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    modules = [m for m in args.rss_modules.split(",") if m]
    if args.rss_worker:
        print(json.dumps(rss_worker(args.rss_worker, args.onnx_cache, modules)))
        return {}

    began = time.perf_counter()
    backends = []
    for name in args.backends.split(","):
        if name == "onnx":
            try:
                importlib.import_module("rag.onnx_embed")
            except ImportError as exc:
                print(f"onnx backend skipped: {exc}")
                continue
        backends.append(name)
    sizes = [int(n) for n in (args.sizes or ("10000" if args.quick else "10000,100000")).split(",")]
    n_queries = args.scale_queries or (300 if args.quick else 1_000)
    n_texts = args.texts or (100 if args.quick else 200)
    load = os.getloadavg()
    print(
        f"# incident-memory benchmark: backends {', '.join(backends)}; {os.cpu_count()} cpus, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} threads"
    )
    docs, queries = load_labeled()
    results: dict[str, Any] = {"load_average_start": load, "labeled": {}, "embed": {}}
    real: dict[str, Any] | None = None
    centres: np.ndarray | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            encoder = bench_encoder(backend, args.onnx_cache)
            started = time.perf_counter()
            encoder.encode(["warm-up: load the embedding model"])
            load_s = time.perf_counter() - started
            labeled = labeled_quality(encoder, docs, queries, Path(tmp) / backend)
            results["labeled"][backend] = labeled
            print_labeled(backend, encoder.model_id, labeled)
            doc_vectors, query_vectors = labeled.pop("doc_vectors"), labeled.pop("query_vectors")
            if centres is None:
                centres = np.vstack([doc_vectors, query_vectors])
                real = real_profile(doc_vectors, query_vectors)
            speed = embed_speed(
                encoder, latency_texts(docs, queries, n_texts), [q.text for q in queries]
            )
            speed.update(load_s=load_s, import_docs_per_s=labeled.get("import_docs_per_s"))
            results["embed"][backend] = speed
            del encoder
            gc.collect()
        print("\n## 2. embedding speed (one text per call after warm-up; batches of 32)")
        print(
            f"{'backend':8}{'load s':>8}{'p50 ms':>8}{'p99 ms':>8}{'batch-32/s':>11}"
            f"{'import docs/s':>14}{'vs ' + backends[0]:>12}"
        )
        first = results["embed"][backends[0]]
        for backend, s in results["embed"].items():
            imported = s["import_docs_per_s"] or float("nan")
            print(
                f"{backend:8}{s['load_s']:>8.2f}{s['p50_ms']:>8.1f}{s['p99_ms']:>8.1f}"
                f"{s['batch32_per_s']:>11.1f}{imported:>14.1f}"
                f"{first['p50_ms'] / s['p50_ms']:>6.2f}x p50"
            )
        print(
            f"{n_texts} texts (half alert queries, half documents); batch-32 over the "
            f"{len(queries)} queries; import = the {len(docs)} documents of section 1 "
            "(calls of 64, model batch 32); load = first encode incl. imports"
        )
        assert centres is not None
        scale = []
        for size in sizes:
            data = synthesize(centres, size + n_queries, seed=size)
            scale.append(scale_run(data[:size], data[size:], Path(tmp)))
            del data
            gc.collect()
        results["scale"] = scale
        results["real_nn_cosine"] = real
        print_scale(scale, real)
    results["rss"] = {b: run_rss_worker(b, args.onnx_cache, modules) for b in backends}
    print_rss(results["rss"])
    load = os.getloadavg()
    results["load_average_end"] = load
    results["runtime_s"] = time.perf_counter() - began
    print(
        f"\nruntime {results['runtime_s']:.0f} s; load average at the end {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f} (shared machine: latencies are noisy)"
    )
    if args.json:  # default=float: numpy float32 scalars
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return results


if __name__ == "__main__":
    main()
