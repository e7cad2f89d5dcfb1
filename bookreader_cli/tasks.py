"""The product, one function per job. The CLI and the Celery app are two thin doors into these.

Every function takes a Context (settings + a lazily opened store) and returns a plain dict: the seed's
result shapes where the seed has one (keys kept, never renamed; every figure measured).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from bookreader_cli.books import epub_source, file_sha256
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
        "authors": book.authors, "identifiers": book.identifiers,
        "language": book_language({"language": book.language}, " ".join(c.text[:5000] for c in book.chapters[:4])),
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


def lookup_book(ctx: Context, ref: str) -> dict:
    """A book by id, sha256 prefix, or the file it was imported from (never imports)."""
    path = Path(ref)
    if path.is_file():
        book = ctx.store.book_by_sha(file_sha256(path))
        if book is None:
            raise BadInput(f"{ref}: this file has not been imported (bookreader books import {ref})")
        return book
    return ctx.store.resolve_book(ref)


def list_books(ctx: Context) -> dict:
    return {"books": ctx.store.books()}


def show_book(ctx: Context, ref: str) -> dict:
    book = lookup_book(ctx, ref)
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
    book = lookup_book(ctx, ref)
    removed = ctx.store.remove_book(book["id"])
    return {"book_id": book["id"], "title": book["title"], "status": "removed", "removed": removed}


def show_config(ctx: Context) -> dict:
    return ctx.settings.as_dict()


# ---- description engine -----------------------------------------------------------------------
def book_language(book: dict, sample: str) -> str:
    """The book's declared language ("ru-RU" → "ru"), else guessed from the share of Cyrillic letters.

    TXT files declare nothing, so their language is guessed at import."""
    lang = (book.get("language") or "").split("-")[0].split("_")[0].lower()
    if lang:
        return lang
    letters = [c for c in sample[:20000] if c.isalpha()]
    cyrillic = sum(1 for c in letters if "\u0400" <= c <= "\u04ff")
    return "ru" if letters and cyrillic / len(letters) > 0.5 else "en"


def _run_key(mode: str, processors: list[str], settings) -> str:
    """What a stored chapter result depends on: same key, same descriptions (so a killed run can resume)."""
    from bookreader_cli import __version__

    basis = [__version__, mode, sorted(processors), sorted(settings.nlp.weights.items()), settings.nlp.threshold,
             settings.nlp.max_description_chars]
    return hashlib.sha256(repr(basis).encode()).hexdigest()[:16]


def _check_mode(mode: str) -> str:
    from bookreader_cli.nlp.engine import MODES

    if mode not in MODES:
        raise BadInput(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def _processor_list(processors: str | list[str] | None, settings) -> list[str]:
    from bookreader_cli.nlp.processors import REGISTRY

    if processors is None:
        names = list(settings.nlp.processors)
    elif isinstance(processors, str):
        names = [p.strip() for p in processors.split(",") if p.strip()]
    else:
        names = list(processors)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown or not names:
        raise BadInput(f"unknown processor(s) {', '.join(unknown) or '(none given)'}: expected some of {', '.join(REGISTRY)}")
    return list(dict.fromkeys(names))


def process_book(ctx: Context, ref: str, mode: str | None = None, processors: str | list[str] | None = None,
                 workers: int | None = None, executor: str = "local", on_chapter=None) -> dict:
    """Find and store a book's descriptions, chapter by chapter (the seed's process_book_task).

    Each chapter's descriptions are stored in one transaction together with a mark that the chapter is done
    for this run's settings (`run_key`); a killed run, run again, skips the chapters already done. When every
    chapter is done, the next run starts over and replaces the book's descriptions.
    """
    from bookreader_cli import runs
    from bookreader_cli.executors import book_runner
    from bookreader_cli.locks import db_lock

    settings = ctx.settings
    mode = _check_mode(mode or settings.nlp.mode)
    names = _processor_list(processors, settings)
    workers = workers or settings.nlp.workers
    if workers < 1:
        raise BadInput("--workers must be at least 1")
    runner = book_runner(executor)
    book = book_ref_or_file(ctx, ref)
    store = ctx.store
    args = {"book_id": book["id"], "mode": mode, "processors": names, "workers": workers, "executor": executor}

    def job() -> dict:
        started = time.perf_counter()
        chapters = store.chapters(book["id"])
        epub = epub_source.EpubExtras(ctx, book, chapters)  # range CFIs, locations and the cache entry (EPUB only)
        lang = book_language(book, chapters[0]["text"] if chapters else "")
        run_key = _run_key(mode, names, settings)
        done = store.chapters_done(book["id"], run_key)
        if len(done) >= len(chapters):  # the last run finished: this one replaces it
            store.reset_chapter_runs(book["id"])
            done = set()
        pending = [c for c in chapters if c["idx"] not in done]
        jobs = [{"text": c["text"], "paragraphs": c["paragraphs"]} for c in pending]
        totals = {"sentences": 0, "passed": 0, "unanimous": 0.0}
        used, unavailable, failures = set(), {}, {}
        for position, result in runner(jobs, lang=lang, mode=mode, processors=names, workers=workers,
                                       settings=settings):
            chapter = pending[position]
            descriptions = [d.to_dict() if hasattr(d, "to_dict") else d for d in result.descriptions]
            epub.add_cfis(chapter, descriptions)
            store.store_chapter_descriptions(book["id"], chapter, descriptions, run_key)
            totals["sentences"] += result.sentences_total
            totals["passed"] += result.sentences_passed
            totals["unanimous"] += result.consensus_rate * result.sentences_passed
            used.update(result.processors_used)
            unavailable.update(result.processors_unavailable)
            failures.update(result.processor_failures)
            if on_chapter is not None:
                on_chapter(chapter, len(descriptions))
        by_type = dict(store.conn.execute(
            "SELECT type, count(*) FROM descriptions WHERE book_id = ? GROUP BY type", [book["id"]]).fetchall())
        epub_result = epub.finish()
        return {
            "book_id": book["id"],
            "total_chapters": len(chapters),
            "descriptions_found": sum(by_type.values()),
            "processing_time_seconds": round(time.perf_counter() - started, 3),
            "status": "completed" if not failures else "completed_with_fallback",
            "nlp_processors_used": [n for n in names if n in used],
            "ensemble_consensus_rate": round(totals["unanimous"] / totals["passed"], 4) if totals["passed"] else 0.0,
            "cfi_locations_generated": epub_result.pop("cfi_locations_generated"),
            "cache_status": epub_result.pop("cache_status"),
            "title": book["title"], "language": lang, "mode": mode, "executor": executor, "workers": workers,
            "chapters_processed": len(pending), "chapters_resumed": len(done),
            "sentences_analyzed": totals["sentences"], "sentences_passed": totals["passed"],
            "descriptions_by_type": by_type,
            "processors_unavailable": unavailable, "processor_failures": failures,
            **epub_result,
        }

    with db_lock(store, f"process:{book['id']}", busy_message=f"book {book['id']} is being processed"):
        return runs.record(store, "process_book", "books", args, job, retries=3)


def nlp_text(ctx: Context, text: str, mode: str | None = None, processors: str | list[str] | None = None,
             lang: str | None = None) -> dict:
    """The seed's process_multi_nlp_ensemble_task for one text, plus the descriptions (offsets into it)."""
    from bookreader_cli import runs
    from bookreader_cli.nlp.engine import analyze_text

    if not text.strip():
        raise BadInput("no text given")
    mode = _check_mode(mode or ctx.settings.nlp.mode)
    names = _processor_list(processors, ctx.settings)
    lang = lang or book_language({}, text)

    def job() -> dict:
        started = time.perf_counter()
        result = analyze_text(text, None, lang=lang, mode=mode, processors=names, settings=ctx.settings)
        descriptions = [d.to_dict() for d in result.descriptions]
        metrics = {}  # the seed's <name>_confidence: the processor's mean score over the sentences it judged
        for name, v in result.votes_summary.items():
            metrics[f"{name}_confidence"] = v["mean_score"]
            metrics[f"{name}_yes_share"] = round(v["yes"] / v["ran"], 4) if v["ran"] else 0.0
        return {
            "chapter_id": None,
            "mode": mode,
            "processors_used": result.processors_used,
            "descriptions_found": len(descriptions),
            "consensus_rate": result.consensus_rate,
            "processing_time_seconds": round(time.perf_counter() - started, 3),
            "quality_metrics": metrics,
            "language": lang,
            "sentences_analyzed": result.sentences_total,
            "sentences_passed": result.sentences_passed,
            "processors_unavailable": result.processors_unavailable,
            "processor_failures": result.processor_failures,
            "descriptions": descriptions,
        }

    return runs.record(ctx.store, "process_multi_nlp_ensemble", "books", {"chars": len(text), "mode": mode,
                                                                           "processors": names}, job, retries=2)


