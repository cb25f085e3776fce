"""The incident memory: past incidents, embedded, searchable by meaning.

:class:`IncidentMemory` joins the documents database (:class:`rag.docstore.DocStore`,
``<memory_dir>/history.db``, the source of truth) and the vector index
(:class:`rag.index.VectorIndex`, ``<memory_dir>/index.faiss``, always rebuildable from it).

Consistency rules:

- The index holds vectors of one model only. Opening with an encoder whose ``model_id`` or
  ``dim`` differs from the saved index's (or with a missing or corrupt index file) re-embeds
  every document; vectors of two models are never mixed.
- A document is committed to SQLite first, embedded, and marked embedded only after the index
  holding its vector was saved. On open, every live document not so marked, every document
  missing from the index and every index id without a live document is repaired.
- Embedding is slow (tens of ms per text with the real model): the ``a*`` methods run on the
  document store's worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Sized
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.masking import mask
from rag.docstore import DocStore
from rag.embed import Encoder
from rag.hybrid import rrf
from rag.index import VectorIndex
from rag.learning import LearningStats, compute_learning
from rag.text import IncidentDoc, doc_from_incident, query_text_for_alert

__all__ = [
    "ImportCounts",
    "IncidentMemory",
    "Progress",
    "Similar",
    "doc_from_incident",
    "query_text_for_alert",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
"""Called as ``progress(done, total)``; ``total`` is None when it is not known."""

BATCH = 64  # texts per encode call
SAVE_EVERY = 5_000  # documents between index saves during a long import
HYBRID_DEPTH = 50  # candidates taken from each list before fusion
CATEGORY_POOL = 20  # candidates re-ordered by the RCA's category
COSINE_DEPTH = 200  # vector hits looked up for the cosine shown next to a fused result


@dataclass(frozen=True)
class ImportCounts:
    """What :meth:`IncidentMemory.add` did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        """Documents seen."""
        return self.added + self.updated + self.unchanged

    def to_dict(self) -> dict[str, int]:
        """``{"added", "updated", "unchanged"}``."""
        return asdict(self)


