"""`bookreader process | nlp | models | descriptions`: the description engine's commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bookreader_cli.cli.common import JsonOpt, app, bad_option, json_wanted, run

ModeOpt = Annotated[str | None, typer.Option("--mode", help="single, parallel, sequential, ensemble or adaptive.")]
ProcessorsOpt = Annotated[str | None, typer.Option("--processors", help="Comma-separated: spacy,natasha,stanza.")]


@app.command("process")
def process_cmd(
    books: Annotated[
        list[str] | None, typer.Argument(help="Book files, directories of books, or book ids.", show_default=False)
    ] = None,
    all_books: Annotated[bool, typer.Option("--all", help="Every imported book.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With several books: redo those already processed with these settings.")
    ] = False,
    mode: ModeOpt = None,
    processors: ProcessorsOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes (default from settings).")] = None,
    executor: Annotated[
        str, typer.Option("--executor", help="local (process pool) or celery (workers anywhere).")
    ] = "local",
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="With --executor celery: give up (exit 1) when the chapters are not all back after S s.",
        ),
    ] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Find, rank and store books' descriptions, chapter by chapter.

    One book (a file or an id): processed, its result printed. Several, a directory, or --all: new files
    are imported, books already processed to the end with the same settings are skipped (--force redoes
    them), the rest processed; one document lists each book's result and each error."""
    from bookreader_cli import jobs, output
    from bookreader_cli.cli import many
    from bookreader_cli.jobs.library import is_library_run, process_library

    targets = list(books or [])
    several = [False]

    def process(ctx):
        from bookreader_cli.runners import book_runner

        several[0] = is_library_run(targets, all_books)
        runner = book_runner(executor, ctx.settings, timeout)  # a bad --timeout is refused before the import
        if several[0]:
            return many.coded(
                process_library(
                    ctx,
                    targets,
                    all_books,
                    mode,
                    processors,
                    workers,
                    executor,
                    force,
                    runner=runner,
                    progress=lambda total: output.progress(total, "chapters"),
                )
            )
        book_row = jobs.book_ref_or_file(ctx, targets[0])
        total, _ = ctx.store.chapter_totals(book_row["id"])
        with output.progress(total, "chapters") as advance:
            return jobs.process_book(
                ctx,
                str(book_row["id"]),
                mode,
                processors,
                workers,
                executor,
                on_chapter=lambda ch, n: advance(f"{ch.title[:40]} ({n})"),
                runner=runner,
                on_part=lambda ch, k, parts: advance(f"{ch.title[:30]} part {k}/{parts}", 0),
            )

    def human(result: dict) -> None:
        if not several[0]:
            output.print_summary(result, title="Processed")
            return
        many.show(
            result,
            "Processed",
            ["id", "status", "title", "chapters", "descriptions", "seconds"],
            lambda b: (
                b["book_id"],
                b["status"],
                b["title"],
                b["total_chapters"],
                b["descriptions_found"],
                b.get("processing_time_seconds", "-"),
            ),
        )
        if result["summary"]["skipped"]:
            output.message(
                f"skipped {result['summary']['skipped']}: unchanged since their last complete run "
                "(same text, same settings); --force redoes them"
            )

    result = run(process, json_mode, human)
    if several[0]:
        many.finish(result, json_mode)


