"""`bookreader cfi …` (epub.js locations and CFIs) and `bookreader cache …` (the gzip cache of EPUB files)."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from bookreader_cli.cli.common import JsonOpt, app, run


class _DefaultCommandGroup(TyperGroup):
    """`bookreader cfi BOOK …` means `bookreader cfi generate BOOK …`; `cfi resolve …` and the rest stay
    subcommands (a book reference is never a subcommand name)."""

    default_command = "generate"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


cfi_app = typer.Typer(
    cls=_DefaultCommandGroup,
    no_args_is_help=True,
    help="EPUB CFIs for epub.js readers: `cfi BOOK` computes the locations (same as `cfi generate BOOK`).",
)
app.add_typer(cfi_app, name="cfi")
BookRefArg = Annotated[str, typer.Argument(help="Book id, sha256 prefix, or an EPUB file (imported if new).")]
OutputOpt = Annotated[
    str | None, typer.Option("--output", "-o", help="Write the data to FILE (atomically), or - for stdout.")
]


@cfi_app.command("generate")
def cfi_generate(
    books: Annotated[
        list[str],
        typer.Argument(help="Book ids, sha256 prefixes, EPUB files (imported if new) or directories of them."),
    ],
    chars: Annotated[
        int | None, typer.Option("--chars", help="Characters per location, as epub.js locations.generate(N).")
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="About this many locations (default: settings cfi.count, 2000).")
    ] = None,
    out: OutputOpt = None,
    json_mode: JsonOpt = False,
) -> None:
    """Compute books' epub.js locations, store them with each book; -o (one book) writes what locations.save()
    gives. Several books: one document lists each book's result and each error."""
    from bookreader_cli import jobs, output
    from bookreader_cli.cli import many
    from bookreader_cli.errors import BadInput
    from bookreader_cli.jobs.library import books_for, is_library_run, over_books

    several = [False]

    def generate(ctx):
        several[0] = is_library_run(books, False)
        if not several[0]:
            return jobs.generate_cfi_locations(ctx, books[0], count, chars, output.DataOut(out) if out else None)
        if out:
            raise BadInput("--output writes one book's locations: give one book")
        found, errors = books_for(ctx, books)
        return many.coded(
            over_books(
                found,
                errors,
                lambda b: dict(jobs.generate_cfi_locations(ctx, str(b["id"]), count, chars), title=b["title"]),
            )
        )

    def human(result: dict) -> None:
        if not several[0]:
            output.print_summary(result, title="CFI locations")
            return
        many.show(
            result,
            "CFI locations",
            ["id", "title", "locations", "chars per location", "seconds"],
            lambda b: (b["book_id"], b["title"], b["locations_generated"], b["chars"], b["generation_time_seconds"]),
        )

    result = run(generate, json_mode, human, stdout_taken=out == "-")
    if several[0]:
        many.finish(result, json_mode)


@cfi_app.command("resolve")
def cfi_resolve(
    book: BookRefArg,
    cfi: Annotated[str, typer.Argument(help="An EPUB CFI, e.g. 'epubcfi(/6/4!/4/2/1:0)' (quote it in the shell).")],
    json_mode: JsonOpt = False,
) -> None:
    """Where a CFI points: chapter, character offset in our chapter text, and a snippet from there."""
    from bookreader_cli import jobs, output

    run(lambda ctx: jobs.resolve_cfi(ctx, book, cfi), json_mode, lambda r: output.print_summary(r, title="CFI"))


@cfi_app.command("from-percentage")
def cfi_from_percentage_cmd(
    book: BookRefArg,
    percentage: Annotated[float, typer.Argument(help="A fraction from 0 to 1, as in epub.js.")],
    json_mode: JsonOpt = False,
) -> None:
    """The CFI at a percentage of the book (epub.js locations.cfiFromPercentage over the stored locations)."""
    from bookreader_cli import jobs, output

    run(
        lambda ctx: jobs.cfi_from_percentage(ctx, book, percentage),
        json_mode,
        lambda r: output.print_summary(r, title="CFI from percentage"),
    )


@cfi_app.command("to-percentage")
def cfi_to_percentage_cmd(
    book: BookRefArg,
    cfi: Annotated[str, typer.Argument(help="An EPUB CFI (quote it in the shell).")],
    json_mode: JsonOpt = False,
) -> None:
    """How far into the book a CFI is (epub.js locations.percentageFromCfi over the stored locations)."""
    from bookreader_cli import jobs, output

    run(
        lambda ctx: jobs.cfi_to_percentage(ctx, book, cfi),
        json_mode,
        lambda r: output.print_summary(r, title="Percentage from CFI"),
    )


cache_app = typer.Typer(
    help="The gzip cache of EPUB files: put, get (byte-identical), stats, clear.", no_args_is_help=True
)
app.add_typer(cache_app, name="cache")


@cache_app.command("put")
def cache_put_cmd(book: BookRefArg, json_mode: JsonOpt = False) -> None:
    """Cache a book's EPUB (gzip, checksummed, TTL settings cache.ttl_seconds)."""
    from bookreader_cli import jobs, output

    run(lambda ctx: jobs.cache_epub_file(ctx, book), json_mode, lambda r: output.print_summary(r, title="Cached"))


@cache_app.command("get")
def cache_get_cmd(book: BookRefArg, out: OutputOpt = None, json_mode: JsonOpt = False) -> None:
    """The book's original EPUB bytes through the cache: -o FILE, or -o - for stdout (without -o: only check)."""
    from bookreader_cli import jobs, output

    def human(result: dict) -> None:
        if result.get("warning"):
            output.message(f"warning: {result['warning']}")
        output.print_summary(result, title="Cache get", skip=("warning",))

    run(
        lambda ctx: jobs.get_cached_epub(ctx, book, output.DataOut(out) if out else None),
        json_mode,
        human,
        stdout_taken=out == "-",
    )


@cache_app.command("stats")
def cache_stats_cmd(json_mode: JsonOpt = False) -> None:
    """Entries, original and compressed sizes, space used on disk."""
    from bookreader_cli import jobs, output

    run(jobs.cache_stats, json_mode, lambda r: output.print_summary(r, title="EPUB cache"))


@cache_app.command("clear")
def cache_clear_cmd(
    expired: Annotated[bool, typer.Option("--expired", help="Only the entries whose TTL has passed.")] = False,
    json_mode: JsonOpt = False,
) -> None:
    """Remove every cache entry (or only the expired ones)."""
    from bookreader_cli import jobs, output

    run(lambda ctx: jobs.cache_clear(ctx, expired), json_mode, lambda r: output.print_summary(r, title="Cache cleared"))