@dataclass(frozen=True)
class Similar:
    """A past incident found for a query.

    ``score`` is the cosine similarity of the query and the document (clamped to 0..1),
    also when hybrid retrieval ordered the results.
    """

    incident_id: str
    score: float
    title: str
    root_cause: str
    action: str
    result: str
    category: str
    object: str | None
    timestamp: str | None
    channel: str
    thread_ts: str

    def to_contract(self) -> dict[str, Any]:
        """The CONTRACTS §5 ``similar`` item (score rounded to 3 decimals)."""
        return {
            "incident_id": self.incident_id,
            "score": round(self.score, 3),
            "root_cause": self.root_cause,
            "action": self.action,
            "result": self.result,
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field (score rounded to 3 decimals)."""
        return {**asdict(self), "score": round(self.score, 3)}


class IncidentMemory:
    """Past incidents: store, embed, search. Call :meth:`open` (or ``aopen``) first.

    Args:
        memory_dir: Directory of ``history.db`` and ``index.faiss``.
        encoder: Turns texts into unit vectors (:mod:`rag.embed`).
        exact_max: Up to this many vectors the index searches exactly (flat); above, HNSW.
        hybrid: Default for :meth:`search`: fuse FTS5 bm25 with the vector ranking.
    """

    def __init__(
        self,
        memory_dir: Path,
        encoder: Encoder,
        *,
        exact_max: int = 20_000,
        hybrid: bool = False,
    ) -> None:
        self.memory_dir = Path(memory_dir)
        self.encoder = encoder
        self.exact_max = exact_max
        self.hybrid = hybrid
        self.repaired = 0  # documents :meth:`open` had to (re-)embed
        self.stale_reason: str | None = None  # why :meth:`open` found the index stale
        self._docs: DocStore | None = None
        self._index: VectorIndex | None = None
        self._data_version = 0

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def docs(self) -> DocStore:
        """The documents database (open)."""
        if self._docs is None:
            raise RuntimeError("IncidentMemory is not open: call open() first")
        return self._docs

    @property
    def index(self) -> VectorIndex:
        """The vector index (open)."""
        if self._index is None:
            raise RuntimeError("IncidentMemory is not open: call open() first")
        return self._index

    def open(self, progress: Progress | None = None, *, repair: bool = True) -> IncidentMemory:
        """Open the database and the index, repairing the index from the database if needed.

        Args:
            progress: Told about re-embedding, when the index needs repair.
            repair: False opens as found (``stats``, or ``reindex`` which rebuilds anyway);
                :attr:`stale_reason` then still says whether the index is stale.

        Raises:
            StoreError: when the database cannot be opened.
        """
        if self._docs is not None:
            return self
        self._docs = DocStore.open(self.memory_dir / "history.db")
        self._index = self._load_index()
        self.stale_reason = self._index.stale_reason if self._docs.count() else None
        if repair:
            self._repair(progress)
        self._data_version = self._docs.data_version()
        return self

    def refresh(self) -> bool:
        """Pick up what another process (``incident-bot history import``) committed.

        Cheap when nothing changed (one PRAGMA). Otherwise the index is reloaded from its
        file and repaired as on :meth:`open`. :meth:`search` and :meth:`add` call this.

        Returns:
            True when the database had changed.
        """
        version = self.docs.data_version()
        if version == self._data_version:
            return False
        log.info("incident memory changed on disk: reloading the index")
        self._index = self._load_index()
        self._repair(None)
        self._data_version = self.docs.data_version()
        return True

    def _load_index(self) -> VectorIndex:
        return VectorIndex.open(
            self.memory_dir / "index.faiss",
            model_id=self.encoder.model_id,
            dim=self.encoder.dim,
            exact_max=self.exact_max,
        )

    def close(self) -> None:
        """Save the index if it has unsaved changes and close the database."""
        if self._index is not None and self._index.dirty:
            self._index.save()
        if self._docs is not None:
            self._docs.close()
        self._docs = self._index = None

    def __enter__(self) -> IncidentMemory:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repair(self, progress: Progress | None) -> None:
        self.repaired = 0
        live = self.docs.live_ids()
        if self.index.stale_reason is not None:
            if live:
                self.stale_reason = self.index.stale_reason
                log.info("rebuilding the incident index: %s", self.stale_reason)
                self.repaired = self.reindex(progress)
            return
        indexed = self.index.ids()
        extra = indexed - live
        if extra:
            self.index.remove(sorted(extra))
        todo = sorted(set(self.docs.pending(self.encoder.model_id)) | (live - indexed))
        if len(todo) > len(live) // 2 and len(todo) > BATCH:
            self.stale_reason = f"{len(todo)} of {len(live)} documents not embedded"
            self.repaired = self.reindex(progress)
            return
        if todo:
            log.info("embedding %d incident documents missing from the index", len(todo))
            self._embed_ids(todo, progress)
            self.repaired = len(todo)
        elif extra:
            self.index.save()

    # -- writing -------------------------------------------------------------------------

    def add(self, docs: Iterable[IncidentDoc], progress: Progress | None = None) -> ImportCounts:
        """Store documents and embed the new or changed ones.

        Each document is committed on its own; vectors are computed in batches of
        :data:`BATCH` and the index is saved every :data:`SAVE_EVERY` documents and at the
        end. Idempotent on ``incident_id``.
        """
        self.refresh()
        total = len(docs) if isinstance(docs, Sized) else None
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        batch: list[tuple[int, str, str]] = []
        done: list[tuple[int, str]] = []
        seen = 0
        for doc in docs:
            put = self.docs.put(doc)
            counts[put.status] += 1
            if put.model_id != self.encoder.model_id:
                batch.append((put.rowid, put.text, put.text_hash))
            if len(batch) >= BATCH:
                done += self._embed(batch)
                batch = []
            seen += 1
            if seen % SAVE_EVERY == 0:
                done += self._embed(batch)
                batch = []
                self._save(done)
            if progress is not None:
                progress(seen, total)
        done += self._embed(batch)
        self._save(done)
        return ImportCounts(**counts)

    def delete(self, incident_id: str) -> bool:
        """Forget a document; True when there was one."""
        rowid = self.docs.delete(incident_id)
        if rowid is None:
            return False
        self.index.remove([rowid])
        self.index.save()
        return True

    def correct(self, incident_id: str, root_cause: str, user_id: str) -> bool:
        """Replace a document's root cause with a person's correction and re-embed it.

        Returns:
            True when the document exists (and was corrected).

        Raises:
            ValueError: for an empty correction.
        """
        rowid = self.docs.correct_root_cause(incident_id, root_cause, user_id)
        if rowid is None:
            return False
        self._embed_ids([rowid], None)
        return True

    def feedback(
        self,
        incident_id: str,
        user_id: str,
        kind: str,
        text: str | None = None,
        *,
        category: str | None = None,
    ) -> None:
        """Record a 👍/👎/correction vote (see :meth:`DocStore.record_feedback`)."""
        self.docs.record_feedback(incident_id, user_id, kind, text, category=category)

    def from_incident(self, incident_id: str, **fields: Any) -> IncidentDoc:
        """Remember a resolved bot incident; ``fields`` as :func:`doc_from_incident`."""
        doc = doc_from_incident(incident_id, **fields)
        self.add([doc])
        return doc

    def reindex(self, progress: Progress | None = None) -> int:
        """Re-embed every live document and rebuild the index from scratch; returns the count."""
        rows = [(int(r["id"]), r["text"], r["text_hash"]) for r in self.docs.all_rows()]
        vectors = np.zeros((len(rows), self.encoder.dim), dtype=np.float32)
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            vectors[start : start + len(chunk)] = self.encoder.encode([r[1] for r in chunk])
            if progress is not None:
                progress(start + len(chunk), len(rows))
        self.index.rebuild([r[0] for r in rows], vectors)
        self._save([(r[0], r[2]) for r in rows])
        return len(rows)

    def _embed_ids(self, rowids: list[int], progress: Progress | None) -> None:
        texts = self.docs.texts(rowids)
        items = [(rowid, *texts[rowid]) for rowid in rowids if rowid in texts]
        done: list[tuple[int, str]] = []
        for start in range(0, len(items), BATCH):
            done += self._embed(items[start : start + BATCH])
            if len(done) >= SAVE_EVERY:
                self._save(done)
            if progress is not None:
                progress(min(start + BATCH, len(items)), len(items))
        self._save(done)

    def _embed(self, batch: list[tuple[int, str, str]]) -> list[tuple[int, str]]:
        if not batch:
            return []
        vectors = self.encoder.encode([text for _, text, _ in batch])
        self.index.add([rowid for rowid, _, _ in batch], vectors)
        return [(rowid, text_hash) for rowid, _, text_hash in batch]

    def _save(self, done: list[tuple[int, str]]) -> None:
        """Save the index, then mark what it now holds as embedded (in that order)."""
        if self.index.dirty:
            self.index.save()
        if done:
            self.docs.mark_embedded(done, self.encoder.model_id)
            done.clear()

    # -- reading -------------------------------------------------------------------------

    def search(
        self,
        text: str,
        *,
        top: int = 5,
        min_score: float = 0.0,
        hybrid: bool | None = None,
        exclude: Collection[str] = (),
        category: str | None = None,
    ) -> list[Similar]:
        """The past incidents most similar to ``text`` (masked before use), best first.

        Args:
            text: Free text or an alert summary (:func:`query_text_for_alert`).
            top: At most this many results.
            min_score: Leave out results whose cosine similarity is below this.
            hybrid: Fuse the vector ranking with FTS5 bm25 by reciprocal rank; None uses
                the memory's default. The score shown stays the cosine.
            exclude: Incident ids to leave out (e.g. the incident being analysed).
            category: The RCA's category, when known: among the best ``CATEGORY_POOL``
                candidates, documents of that category come first (order otherwise kept).
                On the labeled set this raised hybrid recall@5 from 0.86 to 0.885 for
                queries that carry the category (bench/rag.py).
        """
        query = mask(text.strip())
        self.refresh()
        if not query or top <= 0 or len(self.index) == 0:
            return []
        qvec = np.asarray(self.encoder.encode([query]), dtype=np.float32)[0]
        use_hybrid = self.hybrid if hybrid is None else hybrid
        if use_hybrid:
            depth = max(HYBRID_DEPTH, top * 5)
            hits = self.index.search(qvec, max(COSINE_DEPTH, depth))
            lexical = self.docs.fts_search(query, limit=depth)
            fused = rrf([[i for i, _ in hits[:depth]], [i for i, _ in lexical]])
            order = [i for i, _ in fused]
        else:
            width = max(top * 2, CATEGORY_POOL if category else 0)
            hits = self.index.search(qvec, width + len(exclude))
            order = [i for i, _ in hits]
        cosine = {int(i): float(s) for i, s in hits}
        docs = self.docs.get_many(order)
        picked = [i for i in order if i in docs and docs[i].incident_id not in exclude]
        if category and category != "unknown":
            pool = picked[:CATEGORY_POOL]
            same = [i for i in pool if docs[i].category == category]
            picked = same + [i for i in pool if i not in set(same)] + picked[CATEGORY_POOL:]
        missing = [i for i in picked[: top * 2] if i not in cosine]
        if missing:  # lexical-only hits: their cosine is computed, never guessed
            texts = self.docs.texts(missing)
            vecs = self.encoder.encode([texts[i][0] for i in missing])
            cosine.update(zip(missing, (float(v) for v in vecs @ qvec), strict=True))
        out: list[Similar] = []
        for rowid in picked:
            score = min(1.0, max(0.0, cosine.get(rowid, 0.0)))
            if score < min_score:
                continue
            out.append(_similar(docs[rowid], score))
            if len(out) == top:
                break
        return out

    def count(self) -> int:
        """Live documents."""
        return self.docs.count()

    def stats(self) -> dict[str, Any]:
        """Document, feedback and index figures (for ``incident-bot stats`` and /metrics)."""
        out: dict[str, Any] = dict(self.docs.stats())
        out["pending_embed"] = len(self.docs.pending(self.encoder.model_id))
        out["index"] = {
            "kind": self.index.kind,
            "size": len(self.index),
            "model_id": self.encoder.model_id,
            "dim": self.encoder.dim,
            "path": str(self.memory_dir / "index.faiss"),
        }
        out["hybrid"] = self.hybrid
        return out

    def learning(self) -> LearningStats:
        """MTTR, action success and RCA acceptance over the memory (:mod:`rag.learning`)."""
        return compute_learning(self.docs.metric_rows(), self.docs.feedback_rows())

    # -- async (the bot) -----------------------------------------------------------------

    async def aopen(self) -> IncidentMemory:
        """:meth:`open` in a worker thread (it may re-embed the whole memory)."""
        return await asyncio.to_thread(self.open)

    async def aclose(self) -> None:
        """:meth:`close` in a worker thread."""
        await asyncio.to_thread(self.close)

    async def asearch(self, text: str, **options: Any) -> list[Similar]:
        """:meth:`search` on the memory's worker thread."""
        return await self.docs.call(self.search, text, **options)

    async def aadd(self, docs: Iterable[IncidentDoc]) -> ImportCounts:
        """:meth:`add` on the memory's worker thread."""
        return await self.docs.call(self.add, list(docs))

    async def adelete(self, incident_id: str) -> bool:
        """:meth:`delete` on the memory's worker thread."""
        return await self.docs.call(self.delete, incident_id)

    async def acorrect(self, incident_id: str, root_cause: str, user_id: str) -> bool:
        """:meth:`correct` on the memory's worker thread."""
        return await self.docs.call(self.correct, incident_id, root_cause, user_id)

    async def afeedback(self, incident_id: str, user_id: str, kind: str, **options: Any) -> None:
        """:meth:`feedback` on the memory's worker thread."""
        await self.docs.call(self.feedback, incident_id, user_id, kind, **options)

    async def afrom_incident(self, incident_id: str, **fields: Any) -> IncidentDoc:
        """:meth:`from_incident` on the memory's worker thread."""
        return await self.docs.call(self.from_incident, incident_id, **fields)


def _similar(doc: IncidentDoc, score: float) -> Similar:
    return Similar(
        incident_id=doc.incident_id,
        score=score,
        title=doc.title,
        root_cause=doc.root_cause,
        action=doc.action,
        result=doc.result,
        category=doc.category,
        object=doc.object,
        timestamp=doc.timestamp,
        channel=doc.channel,
        thread_ts=doc.thread_ts,
    )
