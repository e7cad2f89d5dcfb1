"""The product, one function per job; the CLI and the Celery workers are two thin doors into these.

Every job takes a Context (settings + a lazily opened store) and returns a plain dict: the seed's result
shapes where the seed has one (keys kept, never renamed; every figure measured). Jobs never import the
cli/ or workers/ packages: what runs a book's NLP elsewhere is passed in (`process_book(runner=…)`).
"""

from bookreader_cli.jobs.books import (
    book_language,
    book_ref_or_file,
    import_book,
    import_books,
    list_books,
    lookup_book,
    remove_book,
    show_book,
    show_config,
)
from bookreader_cli.jobs.context import Context
from bookreader_cli.jobs.epub import (
    cache_clear,
    cache_epub_file,
    cache_stats,
    cfi_from_percentage,
    cfi_to_percentage,
    generate_cfi_locations,
    get_cached_epub,
    resolve_cfi,
)
from bookreader_cli.jobs.images import batch_generate_for_book, cleanup_old_images, generate_images
from bookreader_cli.jobs.process import (
    fit_scorers,
    list_descriptions,
    list_models,
    nlp_text,
    process_book,
    train_stanza,
)
from bookreader_cli.jobs.status import health_check, list_runs, show_run, system_stats

__all__ = [
    "Context",
    "batch_generate_for_book",
    "book_language",
    "book_ref_or_file",
    "cache_clear",
    "cache_epub_file",
    "cache_stats",
    "cfi_from_percentage",
    "cfi_to_percentage",
    "cleanup_old_images",
    "fit_scorers",
    "generate_cfi_locations",
    "generate_images",
    "get_cached_epub",
    "health_check",
    "import_book",
    "import_books",
    "list_books",
    "list_descriptions",
    "list_models",
    "list_runs",
    "lookup_book",
    "nlp_text",
    "process_book",
    "remove_book",
    "resolve_cfi",
    "show_book",
    "show_config",
    "show_run",
    "system_stats",
    "train_stanza",
]
