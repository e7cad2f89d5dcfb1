"""`bookreader export BOOK --html DIR`: a book as an offline web page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookreader_cli.cli.common import JsonOpt, app, run


@app.command("export")
def export_cmd(
    book: Annotated[str, typer.Argument(help="Book id, sha256 prefix, or a book file (imported if new).")],
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write the reader view here: DIR/index.html, descriptions.json, images/."),
    ] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Write a processed book as a self-contained web page: its text with every description highlighted,
    the best passages by type, and its pictures. Open DIR/index.html in any browser; nothing is fetched."""
    from bookreader_cli import output
    from bookreader_cli.errors import BadInput
    from bookreader_cli.jobs.export import export_html

    def export(ctx):
        if html is None:
            raise BadInput("say what to write: --html DIR")
        return export_html(ctx, book, html)

    def human(result: dict) -> None:
        output.print_summary(result, title="Exported", skip=("warning",))
        if result.get("warning"):
            output.message(f"warning: {result['warning']}")

    run(export, json_mode, human)