@app.command("nlp")
def nlp_cmd(
    text: Annotated[str | None, typer.Argument(help="The text, or - (default) to read stdin.")] = "-",
    mode: ModeOpt = None,
    processors: ProcessorsOpt = None,
    lang: Annotated[str | None, typer.Option("--lang", help="ru or en (default: guessed).")] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Find descriptions in a text (offsets into it)."""
    from bookreader_cli import jobs, output

    if text in (None, "-"):
        text = sys.stdin.read()

    def human(result: dict) -> None:
        output.print_summary(result, title="NLP", skip=("descriptions",))
        output.print_table(
            ["start", "end", "type", "priority", "processors", "text"],
            [
                (d["start"], d["end"], d["type"], f"{d['priority']:.2f}", ",".join(d["processors"]), d["text"][:100])
                for d in result["descriptions"]
            ],
            title="Descriptions",
        )

    run(lambda ctx: jobs.nlp_text(ctx, text, mode, processors, lang), json_mode, human)


models_app = typer.Typer(help="NLP processors and their models.", invoke_without_command=True)
app.add_typer(models_app, name="models")


@models_app.callback()
def models_cmd(
    typer_ctx: typer.Context,
    load: Annotated[bool, typer.Option("--load", help="Load each available model and time it.")] = False,
    json_mode: JsonOpt = False,
) -> None:
    """List each processor: available or why not, model source, load time."""
    from bookreader_cli import jobs, output

    if typer_ctx.invoked_subcommand:
        return

    def human(result: dict) -> None:
        output.print_table(
            ["processor", "available", "source / reason", "load s"],
            [
                (
                    p["name"],
                    "yes" if p["available"] else "no",
                    p["source"] or p["reason"],
                    p["load_seconds"] if p["load_seconds"] is not None else "",
                )
                for p in result["processors"]
            ],
            title="NLP processors",
        )

    run(lambda ctx: jobs.list_models(ctx, load), json_mode, human)


@models_app.command("train-stanza")
def models_train_stanza(
    sources: Annotated[
        list[Path] | None,
        typer.Argument(help="Russian books or texts to learn from (default: sample_books and ../shared/corpus)."),
    ] = None,
    size: Annotated[str, typer.Option("--size", help="smoke (about 1.5 min) or small (about 11 min, 6 MB).")] = "smoke",
    out: Annotated[
        Path | None, typer.Option("--out", help="Models directory (default: $BOOKREADER_HOME/models/stanza).")
    ] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Train small Stanza models here, from Natasha-annotated Russian text (no network needed)."""
    from bookreader_cli import jobs

    run(lambda ctx: jobs.train_stanza(ctx, size, out, sources), json_mode)


@models_app.command("fit")
def models_fit(
    gold: Annotated[
        Path | None,
        typer.Option(
            "--gold", help="Labelled books (default: ../shared/gold): <split>-passages.jsonl + <split>-gold.jsonl."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory for ru.json/en.json (default: the package's nlp/scorer/).")
    ] = None,
    lang: Annotated[str, typer.Option("--lang", help="Languages to fit, comma-separated.")] = "ru,en",
    no_cv: Annotated[bool, typer.Option("--no-cv", help="Skip the leave-one-book-out cross-validation.")] = False,
    json_mode: JsonOpt = False,
) -> None:
    """Fit the description scorers on labelled books; print leave-one-book-out CV (needs the `train` extra)."""
    from bookreader_cli import jobs

    langs = [x.strip() for x in lang.split(",") if x.strip()]
    if not langs or any(x not in ("ru", "en") for x in langs):
        bad_option("--lang: expected ru, en or ru,en")
    run(lambda ctx: jobs.fit_scorers(ctx, gold, out, langs, not no_cv), json_mode)


@app.command("descriptions")
def descriptions_cmd(
    book: Annotated[str, typer.Argument(help="Book id or sha256 prefix.")],
    type: Annotated[str | None, typer.Option("--type", help="location, character, atmosphere or object.")] = None,
    top: Annotated[int | None, typer.Option("--top", help="Only the N with the highest priority.")] = None,
    min_priority: Annotated[float | None, typer.Option("--min-priority", help="Only those at or above.")] = None,
    format: Annotated[str, typer.Option("--format", help="table, json, jsonl or csv.")] = "table",
    wide: Annotated[
        bool, typer.Option("--wide", help="Table: every column (chapter, offsets, confidence, consensus, processors).")
    ] = False,
    json_mode: JsonOpt = False,
) -> None:
    """A book's descriptions, highest priority first."""
    from bookreader_cli import jobs, output
    from bookreader_cli.jobs.process import DESCRIPTION_FORMATS

    if json_wanted(json_mode):
        format = "json"
    if format not in DESCRIPTION_FORMATS:
        bad_option(f"--format: expected one of {', '.join(DESCRIPTION_FORMATS)}")

    def human(result: dict) -> None:
        rows = result["descriptions"]
        if format == "jsonl":
            output.print_jsonl(rows)
        elif format == "csv":
            output.print_csv(
                rows,
                [
                    "id",
                    "chapter_idx",
                    "start",
                    "end",
                    "type",
                    "priority",
                    "confidence",
                    "consensus",
                    "processors",
                    "cfi",
                    "text",
                ],
            )
        elif wide:
            output.print_table(
                ["id", "ch", "start", "end", "type", "priority", "conf", "cons", "processors", "text"],
                [
                    (
                        d["id"],
                        d["chapter_idx"],
                        d["start"],
                        d["end"],
                        d["type"],
                        f"{d['priority']:.2f}",
                        f"{d['confidence']:.2f}",
                        f"{d['consensus']:.2f}",
                        ",".join(d["processors"]),
                        _cut(d["text"], 400),
                    )
                    for d in rows
                ],
                title=f"{result['title']}: {result['count']} descriptions",
            )
        else:  # four columns, so on an 80-column terminal the text gets the width
            output.print_table(
                ["id", "type", "priority", "text"],
                [(d["id"], d["type"], f"{d['priority']:.2f}", _cut(d["text"], 400)) for d in rows],
                title=f"{result['title']}: {result['count']} descriptions (--wide: every column)",
            )

    run(lambda ctx: jobs.list_descriptions(ctx, book, type, top, min_priority), format == "json", human)


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters of a description for a table cell, with an ellipsis when cut."""
    return text[:limit] + ("…" if len(text) > limit else "")
