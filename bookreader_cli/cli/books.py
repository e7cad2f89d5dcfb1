"""`bookreader books import | list | show | remove`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookreader_cli.cli.common import EXIT_BAD_INPUT, JsonOpt, app, json_wanted, run

books_app = typer.Typer(help="Import, list, show and remove books.", no_args_is_help=True)
app.add_typer(books_app, name="books")


@books_app.command("import")
def books_import(
    files: Annotated[list[Path], typer.Argument(help="EPUB, FB2 (.fb2, .fb2.zip) or TXT files.")],
    title: Annotated[
        str | None, typer.Option("--title", help="The book's title (one file only; replaces a title already there).")
    ] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Import book files (the same file twice is imported once)."""
    from bookreader_cli import jobs, output

    def human(result: dict) -> None:
        if result["imported"]:
            output.print_table(
                ["id", "status", "title", "format", "lang", "chapters", "chars"],
                [
                    (r["book_id"], r["status"], r["title"], r["format"], r["language"], r["chapters"], r["characters"])
                    for r in result["imported"]
                ],
                title="Imported books",
            )
        for err in result["errors"]:
            output.error(err["error"], False, EXIT_BAD_INPUT)

    result = run(lambda ctx: jobs.import_books(ctx, files, title), json_mode, human)
    if result["errors"]:
        if json_wanted(json_mode):
            for err in result["errors"]:
                output.error(err["error"], True, EXIT_BAD_INPUT)
        raise typer.Exit(EXIT_BAD_INPUT)


@books_app.command("list")
def books_list(json_mode: JsonOpt = False) -> None:
    """List imported books."""
    from bookreader_cli import jobs, output

    def human(result: dict) -> None:
        output.print_table(
            ["id", "title", "authors", "lang", "format", "chapters", "chars", "descriptions"],
            [
                (
                    b["id"],
                    b["title"],
                    ", ".join(b["authors"]),
                    b["language"],
                    b["format"],
                    b["chapters"],
                    b["chars"],
                    b["descriptions"],
                )
                for b in result["books"]
            ],
            title="Books",
        )

    run(jobs.list_books, json_mode, human)


@books_app.command("show")
def books_show(
    book: Annotated[str, typer.Argument(help="Book id or sha256 prefix.")], json_mode: JsonOpt = False
) -> None:
    """Show a book's metadata and chapters."""
    from bookreader_cli import jobs, output

    def human(result: dict) -> None:
        output.print_summary(result, title=result["title"], skip=("chapters",))
        output.print_table(
            ["#", "title", "chars", "paragraphs", "source"],
            [(c["idx"], c["title"], c["characters"], c["paragraphs"], c["source"]) for c in result["chapters"]],
            title="Chapters",
        )

    run(lambda ctx: jobs.show_book(ctx, book), json_mode, human)


@books_app.command("remove")
def books_remove(
    book: Annotated[str, typer.Argument(help="Book id or sha256 prefix.")], json_mode: JsonOpt = False
) -> None:
    """Remove a book with its chapters, descriptions and image rows."""
    from bookreader_cli import jobs

    run(lambda ctx: jobs.remove_book(ctx, book), json_mode)
