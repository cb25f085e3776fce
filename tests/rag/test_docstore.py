"""Incident documents (rag.text) and their SQLite store (rag.docstore)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.docstore import DocStore, fts_query
from rag.text import (
    IncidentDoc,
    embed_text,
    mttr_seconds,
    parse_doc,
    query_text_for_alert,
)

EXAMPLE: dict[str, Any] = {  # CONTRACTS §5, verbatim
    "incident_id": "INC_20251021_003",
    "title": "backend memory leak",
    "alertname": "KubePodCrashLooping",
    "namespace": "shop",
    "object": "shop/Deployment/backend",
    "category": "oom_killed",
    "root_cause": "Memory Leak in Backend",
    "evidence": "…",
    "action": "kubectl rollout restart deployment backend",
    "result": "success",
    "timestamp": "2025-10-21T19:45:00Z",
    "resolved_at": "2025-10-21T20:05:00Z",
}


def doc(incident_id: str = "INC_1", **fields: Any) -> IncidentDoc:
    return parse_doc({**EXAMPLE, "incident_id": incident_id, **fields})


@pytest.fixture
def store() -> Iterator[DocStore]:
    s = DocStore.memory()
    yield s
    s.close()


# -- parse_doc -----------------------------------------------------------------------------


def test_contract_example_round_trips() -> None:
    parsed = parse_doc(EXAMPLE)
    assert parsed.to_dict() == EXAMPLE
    assert parse_doc(parsed.to_dict()) == parsed
    assert parsed.source == "import"


def test_optional_fields_and_unknown_keys() -> None:
    parsed = parse_doc(
        {"incident_id": " A-1 ", "root_cause": "x", "result": "", "extra": [1, 2], "object": None}
    )
    assert parsed.incident_id == "A-1"
    assert parsed.result == "unknown"
    assert parsed.category == "unknown"
    assert parsed.object is None and parsed.timestamp is None
    bot_doc = parse_doc({**EXAMPLE, "channel": "C1", "thread_ts": "1.2", "source": "bot"})
    assert bot_doc.to_dict()["channel"] == "C1" and bot_doc.to_dict()["source"] == "bot"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"incident_id": ""}, "incident_id: required"),
        ({"incident_id": None}, "incident_id: required"),
        ({"incident_id": 7}, "incident_id: want a string, got int"),
        ({"incident_id": "x" * 201}, "incident_id: too long (201 characters, at most 200)"),
        ({"incident_id": "a\nb"}, "incident_id: contains control characters"),
        ({"root_cause": "  "}, "root_cause: required"),
        ({"category": "oom"}, "category: unknown category 'oom'"),
        ({"result": "ok"}, "result: must be one of success, failed, partial, unknown; got 'ok'"),
        ({"timestamp": "2025-10-21 19:45"}, "timestamp: not an RFC 3339 time"),
        ({"timestamp": "2025-10-21T19:45:00"}, "timestamp: not an RFC 3339 time"),
        ({"resolved_at": "2025-13-01T00:00:00Z"}, "resolved_at: not an RFC 3339 time"),
        ({"resolved_at": "2025-10-21T19:00:00Z"}, "resolved_at: 2025-10-21T19:00:00Z is before"),
        ({"root_cause": "x" * 10_001}, "root_cause: too long"),
        ({"title": "bad \ud800 surrogate"}, "title: not valid Unicode"),
        ({"evidence": [1]}, "evidence: list items must be strings"),
        ({"source": "slack"}, "source: must be one of import, bot"),
    ],
)
def test_invalid_documents_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_doc({**EXAMPLE, **change})
    assert str(info.value).startswith(message)


def test_non_object_is_refused() -> None:
    with pytest.raises(ValueError, match="document: want a JSON object, got list"):
        parse_doc([EXAMPLE])


def test_times_with_offsets_and_fractions() -> None:
    parsed = doc(
        timestamp="2025-10-22T10:00:00.123456789+02:00", resolved_at="2025-10-22T08:30:00Z"
    )
    assert mttr_seconds(parsed) == pytest.approx(30 * 60 - 0.123457, abs=1e-3)
    assert mttr_seconds(doc(resolved_at=None)) is None
    assert mttr_seconds(parse_doc(EXAMPLE)) == 1200.0


def test_evidence_list_is_joined() -> None:
    parsed = doc(evidence=["OOMKilled x6", {"source": "k8s", "text": "limit 256Mi"}])
    assert parsed.evidence == "OOMKilled x6; limit 256Mi"


# -- embed text ----------------------------------------------------------------------------


def test_embed_text_is_built_from_masked_fields() -> None:
    secret = doc(
        title="db creds leaked postgres://app:hunter2@db:5432/x",
        root_cause="DB_PASSWORD=hunter2 rejected",
        evidence="Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789 " + "e" * 2000,
        action="kubectl set env deployment/api API_TOKEN=hunter2",
    )
    text = embed_text(secret)
    assert "hunter2" not in text and "abcdefghijklmnop" not in text
    assert "[REDACTED:" in text
    assert "category: oom killed" in text
    assert "object: Deployment backend" in text and "shop" not in text
    assert "alert KubePodCrashLooping" in text
    assert len(text) < 1200  # evidence is cut to ~600 characters


def test_query_text_for_alert_has_the_document_shape() -> None:
    text = query_text_for_alert(
        "KubePodCrashLooping",
        {"namespace": "shop", "deployment": "cart", "pod": "cart-1"},
        {"summary": "cart crash looping", "description": "password=s3cr3t in logs"},
        summary="cart is OOMKilled",
    )
    lines = text.splitlines()
    assert lines[0] == "cart is OOMKilled"
    assert "alert KubePodCrashLooping" in lines
    assert "object: Deployment cart" in lines
    assert "s3cr3t" not in text and "cart crash looping" in text


# -- DocStore ------------------------------------------------------------------------------


def test_upsert_is_idempotent_and_keeps_the_rowid(store: DocStore) -> None:
    first = store.put(doc("A"))
    assert first.status == "added" and first.model_id is None
    store.mark_embedded([(first.rowid, first.text_hash)], "m1")
    again = store.put(doc("A"))
    assert (again.status, again.rowid, again.model_id) == ("unchanged", first.rowid, "m1")
    # A field outside the embedded text changes: updated, the vector stays valid.
    result_only = store.put(doc("A", result="failed"))
    assert (result_only.status, result_only.model_id) == ("updated", "m1")
    # The text changes: updated, same rowid, vector invalidated.
    changed = store.put(doc("A", root_cause="a different cause"))
    assert (changed.status, changed.rowid, changed.model_id) == ("updated", first.rowid, None)
    assert store.pending("m1") == [first.rowid]
    assert store.upsert(doc("A", root_cause="a different cause")) == "unchanged"
    assert store.count() == 1


def test_stored_documents_are_masked(store: DocStore) -> None:
    store.upsert(doc("A", evidence="DB_PASSWORD=hunter2"))
    stored = store.get("A")
    assert stored is not None and "hunter2" not in stored.evidence


def test_delete_is_soft_and_the_rowid_is_never_reused(store: DocStore) -> None:
    a = store.put(doc("A")).rowid
    b = store.put(doc("B")).rowid
    assert store.delete("B") == b
    assert store.delete("B") is None
    assert store.get("B") is None and store.get_many([a, b]).keys() == {a}
    assert store.live_ids() == {a}
    c = store.put(doc("C")).rowid
    assert c not in (a, b)
    back = store.put(doc("B"))
    assert (back.status, back.rowid, back.model_id) == ("added", b, None)


def test_unicode_survives(store: DocStore) -> None:
    store.upsert(doc("유니코드-1", root_cause="메모리 누수 — 캐시가 커짐 🚀", title="Ünïcödé"))
    stored = store.get("유니코드-1")
    assert stored is not None and stored.root_cause == "메모리 누수 — 캐시가 커짐 🚀"
    rowid = store.rowid_of("유니코드-1")
    assert rowid is not None
    assert [r for r, _ in store.fts_search("누수", 5)] == [rowid]


def test_fts_search_ranks_and_skips_deleted(store: DocStore) -> None:
    a = store.put(doc("A", root_cause="certificate expired on ingress")).rowid
    store.put(doc("B", root_cause="disk full on node"))
    c = store.put(doc("C", root_cause="expired certificate again, certificate rotation")).rowid
    found = store.fts_search("certificate expired", 10)
    assert {r for r, _ in found} == {a, c}
    assert all(score > 0 for _, score in found)
    store.delete("C")
    assert [r for r, _ in store.fts_search("certificate", 10)] == [a]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        'say "hello',
        "*",
        "crash*",
        "(",
        "a AND",
        "OR",
        "NOT x",
        "NEAR(a b",
        "-x",
        "root_cause:memory",
        "^start",
        "{a b}",
        "a + b",
        "'quoted'",
        "\x00",
        "",
        "   ",
    ],
)
def test_fts_syntax_in_user_text_never_raises(store: DocStore, query: str) -> None:
    store.upsert(doc("A", root_cause="crash loop with a quoted hello and root cause memory"))
    assert isinstance(store.fts_search(query, 5), list)


def test_fts_query_quotes_words() -> None:
    assert fts_query('say "hi" (now)*') == '"say" OR "hi" OR "now"'
    assert fts_query("***") == ""


def test_correction_replaces_root_cause_and_sticks(store: DocStore) -> None:
    rowid = store.put(doc("A")).rowid
    store.mark_embedded([(rowid, store.texts([rowid])[rowid][1])], "m1")
    assert store.correct_root_cause("A", "  connection pool exhausted  ", "U123") == rowid
    corrected = store.get("A")
    assert corrected is not None and corrected.root_cause == "connection pool exhausted"
    assert store.pending("m1") == [rowid]
    assert "root cause: connection pool exhausted" in store.texts([rowid])[rowid][0]
    assert store.fts_search("pool", 5)[0][0] == rowid
    assert store.feedback_summary("A") == {"up": 0, "down": 0, "correction": 1}
    assert store.feedback_rows()[0]["user_id"] == "U123"
    # Re-importing the original document does not undo a person's correction.
    assert store.upsert(doc("A")) == "unchanged"
    assert store.correct_root_cause("missing", "x", "U1") is None
    with pytest.raises(ValueError, match="root_cause: the correction is empty"):
        store.correct_root_cause("A", " ", "U1")


def test_feedback_counts_each_persons_latest_vote(store: DocStore) -> None:
    store.upsert(doc("A"))
    store.record_feedback("A", "U1", "up")
    store.record_feedback("A", "U1", "down")  # changed their mind
    store.record_feedback("A", "U2", "up")
    store.record_feedback("B", "U1", "down", category="dns_failure")
    assert store.feedback_summary("A") == {"up": 1, "down": 1, "correction": 0}
    assert store.feedback_summary() == {"up": 1, "down": 2, "correction": 0}
    categories = {(r["incident_id"], r["category"]) for r in store.feedback_rows()}
    assert categories == {("A", "oom_killed"), ("B", "dns_failure")}
    with pytest.raises(ValueError, match="kind: must be one of up, down, correction"):
        store.record_feedback("A", "U1", "meh")


def test_file_store_is_wal_with_full_sync(tmp_path: Path) -> None:
    store = DocStore.open(tmp_path / "m" / "history.db")
    try:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        store.upsert(doc("A"))
    finally:
        store.close()
    reopened = sqlite3.connect(tmp_path / "m" / "history.db")
    assert reopened.execute("SELECT incident_id FROM docs").fetchall() == [("A",)]
    reopened.close()


async def test_call_runs_on_the_store_thread(store: DocStore) -> None:
    assert await store.call(store.upsert, doc("A")) == "added"
    assert await store.call(store.count) == 1
