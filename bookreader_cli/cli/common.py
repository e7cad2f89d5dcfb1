"""The Typer app, its global options, and `run`: open the context, call a job, print, map errors to exit codes.

The exit codes live here and only here: 0 success, 1 the job ran and failed, 2 bad usage or bad input (one
line on stderr, never a traceback), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, handled like Ctrl-C).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from bookreader_cli import __version__
from bookreader_cli.errors import BadInput, BookreaderError, Terminated

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


def exit_code(exc: BaseException) -> int:
    """The contract's exit code for an error."""
    if isinstance(exc, BadInput):
        return EXIT_BAD_INPUT
    if isinstance(exc, Terminated):
        return EXIT_TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_FAILED


app = typer.Typer(
    name="bookreader",
    help="Import books, find passages an illustrator could draw, generate pictures, precompute epub.js locations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]

state: dict = {"home": None, "json": False}


def _version(value: bool) -> None:
    if value:
        print(f"bookreader {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    home: Annotated[
        Path | None, typer.Option("--home", help="Data directory (default: $BOOKREADER_HOME or the user data dir).")
    ] = None,
    json_mode: Annotated[bool, typer.Option("--json", help="JSON output for the command that follows.")] = False,
    log_format: Annotated[str, typer.Option("--log-format", help="Log lines on stderr: text or json.")] = "text",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress and info messages.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    from bookreader_cli.output import setup_logging

    if log_format not in ("text", "json"):
        raise typer.BadParameter("expected text or json", param_hint="--log-format")
    state["home"] = home
    state["json"] = json_mode
    setup_logging(log_format, verbose)


def json_wanted(json_mode: bool) -> bool:
    """--json given after the command or before it (`bookreader --json COMMAND`)."""
    return json_mode or state["json"]


def run(
    fn: Callable,
    json_mode: bool,
    human: Callable[[dict], None] | None = None,
    failed: Callable[[dict], bool] | None = None,
    stdout_taken: bool = False,
):
    """Call fn(ctx), print its result, exit with the contract's code.

    stdout_taken: the command wrote its data to stdout (`-o -`), so a --json summary goes to stderr."""
    from bookreader_cli import output

    json_mode = json_wanted(json_mode)
    ctx = None
    try:
        from bookreader_cli.config import load_settings
        from bookreader_cli.jobs.context import Context

        ctx = Context(load_settings(state["home"]))
        result = fn(ctx)
    except BookreaderError as exc:
        output.error(str(exc), json_mode, exit_code(exc))
        raise typer.Exit(exit_code(exc))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (errors.Terminated, see on_sigterm)
        output.error(str(exc) or "interrupted", json_mode, exit_code(exc))
        raise typer.Exit(exit_code(exc))
    except Exception as exc:  # a bug or an environment failure: one line, not a traceback
        if os.environ.get("BOOKREADER_DEBUG"):
            raise
        output.error(f"{type(exc).__name__}: {exc} (set BOOKREADER_DEBUG=1 for a traceback)", json_mode, EXIT_FAILED)
        raise typer.Exit(EXIT_FAILED)
    finally:
        if ctx is not None:
            ctx.close()
    if json_mode and stdout_taken:
        sys.stderr.write(output.dumps(result) + "\n")
    elif json_mode:
        output.print_json(result)
    elif human is not None:
        human(result)
    else:
        output.print_summary(result)
    if failed is not None and failed(result):
        raise typer.Exit(EXIT_FAILED)
    return result


def bad_option(message: str) -> None:
    """Refuse an option value before any job runs: one line, exit 2."""
    from bookreader_cli import output

    output.error(message, False, EXIT_BAD_INPUT)
    raise typer.Exit(EXIT_BAD_INPUT)


def on_sigterm(signum, frame) -> None:
    """SIGTERM is handled like Ctrl-C (the run is recorded, its workers stopped, exit 143); a second
    SIGTERM kills at once."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated()
