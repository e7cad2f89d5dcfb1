"""`bookreader generate-images | cleanup`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookreader_cli.cli.common import JsonOpt, app, run

UserOpt = Annotated[
    str | None, typer.Option("--user", help="Who asked (kept on each image row; the daily limit counts per user).")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would be done; send, write and record nothing.")]


def _images_human(result: dict) -> None:
    from bookreader_cli import output

    if result.get("dry_run"):
        output.print_table(
            ["description", "type", "seed", "prompt"],
            [(r["description_id"], r["type"], r["seed"], r["prompt"]) for r in result["requests"]],
            title=f"dry run: {len(result['requests'])} requests, {result['allowed_count']} allowed today "
            "(nothing sent)",
        )
        if result.get("existing_images"):
            output.message(
                "already there, not asked again: description "
                + ", ".join(str(e["description_id"]) for e in result["existing_images"])
            )
        return
    output.print_summary(
        result, title="Images", skip=("generated_images", "failed", "description_ids", "existing_images")
    )
    if result["generated_images"]:
        output.print_table(
            ["description", "file", "bytes", "size", "tries", "seconds"],
            [
                (
                    g["description_id"],
                    Path(g["image_path"]).name,
                    g["size_bytes"],
                    f"{g['width']}x{g['height']}",
                    g["attempts"],
                    f"{g['generation_time_seconds']:.2f}",
                )
                for g in result["generated_images"]
            ],
            title="Generated",
        )
    if result.get("existing_images"):
        output.print_table(
            ["description", "file"],
            [(e["description_id"], Path(e["image_path"]).name) for e in result["existing_images"]],
            title="Already there (not asked again)",
        )
    failed = [f for f in result["failed"] if not f["error"].startswith("not attempted")]
    if failed:
        output.print_table(
            ["description", "error"], [(f["description_id"], f["error"]) for f in failed], title="Failed"
        )
    if result.get("not_attempted_count"):  # after an account error: one line, not a row each
        output.message(
            f"{result['not_attempted_count']} more not attempted: the batch stopped (description "
            + ", ".join(str(f["description_id"]) for f in result["failed"] if f not in failed)
            + ")"
        )
    if result.get("claimed_elsewhere"):
        output.message(
            "being drawn by another run right now, not asked again: description "
            + ", ".join(str(i) for i in result["claimed_elsewhere"])
        )


@app.command("generate-images")
def generate_images_cmd(
    description_ids: Annotated[
        list[int] | None, typer.Argument(help="Description ids (see `bookreader descriptions`).")
    ] = None,
    book: Annotated[
        list[str] | None,
        typer.Option(
            "--book",
            help="Instead of ids: this book's top descriptions that have no image yet (repeat it for several books).",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="With --book: at most this many (default 10).")] = None,
    type: Annotated[
        str | None, typer.Option("--type", help="With --book: only location, character, atmosphere or object.")
    ] = None,
    user: UserOpt = None,
    dry_run: DryRunOpt = False,
    json_mode: JsonOpt = False,
) -> None:
    """Generate pictures for descriptions through the image API.

    Exit 0 when at least one picture was made (failures are listed and recorded), 1 when every requested
    picture failed or an account error (401, 402, a 403 about the account) stopped the batch, 2 for an
    unknown id, bad options or an unusable API key, 130 on Ctrl-C. A progress bar shows on a terminal.
    """
    from contextlib import ExitStack

    from bookreader_cli import jobs, output
    from bookreader_cli.cli import many
    from bookreader_cli.errors import BadInput
    from bookreader_cli.jobs.library import books_for, is_library_run, over_books

    several = [False]

    def draw(ctx):
        with ExitStack() as stack:
            bar: dict = {}

            def on_plan(total: int) -> None:  # the bar starts once the job knows how many it will ask for
                if "advance" not in bar:
                    bar["advance"] = stack.enter_context(output.progress(total, "images"))

            def on_image(row: dict) -> None:
                if "advance" in bar:
                    bar["advance"](f"{row['description_id']} {row['status']}")

            if not book:
                if not description_ids:
                    raise BadInput("give description ids or --book ID")
                if limit is not None or type is not None:
                    raise BadInput("--limit and --type go with --book")
                return jobs.generate_images(ctx, description_ids, user, dry_run, on_plan=on_plan, on_image=on_image)
            if description_ids:
                raise BadInput("give description ids or --book ID, not both")
            several[0] = is_library_run(book, False)
            if not several[0]:
                return jobs.batch_generate_for_book(
                    ctx, book[0], user, limit, type, dry_run, on_plan=on_plan, on_image=on_image
                )
        found, errors = books_for(ctx, book, import_files=False)
        return many.coded(
            over_books(found, errors, lambda b: jobs.batch_generate_for_book(ctx, b["id"], user, limit, type, dry_run))
        )

    def all_failed(r: dict) -> bool:
        return not r.get("dry_run") and (
            bool(r.get("account_error"))
            or (r["failed_count"] > 0 and r["generated_count"] == 0 and not r.get("existing_count"))
        )

    def human(result: dict) -> None:
        if not several[0]:
            _images_human(result)
            return
        if dry_run:
            for one in result["books"]:
                _images_human(one)
        many.show(
            result,
            "Images",
            ["book", "title", "selected", "generated", "failed"],
            lambda b: (
                b["book_id"],
                b["title"],
                b["selected_descriptions"],
                b.get("generated_count", "dry run"),
                b.get("failed_count", ""),
            ),
        )

    result = run(draw, json_mode, human, failed=lambda r: not several[0] and all_failed(r))
    if several[0]:
        if any(all_failed(b) for b in result["books"]) and not result["errors"]:
            raise typer.Exit(1)
        many.finish(result, json_mode)


@app.command("cleanup")
def cleanup_cmd(
    days: Annotated[
        int | None, typer.Option("--days", help="Delete images older than this (default: settings cleanup_days, 30).")
    ] = None,
    dry_run: DryRunOpt = False,
    json_mode: JsonOpt = False,
) -> None:
    """Delete old images, image files with no row and rows whose file is gone (inside the images dir only),
    and finished task runs older than runs_keep_days."""
    from bookreader_cli import jobs, output

    def human(result: dict) -> None:
        output.print_summary(
            result,
            title="Cleanup (dry run: nothing deleted)" if dry_run else "Cleanup",
            skip=("actions", "deleted_row_ids"),
        )
        if dry_run:
            output.print_table(
                ["action", "reason", "target"],
                [
                    (a["action"], a["reason"], a.get("path") if a["action"] == "delete_file" else f"row {a['row_id']}")
                    for a in result["actions"]
                ],
                title="Would delete",
            )

    run(lambda ctx: jobs.cleanup_old_images(ctx, days, dry_run), json_mode, human)