def list_models(ctx: Context, load: bool = False, lang: str = "ru") -> dict:
    """Each NLP processor: available or why not, model source, load time (when `load`)."""
    from bookreader_cli.nlp.engine import models_report

    return {"processors": models_report(ctx.settings, load=load, lang=lang)}


def train_stanza(ctx: Context, size: str = "smoke", out: Path | None = None, sources=None) -> dict:
    """Train Stanza models locally (tokenize, pos, lemma, depparse, ner) where the processor will find them."""
    from bookreader_cli.nlp.compat import single_thread_math

    single_thread_math()
    from bookreader_cli.nlp.stanza_train import train_stanza_cli

    return train_stanza_cli(out or ctx.settings.stanza_dir, size=size, sources=sources)


# ---- descriptions -----------------------------------------------------------------------------
DESCRIPTION_FORMATS = ("table", "json", "jsonl", "csv")


def list_descriptions(ctx: Context, ref: str, type: str | None = None, top: int | None = None,
                      min_priority: float | None = None) -> dict:
    from bookreader_cli.nlp.base import DESCRIPTION_TYPES

    if type and type not in DESCRIPTION_TYPES:
        raise BadInput(f"unknown type {type!r}: expected one of {', '.join(DESCRIPTION_TYPES)}")
    if top is not None and top < 1:
        raise BadInput("--top must be at least 1")
    book = lookup_book(ctx, ref)
    rows = ctx.store.descriptions(book["id"], type=type, min_priority=min_priority, top=top)
    return {"book_id": book["id"], "title": book["title"], "count": len(rows), "descriptions": rows}


