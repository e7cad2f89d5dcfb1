"""Book jobs: import (once per file content), look up, list, show, remove; and the settings shown."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from bookreader_cli.books import file_sha256
from bookreader_cli.errors import BadInput, NotFound
from bookreader_cli.jobs.context import Context, check_file

GIVEN_TITLE = "given (--title)"


def import_book(ctx: Context, path: str | Path, title: str | None = None) -> dict:
    """Import one book file; the same file again (same sha256) returns the same book id, unchanged (but
    for `title`: a title given replaces the one the book has)."""
    from bookreader_cli.books import load_book

    started = time.perf_counter()
    if title is not None:
        title = " ".join(title.split())
        if not title:
            raise BadInput("--title: the title is empty")
    path = check_file(Path(path))
    sha = file_sha256(path)
    existing = ctx.store.book_by_sha(sha)
    if existing:
        if title is not None and title != existing["title"]:
            ctx.store.set_title(existing["id"], title, GIVEN_TITLE)
            existing = ctx.store.book(existing["id"])
        return _import_result(existing, ctx, "exists", started)
    book = load_book(path)
    if not any(ch.text for ch in book.chapters):
        raise BadInput(f"{path.name}: the book has no text")
    stat = path.stat()
    meta = {
        "sha256": sha,
        "path": str(path.resolve()),
        "file_name": path.name,
        "file_size": stat.st_size,
        "file_mtime": stat.st_mtime,
        "format": book.format,
        "title": title or book.title or path.stem,
        "title_source": GIVEN_TITLE if title else (book.title_source if book.title else "file name"),
        "authors": book.authors,
        "identifiers": book.identifiers,
        "language": book_language({"language": book.language}, " ".join(c.text[:5000] for c in book.chapters[:4])),
        "publisher": book.publisher,
        "date": book.date,
        "warnings": book.warnings,
        "notes": [{"title": n.title, "text": n.text} for n in book.notes],
        "cover_media_type": book.cover_media_type,
        "imported_at": time.time(),
    }
    chapters = [
        {
            "idx": i,
            "title": ch.title,
            "text": ch.text,
            "source": ch.source,
            "char_count": len(ch.text),
            "paragraphs": [[p.start, p.end, p.kind] for p in ch.paragraphs],
        }
        for i, ch in enumerate(c for c in book.chapters if c.text)
    ]
    book_id, created = ctx.store.insert_or_get_book(meta, chapters, book.cover)  # another process may have won
    return _import_result(ctx.store.book(book_id), ctx, "imported" if created else "exists", started)


def _import_result(book: dict, ctx: Context, status: str, started: float) -> dict:
    count, chars = ctx.store.chapter_totals(book["id"])
    return {
        "book_id": book["id"],
        "status": status,
        "title": book["title"],
        "title_source": book.get("title_source"),
        "authors": book["authors"],
        "format": book["format"],
        "language": book["language"],
        "chapters": count,
        "characters": chars,
        "sha256": book["sha256"],
        "file": book["path"],
        "warnings": book["warnings"],
        "import_time_seconds": round(time.perf_counter() - started, 3),
    }


def import_books(ctx: Context, paths: Sequence[str | Path], title: str | None = None) -> dict:
    """Import several files: each good one lands, each bad one is reported (the caller exits 2).
    A `title` names one book: with several files it is bad input."""
    if title is not None and len(paths) != 1:
        raise BadInput(f"--title names one book: give one file, not {len(paths)}")
    results, errors = [], []
    for path in paths:
        try:
            results.append(import_book(ctx, path, title))
        except BadInput as exc:
            errors.append({"file": str(path), "error": str(exc)})
    return {"imported": results, "errors": errors}


def book_ref_or_file(ctx: Context, ref: str) -> dict:
    """A book by id or sha256 prefix, or by a file path (imported first if needed)."""
    path = Path(ref)
    if path.exists() or path.suffix or os.sep in ref:
        return ctx.store.book(import_book(ctx, path)["book_id"])
    return ctx.store.resolve_book(ref)


def lookup_book(ctx: Context, ref: str) -> dict:
    """A book by id, sha256 prefix, or the file it was imported from (never imports)."""
    path = Path(ref)
    if path.is_file():
        book = ctx.store.book_by_sha(file_sha256(path))
        if book is None:
            raise NotFound(f"{ref}: this file has not been imported (bookreader books import {ref})")
        return book
    return ctx.store.resolve_book(ref)


def list_books(ctx: Context) -> dict:
    return {"books": ctx.store.books()}


def show_book(ctx: Context, ref: str) -> dict:
    book = lookup_book(ctx, ref)
    book["chapters"] = [
        {"idx": c.idx, "title": c.title, "characters": len(c.text), "paragraphs": len(c.paragraphs), "source": c.source}
        for c in ctx.store.chapters(book["id"])
    ]
    book["descriptions"] = ctx.store.description_count(book["id"])
    return book


def remove_book(ctx: Context, ref: str) -> dict:
    """Remove a book, its chapters, descriptions and image rows; refused (Busy, exit 1) while a `process`
    of it runs: remove takes the lock that `process` holds."""
    from bookreader_cli.locks import db_lock

    book = lookup_book(ctx, ref)
    with db_lock(ctx.store, process_lock(book["id"]), busy_message=f"book {book['id']} is being processed"):
        removed = ctx.store.remove_book(book["id"])
    return {"book_id": book["id"], "title": book["title"], "status": "removed", "removed": removed}


def process_lock(book_id: int) -> str:
    """The lock a `process` of the book holds; `books remove` takes it too."""
    return f"process:{book_id}"


def show_config(ctx: Context) -> dict:
    return ctx.settings.as_dict()


def book_language(book: dict, sample: str) -> str:
    """The book's declared language ("ru-RU" → "ru"), else guessed from the share of Cyrillic letters.

    TXT files declare nothing, so their language is guessed at import."""
    lang = (book.get("language") or "").split("-")[0].split("_")[0].lower()
    if lang:
        return lang
    letters = [c for c in sample[:20000] if c.isalpha()]
    cyrillic = sum(1 for c in letters if "\u0400" <= c <= "\u04ff")
    return "ru" if letters and cyrillic / len(letters) > 0.5 else "en"
