"""bench/rag.py keeps working: its pieces and a tiny end-to-end run with the hash encoder.

The benchmark's real run takes minutes and a model; these run its functions at small sizes
(fast, no model, no timing assertions) so the script does not rot between runs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from rag.embed import HashEncoder
from rag.text import embed_text

BENCH = Path(__file__).resolve().parents[2] / "bench" / "rag.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """bench/rag.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_rag", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_rag"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_recall_and_mrr_follow_the_printed_definitions(bench: ModuleType) -> None:
    # rank 6 is outside the top 5: 2 of min(3, 5) relevant found
    assert bench.recall_at(["a", "x", "b", "y", "z", "c"], {"a", "b", "c"}) == pytest.approx(2 / 3)
    # more relevant than fit in the top 5: a full top 5 is perfect recall
    assert bench.recall_at(list("abcde"), set("abcdefg")) == 1.0
    assert bench.reciprocal_rank(["x", "a", "b"], {"a", "b"}) == 0.5
    assert bench.reciprocal_rank(["x", "y", "z", "w", "v", "a"], {"a"}) == 0.0
    assert bench.target(0.93, 0.9).startswith("target ≥ 0.9: met")
    assert "MISSED by 0.05" in bench.target(0.85, 0.9)
    assert "met" in bench.target(1.2, 5, at_most=True, unit=" ms")


def test_labeled_quality_through_the_memory(bench: ModuleType, tmp_path: Path) -> None:
    docs, queries = bench.load_labeled()
    assert len(docs) >= 300 and len(queries) >= 150
    picked = queries[:12]
    wanted = {i for q in picked for i in q.relevant}
    subset = [d for d in docs if d.incident_id in wanted] + docs[:10]
    subset = list({d.incident_id: d for d in subset}.values())
    # a query that is a document's own text must find that document first
    echo = bench.Query("ECHO", embed_text(subset[0]), frozenset({subset[0].incident_id}), "echo")
    result = bench.labeled_quality(HashEncoder(), subset, [*picked, echo], tmp_path / "memory")

    assert result["docs"] == len(subset) and result["queries"] == len(picked) + 1
    for mode in ("vector", "hybrid"):
        figures = result["modes"][mode]
        assert 0.0 <= figures["recall_at_5"] <= 1.0
        assert 0.0 <= figures["mrr_at_5"] <= 1.0
        assert figures["categories"]["echo"] == 1.0
    # vector-only search embeds the query and nothing else
    assert result["modes"]["vector"]["extra_texts_encoded_per_query"] == 0
    diff = result["hybrid_minus_vector"]
    assert diff["ci95"][0] <= diff["recall_at_5"] <= diff["ci95"][1]
    assert diff["queries_better"] + diff["queries_worse"] <= len(picked) + 1
    expected = HashEncoder().encode([embed_text(d) for d in subset])
    np.testing.assert_allclose(result["doc_vectors"], expected, atol=1e-6)
    assert result["query_vectors"].shape == (len(picked) + 1, 256)


def test_embed_speed_alternates_queries_and_documents(bench: ModuleType) -> None:
    docs, queries = bench.load_labeled()
    texts = bench.latency_texts(docs, queries, 10)
    assert len(texts) == 10
    assert texts[0] in {q.text for q in queries}
    assert texts[1] in {embed_text(d) for d in docs}
    speed = bench.embed_speed(HashEncoder(), texts, [q.text for q in queries[:40]])
    assert speed["texts"] == 10 and speed["batch32_texts"] == 40
    assert 0 < speed["p50_ms"] <= speed["p99_ms"]
    assert speed["batch32_per_s"] > 0


@pytest.fixture(scope="module")
def centres(bench: ModuleType) -> np.ndarray:
    docs, _ = bench.load_labeled()
    vectors: np.ndarray = HashEncoder(384).encode([embed_text(d) for d in docs])
    return vectors


def test_synthetic_history_has_near_duplicates_and_outliers(
    bench: ModuleType, centres: np.ndarray
) -> None:
    data = bench.synthesize(centres, 3_000, seed=1)
    assert data.shape == (3_000, 384) and data.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(data, axis=1), 1.0, atol=1e-5)
    docs, queries = data[:2_800], data[2_800:]
    nearest = (queries @ docs.T).max(axis=1)
    profile = bench.nn_profile(nearest)
    assert 0.75 <= profile["p50"] <= 0.95  # recurrences, as the docstring promises
    lonely = (nearest < bench.NO_NEIGHBOUR).mean()  # the random directions
    assert 0.0 < lonely < 0.15
    assert np.array_equal(data, bench.synthesize(centres, 3_000, seed=1))


def test_scale_run_flat_is_exact_and_hnsw_saves_and_reloads(
    bench: ModuleType, centres: np.ndarray, tmp_path: Path
) -> None:
    data = bench.synthesize(centres, 1_600, seed=2)
    flat = bench.scale_run(data[:1_500], data[1_500:], tmp_path / "flat", flat_queries=10)
    assert flat["kind"] == "flat" and flat["recall_at_5"] == 1.0 and flat["load_ok"]
    hnsw = bench.scale_run(data[:1_500], data[1_500:], tmp_path / "hnsw", exact_max=1_000)
    assert hnsw["kind"] == "hnsw" and hnsw["load_ok"]
    assert hnsw["recall_at_5_with_neighbour"] >= 0.9
    assert hnsw["file_mb"] > 1_500 * 384 * 4 / 1e6  # vectors plus the graph
    assert hnsw["p50_ms"] <= hnsw["p99_ms"]


def test_rss_worker_reports_each_step(bench: ModuleType) -> None:
    result = bench.rss_worker("hash", modules=["json"])
    steps = list(result["steps"].values())
    assert len(steps) == 4
    for step in steps:
        assert 0 < step["rss_mib"] <= step["hwm_mib"]


def test_main_end_to_end(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rag.json"
    argv = ["--backends", "hash", "--sizes", "1500", "--scale-queries", "40", "--texts", "10"]
    bench.main([*argv, "--rss-modules", "", "--json", str(out)])
    printed = capsys.readouterr().out
    for section in ("## 1. labeled set", "## 2.", "## 3. scale", "## 4.", "## 5."):
        assert section in printed
    saved = json.loads(out.read_text())
    assert 0.0 <= saved["labeled"]["hash"]["modes"]["hybrid"]["recall_at_5"] <= 1.0
    assert "doc_vectors" not in saved["labeled"]["hash"]
    assert [r["docs"] for r in saved["scale"]] == [1_500]
    assert saved["scale"][0]["recall_at_5"] == 1.0  # flat at this size
    assert saved["rss"]["hash"]["torch_imported"] is False
