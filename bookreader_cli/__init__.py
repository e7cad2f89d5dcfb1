"""bookreader: import books, find drawable descriptions, make pictures, serve epub.js locations.

The library surface (what a script may rely on), loaded on first use so that `import bookreader_cli` and
the CLI's start-up stay cheap:

    from bookreader_cli import Context, load_settings, import_book, process_book, list_descriptions
    with Context(load_settings("/data/bookreader")) as ctx:
        book = import_book(ctx, "moby-dick.epub")
        process_book(ctx, str(book["book_id"]))
        top = list_descriptions(ctx, str(book["book_id"]), top=10)["descriptions"]

Errors: every bad input is a `BadInput` (`NotFound`, `UnreadableBook`, `NotAnEpub` say which); a job that
ran and failed raises `JobFailed` (`Busy` when another process holds the book or the job).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → the module that defines it
_SURFACE = {
    "load_book": "bookreader_cli.books",
    "Book": "bookreader_cli.books.model",
    "Chapter": "bookreader_cli.books.model",
    "Paragraph": "bookreader_cli.books.model",
    "Settings": "bookreader_cli.config",
    "NlpSettings": "bookreader_cli.config",
    "load_settings": "bookreader_cli.config",
    "Context": "bookreader_cli.jobs",
    "import_book": "bookreader_cli.jobs",
    "import_books": "bookreader_cli.jobs",
    "list_books": "bookreader_cli.jobs",
    "show_book": "bookreader_cli.jobs",
    "remove_book": "bookreader_cli.jobs",
    "process_book": "bookreader_cli.jobs",
    "nlp_text": "bookreader_cli.jobs",
    "list_descriptions": "bookreader_cli.jobs",
    "generate_cfi_locations": "bookreader_cli.jobs",
    "resolve_cfi": "bookreader_cli.jobs",
    "cfi_from_percentage": "bookreader_cli.jobs",
    "cfi_to_percentage": "bookreader_cli.jobs",
    "cache_epub_file": "bookreader_cli.jobs",
    "get_cached_epub": "bookreader_cli.jobs",
    "generate_images": "bookreader_cli.jobs",
    "batch_generate_for_book": "bookreader_cli.jobs",
    "cleanup_old_images": "bookreader_cli.jobs",
    "system_stats": "bookreader_cli.jobs",
    "health_check": "bookreader_cli.jobs",
    "analyze_text": "bookreader_cli.nlp.runner",
    "BookreaderError": "bookreader_cli.errors",
    "BadInput": "bookreader_cli.errors",
    "NotFound": "bookreader_cli.errors",
    "UnreadableBook": "bookreader_cli.errors",
    "NotAnEpub": "bookreader_cli.errors",
    "JobFailed": "bookreader_cli.errors",
    "Busy": "bookreader_cli.errors",
}

__all__ = [
    "BadInput",
    "Book",
    "BookreaderError",
    "Busy",
    "Chapter",
    "Context",
    "JobFailed",
    "NlpSettings",
    "NotAnEpub",
    "NotFound",
    "Paragraph",
    "Settings",
    "UnreadableBook",
    "__version__",
    "analyze_text",
    "batch_generate_for_book",
    "cache_epub_file",
    "cfi_from_percentage",
    "cfi_to_percentage",
    "cleanup_old_images",
    "generate_cfi_locations",
    "generate_images",
    "get_cached_epub",
    "health_check",
    "import_book",
    "import_books",
    "list_books",
    "list_descriptions",
    "load_book",
    "load_settings",
    "nlp_text",
    "process_book",
    "remove_book",
    "resolve_cfi",
    "show_book",
    "system_stats",
]

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ loads these on first use
    from bookreader_cli.books import load_book
    from bookreader_cli.books.model import Book, Chapter, Paragraph
    from bookreader_cli.config import NlpSettings, Settings, load_settings
    from bookreader_cli.errors import BadInput, BookreaderError, Busy, JobFailed, NotAnEpub, NotFound, UnreadableBook
    from bookreader_cli.jobs import (
        Context,
        batch_generate_for_book,
        cache_epub_file,
        cfi_from_percentage,
        cfi_to_percentage,
        cleanup_old_images,
        generate_cfi_locations,
        generate_images,
        get_cached_epub,
        health_check,
        import_book,
        import_books,
        list_books,
        list_descriptions,
        nlp_text,
        process_book,
        remove_book,
        resolve_cfi,
        show_book,
        system_stats,
    )
    from bookreader_cli.nlp.runner import analyze_text


def __getattr__(name: str) -> Any:
    module = _SURFACE.get(name)
    if module is None:
        raise AttributeError(f"module 'bookreader_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SURFACE))
