"""A library in one command: many books named by file, directory, id or --all, one job over each.

`books_for(ctx, targets, all_books)` turns what the user typed into book rows (importing files that are
new) and per-target errors; `over_books(books, errors, job)` runs a job on each book and gathers one
document: {"books": [each book's result dict], "errors": [...], "summary": {...}, "total_time_seconds"}.
A bad target never stops the others; each error says whether it was bad input (an unreadable book, an
unknown id) or a job that failed, for the CLI to map onto its exit codes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bookreader_cli.errors import BadInput, BookreaderError

# What a directory walk picks up (the importer still sniffs each file's real format).
BOOK_SUFFIXES = (".epub", ".epub3", ".kepub", ".fb2", ".fb2.zip", ".fbz", ".txt", ".text")


def book_files(folder: Path) -> list[Path]:
    """The book files under `folder`, recursively, in name order; hidden files and folders are left out."""
    found = []
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in parts) or not path.is_file():
            continue
        if path.name.lower().endswith(BOOK_SUFFIXES):
            found.append(path)
    return sorted(found)


def is_library_run(targets: list[str], all_books: bool) -> bool:
    """Several books (or a directory, or --all): the multi-book document; one file or id: today's shape."""
    if all_books:
        if targets:
            raise BadInput("give book files, directories or ids, or --all, not both")
        return True
    if not targets:
        raise BadInput("give a book file, a directory, a book id, or --all")
    return len(targets) > 1 or Path(targets[0]).is_dir()


def books_for(
    ctx, targets: list[str], all_books: bool = False, import_files: bool = True
) -> tuple[list[dict], list[dict]]:
    """(book rows, errors) for what the user named, each book once, in the order named.

    A file is imported when new (`import_files`), a directory contributes its book files, anything else
    is a book id or sha256 prefix. Each row gets "file": the file named (or the file it was imported from).
    """
    from bookreader_cli.jobs.books import import_book, lookup_book

    store = ctx.store
    if all_books:
        return [dict(store.book(b["id"]), file=b.get("file_name")) for b in store.books()], []
    books: list[dict] = []
    errors: list[dict] = []
    seen: set[int] = set()

    def add(row: dict, file: str) -> None:
        if row["id"] not in seen:
            seen.add(row["id"])
            books.append(dict(row, file=file))

    for target in targets:
        path = Path(target)
        try:
            if path.is_dir():
                files = book_files(path)
                if not files:
                    raise BadInput(f"{target}: no book files in this directory")
                for file in files:
                    try:
                        add(
                            store.book(import_book(ctx, file)["book_id"])
                            if import_files
                            else lookup_book(ctx, str(file)),
                            str(file),
                        )
                    except BadInput as exc:
                        errors.append({"target": str(file), "error": str(exc), "bad_input": isinstance(exc, BadInput)})
            elif path.exists() or path.suffix or "/" in target:
                if not import_files:
                    add(lookup_book(ctx, target), str(path))
                else:
                    add(store.book(import_book(ctx, path)["book_id"]), str(path))
            else:
                row = store.resolve_book(target)
                add(row, row.get("path") or row.get("file_name") or "")
        except BadInput as exc:
            errors.append({"target": str(target), "error": str(exc), "bad_input": isinstance(exc, BadInput)})
    return books, errors


def over_books(
    books: list[dict],
    errors: list[dict],
    job: Callable[[dict], dict],
    skip: Callable[[dict], dict | None] | None = None,
) -> dict:
    """Run `job(book)` on each book (after `skip(book)`, which returns a result dict to use instead, or
    None); a book whose job fails goes to errors with its exit code and the rest go on."""
    started = time.perf_counter()
    results: list[dict] = []
    errors = list(errors)
    skipped = 0
    for book in books:
        try:
            result = skip(book) if skip is not None else None
            if result is not None:
                skipped += 1
            else:
                result = job(book)
        except BookreaderError as exc:
            errors.append(
                {
                    "target": book.get("file") or str(book["id"]),
                    "book_id": book["id"],
                    "error": str(exc),
                    "bad_input": isinstance(exc, BadInput),
                }
            )
            continue
        results.append(result)
    return {
        "books": results,
        "errors": errors,
        "summary": {
            "books": len(results) + len(errors),
            "processed": len(results) - skipped,
            "skipped": skipped,
            "failed": len(errors),
        },
        "total_time_seconds": round(time.perf_counter() - started, 3),
    }


# ---- process: skip what is done, one progress over every chapter to do ----------------------------------
def complete_run(store, book_id: int, run_key: str) -> dict | None:
    """{"chapters", "descriptions", "finished_at"} when every chapter of the book is done for `run_key`
    (the book's text and these settings were processed to the end), else None."""
    chapters, _ = store.chapter_totals(book_id)
    done = store.chapters_done(book_id, run_key)
    if not chapters or not set(range(chapters)) <= done:
        return None
    return {"chapters": chapters, **store.run_summary(book_id)}


def process_library(
    ctx,
    targets: list[str],
    all_books: bool = False,
    mode: str | None = None,
    processors=None,
    workers: int | None = None,
    executor: str = "local",
    force: bool = False,
    runner=None,
    progress=None,
) -> dict:
    """Import what is new, skip each book already processed to the end with these settings (unless
    `force`), process the rest with `runner` (see process_book). `progress(total_chapters)` is a context
    manager yielding advance(text): one bar over every chapter of every book to do."""
    from contextlib import nullcontext

    from bookreader_cli.jobs.process import process_book, run_key
    from bookreader_cli.nlp.engine import check_mode, processor_names

    started = time.perf_counter()
    settings = ctx.settings
    mode = check_mode(mode or settings.nlp.mode)
    names = processor_names(processors, settings.nlp)
    if (workers or settings.nlp.workers) < 1:
        raise BadInput("--workers must be at least 1")
    key = run_key(mode, names, settings)
    books, errors = books_for(ctx, targets, all_books)
    done = {} if force else {b["id"]: complete_run(ctx.store, b["id"], key) for b in books}
    todo = [b for b in books if not done.get(b["id"])]
    total = sum(ctx.store.chapter_totals(b["id"])[0] for b in todo)

    def skipped(book: dict) -> dict | None:
        run = done.get(book["id"])
        if not run:
            return None
        return {
            "book_id": book["id"],
            "title": book["title"],
            "file": book["file"],
            "status": "skipped",
            "reason": "unchanged since its last complete run (same text, same settings); --force redoes it",
            "total_chapters": run["chapters"],
            "descriptions_found": run["descriptions"],
            "last_run_finished_at": run["finished_at"],
            "mode": mode,
            "nlp_processors": names,
        }

    with progress(total) if progress is not None and total else nullcontext(None) as advance:
        position = [0]

        def job(book: dict) -> dict:
            position[0] += 1
            label = f"[{position[0]}/{len(todo)}] {book['title'][:30]}"

            def on_chapter(chapter, found):
                if advance is not None:
                    advance(f"{label}: {chapter.title[:30]} ({found})")

            result = process_book(
                ctx, str(book["id"]), mode, names, workers, executor, on_chapter=on_chapter, runner=runner
            )
            return dict(result, file=book["file"])

        document = over_books(books, errors, job, skip=skipped)
    document.update(mode=mode, nlp_processors=names, total_time_seconds=round(time.perf_counter() - started, 3))
    return document
