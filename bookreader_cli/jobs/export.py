"""Exports of one book: the offline HTML reader view (export/html.py), fed from the store."""

from __future__ import annotations

from pathlib import Path

from bookreader_cli.errors import BadInput
from bookreader_cli.jobs.books import book_ref_or_file
from bookreader_cli.jobs.context import Context


def check_out_dir(out_dir: str | Path) -> Path:
    """The site's folder (created when missing); an existing file there, or under a file, is bad input."""
    path = Path(out_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise BadInput(f"{out_dir}: not a directory")
    existing = next((p for p in path.absolute().parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise BadInput(f"{out_dir}: {existing} is not a directory")
    return path


def export_html(ctx: Context, ref: str, out_dir: str | Path) -> dict:
    """Write the book's reader view into out_dir: index.html, descriptions.json and images/ (copied from
    the images dir). The book is named by id, sha256 prefix or file (imported when new)."""
    from bookreader_cli import __version__
    from bookreader_cli.export.html import write_site

    target = check_out_dir(out_dir)
    book = book_ref_or_file(ctx, ref)
    store = ctx.store
    descriptions = store.descriptions(book["id"], order="position")
    try:
        result = write_site(
            target,
            book,
            store.chapters(book["id"]),
            descriptions,
            store.completed_images(book["id"]),
            ctx.settings.images_dir,
            generator=f"bookreader {__version__}",
        )
    except OSError as exc:
        raise BadInput(f"cannot write {out_dir}: {exc.strerror or exc}") from None
    out = {"book_id": book["id"], "title": book["title"], "format": book["format"], **result}
    if not descriptions:
        out["warning"] = f"book {book['id']} has no descriptions yet: run `bookreader process {book['id']}` first"
    return out