# ---- cfi and cache ----------------------------------------------------------------------------
# Which bytes a CFI or cache job may use, and what `process` adds for an EPUB: books/epub_source.py.
CFI_ONLY_EPUB = "CFIs exist only for EPUB books"
CACHE_ONLY_EPUB = "the EPUB cache holds EPUB files only"


def _epub_book(ctx: Context, ref: str, what: str) -> tuple[dict, Path | None]:
    """The EPUB book `ref` names (an id, a sha256 prefix, or a file, imported if new) and the file the user
    named, if any. Anything that is not an EPUB is refused before it is imported: bad input changes nothing."""
    path = Path(ref)
    given = None
    if path.is_file():
        given = path
        if ctx.store.book_by_sha(file_sha256(path)) is None:
            from bookreader_cli.books import sniff_format

            try:
                fmt, kind = sniff_format(path.read_bytes(), path.name)
            except OSError as exc:
                raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
            if fmt != "epub":
                raise BadInput(f"{path.name}: {what}; this is {kind}")
    book = book_ref_or_file(ctx, ref)
    if book["format"] not in epub_source.EPUB_FORMATS:
        kind = {"fb2": "an FB2 book", "txt": "a plain-text book"}.get(book["format"], f"a {book['format']} book")
        raise BadInput(f"book {book['id']} ({book['file_name']}) is {kind}: {what}")
    return book, given


