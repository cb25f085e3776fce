"""Reciprocal-rank fusion of ranked result lists (vector search + FTS5 bm25).

RRF (Cormack, Clarke & Büttcher, 2009) scores a document by ``sum(1 / (k + rank))`` over
the lists it appears in (rank counted from 1). It needs no score calibration between the
lists, which is the point here: a cosine and a bm25 score are not comparable. ``k = 60`` is
the value from the paper; it damps the weight of the very first ranks.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = 60

H = TypeVar("H", bound=Hashable)


def rrf(rankings: Sequence[Sequence[H]], *, k: int = K) -> list[tuple[H, float]]:
    """Fuse ranked lists of ids into one ranking.

    Args:
        rankings: Each list holds ids best first. An id repeated within one list counts
            at its first (best) position only.
        k: The RRF constant (> 0).

    Returns:
        ``[(id, fused_score)]``, best first. Ties keep the order in which ids were first
        seen (earlier lists first), so the result is deterministic.

    Raises:
        ValueError: when ``k`` is not positive.
    """
    if k <= 0:
        raise ValueError(f"k: must be positive, got {k}")
    scores: dict[H, float] = {}
    for ranking in rankings:
        seen: set[H] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    # dicts keep insertion order and sorted() is stable: ties stay in first-seen order.
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
