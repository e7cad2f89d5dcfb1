"""The product, one function per job. The CLI and the Celery app are two thin doors into these.

Every function takes a Context (settings + a lazily opened store) and returns a plain dict: the seed's
result shapes where the seed has one (keys kept, never renamed; every figure measured).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from bookreader_cli.config import Settings, load_settings
from bookreader_cli.errors import BadInput


class Context:
    """What a task needs: settings, and the store opened on first use."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or load_settings()
        self._store = None

    @property
    def store(self):
        if self._store is None:
            from bookreader_cli.store import Store

            self._store = Store(self.settings.db_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file(path: Path) -> Path:
    if not path.exists():
        raise BadInput(f"{path}: no such file")
    if not path.is_file():
        raise BadInput(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise BadInput(f"{path}: not readable")
    return path


# ---- books ------------------------------------------------------------------------------------
def import_book(ctx: Context, path: str | Path) -> dict:
    """Import one book file; the same file again (same sha256) returns the same book id, unchanged."""
    from bookreader_cli.books import load_book

    started = time.perf_counter()
    path = _check_file(Path(path))
    sha = file_sha256(path)
    existing = ctx.store.book_by_sha(sha)
    if existing:
        return _import_result(existing, ctx, "exists", started)
    book = load_book(path)
    if not any(ch.text for ch in book.chapters):
        raise BadInput(f"{path.name}: the book has no text")
    stat = path.stat()
    meta = {
        "sha256": sha, "path": str(path.resolve()), "file_name": path.name, "file_size": stat.st_size,
        "file_mtime": stat.st_mtime, "format": book.format, "title": book.title or path.stem,
        "authors": book.authors, "language": book.language, "identifiers": book.identifiers,
        "publisher": book.publisher, "date": book.date, "warnings": book.warnings,
        "notes": [{"title": n.title, "text": n.text} for n in book.notes],
        "cover_media_type": book.cover_media_type, "imported_at": time.time(),
    }
    chapters = [
        {"idx": i, "title": ch.title, "text": ch.text, "source": ch.source, "char_count": len(ch.text),
         "paragraphs": [[p.start, p.end, p.kind] for p in ch.paragraphs]}
        for i, ch in enumerate(c for c in book.chapters if c.text)
    ]
    book_id = ctx.store.insert_book(meta, chapters, book.cover)
    return _import_result(ctx.store.book(book_id), ctx, "imported", started)


def _import_result(book: dict, ctx: Context, status: str, started: float) -> dict:
    chapters = ctx.store.chapters(book["id"], with_text=False)
    return {
        "book_id": book["id"], "status": status, "title": book["title"], "authors": book["authors"],
        "format": book["format"], "language": book["language"], "chapters": len(chapters),
        "characters": sum(c["char_count"] for c in chapters), "sha256": book["sha256"],
        "file": book["path"], "warnings": book["warnings"],
        "import_time_seconds": round(time.perf_counter() - started, 3),
    }


def import_books(ctx: Context, paths: list[str | Path]) -> dict:
    """Import several files: each good one lands, each bad one is reported (the caller exits 2)."""
    results, errors = [], []
    for path in paths:
        try:
            results.append(import_book(ctx, path))
        except BadInput as exc:
            errors.append({"file": str(path), "error": str(exc)})
    return {"imported": results, "errors": errors}


def book_ref_or_file(ctx: Context, ref: str) -> dict:
    """A book by id or sha256 prefix, or by a file path (imported first if needed)."""
    path = Path(ref)
    if path.exists() or path.suffix or os.sep in ref:
        return ctx.store.book(import_book(ctx, path)["book_id"])
    return ctx.store.resolve_book(ref)


def list_books(ctx: Context) -> dict:
    return {"books": ctx.store.books()}


def show_book(ctx: Context, ref: str) -> dict:
    book = ctx.store.resolve_book(ref)
    chapters = ctx.store.chapters(book["id"], with_text=True)
    book["chapters"] = [
        {"idx": c["idx"], "title": c["title"], "characters": c["char_count"], "paragraphs": len(c["paragraphs"]),
         "source": c["source"]}
        for c in chapters
    ]
    book["descriptions"] = ctx.store.conn.execute(
        "SELECT count(*) FROM descriptions WHERE book_id = ?", [book["id"]]).fetchone()[0]
    return book


def remove_book(ctx: Context, ref: str) -> dict:
    book = ctx.store.resolve_book(ref)
    removed = ctx.store.remove_book(book["id"])
    return {"book_id": book["id"], "title": book["title"], "status": "removed", "removed": removed}


def show_config(ctx: Context) -> dict:
    return ctx.settings.as_dict()
