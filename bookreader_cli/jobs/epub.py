"""EPUB jobs: epub.js locations and CFIs, and the gzip cache of EPUB files.

Which bytes a CFI or cache job may use, and what `process` adds for an EPUB: epub_source.py.
"""

from __future__ import annotations

import time
from pathlib import Path

from bookreader_cli import epub_source
from bookreader_cli.books import file_sha256
from bookreader_cli.errors import BadInput, NotAnEpub
from bookreader_cli.jobs.books import book_ref_or_file
from bookreader_cli.jobs.context import Context

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
                raise NotAnEpub(f"{path.name}: {what}; this is {kind}")
    book = book_ref_or_file(ctx, ref)
    if book["format"] not in epub_source.EPUB_FORMATS:
        kind = {"fb2": "an FB2 book", "txt": "a plain-text book"}.get(book["format"], f"a {book['format']} book")
        raise NotAnEpub(f"book {book['id']} ({book['file_name']}) is {kind}: {what}")
    return book, given


def _positive(value: int | None, option: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise BadInput(f"{option} must be a positive whole number, not {value!r}")


def _generate_locations_run(
    ctx: Context, book: dict, given: Path | None, count: int | None, chars: int | None, write=None
) -> dict:
    from bookreader_cli import runs

    if chars is None and count is None:
        count = ctx.settings.cfi.count
    args = {"book_id": book["id"], "chars": chars, "locations_count": None if chars is not None else count}

    def job() -> dict:
        started = time.perf_counter()
        data, source = epub_source.book_epub_bytes(ctx.settings.cache_dir, book, given)
        used, locations = epub_source.compute_locations(data, count, chars)
        text = epub_source.locations_json(locations)
        written = write(text) if write is not None else None  # before storing: a failed write changes nothing
        ctx.store.save_locations(book["id"], text, used)
        return {
            "book_id": book["id"],
            "locations_generated": len(locations),
            "generation_time_seconds": round(time.perf_counter() - started, 3),
            "file_format": "epub",
            "status": "completed",
            "chars": used,
            "requested_count": args["locations_count"],
            "epub_version": book["format"],
            "title": book["title"],
            "source": source,
            "output": written,
            "first": locations[0] if locations else None,
            "last": locations[-1] if locations else None,
        }

    return runs.record(ctx.store, "generate_cfi_locations", "books", args, job, retries=2)


def generate_cfi_locations(
    ctx: Context, ref: str, locations_count: int | None = None, chars: int | None = None, write=None
) -> dict:
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


def _locations_for(ctx: Context, book: dict, given: Path | None) -> tuple[list[str], int | None, str]:
    """The stored locations, else generated (default count) and stored: (locations, chars, how)."""
    locations, chars = ctx.store.locations(book["id"])
    if locations is not None:
        return locations, chars, "stored"
    _generate_locations_run(ctx, book, given, None, None)
    locations, chars = ctx.store.locations(book["id"])
    return locations or [], chars, "generated"


def cfi_from_percentage(ctx: Context, ref: str, percentage: float) -> dict:
    """epub.js `locations.cfiFromPercentage(p)` over the book's stored locations."""
    from bookreader_cli.epubcfi.locations import cfi_from_percentage as from_percentage

    if not 0 <= percentage <= 1:
        raise BadInput(f"the percentage is a fraction from 0 to 1 (as in epub.js), not {percentage}")
    book, given = _epub_book(ctx, ref, CFI_ONLY_EPUB)
    locations, chars, how = _locations_for(ctx, book, given)
    return {
        "book_id": book["id"],
        "percentage": percentage,
        "cfi": from_percentage(locations, percentage),
        "locations": len(locations),
        "locations_chars": chars,
        "locations_source": how,
    }


def cfi_to_percentage(ctx: Context, ref: str, cfi_text: str) -> dict:
    """epub.js `locations.percentageFromCfi(cfi)` over the book's stored locations."""
    from bookreader_cli.epubcfi.grammar import parse_cfi
    from bookreader_cli.epubcfi.locations import percentage_from_cfi

    parse_cfi(cfi_text)
    book, given = _epub_book(ctx, ref, CFI_ONLY_EPUB)
    locations, chars, how = _locations_for(ctx, book, given)
    return {
        "book_id": book["id"],
        "cfi": cfi_text,
        "percentage": percentage_from_cfi(locations, cfi_text),
        "locations": len(locations),
        "locations_chars": chars,
        "locations_source": how,
    }


def resolve_cfi(ctx: Context, ref: str, cfi_text: str, snippet_chars: int = 80) -> dict:
    """Where a CFI points in our text: chapter, character offset in the chapter's stored text, a snippet."""
    from bookreader_cli.epubcfi.align import describe_cfi
    from bookreader_cli.epubcfi.dom import EpubDom
    from bookreader_cli.epubcfi.grammar import parse_cfi
    from bookreader_cli.epubcfi.locations import percentage_from_cfi

    parse_cfi(cfi_text)
    book, given = _epub_book(ctx, ref, CFI_ONLY_EPUB)
    data, source = epub_source.book_epub_bytes(ctx.settings.cache_dir, book, given)
    chapters = ctx.store.chapters(book["id"])
    result = describe_cfi(EpubDom(data), chapters, cfi_text, snippet_chars)
    result["chapter_index"] = chapters[result["chapter_index"]].idx
    locations, _ = ctx.store.locations(book["id"])
    result["percentage"] = percentage_from_cfi(locations, cfi_text) if locations else None
    return {"book_id": book["id"], **result, "source": source}


def cache_epub_file(ctx: Context, ref: str) -> dict:
    """Cache the book's EPUB, gzip-compressed, checksummed, TTL settings.cache.ttl_seconds (the seed's
    cache_epub_file_task). The file must still be the book's content: an edited file is another book."""
    from bookreader_cli import runs
    from bookreader_cli.cache import cache_put

    book, given = _epub_book(ctx, ref, CACHE_ONLY_EPUB)
    ttl = ctx.settings.cache.ttl_seconds

    def job() -> dict:
        path, problem = epub_source.verified_source(book, given)
        if path is None:
            kept = epub_source.cached_copy(ctx.settings.cache_dir, book)
            if kept is None:
                raise epub_source.unavailable(book, problem)
            raise BadInput(
                f"book {book['id']}: {problem}; the cache still holds a verified copy "
                f"(bookreader cache get {book['id']}) until it expires"
            )
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
    path, problem = epub_source.verified_source(book, given)
    if path is None:
        kept = epub_source.cached_copy(ctx.settings.cache_dir, book)
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
