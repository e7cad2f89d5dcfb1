"""The `bookreader` command: Typer commands that parse options, call a task, and hand the result to output.

Each command is a few lines: `_run(fn, json_mode, human)` opens the context, calls the task, prints the
result (JSON on stdout with --json, a table on stderr otherwise) and maps errors onto exit codes:
0 success, 1 the job failed, 2 bad usage or bad input (one line on stderr, never a traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from bookreader_cli import __version__

app = typer.Typer(
    name="bookreader",
    help="Import books, find passages an illustrator could draw, generate pictures, precompute epub.js locations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
books_app = typer.Typer(help="Import, list, show and remove books.", no_args_is_help=True)
app.add_typer(books_app, name="books")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]

_state: dict = {"home": None, "json": False}


def _version(value: bool) -> None:
    if value:
        print(f"bookreader {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    home: Annotated[Optional[Path], typer.Option("--home", help="Data directory (default: $BOOKREADER_HOME or the user data dir).")] = None,
    json_mode: Annotated[bool, typer.Option("--json", help="JSON output for the command that follows.")] = False,
    log_format: Annotated[str, typer.Option("--log-format", help="Log lines on stderr: text or json.")] = "text",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress and info messages.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    from bookreader_cli.output import setup_logging

    if log_format not in ("text", "json"):
        raise typer.BadParameter("expected text or json", param_hint="--log-format")
    _state["home"] = home
    _state["json"] = json_mode
    setup_logging(log_format, verbose)


def _run(fn: Callable, json_mode: bool, human: Callable[[dict], None] | None = None, failed: Callable[[dict], bool] | None = None):
    """Call fn(ctx), print its result, exit with the contract's code."""
    from bookreader_cli.errors import BookreaderError
    from bookreader_cli import output

    json_mode = json_mode or _state["json"]
    ctx = None
    try:
        from bookreader_cli.config import load_settings
        from bookreader_cli.tasks import Context

        ctx = Context(load_settings(_state["home"]))
        result = fn(ctx)
    except BookreaderError as exc:
        output.error(str(exc), json_mode, exc.exit_code)
        raise typer.Exit(exc.exit_code)
    except KeyboardInterrupt:
        output.error("interrupted", json_mode, 130)
        raise typer.Exit(130)
    except Exception as exc:  # a bug or an environment failure: one line, not a traceback
        if os.environ.get("BOOKREADER_DEBUG"):
            raise
        output.error(f"{type(exc).__name__}: {exc} (set BOOKREADER_DEBUG=1 for a traceback)", json_mode, 1)
        raise typer.Exit(1)
    finally:
        if ctx is not None:
            ctx.close()
    if json_mode:
        output.print_json(result)
    elif human is not None:
        human(result)
    else:
        output.print_summary(result)
    if failed is not None and failed(result):
        raise typer.Exit(1)
    return result


# ---- books ------------------------------------------------------------------------------------
@books_app.command("import")
def books_import(
    files: Annotated[list[Path], typer.Argument(help="EPUB, FB2 (.fb2, .fb2.zip) or TXT files.")],
    json_mode: JsonOpt = False,
) -> None:
    """Import book files (the same file twice is imported once)."""
    from bookreader_cli import output, tasks

    def human(result: dict) -> None:
        output.print_table(
            ["id", "status", "title", "format", "lang", "chapters", "chars"],
            [(r["book_id"], r["status"], r["title"], r["format"], r["language"], r["chapters"], r["characters"])
             for r in result["imported"]],
            title="Imported books",
        )
        for err in result["errors"]:
            output.error(err["error"], False, 2)

    result = _run(lambda ctx: tasks.import_books(ctx, files), json_mode, human)
    if result["errors"]:
        if json_mode or _state["json"]:
            for err in result["errors"]:
                output.error(err["error"], True, 2)
        raise typer.Exit(2)


@books_app.command("list")
def books_list(json_mode: JsonOpt = False) -> None:
    """List imported books."""
    from bookreader_cli import output, tasks

    def human(result: dict) -> None:
        output.print_table(
            ["id", "title", "authors", "lang", "format", "chapters", "chars", "descriptions"],
            [(b["id"], b["title"], ", ".join(b["authors"]), b["language"], b["format"], b["chapters"], b["chars"],
              b["descriptions"]) for b in result["books"]],
            title="Books",
        )

    _run(tasks.list_books, json_mode, human)


@books_app.command("show")
def books_show(book: Annotated[str, typer.Argument(help="Book id or sha256 prefix.")], json_mode: JsonOpt = False) -> None:
    """Show a book's metadata and chapters."""
    from bookreader_cli import output, tasks

    def human(result: dict) -> None:
        output.print_summary(result, title=result["title"], skip=("chapters",))
        output.print_table(["#", "title", "chars", "paragraphs", "source"],
                           [(c["idx"], c["title"], c["characters"], c["paragraphs"], c["source"]) for c in result["chapters"]],
                           title="Chapters")

    _run(lambda ctx: tasks.show_book(ctx, book), json_mode, human)


@books_app.command("remove")
def books_remove(book: Annotated[str, typer.Argument(help="Book id or sha256 prefix.")], json_mode: JsonOpt = False) -> None:
    """Remove a book with its chapters, descriptions and image rows."""
    from bookreader_cli import tasks

    _run(lambda ctx: tasks.remove_book(ctx, book), json_mode)


# ---- settings ---------------------------------------------------------------------------------
@app.command("config")
def config_show(json_mode: JsonOpt = False) -> None:
    """Show the effective settings and where every file lives."""
    from bookreader_cli import tasks

    _run(tasks.show_config, json_mode)


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # `bookreader … | head`
        sys.stderr.close()
        sys.exit(0)
