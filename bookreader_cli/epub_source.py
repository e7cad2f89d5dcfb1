"""The EPUB bytes behind a book's CFIs and cache, and what `process` adds for an EPUB.

A book is one file content (its sha256): its chapters, descriptions, CFIs and locations all describe those
bytes. So every CFI and cache job first proves the bytes it uses are the book's: the file at the book's path
while its sha256 still matches, else the EPUB cache's checksummed copy of the same content. A file that was
edited is a different book (`books import` gives it its own id).

Plain functions over a book row and the cache directory: no Context, no SQL (the jobs store what these
compute through the Store).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bookreader_cli.books import file_sha256
from bookreader_cli.books.model import Chapter
from bookreader_cli.errors import BadInput

if TYPE_CHECKING:
    from bookreader_cli.epubcfi.align import ChapterMap
    from bookreader_cli.epubcfi.dom import EpubDom

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
    fix = (
        "the edited file is another book: import it (bookreader books import FILE) to get its own id"
        if "changed" in problem
        else "name the book by its file, where it is now, instead of by its id"
    )
    return BadInput(f"book {book['id']}: {problem}, and the EPUB cache holds no copy of it; {fix}")


def cached_copy(cache_dir: Path, book: dict) -> tuple[bytes, dict] | None:
    """The cache's verified copy of exactly this book's bytes, if it holds one (and it has not expired)."""
    from bookreader_cli.cache import cache_peek

    found = cache_peek(cache_dir, book["id"])
    return found if found is not None and found[1]["sha256"] == book["sha256"] else None


def book_epub_bytes(cache_dir: Path, book: dict, given: Path | None = None) -> tuple[bytes, str]:
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
    cached = cached_copy(cache_dir, book)
    if cached is None:
        raise unavailable(book, problem)
    return cached[0], "cache"


def locations_json(locations: list[str]) -> str:
    """What epub.js `locations.save()` returns: JSON.stringify(array), no spaces, non-ASCII kept."""
    import json

    return json.dumps(locations, ensure_ascii=False, separators=(",", ":"))


def compute_locations(data: bytes | EpubDom, count: int | None, chars: int | None) -> tuple[int, list[str]]:
    """(chars per location, locations): exactly `chars` per location, else about `count` locations."""
    from bookreader_cli.epubcfi.dom import EpubDom
    from bookreader_cli.epubcfi.locations import generate_locations, locations_for_count

    dom = data if isinstance(data, EpubDom) else EpubDom(data)
    if chars is not None:
        return chars, generate_locations(dom, chars)
    assert count is not None  # callers give one of the two
    return locations_for_count(dom, count)


class EpubExtras:
    """What `process` adds for an EPUB: a range CFI per description, the locations, the cached file.

    The EPUB is read and aligned with the chapters once, on first need. When its bytes cannot be had (the
    file is gone or changed and the cache has no copy) the descriptions are still stored, without CFIs, and
    the result says why: processing a book never fails for want of its CFIs."""

    def __init__(self, book: dict, chapters: list[Chapter], cache_dir: Path, cache_ttl: int, locations_count: int):
        self.book, self.chapters = book, chapters
        self.cache_dir, self.cache_ttl, self.locations_count = cache_dir, cache_ttl, locations_count
        self.applicable = book["format"] in EPUB_FORMATS
        self.problem: str | None = None
        self.without_cfi = 0
        self._dom: EpubDom | None = None
        self._map: ChapterMap | None = None
        self.source: str | None = None
        self._position = {c.idx: i for i, c in enumerate(sorted(chapters, key=lambda c: c.idx))}

    def dom(self) -> EpubDom | None:
        if self._dom is None and self.problem is None and self.applicable:
            from bookreader_cli.epubcfi.dom import EpubDom

            try:
                data, self.source = book_epub_bytes(self.cache_dir, self.book)
                self._dom = EpubDom(data)
            except BadInput as exc:
                self.problem = str(exc)
        return self._dom

    def add_cfis(self, chapter: Chapter, descriptions: list[dict]) -> None:
        """Set each description's "cfi" (None where the text cannot be placed in the EPUB)."""
        if not self.applicable or not descriptions:
            return
        dom = self.dom()
        if self._map is None and dom is not None:
            from bookreader_cli.epubcfi.align import ChapterMap

            self._map = ChapterMap(dom, sorted(self.chapters, key=lambda c: c.idx))
        for d in descriptions:
            d["cfi"] = None
            if self._map is not None:
                try:
                    d["cfi"] = self._map.range_cfi(self._position[chapter.idx], d["start"], d["end"])
                except BadInput:
                    pass
            self.without_cfi += d["cfi"] is None

    def finish(self, save_locations: Callable[[str, int], None]) -> dict:
        """Locations (about `locations_count`, handed to save_locations(json_text, chars)) and the cache
        entry: the result's CFI and cache fields."""
        if not self.applicable:
            return {"cfi_locations_generated": 0, "cache_status": "not_applicable"}
        out: dict = {
            "cfi_locations_generated": 0,
            "cache_status": "source_unavailable",
            "descriptions_without_cfi": self.without_cfi,
        }
        dom = self.dom()
        if dom is None:
            out["epub_problem"] = self.problem
            return out
        chars, locations = compute_locations(dom, self.locations_count, None)
        save_locations(locations_json(locations), chars)
        out.update(cfi_locations_generated=len(locations), locations_chars=chars)
        if self.source == "file":
            from bookreader_cli.cache import cache_put

            try:
                cached = cache_put(self.cache_dir, self.book["id"], self.book["path"], self.cache_ttl)
            except BadInput as exc:  # the file went away since it was read: the descriptions still count
                out["epub_problem"] = str(exc)
                return out
            out["cache_status"] = cached["status"] if cached["sha256"] == self.book["sha256"] else "source_changed"
        else:
            out["cache_status"] = "hit"  # the file is gone or changed; the cache's copy served
            out["epub_problem"] = self.problem or "the book's file is unavailable; its cached copy was used"
        return out


def verified_source(book: dict, given: Path | None) -> tuple[Path | None, str]:
    path = given or Path(book["path"])
    problem = source_problem(book, path)
    return (None, problem) if problem else (path, "")
