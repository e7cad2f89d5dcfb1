"""The EPUB bytes behind a book's CFIs and cache, and what `process` adds for an EPUB.

A book is one file content (its sha256): its chapters, descriptions, CFIs and locations all describe those
bytes. So every CFI and cache job first proves the bytes it uses are the book's: the file at the book's path
while its sha256 still matches, else the EPUB cache's checksummed copy of the same content. A file that was
edited is a different book (`books import` gives it its own id).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bookreader_cli.books import file_sha256
from bookreader_cli.errors import BadInput

EPUB_FORMATS = ("epub2", "epub3")
def source_problem(book: dict, path: Path) -> str:
    """Why the file at `path` is not (or no longer) the book's content, or "" when it is.

    Size and mtime as recorded at import: trusted (as make and rsync do); otherwise the sha256 decides."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return f"its file {path} is gone (moved or deleted)"
    except OSError as exc:
        return f"its file {path} cannot be read ({exc.strerror or exc})"
    if stat.st_size == book["file_size"] and stat.st_mtime == book["file_mtime"]:
        return ""
    try:
        same = stat.st_size == book["file_size"] and file_sha256(path) == book["sha256"]
    except OSError as exc:
        return f"its file {path} cannot be read ({exc.strerror or exc})"
    return "" if same else f"its file {path} has changed since it was imported"


def unavailable(book: dict, problem: str) -> BadInput:
    fix = ("the edited file is another book: import it (bookreader books import FILE) to get its own id"
           if "changed" in problem else "name the book by its file, where it is now, instead of by its id")
    return BadInput(f"book {book['id']}: {problem}, and the EPUB cache holds no copy of it; {fix}")


def cached_copy(ctx, book: dict) -> tuple[bytes, dict] | None:
    """The cache's verified copy of exactly this book's bytes, if it holds one (and it has not expired)."""
    from bookreader_cli.cache import cache_peek

    found = cache_peek(ctx.settings.cache_dir, book["id"])
    return found if found is not None and found[1]["sha256"] == book["sha256"] else None


def book_epub_bytes(ctx, book: dict, given: Path | None = None) -> tuple[bytes, str]:
    """The book's EPUB bytes, proven by sha256: ("file") from its file, else ("cache") the cached copy."""
    path = given or Path(book["path"])
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problem = f"its file {path} is gone (moved or deleted)"
    except OSError as exc:
        problem = f"its file {path} cannot be read ({exc.strerror or exc})"
    else:
        if hashlib.sha256(data).hexdigest() == book["sha256"]:
            return data, "file"
        problem = f"its file {path} has changed since it was imported"
    cached = cached_copy(ctx, book)
    if cached is None:
        raise unavailable(book, problem)
    return cached[0], "cache"


def model_chapters(rows: list[dict]):
    """Stored chapter rows (with text) as the model's Chapter objects, in idx order."""
    from bookreader_cli.books.model import Chapter, Paragraph

    return [Chapter(r["title"], r["text"], [Paragraph(s, e, k) for s, e, k in r["paragraphs"]], r["source"] or "")
            for r in sorted(rows, key=lambda r: r["idx"])]


def locations_json(locations: list[str]) -> str:
    """What epub.js `locations.save()` returns: JSON.stringify(array), no spaces, non-ASCII kept."""
    import json

    return json.dumps(locations, ensure_ascii=False, separators=(",", ":"))


def stored_locations(store, book_id: int) -> tuple[list[str] | None, int | None]:
    import json

    row = store.conn.execute("SELECT locations, locations_chars FROM books WHERE id = ?", [book_id]).fetchone()
    return (json.loads(row[0]) if row and row[0] else None), (row[1] if row else None)


def save_locations(store, book_id: int, text: str, chars: int) -> None:
    store.conn.execute("UPDATE books SET locations = ?, locations_chars = ? WHERE id = ?", [text, chars, book_id])


def compute_locations(data: bytes | object, count: int | None, chars: int | None) -> tuple[int, list[str]]:
    from bookreader_cli.books.cfi import generate_locations, locations_for_count
    from bookreader_cli.books.cfi_dom import EpubDom

    dom = data if isinstance(data, EpubDom) else EpubDom(data)
    if chars is not None:
        return chars, generate_locations(dom, chars)
    return locations_for_count(dom, count)


class EpubExtras:
    """What `process` adds for an EPUB: a range CFI per description, the locations, the cached file.

    The EPUB is read and aligned with the chapters once, on first need. When its bytes cannot be had (the
    file is gone or changed and the cache has no copy) the descriptions are still stored, without CFIs, and
    the result says why: processing a book never fails for want of its CFIs."""

    def __init__(self, ctx, book: dict, chapters: list[dict]):
        self.ctx, self.book, self.chapters = ctx, book, chapters
        self.applicable = book["format"] in EPUB_FORMATS
        self.problem: str | None = None
        self.without_cfi = 0
        self._dom = self._map = self.source = None
        self._position = {c["idx"]: i for i, c in enumerate(sorted(chapters, key=lambda c: c["idx"]))}

    def dom(self):
        if self._dom is None and self.problem is None and self.applicable:
            from bookreader_cli.books.cfi_dom import EpubDom

            try:
                data, self.source = book_epub_bytes(self.ctx, self.book)
                self._dom = EpubDom(data)
            except BadInput as exc:
                self.problem = str(exc)
        return self._dom

    def add_cfis(self, chapter: dict, descriptions: list[dict]) -> None:
        """Set each description's "cfi" (None where the text cannot be placed in the EPUB)."""
        if not self.applicable or not descriptions:
            return
        if self._map is None and self.dom() is not None:
            from bookreader_cli.books.cfi_text import ChapterMap

            self._map = ChapterMap(self._dom, model_chapters(self.chapters))
        for d in descriptions:
            d["cfi"] = None
            if self._map is not None:
                try:
                    d["cfi"] = self._map.range_cfi(self._position[chapter["idx"]], d["start"], d["end"])
                except BadInput:
                    pass
            self.without_cfi += d["cfi"] is None

    def finish(self) -> dict:
        """Locations (settings.cfi.count) and the cache entry: the result's CFI and cache fields."""
        if not self.applicable:
            return {"cfi_locations_generated": 0, "cache_status": "not_applicable"}
        out = {"cfi_locations_generated": 0, "cache_status": "source_unavailable",
               "descriptions_without_cfi": self.without_cfi}
        if self.dom() is None:
            out["epub_problem"] = self.problem
            return out
        chars, locations = compute_locations(self._dom, self.ctx.settings.cfi.count, None)
        save_locations(self.ctx.store, self.book["id"], locations_json(locations), chars)
        out.update(cfi_locations_generated=len(locations), locations_chars=chars)
        if self.source == "file":
            from bookreader_cli.cache import cache_put

            try:
                cached = cache_put(self.ctx.settings.cache_dir, self.book["id"], self.book["path"],
                                   self.ctx.settings.cache.ttl_seconds)
            except BadInput as exc:  # the file went away since it was read: the descriptions still count
                out["epub_problem"] = str(exc)
                return out
            out["cache_status"] = cached["status"] if cached["sha256"] == self.book["sha256"] else "source_changed"
        else:
            out["cache_status"] = "hit"  # the file is gone or changed; the cache's copy served
            out["epub_problem"] = self.problem or "the book's file is unavailable; its cached copy was used"
        return out


def verified_source(ctx, book: dict, given: Path | None) -> tuple[Path | None, str]:
    path = given or Path(book["path"])
    problem = source_problem(book, path)
    return (None, problem) if problem else (path, "")


