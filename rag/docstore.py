"""The incident memory's documents: SQLite, the source of truth the FAISS index is built from.

One file, ``<memory_dir>/history.db``, in WAL mode with ``synchronous=FULL`` (as
:mod:`bot.store`). Tables:

- ``docs``: one row per incident document. ``id`` (the rowid) is also the document's id in
  the vector index; it is never reused (AUTOINCREMENT, and deletes are soft), so a vector
  left behind by a crash can never be mistaken for another document's. ``text`` is the
  embedded text (:func:`rag.text.embed_text`), ``model_id`` the model whose vector of that
  text is in the saved index — NULL means "to (re-)embed": set when the text changes, when
  the document is deleted, and filled in only after the index holding the new vector was
  saved. A crash anywhere therefore leaves at worst a few documents to re-embed on the next
  open, never a wrong vector.
- ``feedback``: 👍/👎 votes on RCAs and root-cause corrections, with who and when.
- ``docs_fts``: an FTS5 index over ``text`` (external content, kept in sync by triggers).

Free-text fields are stored masked (:meth:`rag.text.IncidentDoc.masked`): what the memory
shows in Slack or the CLI is what it embedded. A human correction of a root cause sticks:
re-importing the same document later does not overwrite it.

All access to one instance happens on one thread at a time: synchronous callers (the CLI)
call the methods directly; the bot goes through :meth:`DocStore.call`, which runs them on the
store's single worker thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.masking import mask
from bot.sqlite import ThreadedSQLite, connect_memory, open_wal
from rag.text import IncidentDoc, embed_text

Status = Literal["added", "updated", "unchanged"]
FEEDBACK_KINDS = ("up", "down", "correction")
FTS_MAX_TOKENS = 64

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,      -- also the vector id in the FAISS index
    incident_id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    alertname TEXT NOT NULL DEFAULT '',
    namespace TEXT NOT NULL DEFAULT '',
    object TEXT,
    category TEXT NOT NULL,
    root_cause TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL,
    timestamp TEXT,
    resolved_at TEXT,
    channel TEXT NOT NULL DEFAULT '',
    thread_ts TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT 'import',
    text TEXT NOT NULL,                        -- rag.text.embed_text of the masked document
    text_hash TEXT NOT NULL,
    model_id TEXT,                             -- model of its vector in the index; NULL: to embed
    corrected_by TEXT,
    corrected_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS docs_live ON docs(deleted, model_id);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('up', 'down', 'correction')),
    text TEXT,
    category TEXT,                             -- the RCA's category when the vote was cast
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_incident ON feedback(incident_id, id);
CREATE VIRTUAL TABLE IF NOT EXISTS docs_fts USING fts5(
    text, content='docs', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS docs_fts_insert AFTER INSERT ON docs BEGIN
    INSERT INTO docs_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS docs_fts_delete AFTER DELETE ON docs BEGIN
    INSERT INTO docs_fts (docs_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER IF NOT EXISTS docs_fts_update AFTER UPDATE OF text ON docs BEGIN
    INSERT INTO docs_fts (docs_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO docs_fts (rowid, text) VALUES (new.id, new.text);
END;
"""

# The document columns, in IncidentDoc's field order.
_DOC_FIELDS = tuple(f.name for f in dataclasses.fields(IncidentDoc))
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class PutResult:
    """What :meth:`DocStore.put` did to one document.

    Attributes:
        status: added (new, or a deleted one back), updated, or unchanged.
        rowid: The document's id (also its vector id).
        text: Its embedded text.
        text_hash: sha256 of ``text``.
        model_id: The model its current vector was made with; None when it needs one.
    """

    status: Status
    rowid: int
    text: str
    text_hash: str
    model_id: str | None


