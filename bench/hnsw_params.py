"""HNSW parameter benchmark for the incident-memory vector index (``rag/index.py``).

Builds clustered synthetic unit vectors that look like sentence embeddings (random vectors
make HNSW recall look near zero: every point is about equally far from every other), indexes
them with ``IndexHNSWFlat(M, efConstruction)`` and prints, for several ``efSearch`` values,
recall@5 against exact flat inner-product search and single-query latency p50/p99.

Prints numbers, asserts nothing. Run: ``.venv/bin/python bench/hnsw_params.py`` (about a minute
on 2 cores; latency numbers are noisy when other work shares the machine).

Data model: 50 topics (random unit vectors); 2,000 cluster centres drawn around the topics;
each point is a centre plus isotropic noise, normalised. The noise level is chosen so that a
point's nearest neighbour has cosine similarity around 0.8-0.9, as for paraphrased incident
texts under all-MiniLM-L6-v2.
"""

from __future__ import annotations

import argparse
import statistics
import time

import faiss
import numpy as np

DIM = 384
TOPICS = 50
CENTRES = 2_000


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (float32)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def noise(rng: np.random.Generator, n: int, norm: float) -> np.ndarray:
    """``n`` isotropic Gaussian vectors with expected length ``norm``."""
    scale = np.float32(norm / np.sqrt(DIM))
    vectors: np.ndarray = rng.standard_normal((n, DIM)).astype(np.float32) * scale
    return vectors


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float) -> np.ndarray:
    """``n`` unit vectors scattered around randomly chosen ``centres``."""
    which = rng.integers(0, len(centres), size=n)
    points: np.ndarray = centres[which] + noise(rng, n, spread)
    return unit(points)


def pct(values: list[float], q: float) -> float:
    """The ``q``-quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Build the data and the indexes, print one line per efSearch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="indexed vectors")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--m", type=int, default=32, help="HNSW M")
    parser.add_argument("--ef-construction", type=int, nargs="+", default=[40, 80, 120])
    parser.add_argument("--spread", type=float, default=0.5, help="point noise length")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    topics = unit(rng.standard_normal((TOPICS, DIM)))
    centres = clustered(rng, CENTRES, topics, 1.0)
    base = clustered(rng, args.n, centres, args.spread)
    queries = clustered(rng, args.queries, centres, args.spread)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, d={DIM}")
    print(f"data: {args.n} vectors, {CENTRES} centres in {TOPICS} topics, spread {args.spread}")

    flat = faiss.IndexFlatIP(DIM)
    flat.add(base)
    started = time.perf_counter()
    truth_scores, truth = flat.search(queries, 5)
    print(
        f"exact top-5 for {args.queries} queries (batched): {time.perf_counter() - started:.2f} s"
    )
    print(
        f"nearest-neighbour cosine: mean {truth_scores[:, 0].mean():.3f}, "
        f"p10 {np.quantile(truth_scores[:, 0], 0.1):.3f}, "
        f"p90 {np.quantile(truth_scores[:, 0], 0.9):.3f}; "
        f"5th neighbour mean {truth_scores[:, 4].mean():.3f}"
    )
    flat_times = []
    for row in queries[:100]:
        t0 = time.perf_counter()
        flat.search(row[None, :], 5)
        flat_times.append((time.perf_counter() - t0) * 1000)
    print(
        f"flat single query: p50 {pct(flat_times, 0.5):.2f} ms, p99 {pct(flat_times, 0.99):.2f} ms"
    )

    for ef_construction in args.ef_construction:
        hnsw = faiss.IndexHNSWFlat(DIM, args.m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = ef_construction
        started = time.perf_counter()
        hnsw.add(base)
        build = time.perf_counter() - started
        print(f"HNSW M={args.m} efConstruction={ef_construction}: build {build:.1f} s")
        print("  efSearch  recall@5  top-1  p50 ms  p99 ms")
        for ef in (32, 64, 128, 256):
            hnsw.hnsw.efSearch = ef
            hnsw.search(queries[:20], 5)  # warm-up
            times: list[float] = []
            found = np.empty_like(truth)
            for i, row in enumerate(queries):
                t0 = time.perf_counter()
                _, labels = hnsw.search(row[None, :], 5)
                times.append((time.perf_counter() - t0) * 1000)
                found[i] = labels[0]
            hits = sum(len(set(found[i]) & set(truth[i])) for i in range(len(queries)))
            top1 = float(np.mean(found[:, 0] == truth[:, 0]))
            print(
                f"  {ef:8d}  {hits / truth.size:8.3f}  {top1:5.3f}"
                f"  {statistics.median(times):6.2f}  {pct(times, 0.99):6.2f}"
            )


if __name__ == "__main__":
    main()
