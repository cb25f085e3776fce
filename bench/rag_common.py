"""What bench/rag.py and bench/rag_scale.py share: the labeled set, encoders, measuring helpers.

The labeled set is ``rag/labeled`` (documents and queries an engineer labeled with the
incidents they would click).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.embed import Encoder, make_encoder
from rag.text import IncidentDoc, parse_doc

ROOT = Path(__file__).resolve().parents[1]
LABELED = ROOT / "rag" / "labeled"
TOP = 5
# Shared with bench/embed_backends.py, so one ONNX export serves both benchmarks.
ONNX_CACHE = Path(tempfile.gettempdir()) / "incident-bot-bench-onnx"


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


def bench_encoder(backend: str, onnx_cache: Path = ONNX_CACHE) -> Encoder:
    """The encoder of ``backend`` (torch, onnx or hash); ONNX files kept in ``onnx_cache``."""
    if backend == "onnx":
        from rag.onnx_embed import OnnxEncoder

        encoder: Encoder = OnnxEncoder(cache_dir=onnx_cache)
        return encoder
    return make_encoder("", backend)
