"""The incident memory (rag.memory) over the real DocStore, VectorIndex and HashEncoder."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rag.memory
from bot.masking import mask
from rag.docstore import DocStore
from rag.embed import HashEncoder
from rag.hybrid import rrf
from rag.index import VectorIndex
from rag.memory import IncidentMemory, Similar, doc_from_incident
from rag.text import IncidentDoc, parse_doc

CORPUS = [
    ("INC_OOM", "oom_killed", "cart heap grows until the container is OOMKilled at its limit"),
    ("INC_DNS", "dns_failure", "coredns pods crashed so lookups of payments.svc time out"),
    ("INC_CERT", "certificate_expired", "TLS certificate of the ingress expired yesterday"),
    ("INC_DISK", "disk_full", "no space left on device in the postgres data volume"),
    ("INC_IMG", "image_pull", "image tag v9.9.9 does not exist in the registry"),
]


def make_docs() -> list[IncidentDoc]:
    return [
        parse_doc(
            {
                "incident_id": incident_id,
                "category": category,
                "root_cause": cause,
                "title": cause[:30],
                "action": "kubectl -n shop rollout restart deployment/app",
                "result": "success",
            }
        )
        for incident_id, category, cause in CORPUS
    ]


class CountingEncoder:
    """The real HashEncoder, remembering what it was asked to embed."""

    def __init__(self, dim: int = 256) -> None:
        self.inner = HashEncoder(dim)
        self.model_id = self.inner.model_id
        self.dim = dim
        self.texts: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.encode(texts)


@pytest.fixture
def encoder() -> CountingEncoder:
    return CountingEncoder()


@pytest.fixture
def memory(tmp_path: Path, encoder: CountingEncoder) -> Iterator[IncidentMemory]:
    m = IncidentMemory(tmp_path / "memory", encoder).open()
    m.add(make_docs())
    encoder.texts.clear()
    yield m
    m.close()


def reopen(m: IncidentMemory, encoder: Any) -> IncidentMemory:
    m.close()
    return IncidentMemory(m.memory_dir, encoder).open()


def top_id(m: IncidentMemory, text: str, **options: Any) -> str:
    return m.search(text, top=1, **options)[0].incident_id


def test_search_finds_the_matching_incident(memory: IncidentMemory) -> None:
    found = memory.search("container OOMKilled, heap at the limit", top=3)
    assert found[0].incident_id == "INC_OOM"
    assert 0 < found[0].score <= 1 and found[0].score >= found[1].score
    assert found[0].category == "oom_killed"
    assert list(found[0].to_contract()) == [
        "incident_id",
        "score",
        "root_cause",
        "action",
        "result",
    ]
    assert found[0].to_contract()["score"] == round(found[0].score, 3)


def test_add_is_idempotent_and_embeds_only_changes(
    memory: IncidentMemory, encoder: CountingEncoder
) -> None:
    counts = memory.add(make_docs())
    assert (counts.added, counts.updated, counts.unchanged) == (0, 0, 5)
    assert encoder.texts == []
    changed = [*make_docs()[:4], parse_doc({**make_docs()[4].to_dict(), "result": "failed"})]
    assert memory.add(changed).to_dict() == {"added": 0, "updated": 1, "unchanged": 4}
    assert encoder.texts == []  # the embedded text did not change
    assert memory.stats()["pending_embed"] == 0


def test_delete_removes_from_search_and_stays_removed(
    memory: IncidentMemory, encoder: CountingEncoder
) -> None:
    assert memory.delete("INC_CERT") is True
    assert memory.delete("INC_CERT") is False
    query = "TLS certificate of the ingress expired"
    assert "INC_CERT" not in [s.incident_id for s in memory.search(query, top=5)]
    memory = reopen(memory, encoder)
    assert memory.repaired == 0 and len(memory.index) == 4
    assert "INC_CERT" not in [s.incident_id for s in memory.search(query, top=5)]


def test_correction_reembeds_and_changes_search(
    memory: IncidentMemory, encoder: CountingEncoder
) -> None:
    query = "database connection pool exhausted by leaked sessions"
    assert top_id(memory, query) != "INC_CERT"
    encoder.texts.clear()
    assert memory.correct("INC_CERT", query, "U1")
    assert len(encoder.texts) == 1 and "connection pool exhausted" in encoder.texts[0]
    assert top_id(memory, query) == "INC_CERT"
    assert memory.docs.feedback_summary("INC_CERT")["correction"] == 1
    assert memory.correct("INC_NONE", "x", "U1") is False
    encoder.texts.clear()
    memory = reopen(memory, encoder)
    assert memory.repaired == 0 and encoder.texts == []
    assert top_id(memory, query) == "INC_CERT"


def test_model_change_reindexes_on_open(tmp_path: Path) -> None:
    small = CountingEncoder(128)
    with IncidentMemory(tmp_path, small) as m:
        m.add(make_docs())
    big = CountingEncoder(256)
    m = IncidentMemory(tmp_path, big).open()
    try:
        assert m.stale_reason is not None and "128" in m.stale_reason
        assert m.repaired == 5 and len(big.texts) == 5
        assert m.index.dim == 256 and m.stats()["index"]["model_id"] == "hash-256"
        assert m.docs.pending("hash-256") == []
        assert top_id(m, "coredns lookups time out") == "INC_DNS"
    finally:
        m.close()
    again = CountingEncoder(256)
    with IncidentMemory(tmp_path, again) as m:
        assert m.repaired == 0 and again.texts == [] and m.stale_reason is None
    # Going back to the old model re-embeds again: vectors of two models never mix.
    back = CountingEncoder(128)
    with IncidentMemory(tmp_path, back) as m:
        assert m.repaired == 5 and len(m.index) == 5 and m.index.dim == 128


def test_deleted_index_file_is_rebuilt_from_sqlite(
    memory: IncidentMemory, encoder: CountingEncoder
) -> None:
    before = [s.to_dict() for s in memory.search("postgres volume out of space", top=5)]
    memory.close()
    (memory.memory_dir / "index.faiss").unlink()
    memory = IncidentMemory(memory.memory_dir, encoder).open()
    try:
        assert memory.stale_reason == "no index file" and memory.repaired == 5
        assert (memory.memory_dir / "index.faiss").exists()
        assert [s.to_dict() for s in memory.search("postgres volume out of space", top=5)] == before
    finally:
        memory.close()


def test_documents_committed_but_never_embedded_are_embedded_on_open(
    memory: IncidentMemory, encoder: CountingEncoder
) -> None:
    memory.close()
    store = DocStore.open(memory.memory_dir / "history.db")  # a crash before the index save
    store.upsert(parse_doc({"incident_id": "INC_NEW", "root_cause": "kafka broker rebalancing"}))
    store.delete("INC_IMG")
    store.close()
    memory = IncidentMemory(memory.memory_dir, encoder).open()
    try:
        assert memory.repaired == 1 and encoder.texts[0].endswith("kafka broker rebalancing")
        assert memory.index.ids() == memory.docs.live_ids() and len(memory.index) == 5
        assert top_id(memory, "kafka broker rebalancing") == "INC_NEW"
    finally:
        memory.close()


def test_changes_by_another_process_are_picked_up(
    memory: IncidentMemory, encoder: CountingEncoder
) -> None:
    assert memory.refresh() is False
    with IncidentMemory(memory.memory_dir, CountingEncoder()) as cli:  # e.g. history import
        cli.add([parse_doc({"incident_id": "INC_CLI", "root_cause": "etcd leader elections"})])
        cli.delete("INC_DNS")
    assert top_id(memory, "etcd leader elections") == "INC_CLI"
    assert encoder.texts == ["etcd leader elections"]  # the query only: nothing re-embedded
    assert memory.index.ids() == memory.docs.live_ids() and len(memory.index) == 5
    assert memory.refresh() is False


def test_long_import_saves_the_index_as_it_goes(
    tmp_path: Path, encoder: CountingEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rag.memory, "SAVE_EVERY", 3)

    def docs_then_crash() -> Iterator[IncidentDoc]:
        yield from make_docs()
        raise OSError("disk went away")

    m = IncidentMemory(tmp_path, encoder).open()
    with pytest.raises(OSError):
        m.add(docs_then_crash())
    m.close()
    saved = VectorIndex.open(tmp_path / "index.faiss", model_id=encoder.model_id, dim=256)
    assert len(saved) == 3  # the save after 3 documents; 2 more were committed, not embedded
    with IncidentMemory(tmp_path, encoder) as m:
        assert m.repaired == 2 and m.count() == 5 and len(m.index) == 5


def test_scores_are_cosines_in_both_modes(memory: IncidentMemory) -> None:
    query = "ingress TLS certificate expired"
    qvec = memory.encoder.encode([mask(query)])[0]
    for hybrid in (False, True):
        found = memory.search(query, top=5, hybrid=hybrid)
        assert len(found) == 5
        texts = memory.docs.texts([memory.docs.rowid_of(s.incident_id) or 0 for s in found])
        vectors = memory.encoder.encode([text for text, _ in texts.values()])
        expected = {
            rowid: min(1.0, max(0.0, float(v @ qvec)))
            for rowid, v in zip(texts, vectors, strict=True)
        }
        for s in found:
            rowid = memory.docs.rowid_of(s.incident_id)
            assert s.score == pytest.approx(expected[rowid or 0], abs=1e-5)


def test_hybrid_orders_by_reciprocal_rank(memory: IncidentMemory) -> None:
    query = "registry image tag does not exist"
    qvec = memory.encoder.encode([query])[0]
    vector_ids = [i for i, _ in memory.index.search(qvec, 50)]
    lexical_ids = [i for i, _ in memory.docs.fts_search(query, 50)]
    expected = [memory.docs.get_many([i])[i].incident_id for i, _ in rrf([vector_ids, lexical_ids])]
    found = [s.incident_id for s in memory.search(query, top=5, hybrid=True)]
    assert found == expected[:5]
    assert found[0] == "INC_IMG"


def test_top_min_score_and_exclude(memory: IncidentMemory) -> None:
    query = "coredns lookups time out"
    assert len(memory.search(query, top=2)) == 2
    assert [s.incident_id for s in memory.search(query, top=1, exclude={"INC_DNS"})] != ["INC_DNS"]
    best = memory.search(query, top=1)[0].score
    assert [s.incident_id for s in memory.search(query, min_score=best)] == ["INC_DNS"]
    assert memory.search(query, min_score=min(1.0, best + 0.01)) == []
    assert memory.search("   ") == [] and memory.search(query, top=0) == []


def test_empty_memory(tmp_path: Path, encoder: CountingEncoder) -> None:
    with IncidentMemory(tmp_path, encoder) as m:
        assert m.count() == 0 and m.search("anything") == [] and m.stale_reason is None


def test_unicode_documents_and_queries(memory: IncidentMemory) -> None:
    memory.add(
        [parse_doc({"incident_id": "INC_KO", "root_cause": "결제 서비스 데이터베이스 연결 거부"})]
    )
    assert top_id(memory, "데이터베이스 연결 거부") == "INC_KO"


def test_doc_from_incident() -> None:
    report = {
        "incident": {"object": "shop/Deployment/cart"},
        "category": "oom_killed",
        "summary": "cart is OOMKilled: 256Mi limit",
        "root_cause": "the cache grew past the limit",
        "evidence": [{"source": "kubernetes", "text": "OOMKilled x6", "ref": "x"}, "limit 256Mi"],
    }
    doc = doc_from_incident(
        "INC_20261120_001",
        alertname="KubePodCrashLooping",
        namespace="shop",
        report=report,
        action="kubectl -n shop set resources deployment/cart --limits=memory=512Mi",
        result="success",
        opened_at="2026-11-20T10:00:00+00:00",
        resolved_at="2026-11-20T10:20:00+00:00",
        channel="C123",
        thread_ts="1700000000.000100",
    )
    assert doc.source == "bot" and doc.object == "shop/Deployment/cart"
    assert doc.title == "cart is OOMKilled: 256Mi limit" and doc.category == "oom_killed"
    assert doc.evidence == "OOMKilled x6; limit 256Mi"
    odd = doc_from_incident(
        "INC_2",
        alertname="Watchdog",
        report={"category": "made_up", "evidence": ["e" * 60_000]},
        result="weird",
        opened_at="yesterday",
        resolved_at="2026-11-20T10:20:00Z",
    )
    assert odd.category == "unknown" and odd.result == "unknown" and odd.timestamp is None
    assert odd.root_cause == "Watchdog: no root cause was established"
    assert len(odd.evidence) == 50_000


def test_from_incident_is_searchable_with_its_thread(memory: IncidentMemory) -> None:
    memory.from_incident(
        "INC_BOT",
        alertname="KubeJobFailed",
        report={"category": "job_failed", "root_cause": "nightly export job hit backoffLimit"},
        channel="C9",
        thread_ts="17.5",
    )
    hit = memory.search("nightly export job backoffLimit", top=1)[0]
    assert (hit.incident_id, hit.channel, hit.thread_ts) == ("INC_BOT", "C9", "17.5")


def test_learning_over_the_memory(memory: IncidentMemory) -> None:
    memory.feedback("INC_OOM", "U1", "up")
    memory.feedback("INC_DNS", "U1", "down")
    stats = memory.learning()
    assert stats.acceptance_overall.rate == 0.5
    assert stats.actions["rollout_restart"].count == 5
    assert memory.stats()["docs"] == 5


async def test_async_api(tmp_path: Path, encoder: CountingEncoder) -> None:
    m = await IncidentMemory(tmp_path, encoder).aopen()
    try:
        counts = await m.aadd(make_docs())
        assert counts.added == 5
        found = await m.asearch("coredns lookups time out", top=1)
        assert isinstance(found[0], Similar) and found[0].incident_id == "INC_DNS"
        await m.afeedback("INC_DNS", "U1", "up")
        assert await m.acorrect("INC_DNS", "kube-dns configmap typo", "U1")
        assert await m.adelete("INC_OOM")
        doc = await m.afrom_incident("INC_A", alertname="X", report={"root_cause": "y"})
        assert doc.incident_id == "INC_A" and m.count() == 5
    finally:
        await m.aclose()


def test_rrf_math() -> None:
    fused = rrf([[1, 2, 3], [3, 1]], k=60)
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)
    assert [i for i, _ in fused] == [1, 3, 2]


def test_rrf_ties_duplicates_and_edges() -> None:
    assert [i for i, _ in rrf([["a"], ["b"]])] == ["a", "b"]  # tie: first seen wins
    assert dict(rrf([["a", "a", "b"]]))["a"] == pytest.approx(1 / 61)
    assert rrf([]) == [] and rrf([[], []]) == []
    with pytest.raises(ValueError, match="k: must be positive"):
        rrf([[1]], k=0)


@pytest.mark.parametrize("hybrid", [False, True])
def test_rca_category_orders_the_candidates(tmp_path: Path, hybrid: bool) -> None:
    def doc(n: int, category: str, cause: str) -> IncidentDoc:
        return parse_doc(
            {
                "incident_id": f"INC_CAT_{n}",
                "title": f"checkout pods restarting {n}",
                "alertname": "KubePodCrashLooping",
                "namespace": "shop",
                "object": "shop/Deployment/checkout",
                "category": category,
                "root_cause": cause,
                "action": "kubectl -n shop rollout restart deployment/checkout",
                "result": "success",
            }
        )

    docs = [
        doc(1, "app_crash", "checkout pods restarting: panic nil pointer in the payment client"),
        doc(2, "oom_killed", "checkout pods restarting, the container hit its memory limit"),
    ]
    with IncidentMemory(tmp_path / "m", HashEncoder()) as memory:
        memory.add(docs)
        query = "checkout pods restarting: panic nil pointer"
        assert memory.search(query, top=2, hybrid=hybrid)[0].incident_id == "INC_CAT_1"
        ordered = memory.search(query, top=2, hybrid=hybrid, category="oom_killed")
        assert [s.incident_id for s in ordered] == ["INC_CAT_2", "INC_CAT_1"]
        # "unknown" carries no information: the similarity order stands.
        same = memory.search(query, top=2, hybrid=hybrid, category="unknown")
        assert same[0].incident_id == "INC_CAT_1"