class DocStore(ThreadedSQLite):
    """The documents database. Use :meth:`open` (file) or :meth:`memory` (tests).

    :meth:`call`, :meth:`close` and :meth:`transaction` come from
    :class:`bot.sqlite.ThreadedSQLite`.
    """

    def __init__(self, conn: sqlite3.Connection, *, clock: Callable[[], float] = time.time):
        super().__init__(conn, thread_name="docstore")
        self._clock = clock
        self.conn.executescript(SCHEMA)

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], float] = time.time) -> DocStore:
        """Open (creating if needed) the database at ``path`` in WAL mode.

        Raises:
            StoreError: when the file cannot be created or opened.
        """
        return open_wal(path, lambda conn: cls(conn, clock=clock))

    @classmethod
    def memory(cls) -> DocStore:
        """An in-memory store for tests."""
        return cls(connect_memory())

    # -- documents -----------------------------------------------------------------------

    def upsert(self, doc: IncidentDoc) -> Status:
        """Add or update ``doc`` (idempotent on ``incident_id``); one transaction."""
        return self.put(doc).status

    def put(self, doc: IncidentDoc) -> PutResult:
        """Add or update ``doc`` and say what changed (one transaction).

        A changed document keeps its rowid. Its vector is invalidated (``model_id`` NULL)
        only when its embedded text changed, or when it comes back after a delete.
        """
        doc = doc.masked()
        now = self._clock()
        with self.transaction():
            old = self._row("SELECT * FROM docs WHERE incident_id = ?", doc.incident_id)
            if old is not None and old["corrected_by"]:
                doc = dataclasses.replace(doc, root_cause=old["root_cause"])
            text = embed_text(doc)
            text_hash = _hash(text)
            values = {name: getattr(doc, name) for name in _DOC_FIELDS}
            if old is None:
                cur = self.conn.execute(
                    f"INSERT INTO docs ({', '.join(values)}, text, text_hash, created_at, "
                    f"updated_at) VALUES ({', '.join('?' * (len(values) + 4))})",
                    (*values.values(), text, text_hash, now, now),
                )
                assert cur.lastrowid is not None
                return PutResult("added", cur.lastrowid, text, text_hash, None)
            rowid = int(old["id"])
            same = all(old[k] == v for k, v in values.items()) and old["text_hash"] == text_hash
            if same and not old["deleted"]:
                return PutResult("unchanged", rowid, text, text_hash, old["model_id"])
            keep_vector = old["text_hash"] == text_hash and not old["deleted"]
            model_id = old["model_id"] if keep_vector else None
            self.conn.execute(
                f"UPDATE docs SET {', '.join(f'{k} = ?' for k in values)}, text = ?, "
                "text_hash = ?, model_id = ?, updated_at = ?, deleted = 0 WHERE id = ?",
                (*values.values(), text, text_hash, model_id, now, rowid),
            )
            status: Status = "added" if old["deleted"] else "updated"
            return PutResult(status, rowid, text, text_hash, model_id)

    def get(self, incident_id: str) -> IncidentDoc | None:
        """The live document with this id."""
        row = self._row(
            "SELECT * FROM docs WHERE incident_id = ? AND deleted = 0", incident_id.strip()
        )
        return row_to_doc(row) if row else None

    def rowid_of(self, incident_id: str) -> int | None:
        """The rowid (vector id) of a live document."""
        row = self.conn.execute(
            "SELECT id FROM docs WHERE incident_id = ? AND deleted = 0", (incident_id.strip(),)
        ).fetchone()
        return int(row[0]) if row else None

    def get_many(self, rowids: Iterable[int]) -> dict[int, IncidentDoc]:
        """Live documents by rowid (missing or deleted ids are left out)."""
        wanted = list(dict.fromkeys(int(r) for r in rowids))
        found: dict[int, IncidentDoc] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT * FROM docs WHERE deleted = 0 AND id IN ({marks})"
            for row in self.db.query(sql, chunk):
                found[int(row["id"])] = row_to_doc(row)
        return found

    def texts(self, rowids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """``rowid -> (text, text_hash)`` of live documents."""
        wanted = list(dict.fromkeys(int(r) for r in rowids))
        found: dict[int, tuple[str, str]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT id, text, text_hash FROM docs WHERE deleted = 0 AND id IN ({marks})",
                chunk,
            )
            found.update({int(r[0]): (r[1], r[2]) for r in rows})
        return found

    def delete(self, incident_id: str) -> int | None:
        """Remove a document from the memory; returns its rowid, or None if it was not there.

        The row stays (``deleted = 1``) so its rowid is never handed to another document.
        """
        with self.transaction():
            rowid = self.rowid_of(incident_id)
            if rowid is None:
                return None
            self.conn.execute(
                "UPDATE docs SET deleted = 1, model_id = NULL, updated_at = ? WHERE id = ?",
                (self._clock(), rowid),
            )
            return rowid

    def all_rows(self) -> Iterator[dict[str, Any]]:
        """Every live document row (all columns), in rowid order, fetched in chunks."""
        last = 0
        while True:
            rows = list(
                self.db.query(
                    "SELECT * FROM docs WHERE deleted = 0 AND id > ? ORDER BY id LIMIT 1000",
                    [last],
                )
            )
            if not rows:
                return
            yield from rows
            last = int(rows[-1]["id"])

    def metric_rows(self) -> list[dict[str, Any]]:
        """``category, timestamp, resolved_at, action, result`` of every live document."""
        return list(
            self.db.query(
                "SELECT category, timestamp, resolved_at, action, result FROM docs "
                "WHERE deleted = 0 ORDER BY id"
            )
        )

    def live_ids(self) -> set[int]:
        """Rowids of every live document."""
        return {int(r[0]) for r in self.conn.execute("SELECT id FROM docs WHERE deleted = 0")}

    def pending(self, model_id: str) -> list[int]:
        """Live documents whose vector is missing or made with another model."""
        rows = self.conn.execute(
            "SELECT id FROM docs WHERE deleted = 0 AND (model_id IS NULL OR model_id != ?) "
            "ORDER BY id",
            (model_id,),
        )
        return [int(r[0]) for r in rows]

    def mark_embedded(self, items: Iterable[tuple[int, str]], model_id: str) -> None:
        """Record that the saved index holds ``model_id`` vectors for ``(rowid, text_hash)``.

        A row whose text changed since it was embedded keeps its NULL ``model_id``.
        """
        with self.transaction():
            self.conn.executemany(
                "UPDATE docs SET model_id = ? WHERE id = ? AND text_hash = ? AND deleted = 0",
                ((model_id, rowid, text_hash) for rowid, text_hash in items),
            )

    def data_version(self) -> int:
        """Changes whenever *another* connection (e.g. the CLI) committed to the database."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def count(self) -> int:
        """How many live documents the memory holds."""
        return int(self.conn.execute("SELECT count(*) FROM docs WHERE deleted = 0").fetchone()[0])

    def fts_search(self, text: str, limit: int = 50) -> list[tuple[int, float]]:
        """Full-text search over the embedded texts: ``[(rowid, score)]``, best first.

        The score is FTS5's bm25 negated (higher is better). The query is reduced to its
        words, each quoted and OR-ed, so FTS5 syntax in user text (quotes, ``*``, ``(``,
        ``NEAR``, ``-``) is matched as words and never raises.
        """
        query = fts_query(text)
        if not query:
            return []
        rows = self.conn.execute(
            "SELECT docs_fts.rowid, bm25(docs_fts) FROM docs_fts "
            "JOIN docs ON docs.id = docs_fts.rowid "
            "WHERE docs_fts MATCH ? AND docs.deleted = 0 ORDER BY bm25(docs_fts) LIMIT ?",
            (query, limit),
        )
        return [(int(r[0]), -float(r[1])) for r in rows]

    # -- feedback ------------------------------------------------------------------------

    def record_feedback(
        self,
        incident_id: str,
        user_id: str,
        kind: str,
        text: str | None = None,
        *,
        category: str | None = None,
    ) -> None:
        """Record a 👍 (``up``), 👎 (``down``) or ``correction`` by ``user_id``.

        Args:
            incident_id: The incident whose RCA was judged.
            user_id: Who judged it (Slack user id).
            kind: up | down | correction.
            text: The corrected root cause, or a comment.
            category: The RCA's category at the time (used when the incident is not, or
                not yet, a document of the memory).

        Raises:
            ValueError: for an unknown ``kind``.
        """
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(FEEDBACK_KINDS)}; got {kind!r}")
        self.db.table("feedback").insert(
            {
                "incident_id": incident_id,
                "user_id": user_id,
                "kind": kind,
                "text": text,
                "category": category,
                "at": self._clock(),
            }
        )

    def correct_root_cause(self, incident_id: str, text: str, user_id: str) -> int | None:
        """Replace a document's root cause with a person's correction.

        Records the correction as feedback (who, when, what) and marks the document for
        re-embedding. Returns its rowid, or None when no live document has that id.

        Raises:
            ValueError: for an empty correction.
        """
        fixed = mask(text.strip())
        if not fixed:
            raise ValueError("root_cause: the correction is empty")
        now = self._clock()
        with self.transaction():
            row = self._row(
                "SELECT * FROM docs WHERE incident_id = ? AND deleted = 0", incident_id.strip()
            )
            if row is None:
                return None
            doc = dataclasses.replace(row_to_doc(row), root_cause=fixed)
            new_text = embed_text(doc)
            self.conn.execute(
                "UPDATE docs SET root_cause = ?, text = ?, text_hash = ?, model_id = NULL, "
                "corrected_by = ?, corrected_at = ?, updated_at = ? WHERE id = ?",
                (fixed, new_text, _hash(new_text), user_id, now, now, row["id"]),
            )
            self.conn.execute(
                "INSERT INTO feedback (incident_id, user_id, kind, text, category, at) "
                "VALUES (?, ?, 'correction', ?, ?, ?)",
                (doc.incident_id, user_id, fixed, doc.category, now),
            )
            return int(row["id"])

    def feedback_rows(self) -> list[dict[str, Any]]:
        """Every feedback row, oldest first, with the document's category when there is one.

        ``category`` is the vote's own category if it was recorded, else the document's,
        else None.
        """
        return list(
            self.db.query(
                "SELECT f.id, f.incident_id, f.user_id, f.kind, f.text, f.at, "
                "coalesce(f.category, d.category) AS category FROM feedback f "
                "LEFT JOIN docs d ON d.incident_id = f.incident_id ORDER BY f.id"
            )
        )

    def feedback_summary(self, incident_id: str | None = None) -> dict[str, int]:
        """``{"up", "down", "correction"}`` counts, for one incident or all.

        Only each person's latest vote on an incident counts, so changing one's mind
        does not vote twice.
        """
        only, args = ("AND incident_id = ?", [incident_id]) if incident_id else ("", [])
        sql = (
            "SELECT kind, count(*) FROM feedback WHERE id IN ("
            "  SELECT max(id) FROM feedback WHERE kind IN ('up', 'down') "
            f" {only} GROUP BY incident_id, user_id"
            f") OR (kind = 'correction' {only}) GROUP BY kind"
        )
        counts = dict.fromkeys(FEEDBACK_KINDS, 0)
        for kind, n in self.conn.execute(sql, args * 2):
            counts[kind] = int(n)
        return counts

    def stats(self) -> dict[str, int]:
        """Document and feedback counts."""
        row = self.conn.execute(
            "SELECT coalesce(sum(deleted = 0), 0), coalesce(sum(deleted = 1), 0), "
            "coalesce(sum(deleted = 0 AND corrected_by IS NOT NULL), 0) FROM docs"
        ).fetchone()
        feedback = self.conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
        return {
            "docs": int(row[0]),
            "deleted": int(row[1]),
            "corrected": int(row[2]),
            "feedback": int(feedback),
        }

    # -- helpers -------------------------------------------------------------------------

    def _row(self, sql: str, *args: Any) -> dict[str, Any] | None:
        cur = self.conn.execute(sql, args)
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression for free text: its distinct words, quoted, OR-ed.

    Words are ``\\w+`` runs, so they never contain a double quote and quoting them makes
    every FTS5 operator in user text a plain word.
    """
    words = list(dict.fromkeys(w.lower() for w in _TOKEN.findall(text)))[:FTS_MAX_TOKENS]
    return " OR ".join(f'"{w}"' for w in words)


def row_to_doc(row: dict[str, Any]) -> IncidentDoc:
    """The :class:`IncidentDoc` stored in a ``docs`` row."""
    return IncidentDoc(**{name: row[name] for name in _DOC_FIELDS})


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
