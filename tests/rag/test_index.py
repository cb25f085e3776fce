"""rag.index: flat and HNSW search, upserts, tombstones, conversion, atomic save/open."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag import index as index_module
from rag.index import VectorIndex
from tests.rag import index_save_child as child

DIM = 32
MODEL = "test-model@000000000000"


def clustered(n: int, *, seed: int = 0, centres: int = 8, dim: int = DIM) -> np.ndarray:
    """``n`` unit vectors around a few centres (like embeddings of related texts)."""
    rng = np.random.default_rng(seed)
    middle = rng.standard_normal((centres, dim))
    rows = middle[rng.integers(0, centres, n)] + 0.4 * rng.standard_normal((n, dim))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32)


def brute_force(ids: list[int], vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [ids[i] for i in order]


def make(tmp_path: Path, *, exact_max: int = index_module.EXACT_MAX) -> VectorIndex:
    return VectorIndex.open(tmp_path / "index.faiss", model_id=MODEL, dim=DIM, exact_max=exact_max)


# ---------------------------------------------------------------------------------- flat


def test_flat_search_matches_brute_force(tmp_path: Path) -> None:
    index = make(tmp_path)
    vectors = clustered(200)
    ids = list(range(1000, 1200))
    index.add(ids, vectors)
    assert index.kind == "flat" and len(index) == 200 and index.ids() == set(ids)
    for query in clustered(5, seed=9):
        found = index.search(query, 10)
        assert [i for i, _ in found] == brute_force(ids, vectors, query, 10)
        scores = [s for _, s in found]
        assert scores == sorted(scores, reverse=True)
        for key, score in found:
            assert score == pytest.approx(float(vectors[key - 1000] @ query), abs=1e-5)


def test_k_larger_than_size_empty_index_and_k_zero(tmp_path: Path) -> None:
    index = make(tmp_path)
    query = clustered(1)[0]
    assert index.search(query, 5) == []
    index.add([1, 2, 3], clustered(3, seed=1))
    assert sorted(i for i, _ in index.search(query, 50)) == [1, 2, 3]
    assert index.search(query, 0) == []
    assert index.search_many(np.zeros((0, DIM), np.float32), 3) == []
    assert index.search_many(clustered(2, seed=4), 2) == [
        index.search(row, 2) for row in clustered(2, seed=4)
    ]


def test_upsert_replaces_the_vector(tmp_path: Path) -> None:
    index = make(tmp_path)
    old, new, other = clustered(3, seed=2, centres=3)
    index.add([7, 8], np.stack([old, other]))
    index.add([7], new[None, :])
    assert len(index) == 2 and index.ids() == {7, 8}
    found = dict(index.search(old, 5))
    assert found[7] == pytest.approx(float(old @ new), abs=1e-5)
    assert index.search(new, 1)[0][0] == 7
    assert index.search(new, 1)[0][1] == pytest.approx(1.0, abs=1e-5)


def test_remove_counts_and_hides(tmp_path: Path) -> None:
    index = make(tmp_path)
    vectors = clustered(20, seed=3)
    index.add(list(range(20)), vectors)
    assert index.remove([3, 4, 999]) == 2
    assert index.remove([3]) == 0
    assert index.remove([]) == 0
    assert len(index) == 18 and 3 not in index.ids()
    assert {i for i, _ in index.search(vectors[3], 20)} == set(range(20)) - {3, 4}


def test_vectors_are_normalised_as_a_safety_net(tmp_path: Path) -> None:
    index = make(tmp_path)
    vector = clustered(1, seed=5)[0]
    index.add([1], (vector * 3.0)[None, :].astype(np.float64))
    [(key, score)] = index.search(vector * 0.5, 1)
    assert key == 1 and score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("ids", "vectors", "message"),
    [
        ([1, 2], np.zeros((1, DIM), np.float32), "1 vectors for 2 ids"),
        ([1], np.zeros((1, DIM + 1), np.float32), "shape"),
        ([1], np.zeros((1, DIM), np.int64), "floating point"),
        ([1], np.full((1, DIM), np.nan, np.float32), "NaN"),
        ([-1], np.ones((1, DIM), np.float32), "non-negative"),
        ([1, 1], np.ones((2, DIM), np.float32), "repeat"),
        ([1.5], np.ones((1, DIM), np.float32), "integers"),
        ([1], [[0.0] * DIM], "numpy array"),
    ],
)
def test_add_rejects_bad_input(
    tmp_path: Path, ids: list[int], vectors: np.ndarray, message: str
) -> None:
    index = make(tmp_path)
    with pytest.raises(ValueError, match=message):
        index.add(ids, vectors)
    assert len(index) == 0 and not index.dirty


def test_search_rejects_bad_query_shape(tmp_path: Path) -> None:
    index = make(tmp_path)
    with pytest.raises(ValueError, match="shape"):
        index.search(np.ones((1, DIM), np.float32), 3)
    with pytest.raises(ValueError, match="shape"):
        index.search_many(np.ones(DIM, np.float32), 3)


# ---------------------------------------------------------------------------------- hnsw


def test_crossing_exact_max_converts_to_hnsw(tmp_path: Path) -> None:
    index = make(tmp_path, exact_max=50)
    vectors = clustered(70, seed=6)
    index.add(list(range(40)), vectors[:40])
    assert index.kind == "flat"
    index.add(list(range(40, 70)), vectors[40:])
    assert index.kind == "hnsw" and len(index) == 70 and index.ids() == set(range(70))
    for query in clustered(5, seed=10):
        got = [i for i, _ in index.search(query, 5)]
        assert got == brute_force(list(range(70)), vectors, query, 5)


def test_hnsw_upsert_leaves_no_duplicate(tmp_path: Path) -> None:
    index = make(tmp_path, exact_max=50)
    vectors = clustered(80, seed=7)
    index.add(list(range(80)), vectors)
    replacement = clustered(1, seed=99, centres=1)[0]
    index.add([5], replacement[None, :])
    assert index.kind == "hnsw" and index.tombstones == 1
    assert len(index) == 80 and index.ids() == set(range(80))
    found = index.search(vectors[5], 80)
    assert [i for i, _ in found].count(5) == 1
    assert dict(found)[5] == pytest.approx(float(vectors[5] @ replacement), abs=1e-5)
    assert index.search(replacement, 1)[0][0] == 5


def test_hnsw_remove_tombstones_then_compacts(tmp_path: Path) -> None:
    index = make(tmp_path, exact_max=50)
    vectors = clustered(100, seed=8)
    index.add(list(range(100)), vectors)
    assert index.remove([1, 2, 3, 4, 5]) == 5
    assert index.kind == "hnsw" and index.tombstones == 5 and len(index) == 95
    live = [i for i in range(100) if i not in {1, 2, 3, 4, 5}]
    assert sorted(i for i, _ in index.search(vectors[1], 100)) == live
    for query in vectors[1:6]:  # the removed vectors' own neighbourhoods
        got = [i for i, _ in index.search(query, 5)]
        assert got == brute_force(live, vectors[live], query, 5)
    assert index.remove([10, 11, 12, 13, 14, 15]) == 6  # 11 tombstones > 10% of 100 stored
    assert index.tombstones == 0 and index.kind == "hnsw" and len(index) == 89
    live = [i for i in live if i not in range(10, 16)]
    assert index.ids() == set(live)
    for query in clustered(5, seed=11):
        got = [i for i, _ in index.search(query, 5)]
        assert got == brute_force(live, vectors[live], query, 5)


def test_compaction_below_exact_max_goes_back_to_flat(tmp_path: Path) -> None:
    index = make(tmp_path, exact_max=50)
    vectors = clustered(60, seed=12)
    index.add(list(range(60)), vectors)
    assert index.kind == "hnsw"
    assert index.remove(list(range(15))) == 15
    assert index.kind == "flat" and len(index) == 45 and index.tombstones == 0
    assert index.search(vectors[20], 1)[0][0] == 20


def test_rebuild_picks_the_kind_by_size(tmp_path: Path) -> None:
    index = make(tmp_path, exact_max=50)
    vectors = clustered(100, seed=13)
    index.rebuild(list(range(100)), vectors)
    assert index.kind == "hnsw" and len(index) == 100
    index.rebuild([500, 501], vectors[:2])
    assert index.kind == "flat" and index.ids() == {500, 501}
    assert index.search(vectors[0], 1)[0][0] == 500
    index.rebuild([], np.zeros((0, DIM), np.float32))
    assert len(index) == 0 and index.search(vectors[0], 3) == []


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("count", [30, 120])
def test_save_open_round_trip(tmp_path: Path, count: int) -> None:
    index = make(tmp_path, exact_max=50)
    vectors = clustered(count, seed=14)
    index.add(list(range(count)), vectors)
    index.remove([0, 1])
    assert index.dirty
    index.save()
    assert not index.dirty
    again = make(tmp_path, exact_max=50)
    assert again.stale_reason is None and not again.dirty
    assert again.kind == index.kind and again.ids() == index.ids()
    assert again.tombstones == index.tombstones == (2 if count > 50 else 0)
    queries = clustered(4, seed=15)
    assert again.search_many(queries, 5) == index.search_many(queries, 5)


def test_model_change_makes_the_index_stale_and_empty(tmp_path: Path) -> None:
    index = make(tmp_path)
    index.add([1, 2], clustered(2))
    index.save()
    other = VectorIndex.open(tmp_path / "index.faiss", model_id="other@1", dim=DIM)
    assert other.stale_reason == f"model changed: {MODEL} → other@1"
    assert len(other) == 0 and other.ids() == set()
    other.rebuild([9], clustered(1, seed=3))
    other.save()
    assert VectorIndex.open(tmp_path / "index.faiss", model_id="other@1", dim=DIM).ids() == {9}
    assert make(tmp_path).stale_reason == f"model changed: other@1 → {MODEL}"


def test_dimension_change_makes_the_index_stale(tmp_path: Path) -> None:
    index = make(tmp_path)
    index.add([1], clustered(1))
    index.save()
    wider = VectorIndex.open(tmp_path / "index.faiss", model_id=MODEL, dim=DIM * 2)
    assert wider.stale_reason == f"dimension changed: {DIM} → {DIM * 2}"
    assert len(wider) == 0 and wider.dim == DIM * 2


def test_missing_file(tmp_path: Path) -> None:
    index = make(tmp_path)
    assert index.stale_reason == "no index file" and len(index) == 0 and not index.dirty


def test_damaged_files_load_as_stale_never_raise(tmp_path: Path) -> None:
    index = make(tmp_path, exact_max=50)
    index.add(list(range(80)), clustered(80, seed=16))
    index.save()
    path = tmp_path / "index.faiss"
    good = path.read_bytes()
    header_end = good.index(b"}") + 1
    damaged = {
        "empty": b"",
        "magic only": good[:8],
        "cut in header": good[: header_end - 5],
        "header only": good[:header_end],
        "cut in payload": good[: len(good) // 2],
        "last byte missing": good[:-1],
        "flipped payload byte": good[:-100] + bytes([good[-100] ^ 0xFF]) + good[-99:],
        "garbage": os.urandom(4096),
        "json garbage": good[:12] + b"{not json" + good[header_end:],
    }
    for name, data in damaged.items():
        path.write_bytes(data)
        opened = make(tmp_path, exact_max=50)
        assert opened.stale_reason is not None, name
        assert opened.stale_reason.startswith("unreadable index"), (name, opened.stale_reason)
        assert len(opened) == 0
    path.unlink()
    path.mkdir()
    assert make(tmp_path).stale_reason.startswith("unreadable index")  # type: ignore[union-attr]


def test_dirty_tracks_unsaved_changes(tmp_path: Path) -> None:
    index = make(tmp_path)
    assert not index.dirty
    index.add([1, 2], clustered(2))
    assert index.dirty
    index.save()
    assert not index.dirty
    assert index.remove([42]) == 0 and not index.dirty
    index.remove([1])
    assert index.dirty
    index.save()
    index.rebuild([3], clustered(1))
    assert index.dirty


def test_failed_save_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = make(tmp_path)
    index.add([1], clustered(1))
    index.save()
    index.add([2], clustered(1, seed=1))

    def crash(src: object, dst: object) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk went away"):
        index.save()
    monkeypatch.undo()
    assert index.dirty
    assert make(tmp_path).ids() == {1}
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]


def test_leftover_temp_files_are_ignored_then_cleaned(tmp_path: Path) -> None:
    index = make(tmp_path)
    index.add([1], clustered(1))
    index.save()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(dead.stdout)
    leftover = tmp_path / f".index.faiss.tmp-{dead_pid}-deadbeef"
    leftover.write_bytes(b"half a file")
    mine = tmp_path / f".index.faiss.tmp-{os.getpid()}-0badcafe"  # a live process's write
    mine.write_bytes(b"in progress")
    again = make(tmp_path)
    assert again.stale_reason is None and again.ids() == {1}
    again.add([2], clustered(1, seed=2))
    again.save()
    assert not leftover.exists() and mine.exists()
    assert make(tmp_path).ids() == {1, 2}


def test_kill_during_save_leaves_a_complete_index(tmp_path: Path) -> None:
    """SIGKILL a process that saves 30 MB versions in a loop: every kill leaves a loadable
    index holding exactly one version the child wrote (or the one it started from)."""
    path = tmp_path / "index.faiss"
    first = VectorIndex.open(path, model_id=child.MODEL_ID, dim=child.DIM)
    first.add(list(range(200)), child.version_vectors(200))
    first.save()
    vectors = child.version_vectors(child.BASE + 1_000)
    rng = random.Random(20251123)
    temp_seen = 0
    for round_ in ("stall", "random", "random", "random", "random"):
        proc = subprocess.Popen(
            [sys.executable, str(Path(child.__file__)), str(path), round_],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        assert ready[0] == "ready", ready
        started_from = int(ready[1])
        if round_ == "stall":  # a known point: temp file written, os.replace not yet done
            assert proc.stdout.readline().strip() == "stalled"
        else:  # random moments: before the first save completes, mid-loop, saves later
            delay = rng.choice([0.01, 0.05, 0.15, 0.3, 0.6]) + rng.random() * 0.1
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        saved = [int(line.split()[1]) for line in out.splitlines() if line.startswith("saved")]
        temp_left = any(p.name.startswith(".index.faiss.tmp-") for p in tmp_path.iterdir())
        temp_seen += temp_left
        # Valid outcomes: the version it started from, any it reported, or the one whose
        # os.replace finished just before the kill could print "saved".
        next_count = saved[-1] + 1 if saved else child.BASE
        allowed = {started_from, *saved, next_count}
        if round_ == "stall":
            assert temp_left and not saved
            allowed = {started_from}
        index = VectorIndex.open(
            path, model_id=child.MODEL_ID, dim=child.DIM, exact_max=child.EXACT_MAX
        )
        assert index.stale_reason is None
        count = len(index)
        assert count in allowed, (count, started_from, saved[-3:])
        assert index.ids() == set(range(count))
        for probe in (0, count // 2, count - 1):
            assert index.search(vectors[probe], 1)[0][0] == probe
    index.save()  # cleans the dead children's temp files
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]
    print(f"kills that left a temp file: {temp_seen} of 5")
