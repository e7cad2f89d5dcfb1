"""The `bookreader` command: a Typer app (cli.common) with one module per command group.

Each command parses its options, calls a plain function from bookreader_cli.jobs that returns data, and
hands the result to output (JSON on stdout with --json, a table on stderr otherwise); cli.common.run maps
errors onto exit codes. The modules are imported in the order their commands appear in --help.
"""

from __future__ import annotations

import importlib
import signal
import sys

from bookreader_cli.cli.common import EXIT_FAILED, app, on_sigterm

COMMAND_MODULES = ("books", "process", "export", "epub", "images", "status", "workers")  # the order of --help
for _module in COMMAND_MODULES:
    importlib.import_module(f"bookreader_cli.cli.{_module}")

__all__ = ["app", "main"]


def main() -> None:
    signal.signal(signal.SIGTERM, on_sigterm)  # SIGTERM is handled like Ctrl-C: exit 143, resumable
    try:
        app()
    except BrokenPipeError:  # `bookreader … | head`
        sys.stderr.close()
        sys.exit(0)
    except OSError as exc:  # stdout itself failed (a full disk, a closed terminal): one line, not a traceback
        from bookreader_cli import output

        output.error(f"cannot write output: {exc.strerror or exc}", False, EXIT_FAILED)
        sys.exit(EXIT_FAILED)
