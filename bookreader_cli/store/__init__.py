"""The SQLite store: every query the product runs lives in this package.

schema.py: tables, migrations and the connection settings; this module: the Store (books, chapters,
descriptions, locations, image rows and their rules); runs.py, locks.py and stats.py: the task-run record,
database locks, statistics and the health probe, as plain SQL on a connection (no sqlite-utils: fast
commands never import it).

One file, WAL mode, a busy timeout so several processes can share it. The schema is built with
sqlite-utils and versioned with PRAGMA user_version: each entry of MIGRATIONS runs once, in order, in a
transaction. Writers use `with store.transaction():` so a chapter or an image is stored whole or not at all.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bookreader_cli.books.model import Chapter, Paragraph
from bookreader_cli.errors import BadInput, NotFound
from bookreader_cli.images.statuses import COMPLETED, IMAGE_ROW_COLUMNS
from bookreader_cli.store.schema import BUSY_TIMEOUT_MS, MIGRATIONS, connect

__all__ = ["BUSY_TIMEOUT_MS", "MIGRATIONS", "Store", "connect"]


class Store:
    """Thin wrapper over one sqlite-utils Database; every query the product runs lives here."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = connect(path)
        except sqlite3.Error as exc:
            raise BadInput(f"cannot open database {path}: {exc}") from None
        self._db: Any = None  # sqlite_utils.Database, imported on first use
        self.path = path
        self.migrate()

    @property
    def db(self):
        """The sqlite-utils view of the connection, built on first use: importing sqlite_utils costs ~0.15 s,
        which `health`, `stats` and `runs` (plain SQL on `conn`) never pay once the schema is current."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def close(self) -> None:
        self.conn.close()

    def migrate(self) -> None:
        """Bring the schema up to date. The version is read again inside BEGIN IMMEDIATE, so of several
        processes opening a new home at once exactly one migrates; the others wait, then find it done."""
        if self._version() >= len(MIGRATIONS):
            return  # the usual case: nothing to write, no lock taken
        with self.transaction():
            version = self._version()
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(self.db)
                self.conn.execute(f"PRAGMA user_version = {number}")

    def _version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (nested calls join the outer one)."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---- books -------------------------------------------------------------------------------
    def book_by_sha(self, sha256: str) -> dict | None:
        rows = list(self.db.query("SELECT id FROM books WHERE sha256 = ?", [sha256]))
        return self.book(rows[0]["id"]) if rows else None

    def book(self, book_id: int) -> dict:
        rows = list(
            self.db.query(
                "SELECT id, sha256, path, file_name, file_size, file_mtime, format, title, title_source, authors, language, "
                "identifiers, publisher, date, notes, warnings, cover_media_type, length(cover) AS cover_bytes, "
                "imported_at, locations_chars FROM books WHERE id = ?",
                [book_id],
            )
        )
        if not rows:
            raise NotFound(f"no book with id {book_id}")
        return _decode(rows[0], "authors", "identifiers", "notes", "warnings")

    def resolve_book(self, ref: str) -> dict:
        """A book by numeric id or by a sha256 prefix (at least 8 hex digits).

        A reference of 8+ decimal digits can be either (about 2% of sha256s start with 8 decimal digits):
        both are tried, and one that names two different books is refused as ambiguous."""
        ref = str(ref).strip()
        ids: set[int] = set()
        if ref.isdigit():
            ids.update(r["id"] for r in self.db.query("SELECT id FROM books WHERE id = ?", [int(ref)]))
        if len(ref) >= 8 and all(c in "0123456789abcdef" for c in ref.lower()):
            ids.update(r["id"] for r in self.db.query("SELECT id FROM books WHERE sha256 LIKE ?", [ref.lower() + "%"]))
        if len(ids) > 1:
            raise BadInput(f"book reference {ref!r} is ambiguous: {len(ids)} books match (an id or a sha256 prefix)")
        if ids:
            return self.book(ids.pop())
        raise NotFound(f"no book with id {int(ref) if ref.isdigit() else repr(ref)}")

    def books(self) -> list[dict]:
        rows = self.db.query(
            "SELECT b.id, b.title, b.authors, b.language, b.format, b.file_name, b.sha256, b.imported_at, "
            "(SELECT count(*) FROM chapters c WHERE c.book_id = b.id) AS chapters, "
            "(SELECT coalesce(sum(char_count), 0) FROM chapters c WHERE c.book_id = b.id) AS chars, "
            "(SELECT count(*) FROM descriptions d WHERE d.book_id = b.id) AS descriptions "
            "FROM books b ORDER BY b.id"
        )
        return [_decode(r, "authors") for r in rows]

    def insert_book(self, meta: dict, chapters: list[dict], cover: bytes | None) -> int:
        return self.insert_or_get_book(meta, chapters, cover)[0]

    def insert_or_get_book(self, meta: dict, chapters: list[dict], cover: bytes | None) -> tuple[int, bool]:
        """(book id, True) for a new book; (the existing book's id, False) when a book with the same sha256
        is there already, even one another process inserted a moment ago: the look-up and the insert are
        one BEGIN IMMEDIATE transaction."""
        with self.transaction():
            existing = self.conn.execute("SELECT id FROM books WHERE sha256 = ?", [meta["sha256"]]).fetchone()
            if existing is not None:
                return existing[0], False
            row = dict(meta, cover=cover)
            for key in ("authors", "identifiers", "notes", "warnings"):
                row[key] = json.dumps(row.get(key) or [], ensure_ascii=False)
            book_id = self.db["books"].insert(row).last_pk
            self.db["chapters"].insert_all(
                [dict(ch, book_id=book_id, paragraphs=json.dumps(ch["paragraphs"])) for ch in chapters]
            )
        return book_id, True

    def remove_book(self, book_id: int) -> dict:
        self.book(book_id)
        with self.transaction():
            counts = {
                "descriptions": self.conn.execute("DELETE FROM descriptions WHERE book_id = ?", [book_id]).rowcount,
                "images": self.conn.execute("DELETE FROM images WHERE book_id = ?", [book_id]).rowcount,
            }
            self.conn.execute("DELETE FROM chapter_runs WHERE book_id = ?", [book_id])
            counts["chapters"] = self.conn.execute("DELETE FROM chapters WHERE book_id = ?", [book_id]).rowcount
            self.conn.execute("DELETE FROM books WHERE id = ?", [book_id])
        return counts

    # ---- chapters ----------------------------------------------------------------------------
    def chapters(self, book_id: int) -> list[Chapter]:
        """The book's chapters in order, as the model's Chapter (idx and id filled in)."""
        rows = self.db.query(
            "SELECT id, idx, title, source, text, paragraphs FROM chapters WHERE book_id = ? ORDER BY idx", [book_id]
        )
        return [_chapter(r) for r in rows]

    def chapter(self, book_id: int, idx: int) -> Chapter:
        rows = list(
            self.db.query(
                "SELECT id, idx, title, source, text, paragraphs FROM chapters WHERE book_id = ? AND idx = ?",
                [book_id, idx],
            )
        )
        if not rows:
            raise NotFound(f"book {book_id} has no chapter {idx}")
        return _chapter(rows[0])

    def chapter_totals(self, book_id: int) -> tuple[int, int]:
        """(chapters, characters) of a book, without reading its text."""
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(char_count), 0) FROM chapters WHERE book_id = ?", [book_id]
        ).fetchone()
        return row[0], row[1]

    # ---- descriptions and processing progress ---------------------------------------------------
    def store_chapter_descriptions(
        self, book_id: int, chapter: Chapter, descriptions: list[dict], run_key: str
    ) -> None:
        """Replace one chapter's descriptions and mark it done for `run_key`, in one transaction."""
        created = time.time()
        with self.transaction():
            self.conn.execute("DELETE FROM descriptions WHERE book_id = ? AND chapter_idx = ?", [book_id, chapter.idx])
            self.db["descriptions"].insert_all(
                [
                    {
                        "book_id": book_id,
                        "chapter_id": chapter.id,
                        "chapter_idx": chapter.idx,
                        "start": d["start"],
                        "end": d["end"],
                        "text": d["text"],
                        "type": d["type"],
                        "priority": d["priority"],
                        "confidence": d["confidence"],
                        "consensus": d["consensus"],
                        "processors": json.dumps(d["processors"]),
                        "cfi": d.get("cfi"),
                        "created_at": created,
                    }
                    for d in descriptions
                ]
            )
            self.db["chapter_runs"].upsert(
                {
                    "book_id": book_id,
                    "chapter_idx": chapter.idx,
                    "run_key": run_key,
                    "descriptions": len(descriptions),
                    "done_at": created,
                },
                pk=("book_id", "chapter_idx"),
            )

    def chapters_done(self, book_id: int, run_key: str) -> set[int]:
        rows = self.conn.execute(
            "SELECT chapter_idx FROM chapter_runs WHERE book_id = ? AND run_key = ?", [book_id, run_key]
        )
        return {r[0] for r in rows}

    def reset_chapter_runs(self, book_id: int) -> None:
        self.conn.execute("DELETE FROM chapter_runs WHERE book_id = ?", [book_id])

    def run_summary(self, book_id: int) -> dict:
        """The book's stored descriptions and when its last chapter run finished (for skipping done books)."""
        finished = self.conn.execute("SELECT max(done_at) FROM chapter_runs WHERE book_id = ?", [book_id]).fetchone()[0]
        return {"descriptions": self.description_count(book_id), "finished_at": finished}

    def set_title(self, book_id: int, title: str, source: str) -> None:
        self.conn.execute("UPDATE books SET title = ?, title_source = ? WHERE id = ?", [title, source, book_id])

    def descriptions(
        self,
        book_id: int,
        type: str | None = None,
        min_priority: float | None = None,
        top: int | None = None,
        order: str = "priority",
    ) -> list[dict]:
        where: list[str] = ["d.book_id = ?"]
        params: list[Any] = [book_id]
        if type:
            where.append("d.type = ?")
            params.append(type)
        if min_priority is not None:
            where.append("d.priority >= ?")
            params.append(min_priority)
        order_by = "d.priority DESC, d.id" if order == "priority" else "d.chapter_idx, d.start"
        sql = (
            "SELECT d.id, d.book_id, d.chapter_idx, c.title AS chapter_title, d.start, d.end, d.type, "
            "d.priority, d.confidence, d.consensus, d.processors, d.cfi, d.text FROM descriptions d "
            "JOIN chapters c ON c.id = d.chapter_id WHERE " + " AND ".join(where) + f" ORDER BY {order_by}"
        )
        if top:
            sql += " LIMIT ?"
            params.append(top)
        return [_decode(r, "processors") for r in self.db.query(sql, params)]

    def description_count(self, book_id: int) -> int:
        return self.conn.execute("SELECT count(*) FROM descriptions WHERE book_id = ?", [book_id]).fetchone()[0]

    def descriptions_by_type(self, book_id: int) -> dict[str, int]:
        return dict(
            self.conn.execute(
                "SELECT type, count(*) FROM descriptions WHERE book_id = ? GROUP BY type", [book_id]
            ).fetchall()
        )

    # ---- epub.js locations ---------------------------------------------------------------------
    def locations(self, book_id: int) -> tuple[list[str] | None, int | None]:
        """The book's stored epub.js locations and their chars per location (None, None: none stored)."""
        row = self.conn.execute("SELECT locations, locations_chars FROM books WHERE id = ?", [book_id]).fetchone()
        return (json.loads(row[0]) if row and row[0] else None), (row[1] if row else None)

    def save_locations(self, book_id: int, text: str, chars: int) -> None:
        self.conn.execute("UPDATE books SET locations = ?, locations_chars = ? WHERE id = ?", [text, chars, book_id])

    # ---- images: what to draw, and the rules for the rows ------------------------------------------
    _DRAW_COLUMNS = ("id", "text", "type", "book_id", "priority")

    def descriptions_to_draw(self, ids: list[int]) -> dict[int, dict]:
        """{id: description} for those of `ids` that exist (the fields a picture needs)."""
        marks = ",".join("?" * len(ids))
        cursor = self.conn.execute(
            f"SELECT {', '.join(self._DRAW_COLUMNS)} FROM descriptions WHERE id IN ({marks})", ids
        )
        return {row[0]: dict(zip(self._DRAW_COLUMNS, row)) for row in cursor}

    def undrawn_descriptions(self, book_id: int, type: str | None, limit: int | None) -> list[dict]:
        """A book's descriptions by priority that no user has a completed picture of yet (limit None: all)."""
        sql = (
            f"SELECT {', '.join('d.' + c for c in self._DRAW_COLUMNS)} FROM descriptions d WHERE d.book_id = ?"
            + (" AND d.type = ?" if type else "")
            + " AND NOT EXISTS (SELECT 1 FROM images i WHERE i.description_id = d.id AND i.status = ?)"
            + " ORDER BY d.priority DESC, d.id"
            + (" LIMIT ?" if limit is not None else "")
        )
        params = [book_id, *([type] if type else []), COMPLETED, *([limit] if limit is not None else [])]
        return [dict(zip(self._DRAW_COLUMNS, r)) for r in self.conn.execute(sql, params)]

    def has_completed_image(self, description_id: int) -> bool:
        """Whether anyone has a completed picture of this description."""
        return (
            self.conn.execute(
                "SELECT 1 FROM images WHERE description_id = ? AND status = ? LIMIT 1", [description_id, COMPLETED]
            ).fetchone()
            is not None
        )

    def save_image_row(self, row: dict) -> None:
        """Store one outcome in its own transaction, keeping at most one failure row per (description, user)
        and one row per identical picture, so reruns do not pile up rows."""
        with self.transaction():
            self.conn.execute(
                "DELETE FROM images WHERE description_id = ? AND user IS ? AND status != ?",
                [row["description_id"], row["user"], COMPLETED],
            )
            if row["status"] == COMPLETED:
                self.conn.execute(
                    "DELETE FROM images WHERE description_id = ? AND user IS ? AND status = ? AND sha256 = ?",
                    [row["description_id"], row["user"], COMPLETED, row["sha256"]],
                )
            self.conn.execute(
                f"INSERT INTO images ({', '.join(IMAGE_ROW_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(IMAGE_ROW_COLUMNS))})",
                [row[c] for c in IMAGE_ROW_COLUMNS],
            )

    def completed_images(self, book_id: int) -> list[dict]:
        """The book's completed pictures, newest first: description_id, path (inside images/), prompt."""
        rows = self.conn.execute(
            "SELECT i.description_id, i.path, i.prompt FROM images i JOIN descriptions d ON d.id = i.description_id "
            "WHERE d.book_id = ? AND i.status = ? AND i.path IS NOT NULL ORDER BY i.created_at DESC, i.id DESC",
            [book_id, COMPLETED],
        )
        return [dict(zip(("description_id", "path", "prompt"), r)) for r in rows]

    def images_completed_since(self, user: str | None, since: float) -> int:
        """How many pictures `user` got since `since` (what the daily limit counts)."""
        return self.conn.execute(
            "SELECT count(*) FROM images WHERE user IS ? AND status = ? AND created_at >= ?", [user, COMPLETED, since]
        ).fetchone()[0]

    def drawn_image_path(self, description_id: int, user: str | None, source_url: str) -> str | None:
        """The newest completed picture of this very request (same URL) for this user, if any: its path."""
        row = self.conn.execute(
            "SELECT path FROM images WHERE description_id = ? AND user IS ? AND status = ? AND source_url = ? "
            "AND path IS NOT NULL ORDER BY created_at DESC LIMIT 1",
            [description_id, user, COMPLETED, source_url],
        ).fetchone()
        return row[0] if row else None

    def image_files(self) -> list[dict]:
        """Every image row's id, path and creation time (what cleanup decides on)."""
        cursor = self.conn.execute("SELECT id, path, created_at FROM images")
        return [dict(zip(("id", "path", "created_at"), r)) for r in cursor]

    def delete_images(self, ids: list) -> None:
        with self.transaction():
            for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                self.conn.execute(f"DELETE FROM images WHERE id IN ({','.join('?' * len(chunk))})", chunk)


def _chapter(row: dict) -> Chapter:
    paragraphs = [Paragraph(s, e, k) for s, e, k in json.loads(row["paragraphs"])]
    return Chapter(row["title"], row["text"], paragraphs, row["source"] or "", idx=row["idx"], id=row["id"])


def _decode(row: dict, *json_keys: str) -> dict:
    row = dict(row)
    for key in json_keys:
        if key in row and isinstance(row[key], str):
            row[key] = json.loads(row[key])
    return row
