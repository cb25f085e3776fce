"""The labeled retrieval set (rag/labeled/) keeps its shape and its labeling rules.

The set is a benchmark: a broken line, a dangling ``relevant`` id or a query that copies its
answer would make every retrieval number measured on it wrong without anyone noticing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.rca.model import CATEGORIES
from rag.text import parse_doc

LABELED = Path(__file__).resolve().parents[2] / "rag" / "labeled"
DOC_FIELDS = {
    "incident_id",
    "title",
    "alertname",
    "namespace",
    "object",
    "category",
    "root_cause",
    "evidence",
    "action",
    "result",
    "timestamp",
    "resolved_at",
}
QUERY_FIELDS = {"query_id", "text", "relevant", "category"}
RESULTS = {"success", "failed", "partial", "unknown"}
INCIDENT_ID = re.compile(r"^INC_(\d{8})_(\d{3})$")
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# <namespace>/<Kind>/<name>, or <Kind>/<name> for cluster-scoped objects (CONTRACTS §2).
NAMESPACED_OBJECT = re.compile(r"^([a-z0-9-]+)/([A-Z][A-Za-z]+)/([a-z0-9][a-z0-9.-]*)$")
CLUSTER_OBJECT = re.compile(r"^(Node)/([a-z0-9][a-z0-9.-]*)$")
COPY_WORDS = 8  # a shared run of this many words counts as a copied sentence


def _read_jsonl(name: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate((LABELED / name).read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{name}:{number}: blank line"
        row = json.loads(line)
        assert isinstance(row, dict), f"{name}:{number}: not a JSON object"
        rows.append(row)
    return rows


def _time(value: str) -> datetime:
    assert RFC3339_Z.match(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + COPY_WORDS]) for i in range(len(words) - COPY_WORDS + 1)}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return _read_jsonl("incidents.jsonl")


@pytest.fixture(scope="module")
def queries() -> list[dict[str, Any]]:
    return _read_jsonl("queries.jsonl")


@pytest.fixture(scope="module")
def by_id(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["incident_id"]: doc for doc in docs}


def test_documents_have_exactly_the_contract_fields_with_their_types(
    docs: list[dict[str, Any]],
) -> None:
    for doc in docs:
        assert set(doc) == DOC_FIELDS, doc.get("incident_id")
        for field in DOC_FIELDS - {"object"}:
            assert isinstance(doc[field], str), (doc["incident_id"], field)
        for field in ("incident_id", "title", "alertname", "root_cause", "evidence", "action"):
            assert doc[field].strip(), (doc["incident_id"], field)
        assert doc["result"] in RESULTS
        assert doc["category"] in CATEGORIES
        # The project's own strict parser accepts every line.
        assert parse_doc(doc).incident_id == doc["incident_id"]


def test_object_names_the_thing_at_fault_as_contracts_section_2_says(
    docs: list[dict[str, Any]],
) -> None:
    for doc in docs:
        obj, namespace = doc["object"], doc["namespace"]
        if doc["category"] == "not_an_incident":
            assert obj is None, doc["incident_id"]
            continue
        assert isinstance(obj, str), doc["incident_id"]
        if namespaced := NAMESPACED_OBJECT.match(obj):
            assert namespaced.group(1) == namespace, doc["incident_id"]
        else:
            assert CLUSTER_OBJECT.match(obj), (doc["incident_id"], obj)
            assert namespace == "", doc["incident_id"]
        kind = obj.split("/")[-2]
        if doc["category"] in ("node_not_ready", "node_pressure"):
            assert kind == "Node", doc["incident_id"]
        if doc["category"] == "service_no_endpoints":
            assert kind == "Service", doc["incident_id"]
        if doc["category"] == "hpa_maxed":
            assert kind == "HorizontalPodAutoscaler", doc["incident_id"]
        if doc["category"] == "pvc_pending":
            assert kind == "PersistentVolumeClaim", doc["incident_id"]


def test_incident_ids_are_unique_and_dated_by_their_timestamp(docs: list[dict[str, Any]]) -> None:
    ids = [doc["incident_id"] for doc in docs]
    assert len(ids) == len(set(ids))
    for doc in docs:
        match = INCIDENT_ID.match(doc["incident_id"])
        assert match, doc["incident_id"]
        assert match.group(1) == doc["timestamp"][:10].replace("-", ""), doc["incident_id"]


def test_timestamps_are_rfc3339_spread_over_2024_to_2026_and_mttr_is_plausible(
    docs: list[dict[str, Any]],
) -> None:
    years: Counter[int] = Counter()
    for doc in docs:
        start, end = _time(doc["timestamp"]), _time(doc["resolved_at"])
        years[start.year] += 1
        assert timedelta(minutes=3) <= end - start <= timedelta(hours=6), doc["incident_id"]
    assert set(years) == {2024, 2025, 2026}
    assert min(years.values()) >= len(docs) // 6


def test_size_and_coverage(docs: list[dict[str, Any]]) -> None:
    assert len(docs) >= 300
    per_category = Counter(doc["category"] for doc in docs)
    for category in CATEGORIES:
        if category != "unknown":
            assert per_category[category] >= 6, category
    common = ("oom_killed", "app_crash", "image_pull", "dependency_unavailable")
    assert all(per_category[c] >= 15 for c in common)
    assert per_category["readiness_probe"] + per_category["liveness_probe"] >= 25
    assert per_category["node_not_ready"] + per_category["node_pressure"] >= 20
    services = {(doc["namespace"], doc["object"]) for doc in docs if doc["object"]}
    assert len(services) >= 40
    assert len({doc["namespace"] for doc in docs if doc["namespace"]}) >= 40


def test_results_are_mostly_success_and_failures_have_a_later_different_fix(
    docs: list[dict[str, Any]],
) -> None:
    results = Counter(doc["result"] for doc in docs)
    assert results["success"] >= 0.75 * len(docs)
    failed = [doc for doc in docs if doc["result"] == "failed"]
    assert len(failed) >= 5
    for doc in failed:
        later_fixes = [
            other
            for other in docs
            if other["object"] == doc["object"]
            and other["result"] == "success"
            and other["timestamp"] >= doc["resolved_at"]
            and other["action"] != doc["action"]
        ]
        assert later_fixes, doc["incident_id"]


def test_queries_have_exactly_the_fields_and_unique_ids(queries: list[dict[str, Any]]) -> None:
    assert len(queries) >= 60
    for number, query in enumerate(queries, 1):
        assert set(query) == QUERY_FIELDS, query.get("query_id")
        assert query["query_id"] == f"Q{number:03d}"
        assert isinstance(query["text"], str) and query["text"].strip()
        assert query["category"] in CATEGORIES
        assert isinstance(query["relevant"], list)
    assert len({q["category"] for q in queries}) >= 20


def test_every_relevant_id_exists_and_sets_are_small(
    queries: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> None:
    for query in queries:
        relevant = query["relevant"]
        assert 1 <= len(relevant) <= 6, query["query_id"]
        assert len(set(relevant)) == len(relevant), query["query_id"]
        for incident_id in relevant:
            assert incident_id in by_id, (query["query_id"], incident_id)


def test_query_category_is_the_mechanism_of_its_relevant_documents(
    queries: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> None:
    """Most relevant docs share the query's category; a minority may cross over (README)."""
    for query in queries:
        categories = [by_id[i]["category"] for i in query["relevant"]]
        matching = sum(c == query["category"] for c in categories)
        assert matching * 2 >= len(categories), query["query_id"]


def test_no_query_copies_a_sentence_from_its_relevant_documents(
    queries: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> None:
    for query in queries:
        asked = _shingles(query["text"])
        for incident_id in query["relevant"]:
            doc = by_id[incident_id]
            written = " \n ".join(doc[f] for f in ("title", "root_cause", "evidence", "action"))
            shared = asked & _shingles(written)
            assert not shared, (query["query_id"], incident_id, " ".join(sorted(shared)[0]))


def test_shingle_check_catches_a_copied_sentence() -> None:
    """The no-copy check above is not vacuous: it flags eight words in a row, not seven."""
    doc = "Release 3.8.0 raised the in-process cart cache from 100k to 500k entries."
    copied = "alert: raised the in-process cart cache from 100k"
    near = "alert: raised the in-process cart cache from"
    assert _shingles(copied) & _shingles(doc)
    assert not _shingles(near) & _shingles(doc)