def _positive(value: int | None, option: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise BadInput(f"{option} must be a positive whole number, not {value!r}")


def _generate_locations_run(ctx: Context, book: dict, given: Path | None, count: int | None, chars: int | None,
                            write=None) -> dict:
    from bookreader_cli import runs

    if chars is None and count is None:
        count = ctx.settings.cfi.count
    args = {"book_id": book["id"], "chars": chars, "locations_count": None if chars is not None else count}

    def job() -> dict:
        started = time.perf_counter()
        data, source = epub_source.book_epub_bytes(ctx, book, given)
        used, locations = epub_source.compute_locations(data, count, chars)
        text = epub_source.locations_json(locations)
        written = write(text) if write is not None else None  # before storing: a failed write changes nothing
        epub_source.save_locations(ctx.store, book["id"], text, used)
        return {
            "book_id": book["id"],
            "locations_generated": len(locations),
            "generation_time_seconds": round(time.perf_counter() - started, 3),
            "file_format": "epub",
            "status": "completed",
            "chars": used, "requested_count": args["locations_count"], "epub_version": book["format"],
            "title": book["title"], "source": source, "output": written,
            "first": locations[0] if locations else None, "last": locations[-1] if locations else None,
        }

    return runs.record(ctx.store, "generate_cfi_locations", "books", args, job, retries=2)


def generate_cfi_locations(ctx: Context, ref: str, locations_count: int | None = None, chars: int | None = None,
                           write=None) -> dict:
    """The book's epub.js locations (the seed's generate_cfi_locations_task): exactly what epub.js
    `locations.generate(chars)` gives, or about `locations_count` of them (default settings.cfi.count).
    They are stored with the book; `write(json_text)`, if given, receives what `locations.save()` would
    return and says where it put it (a path, "stdout")."""
    if chars is not None and locations_count is not None:
        raise BadInput("give --chars or --count, not both")
    _positive(chars, "--chars")
    _positive(locations_count, "--count")
    book, given = _epub_book(ctx, ref, CFI_ONLY_EPUB)
    return _generate_locations_run(ctx, book, given, locations_count, chars, write)


def _locations_for(ctx: Context, book: dict, given: Path | None) -> tuple[list[str], int, str]:
    """The stored locations, else generated (default count) and stored: (locations, chars, how)."""
    locations, chars = epub_source.stored_locations(ctx.store, book["id"])
    if locations is not None:
        return locations, chars, "stored"
    _generate_locations_run(ctx, book, given, None, None)
    locations, chars = epub_source.stored_locations(ctx.store, book["id"])
    return locations, chars, "generated"


def cfi_from_percentage(ctx: Context, ref: str, percentage: float) -> dict:
    """epub.js `locations.cfiFromPercentage(p)` over the book's stored locations."""
    from bookreader_cli.books import cfi

    if not 0 <= percentage <= 1:
        raise BadInput(f"the percentage is a fraction from 0 to 1 (as in epub.js), not {percentage}")
    book, given = _epub_book(ctx, ref, CFI_ONLY_EPUB)
    locations, chars, how = _locations_for(ctx, book, given)
    return {"book_id": book["id"], "percentage": percentage, "cfi": cfi.cfi_from_percentage(locations, percentage),
            "locations": len(locations), "locations_chars": chars, "locations_source": how}


def cfi_to_percentage(ctx: Context, ref: str, cfi_text: str) -> dict:
    """epub.js `locations.percentageFromCfi(cfi)` over the book's stored locations."""
    from bookreader_cli.books import cfi

    cfi.parse_cfi(cfi_text)
    book, given = _epub_book(ctx, ref, CFI_ONLY_EPUB)
    locations, chars, how = _locations_for(ctx, book, given)
    return {"book_id": book["id"], "cfi": cfi_text, "percentage": cfi.percentage_from_cfi(locations, cfi_text),
            "locations": len(locations), "locations_chars": chars, "locations_source": how}


def resolve_cfi(ctx: Context, ref: str, cfi_text: str, snippet_chars: int = 80) -> dict:
    """Where a CFI points in our text: chapter, character offset in the chapter's stored text, a snippet."""
    from bookreader_cli.books import cfi
    from bookreader_cli.books.cfi_dom import EpubDom
    from bookreader_cli.books.cfi_text import describe_cfi

    cfi.parse_cfi(cfi_text)
    book, given = _epub_book(ctx, ref, CFI_ONLY_EPUB)
    data, source = epub_source.book_epub_bytes(ctx, book, given)
    rows = ctx.store.chapters(book["id"])
    result = describe_cfi(EpubDom(data), epub_source.model_chapters(rows), cfi_text, snippet_chars)
    result["chapter_index"] = rows[result["chapter_index"]]["idx"]
    locations, _ = epub_source.stored_locations(ctx.store, book["id"])
    result["percentage"] = cfi.percentage_from_cfi(locations, cfi_text) if locations else None
    return {"book_id": book["id"], **result, "source": source}


def cache_epub_file(ctx: Context, ref: str) -> dict:
    """Cache the book's EPUB, gzip-compressed, checksummed, TTL settings.cache.ttl_seconds (the seed's
    cache_epub_file_task). The file must still be the book's content: an edited file is another book."""
    from bookreader_cli import runs
    from bookreader_cli.cache import cache_put

    book, given = _epub_book(ctx, ref, CACHE_ONLY_EPUB)
    ttl = ctx.settings.cache.ttl_seconds

    def job() -> dict:
        path, problem = epub_source.verified_source(ctx, book, given)
        if path is None:
            kept = epub_source.cached_copy(ctx, book)
            if kept is None:
                raise epub_source.unavailable(book, problem)
            raise BadInput(f"book {book['id']}: {problem}; the cache still holds a verified copy "
                           f"(bookreader cache get {book['id']}) until it expires")
        result = cache_put(ctx.settings.cache_dir, book["id"], path, ttl)
        if result["sha256"] != book["sha256"]:
            raise BadInput(f"book {book['id']}: its file {path} changed while it was being cached")
        result.update(title=book["title"], file=str(path.resolve()))
        return result

    return runs.record(ctx.store, "cache_epub_file", "books", {"book_id": book["id"]}, job)


def get_cached_epub(ctx: Context, ref: str, write=None) -> dict:
    """The book's original EPUB bytes through the cache (hit, or cached/refreshed/rebuilt from the file),
    handed to `write(bytes)`, which says where it put them. When the file is gone or changed, a verified
    copy of the book's own bytes still in the cache is served (status "hit", source "cache", a warning)."""
    from bookreader_cli.cache import cache_fetch

    book, given = _epub_book(ctx, ref, CACHE_ONLY_EPUB)
    path, problem = epub_source.verified_source(ctx, book, given)
    if path is None:
        kept = epub_source.cached_copy(ctx, book)
        if kept is None:
            raise epub_source.unavailable(book, problem)
        data, result = kept
        result.update(source="cache", warning=f"{problem}; served the cached copy of the book")
    else:
        data, result = cache_fetch(ctx.settings.cache_dir, book["id"], path, ctx.settings.cache.ttl_seconds)
        if result["sha256"] != book["sha256"]:
            raise BadInput(f"book {book['id']}: its file {path} changed while it was being read")
        result["source"] = "file" if result["status"] != "hit" else "cache"
    result["output"] = write(data) if write is not None else None
    result["title"] = book["title"]
    return result


def cache_stats(ctx: Context) -> dict:
    from bookreader_cli.cache import cache_stats as stats

    return dict(stats(ctx.settings.cache_dir), ttl_seconds=ctx.settings.cache.ttl_seconds)


def cache_clear(ctx: Context, expired_only: bool = False) -> dict:
    from bookreader_cli.cache import cache_clear as clear

    return clear(ctx.settings.cache_dir, expired_only)


# ---- images and cleanup -----------------------------------------------------------------------
IMAGE_COMPLETED = "completed"  # images.generate.COMPLETED (not imported here: it pulls in httpx)


def _description_rows(store, ids: list[int]) -> list[dict]:
    """The descriptions to draw, in the order asked (duplicates dropped); an unknown id is bad input."""
    try:
        ids = list(dict.fromkeys(int(i) for i in ids))
    except (TypeError, ValueError):
        raise BadInput(f"description ids must be whole numbers, got {ids!r}") from None
    if not ids:
        raise BadInput("no description ids given")
    marks = ",".join("?" * len(ids))
    cursor = store.conn.execute(
        f"SELECT id, text, type, book_id, priority FROM descriptions WHERE id IN ({marks})", ids)
    found = {row[0]: dict(zip(("id", "text", "type", "book_id", "priority"), row)) for row in cursor}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise BadInput(f"no description with id {missing[0]}" if len(missing) == 1
                       else f"no descriptions with ids {', '.join(missing)}")
    return [found[i] for i in ids]


def _save_image_row(store, row: dict) -> None:
    """Store one outcome in its own transaction, keeping at most one failure row per (description, user)
    and one row per identical picture, so reruns do not pile up rows."""
    from bookreader_cli.images.generate import IMAGE_ROW_COLUMNS

    with store.transaction():
        store.conn.execute("DELETE FROM images WHERE description_id = ? AND user IS ? AND status != ?",
                           [row["description_id"], row["user"], IMAGE_COMPLETED])
        if row["status"] == IMAGE_COMPLETED:
            store.conn.execute(
                "DELETE FROM images WHERE description_id = ? AND user IS ? AND status = ? AND sha256 = ?",
                [row["description_id"], row["user"], IMAGE_COMPLETED, row["sha256"]])
        store.conn.execute(
            f"INSERT INTO images ({', '.join(IMAGE_ROW_COLUMNS)}) VALUES ({', '.join('?' * len(IMAGE_ROW_COLUMNS))})",
            [row[c] for c in IMAGE_ROW_COLUMNS])


def _retry_when_locked(fn):
    """A database still locked after the busy timeout is worth another try of the whole job (runs.Transient);
    a picture that fails is not: the client has retried it already and it is recorded as failed."""
    import sqlite3

    from bookreader_cli import runs

    def job():
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise runs.Transient(f"database busy: {exc}") from None
            raise

    return job


def _draw(ctx: Context, descriptions: list[dict], user: str | None, dry_run: bool) -> dict:
    """Generate (or, with dry_run, plan) one picture per description; the seed's generate_images_task dict.

    With a daily limit the user's count and the generation run under a per-user lock, so two runs at once
    cannot both spend the last allowance.
    """
    from bookreader_cli.images.generate import allowed_count, daily_window_start, generate_for_descriptions, plan_requests
    from bookreader_cli.locks import db_lock

    settings, store = ctx.settings, ctx.store
    limit = settings.images.daily_limit_per_user

    def used_today() -> int:
        if limit <= 0:
            return 0
        return store.conn.execute(
            "SELECT count(*) FROM images WHERE user IS ? AND status = ? AND created_at >= ?",
            [user, IMAGE_COMPLETED, daily_window_start()]).fetchone()[0]

    if dry_run:
        used = used_today()
        return {"user_id": user, "dry_run": True, "requested_count": len(descriptions),
                "allowed_count": allowed_count(limit, used, len(descriptions)), "used_today": used,
                "daily_limit_per_user": limit, "requests": plan_requests(descriptions, settings)}
    if limit <= 0:
        return generate_for_descriptions(descriptions, settings, settings.images_dir, user=user,
                                         on_result=lambda row: _save_image_row(store, row))
    with db_lock(store, f"images:user:{user if user is not None else ''}", wait=True):
        return generate_for_descriptions(descriptions, settings, settings.images_dir, user=user,
                                         on_result=lambda row: _save_image_row(store, row), used_today=used_today())


def _already_drawn(ctx: Context, descriptions: list[dict], user: str | None) -> dict[int, str]:
    """{description id: image path} for those whose very request (same URL: prompt, seed, model, size)
    already gave this user a picture that is still on disk. The seed makes the same request give the same
    picture, so asking again would only spend the API and the user's daily allowance."""
    from bookreader_cli.images.generate import plan_requests

    found = {}
    for plan in plan_requests(descriptions, ctx.settings):
        row = ctx.store.conn.execute(
            "SELECT path FROM images WHERE description_id = ? AND user IS ? AND status = ? AND source_url = ? "
            "AND path IS NOT NULL ORDER BY created_at DESC LIMIT 1",
            [plan["description_id"], user, IMAGE_COMPLETED, plan["image_url"]]).fetchone()
        if row and (ctx.settings.images_dir / row[0]).is_file():
            found[plan["description_id"]] = str(ctx.settings.images_dir / row[0])
    return found


def generate_images(ctx: Context, description_ids: list[int], user: str | None = None, dry_run: bool = False) -> dict:
    """A picture per description id (the seed's generate_images_task). One image failing never stops the
    others: it is recorded (a row with status "failed") and listed under `failed`. A description this user
    already has the very same picture of is not asked again: it is listed under `existing_images`, so a
    killed run, run again, finishes the work without duplicates."""
    from bookreader_cli import runs

    user = None if user is None else str(user)
    descriptions = _description_rows(ctx.store, description_ids)

    def job(dry: bool) -> dict:
        existing = _already_drawn(ctx, descriptions, user)
        result = _draw(ctx, [d for d in descriptions if d["id"] not in existing], user, dry)
        result["requested_count"] = len(descriptions)
        result["existing_count"] = len(existing)
        result["existing_images"] = [{"description_id": i, "status": "existing", "image_path": p}
                                     for i, p in existing.items()]
        return result

    if dry_run:  # sends nothing and records nothing
        return job(True)
    args = {"description_ids": [d["id"] for d in descriptions], "user": user}
    return runs.record(ctx.store, "generate_images", "images", args, _retry_when_locked(lambda: job(False)),
                       retries=2)


def batch_generate_for_book(ctx: Context, book_id, user: str | None = None, limit: int | None = None,
                            type: str | None = None, dry_run: bool = False) -> dict:
    """Pictures for a book's top descriptions by priority that have no completed image yet (the seed's
    batch_generate_for_book_task); run again, it picks up where failures and limits left off."""
    from bookreader_cli import runs
    from bookreader_cli.nlp.base import DESCRIPTION_TYPES

    limit = 10 if limit is None else limit
    if limit < 1:
        raise BadInput("--limit must be at least 1")
    if type and type not in DESCRIPTION_TYPES:
        raise BadInput(f"unknown type {type!r}: expected one of {', '.join(DESCRIPTION_TYPES)}")
    user = None if user is None else str(user)
    book = ctx.store.resolve_book(str(book_id))

    def select() -> list[dict]:
        sql = ("SELECT d.id, d.text, d.type, d.book_id, d.priority FROM descriptions d WHERE d.book_id = ?"
               + (" AND d.type = ?" if type else "")
               + " AND NOT EXISTS (SELECT 1 FROM images i WHERE i.description_id = d.id AND i.status = ?)"
               + " ORDER BY d.priority DESC, d.id LIMIT ?")
        params = [book["id"], *([type] if type else []), IMAGE_COMPLETED, limit]
        return [dict(zip(("id", "text", "type", "book_id", "priority"), r)) for r in ctx.store.conn.execute(sql, params)]

    def job(dry: bool) -> dict:
        started = time.perf_counter()
        chosen = select()
        drawn = _draw(ctx, chosen, user, dry)
        result = {"book_id": book["id"], "user_id": user, "limit": limit, "selected_descriptions": len(chosen)}
        if not dry:
            result["generated_count"] = drawn["generated_count"]
        result["processing_time_seconds"] = round(time.perf_counter() - started, 3)
        result.update({"type": type, "title": book["title"], "description_ids": [d["id"] for d in chosen]})
        result.update({k: v for k, v in drawn.items() if k not in result and k != "total_time_seconds"})
        return result

    if dry_run:
        return job(True)
    args = {"book_id": book["id"], "user": user, "limit": limit, "type": type}
    return runs.record(ctx.store, "batch_generate_for_book", "images", args, _retry_when_locked(lambda: job(False)),
                       retries=2)


def cleanup_old_images(ctx: Context, days_old: int | None = None, dry_run: bool = False) -> dict:
    """Delete images older than `days_old` (default settings.cleanup_days), image files with no row and
    rows whose file is gone, inside the images directory only (the seed's cleanup_old_images_task); and
    finished task runs older than settings.runs_keep_days.
    A dry run works out the same plan, returns it as `actions`, and changes nothing (not even task_runs)."""
    from bookreader_cli import runs
    from bookreader_cli.images.cleanup import cleanup_images

    days = ctx.settings.cleanup_days if days_old is None else days_old
    if days < 0:
        raise BadInput(f"--days must be 0 or more, got {days}")
    store = ctx.store

    def delete_rows(ids: list) -> None:
        with store.transaction():
            for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
                chunk = ids[start:start + 500]
                store.conn.execute(f"DELETE FROM images WHERE id IN ({','.join('?' * len(chunk))})", chunk)

    keep = ctx.settings.runs_keep_days * 86400.0

    def job() -> dict:
        cursor = store.conn.execute("SELECT id, path, created_at FROM images")
        rows = [dict(zip(("id", "path", "created_at"), r)) for r in cursor]
        plan, result = cleanup_images(ctx.settings.images_dir, rows, days, dry_run, delete_rows=delete_rows)
        result["images_dir"] = str(ctx.settings.images_dir)
        if dry_run:
            result["actions"] = plan
            result["task_runs_to_prune"] = runs.prunable(store, keep)
        else:
            result["task_runs_pruned"] = runs.prune(store, keep)
        return result

    if dry_run:
        return job()
    return runs.record(store, "cleanup_old_images", "cleanup", {"days_old": days}, job)


# ---- stats, health, runs ----------------------------------------------------------------------
STATS_FORMATS = ("table", "json", "prometheus")


def system_stats(ctx: Context) -> dict:
    """Counts, task runs by queue and state, and storage sizes (the seed's system_stats_task)."""
    from bookreader_cli import ops, runs

    store = ctx.store
    return runs.record(store, "system_stats", "cleanup", {}, lambda: ops.collect_stats(ctx.settings, store.conn))


def health_check(ctx: Context, network: bool = False) -> dict:
    """Every health check (the seed's health_check_task). A database that cannot be opened or written is a
    finding, not a crash: the checks still run, unrecorded, and report it."""
    import sqlite3

    from bookreader_cli import ops, runs
    from bookreader_cli.errors import BookreaderError

    try:
        store = ctx.store
    except (BookreaderError, sqlite3.Error, OSError) as exc:
        return ops.health(ctx.settings, None, network=network, store_error=str(exc))
    try:
        return runs.record(store, "health_check", "cleanup", {"network": network},
                           lambda: ops.health(ctx.settings, store.conn, network=network))
    except sqlite3.Error as exc:  # the run itself could not be recorded: read-only file, full disk
        return ops.health(ctx.settings, None, network=network, store_error=str(exc))


def list_runs(ctx: Context, state: str | None = None, task: str | None = None, limit: int = 50,
              queue: str | None = None) -> dict:
    from bookreader_cli import runs

    rows = runs.list_runs(ctx.store, state=state, task=task, limit=limit, queue=queue)
    return {"count": len(rows), "runs": rows}


def show_run(ctx: Context, run_id: str) -> dict:
    from bookreader_cli import runs

    return runs.get_run(ctx.store, run_id)
