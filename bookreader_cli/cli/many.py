"""What the commands that take several books share: the table of per-book results, the errors, the exit code.

The document is jobs.library's: {"books": [result dicts], "errors": [{target, error, exit_code}], "summary"}.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from bookreader_cli.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, json_wanted


def coded(document: dict) -> dict:
    """The document with each error's exit code in place of its bad_input flag."""
    for err in document["errors"]:
        err["exit_code"] = EXIT_BAD_INPUT if err.pop("bad_input", False) else EXIT_FAILED
    return document


def exit_code(document: dict) -> int:
    """2 when nothing could be read (every target was bad input), 1 when anything failed, else 0."""
    errors = document["errors"]
    if not document["books"] and errors and all(e["exit_code"] == EXIT_BAD_INPUT for e in errors):
        return EXIT_BAD_INPUT
    return EXIT_FAILED if errors else EXIT_OK


def show(document: dict, title: str, columns: list[str], row: Callable[[dict], tuple]) -> None:
    """The human view: one row per book, then each error as its own line, then the summary."""
    from bookreader_cli import output

    if document["books"]:
        output.print_table(columns, [row(b) for b in document["books"]], title=title)
    for err in document["errors"]:
        output.error(
            f"{err['target']}: {err['error']}" if err["target"] not in err["error"] else err["error"],
            False,
            err["exit_code"],
        )
    summary = document["summary"]
    output.message(
        ", ".join(f"{value} {key}" for key, value in summary.items()) + f" ({document['total_time_seconds']:.1f} s)"
    )


def finish(document: dict, json_mode: bool) -> None:
    """Exit 2 when nothing could be read, 1 when any book failed; with --json each error is also one JSON
    error object on stderr (the document on stdout lists them too)."""
    from bookreader_cli import output

    code = exit_code(document)
    if code and json_wanted(json_mode):
        for err in document["errors"]:
            output.error(err["error"], True, err["exit_code"])
    if code:
        raise typer.Exit(code)
