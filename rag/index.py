"""The vector index of the incident memory: FAISS, one file, never two models mixed.

Vectors are unit length, so inner product = cosine similarity. Ids are SQLite rowids
(non-negative int64); the SQLite store is the source of truth and the index can always be
rebuilt from it.

**Flat or HNSW.** Up to ``exact_max`` (:data:`EXACT_MAX` = 20,000) live vectors the index is
an exact ``IndexIDMap2(IndexFlatIP)``: at 20k a query scans 30 MB in a few ms, and exact
search has no recall question. Above it, ``IndexIDMap2(IndexHNSWFlat)``: a flat scan of 100k
costs ~15-40 ms per query and of 1M ~170 ms, HNSW well under 1 ms. An ``add`` that crosses
``exact_max`` converts flat → HNSW; :meth:`VectorIndex.rebuild` (and compaction) pick the kind
by size again, so shrinking below the threshold goes back to flat.

**HNSW parameters** come from ``bench/hnsw_params.py``: 100k clustered 384-d unit vectors
(2,000 centres in 50 topics, nearest-neighbour cosine ~0.83 as for paraphrased incident
texts; random vectors would make every graph look bad), 1,000 held-out queries, recall@5
against exact search, single-query latency p50/p99 in ms on 2 cores shared with other work
(noisy). Exact flat search on the same data: p50 14 ms, p99 41 ms.

=========  ===========  ===========  ===========  ===========  ============
M=32       efSearch 32  efSearch 64  efSearch 128 efSearch 256 build (100k)
=========  ===========  ===========  ===========  ===========  ============
efC 40     0.963 / 0.16 0.968 / 0.29 0.975 / 0.48 0.979 / 0.71  6.3 s
efC 80     0.983 / 0.17 0.995 / 0.28 0.999 / 0.80 0.999 / 0.64 11.7 s
efC 120    0.992 / 0.18 1.000 / 0.32 1.000 / 0.48 1.000 / 0.70 16.0 s
=========  ===========  ===========  ===========  ===========  ============

(recall@5 / p99 ms). With efConstruction 40 (the FAISS default) recall stalls near 0.98
whatever efSearch: the graph itself misses neighbours. efConstruction 80 fixes that for
1.9x the build time; 120 gains little more for another 1.4x. efSearch 128 then gives
recall 0.999 at p99 < 1 ms, far inside a 5 ms budget, leaving margin for real embeddings
that cluster less cleanly than the synthetic ones. Chosen: M=32, efConstruction=80,
efSearch=128.

**Removals.** HNSW cannot delete. A removed (or replaced) vector becomes a *tombstone*: its
label in the id map is overwritten with a negative value (``-2 - position``), so the
tombstone is part of the serialized index itself and survives save/open. Searches pass an
``IDSelectorRange(0, 2**63 - 1)``, so HNSW walks through tombstones but never returns them
and still fills ``k`` live results. When tombstones exceed :data:`TOMBSTONE_RATIO` (10 %) of
the stored vectors, the index is rebuilt from the live vectors, read back chunk by chunk
from the HNSW's own flat storage (no second copy of the data in RAM). The flat index
deletes for real.

**File.** One file: ``MAGIC``, a 4-byte header length, a JSON header (format version,
model_id, dim, kind, live count, stored count, created, payload length and CRC-32) and the
``faiss.serialize_index`` bytes. Header and vectors therefore cannot disagree. :meth:`save`
writes a temp file in the same directory, fsyncs it, ``os.replace``-s it over the old file
and fsyncs the directory, so a crash at any moment leaves the old or the new file, both
complete. Leftover temp files of dead processes are ignored by :meth:`open` and deleted by
the next :meth:`save`. :meth:`open` never raises for a bad file: an index built for another
model or dimension, or one that fails its checks, loads as an empty index with
``stale_reason`` set, and the caller re-embeds everything.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import faiss
import numpy as np

__all__ = [
    "EXACT_MAX",
    "FORMAT_VERSION",
    "HNSW_EF_CONSTRUCTION",
    "HNSW_EF_SEARCH",
    "HNSW_M",
    "TOMBSTONE_RATIO",
    "IndexMismatch",
    "VectorIndex",
]

EXACT_MAX = 20_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
TOMBSTONE_RATIO = 0.10
FORMAT_VERSION = 1

MAGIC = b"IBVECIDX"
_LENGTH = struct.Struct("<I")
_MAX_HEADER = 1 << 20
_CHUNK = 50_000
_ID_MAX = int(np.iinfo(np.int64).max)

Ids = Sequence[int] | np.ndarray
"""Vector ids: a sequence of ints or a one-dimensional integer array."""

# One OpenMP thread: the bot searches one query at a time, and on a busy 2-core node a
# multi-threaded search waits for a second core (bench/rag.py: 100k HNSW p99 8.0 ms with the
# default 2 threads, 2.2 ms with one; 10k flat p50 5.9 → 0.5 ms). Builds are rare.
faiss.omp_set_num_threads(1)


class IndexMismatch(Exception):
    """The index file cannot be used: another model, another dimension, or unreadable."""


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VectorIndex:
    """Ids → unit vectors, with exact or HNSW inner-product search. See the module docstring.

    Create with :meth:`open`. Methods are serialised by a lock, so the index may be shared
    between threads (e.g. ``asyncio.to_thread`` workers).

    Attributes:
        path: The index file.
        model_id: Encoder the vectors come from.
        dim: Vector length.
        stale_reason: Why :meth:`open` started empty (``None`` when the file loaded);
            cleared by :meth:`rebuild`.
        dirty: Changed since the last :meth:`save` (or load).
    """

    def __init__(self, path: Path, *, model_id: str, dim: int, exact_max: int = EXACT_MAX) -> None:
        if dim < 1:
            raise ValueError(f"vector dimension must be positive, got {dim}")
        self.path = Path(path)
        self.model_id = model_id
        self.dim = dim
        self.exact_max = exact_max
        self.stale_reason: str | None = None
        self.dirty = False
        self._lock = threading.RLock()
        self._dead = 0
        self._index, self._inner = self._empty("flat")

    @classmethod
    def open(
        cls, path: Path, *, model_id: str, dim: int, exact_max: int = EXACT_MAX
    ) -> VectorIndex:
        """Load ``path`` if it was built for ``model_id``/``dim``; else an empty, stale index.

        Never raises for a missing, foreign or damaged file: ``stale_reason`` says which
        ("no index file", "model changed: A → B", "dimension changed: 256 → 384",
        "unreadable index: …") and the caller must re-embed everything.
        """
        index = cls(path, model_id=model_id, dim=dim, exact_max=exact_max)
        try:
            index._load()
        except FileNotFoundError:
            index.stale_reason = "no index file"
        except IndexMismatch as exc:
            index.stale_reason = str(exc)
        except OSError as exc:  # a directory, no permission, I/O error
            index.stale_reason = f"unreadable index: {exc}"
        return index

    # ----------------------------------------------------------------- inspection

    @property
    def kind(self) -> str:
        """Either "flat" (exact search) or "hnsw"."""
        return "hnsw" if isinstance(self._inner, faiss.IndexHNSW) else "flat"

    @property
    def tombstones(self) -> int:
        """Removed or replaced vectors still stored in the HNSW graph (0 for flat)."""
        return self._dead

    def __len__(self) -> int:
        return int(self._index.ntotal) - self._dead

    def __repr__(self) -> str:
        return (
            f"VectorIndex({str(self.path)!r}, model_id={self.model_id!r}, dim={self.dim}, "
            f"kind={self.kind!r}, count={len(self)})"
        )

    def ids(self) -> set[int]:
        """The live ids."""
        with self._lock:
            labels = self._labels()
        return set(labels[labels >= 0].tolist())

    # -------------------------------------------------------------------- changes

    def add(self, ids: Ids, vectors: np.ndarray) -> None:
        """Insert or replace (upsert) ``vectors[i]`` under ``ids[i]``.

        Raises:
            ValueError: Negative or repeated ids, wrong shape, non-float or non-finite values.
        """
        keys = self._check_ids(ids, unique=True)
        rows = self._check_vectors(vectors, len(keys))
        if not len(keys):
            return
        with self._lock:
            present = keys[np.isin(keys, self._labels())]
            if self.kind == "flat":
                if len(present):
                    self._index.remove_ids(present)
                if len(self) + len(keys) > self.exact_max:
                    self._replace(chain(self._live_chunks(), [(keys, rows)]), len(self) + len(keys))
                else:
                    self._index.add_with_ids(rows, keys)
            else:
                if len(present):
                    self._tombstone(present)
                self._index.add_with_ids(rows, keys)
                self._maybe_compact()
            self.dirty = True

    def remove(self, ids: Ids) -> int:
        """Remove ``ids``; unknown ids are ignored. Returns how many were removed."""
        keys = np.unique(self._check_ids(ids, unique=False))
        if not len(keys):
            return 0
        with self._lock:
            if self.kind == "flat":
                removed = int(self._index.remove_ids(keys))
            else:
                removed = self._tombstone(keys)
                self._maybe_compact()
            if removed:
                self.dirty = True
            return removed

    def rebuild(self, ids: Ids, vectors: np.ndarray) -> None:
        """Replace the whole content; flat up to ``exact_max`` vectors, HNSW above."""
        keys = self._check_ids(ids, unique=True)
        rows = self._check_vectors(vectors, len(keys))
        with self._lock:
            self._replace([(keys, rows)], len(keys))
            self.stale_reason = None
            self.dirty = True

    # --------------------------------------------------------------------- search

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` ``(id, inner product)`` pairs for one query of shape ``(dim,)``, best
        first."""
        if not isinstance(vector, np.ndarray) or vector.shape != (self.dim,):
            shape = getattr(vector, "shape", type(vector).__name__)
            raise ValueError(f"query must have shape ({self.dim},), got {shape}")
        return self.search_many(vector[None, :], k)[0]

    def search_many(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """:meth:`search` for each row of ``vectors`` (shape ``(n, dim)``)."""
        queries = self._check_vectors(vectors, None)
        with self._lock:
            live = len(self)
            if k <= 0 or live == 0 or not len(queries):
                return [[] for _ in range(len(queries))]
            if self.kind == "flat":
                scores, labels = self._index.search(queries, min(k, live))
            else:
                scores, labels = self._search_hnsw(queries, min(k, live))
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(labels, scores, strict=True)
        ]

    def _search_hnsw(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ef = max(HNSW_EF_SEARCH, k)
        live_only = faiss.IDSelectorRange(0, _ID_MAX)
        while True:
            params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
            if self._dead:
                params.sel = live_only
            scores, labels = self._index.search(queries, k, params=params)
            # Tombstones can crowd the candidate list; widen it in the rare case that
            # costs results. ef ≥ stored vectors is an exhaustive walk: stop there.
            if (labels >= 0).sum(axis=1).min() >= k or ef >= self._index.ntotal:
                return scores, labels
            ef *= 4

    # ---------------------------------------------------------------- persistence

    def save(self) -> None:
        """Write the index atomically (temp file, fsync, rename, fsync the directory)."""
        with self._lock:
            payload = faiss.serialize_index(self._index)
            header = {
                "format": FORMAT_VERSION,
                "model_id": self.model_id,
                "dim": self.dim,
                "kind": self.kind,
                "count": len(self),
                "stored": int(self._index.ntotal),
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "payload_bytes": int(payload.nbytes),
                "payload_crc32": zlib.crc32(payload.data),
            }
            head = json.dumps(header, sort_keys=True).encode()
            directory = self.path.parent
            directory.mkdir(parents=True, exist_ok=True)
            self._clean_temp_files()
            temp = directory / f"{_temp_prefix(self.path)}{os.getpid()}-{secrets.token_hex(4)}"
            try:
                with open(temp, "wb") as fh:
                    fh.write(MAGIC + _LENGTH.pack(len(head)) + head)
                    fh.write(payload.data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temp, self.path)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            _fsync_dir(directory)
            self.dirty = False

    def _clean_temp_files(self) -> None:
        """Delete temp files left by processes that died while saving."""
        prefix = _temp_prefix(self.path)
        for leftover in self.path.parent.glob(f"{prefix}*"):
            pid_text = leftover.name[len(prefix) :].split("-", 1)[0]
            if pid_text.isdigit() and not _pid_alive(int(pid_text)):
                leftover.unlink(missing_ok=True)

    def _load(self) -> None:
        """Replace the content with the file's; raise IndexMismatch when it does not fit."""
        with open(self.path, "rb") as fh:
            try:
                header = self._read_header(fh)
            except IndexMismatch:
                raise
            except Exception as exc:
                raise IndexMismatch(f"unreadable index: {exc}") from exc
            if header["model_id"] != self.model_id:
                raise IndexMismatch(f"model changed: {header['model_id']} → {self.model_id}")
            if header["dim"] != self.dim:
                raise IndexMismatch(f"dimension changed: {header['dim']} → {self.dim}")
            try:
                index, inner, dead = self._read_payload(fh, header)
            except IndexMismatch:
                raise
            except Exception as exc:
                raise IndexMismatch(f"unreadable index: {exc}") from exc
        self._index, self._inner, self._dead = index, inner, dead

    @staticmethod
    def _read_header(fh: Any) -> dict[str, Any]:
        start = fh.read(len(MAGIC) + _LENGTH.size)
        if len(start) < len(MAGIC) + _LENGTH.size or not start.startswith(MAGIC):
            raise IndexMismatch("unreadable index: not an incident-bot vector index")
        (length,) = _LENGTH.unpack(start[len(MAGIC) :])
        if length > _MAX_HEADER:
            raise IndexMismatch(f"unreadable index: header of {length} bytes")
        header = json.loads(fh.read(length))
        if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
            found = header.get("format") if isinstance(header, dict) else None
            raise IndexMismatch(f"unreadable index: format {found}, expected {FORMAT_VERSION}")
        for field in ("model_id", "dim", "kind", "count", "stored", "payload_bytes"):
            if field not in header:
                raise IndexMismatch(f"unreadable index: header lacks {field}")
        return header

    def _read_payload(self, fh: Any, header: dict[str, Any]) -> tuple[Any, Any, int]:
        payload = np.fromfile(fh, dtype=np.uint8)
        if payload.nbytes != header["payload_bytes"]:
            raise IndexMismatch(
                f"unreadable index: {payload.nbytes} payload bytes, "
                f"header says {header['payload_bytes']} (truncated?)"
            )
        if zlib.crc32(payload.data) != header.get("payload_crc32"):
            raise IndexMismatch("unreadable index: payload checksum mismatch")
        index = faiss.deserialize_index(payload)
        if not isinstance(index, faiss.IndexIDMap2):
            raise IndexMismatch(f"unreadable index: unexpected {type(index).__name__}")
        inner: Any = faiss.downcast_index(index.index)
        kind = "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"
        if index.d != self.dim or kind != header["kind"] or index.ntotal != header["stored"]:
            raise IndexMismatch("unreadable index: header does not match the vectors")
        labels = faiss.vector_to_array(index.id_map)
        live = int((labels >= 0).sum())
        if live != header["count"]:
            raise IndexMismatch("unreadable index: live count does not match the header")
        if kind == "hnsw":
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        return index, inner, int(index.ntotal) - live

    # ------------------------------------------------------------------ internals

    def _empty(self, kind: str) -> tuple[Any, Any]:
        if kind == "flat":
            inner: Any = faiss.IndexFlatIP(self.dim)
        else:
            inner = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        return faiss.IndexIDMap2(inner), inner

    def _labels(self) -> np.ndarray:
        """Copy of the id map: position → id (negative for tombstones)."""
        labels: np.ndarray = faiss.vector_to_array(self._index.id_map)
        return labels

    def _tombstone(self, keys: np.ndarray) -> int:
        """Mark the stored vectors of ``keys`` dead (HNSW); returns how many."""
        labels = self._labels()
        positions = np.flatnonzero(np.isin(labels, keys))
        if not len(positions):
            return 0
        labels[positions] = -2 - positions
        faiss.copy_array_to_vector(labels, self._index.id_map)
        self._index.construct_rev_map()
        self._dead += len(positions)
        return len(positions)

    def _maybe_compact(self) -> None:
        if self._dead > TOMBSTONE_RATIO * self._index.ntotal:
            self._replace(self._live_chunks(), len(self))

    def _live_chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The live (ids, vectors), read back from the index in chunks."""
        labels = self._labels()
        for start in range(0, len(labels), _CHUNK):
            part = labels[start : start + _CHUNK]
            keep = part >= 0
            if keep.any():
                rows = self._inner.reconstruct_n(start, len(part))
                yield part[keep], np.ascontiguousarray(rows[keep])

    def _replace(self, chunks: Iterable[tuple[np.ndarray, np.ndarray]], total: int) -> None:
        """Build a fresh index of ``total`` vectors from ``chunks`` and swap it in."""
        index, inner = self._empty("hnsw" if total > self.exact_max else "flat")
        for keys, rows in chunks:
            if len(keys):
                index.add_with_ids(rows, keys)
        self._index, self._inner, self._dead = index, inner, 0

    @staticmethod
    def _check_ids(ids: Ids, *, unique: bool) -> np.ndarray:
        """Validated one-dimensional int64 copy of ``ids``."""
        given = np.asarray(ids)
        if given.size == 0:
            return np.zeros(0, dtype=np.int64)
        if given.ndim != 1 or given.dtype.kind not in "iu":
            raise ValueError(f"ids must be a flat sequence of integers, got {given.dtype}")
        if given.min() < 0 or given.max() > _ID_MAX:
            raise ValueError("ids must be non-negative int64 (SQLite rowids)")
        keys = given.astype(np.int64)
        if unique and len(np.unique(keys)) != len(keys):
            raise ValueError("ids must not repeat within one call")
        return keys

    def _check_vectors(self, vectors: np.ndarray, count: int | None) -> np.ndarray:
        """Validated ``(count, dim)`` float32 copy with unit-length rows."""
        if not isinstance(vectors, np.ndarray):
            raise ValueError(f"vectors must be a numpy array, got {type(vectors).__name__}")
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape (n, {self.dim}), got {vectors.shape}")
        if count is not None and vectors.shape[0] != count:
            raise ValueError(f"{vectors.shape[0]} vectors for {count} ids")
        if vectors.dtype.kind != "f":
            raise ValueError(f"vectors must be floating point, got {vectors.dtype}")
        rows = np.array(vectors, dtype=np.float32, order="C", copy=True)
        if not np.isfinite(rows).all():
            raise ValueError("vectors contain NaN or infinity")
        # Encoders already normalise; this keeps inner product = cosine whatever the caller.
        faiss.normalize_L2(rows)
        return rows
