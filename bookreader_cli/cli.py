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


def _run(fn: Callable, json_mode: bool, human: Callable[[dict], None] | None = None, failed: Callable[[dict], bool] | None = None,
         stdout_taken: bool = False):
    """Call fn(ctx), print its result, exit with the contract's code.

    stdout_taken: the command wrote its data to stdout (`-o -`), so a --json summary goes to stderr."""
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
    if json_mode and stdout_taken:
        sys.stderr.write(output.dumps(result) + "\n")
    elif json_mode:
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
        if result["imported"]:
            output.print_table(
                ["id", "status", "title", "format", "lang", "chapters", "chars"],
                [(r["book_id"], r["status"], r["title"], r["format"], r["language"], r["chapters"],
                  r["characters"]) for r in result["imported"]],
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


# ---- description engine -----------------------------------------------------------------------
ModeOpt = Annotated[Optional[str], typer.Option("--mode", help="single, parallel, sequential, ensemble or adaptive.")]
ProcessorsOpt = Annotated[Optional[str], typer.Option("--processors", help="Comma-separated: spacy,natasha,stanza.")]


@app.command("process")
def process_cmd(
    book: Annotated[str, typer.Argument(help="A book file (imported if needed) or a book id.")],
    mode: ModeOpt = None,
    processors: ProcessorsOpt = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Worker processes (default from settings).")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (process pool) or celery (workers anywhere).")] = "local",
    json_mode: JsonOpt = False,
) -> None:
    """Find, rank and store a book's descriptions, chapter by chapter."""
    from bookreader_cli import output, tasks

    def run(ctx):
        book_row = tasks.book_ref_or_file(ctx, book)
        total = len(ctx.store.chapters(book_row["id"], with_text=False))
        with output.progress(total, "chapters") as advance:
            return tasks.process_book(ctx, str(book_row["id"]), mode, processors, workers, executor,
                                      on_chapter=lambda ch, n: advance(f"{ch['title'][:40]} ({n})"))

    _run(run, json_mode, lambda r: output.print_summary(r, title="Processed"))


@app.command("nlp")
def nlp_cmd(
    text: Annotated[Optional[str], typer.Argument(help="The text, or - (default) to read stdin.")] = "-",
    mode: ModeOpt = None,
    processors: ProcessorsOpt = None,
    lang: Annotated[Optional[str], typer.Option("--lang", help="ru or en (default: guessed).")] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Find descriptions in a text (offsets into it)."""
    from bookreader_cli import output, tasks

    if text in (None, "-"):
        text = sys.stdin.read()

    def human(result: dict) -> None:
        output.print_summary(result, title="NLP", skip=("descriptions",))
        output.print_table(["start", "end", "type", "priority", "processors", "text"],
                           [(d["start"], d["end"], d["type"], f"{d['priority']:.2f}", ",".join(d["processors"]),
                             d["text"][:100]) for d in result["descriptions"]], title="Descriptions")

    _run(lambda ctx: tasks.nlp_text(ctx, text, mode, processors, lang), json_mode, human)


models_app = typer.Typer(help="NLP processors and their models.", invoke_without_command=True)
app.add_typer(models_app, name="models")


@models_app.callback()
def models_cmd(
    typer_ctx: typer.Context,
    load: Annotated[bool, typer.Option("--load", help="Load each available model and time it.")] = False,
    json_mode: JsonOpt = False,
) -> None:
    """List each processor: available or why not, model source, load time."""
    from bookreader_cli import output, tasks

    if typer_ctx.invoked_subcommand:
        return

    def human(result: dict) -> None:
        output.print_table(["processor", "available", "source / reason", "load s"],
                           [(p["name"], "yes" if p["available"] else "no", p["source"] or p["reason"],
                             p["load_seconds"] if p["load_seconds"] is not None else "") for p in result["processors"]],
                           title="NLP processors")

    _run(lambda ctx: tasks.list_models(ctx, load), json_mode, human)


@models_app.command("train-stanza")
def models_train_stanza(
    sources: Annotated[Optional[list[Path]], typer.Argument(help="Russian books or texts to learn from (default: sample_books and ../shared/corpus).")] = None,
    size: Annotated[str, typer.Option("--size", help="smoke (about 1.5 min) or small (about 11 min, 6 MB).")] = "smoke",
    out: Annotated[Optional[Path], typer.Option("--out", help="Models directory (default: $BOOKREADER_HOME/models/stanza).")] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Train small Stanza models here, from Natasha-annotated Russian text (no network needed)."""
    from bookreader_cli import tasks

    _run(lambda ctx: tasks.train_stanza(ctx, size, out, sources), json_mode)


# ---- descriptions -----------------------------------------------------------------------------
@app.command("descriptions")
def descriptions_cmd(
    book: Annotated[str, typer.Argument(help="Book id or sha256 prefix.")],
    type: Annotated[Optional[str], typer.Option("--type", help="location, character, atmosphere or object.")] = None,
    top: Annotated[Optional[int], typer.Option("--top", help="Only the N with the highest priority.")] = None,
    min_priority: Annotated[Optional[float], typer.Option("--min-priority", help="Only those at or above.")] = None,
    format: Annotated[str, typer.Option("--format", help="table, json, jsonl or csv.")] = "table",
    json_mode: JsonOpt = False,
) -> None:
    """A book's descriptions, highest priority first."""
    from bookreader_cli import output, tasks

    if json_mode or _state["json"]:
        format = "json"
    if format not in tasks.DESCRIPTION_FORMATS:
        output.error(f"--format: expected one of {', '.join(tasks.DESCRIPTION_FORMATS)}", False, 2)
        raise typer.Exit(2)

    def human(result: dict) -> None:
        rows = result["descriptions"]
        if format == "jsonl":
            output.print_jsonl(rows)
        elif format == "csv":
            output.print_csv(rows, ["id", "chapter_idx", "start", "end", "type", "priority", "confidence",
                                    "consensus", "processors", "cfi", "text"])
        else:
            output.print_table(
                ["id", "ch", "type", "priority", "conf", "processors", "text"],
                [(d["id"], d["chapter_idx"], d["type"], f"{d['priority']:.2f}", f"{d['confidence']:.2f}",
                  ",".join(d["processors"]), d["text"][:120] + ("…" if len(d["text"]) > 120 else ""))
                 for d in rows],
                title=f"{result['title']}: {result['count']} descriptions")

    _run(lambda ctx: tasks.list_descriptions(ctx, book, type, top, min_priority), format == "json", human)


# ---- cfi and cache ----------------------------------------------------------------------------
from typer.core import TyperGroup  # noqa: E402  (already loaded by typer: costs nothing at start-up)


class _DefaultCommandGroup(TyperGroup):
    """`bookreader cfi BOOK …` means `bookreader cfi generate BOOK …`; `cfi resolve …` and the rest stay
    subcommands (a book reference is never a subcommand name)."""

    default_command = "generate"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


class _DataOut:
    """Where a command's data goes: "-" is stdout (the bytes as they are); a path is written atomically (a
    temporary file beside it, renamed over it), so nobody ever reads half a file. The target is checked
    when this is made, before the job runs, so a bad one changes nothing."""

    def __init__(self, target: str):
        from bookreader_cli.errors import BadInput

        self.target = target
        if target != "-":
            path = Path(target)
            if path.is_dir():
                raise BadInput(f"{target}: is a directory")
            if not path.parent.is_dir():
                raise BadInput(f"{target}: no such directory: {path.parent}")

    def __call__(self, data: str | bytes) -> str:
        from bookreader_cli.errors import BadInput

        data = data.encode("utf-8") if isinstance(data, str) else data
        if self.target == "-":
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return "stdout"
        path = Path(self.target)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, path)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise BadInput(f"cannot write {self.target}: {exc.strerror or exc}") from None
        return str(path)


cfi_app = typer.Typer(
    cls=_DefaultCommandGroup, no_args_is_help=True,
    help="EPUB CFIs for epub.js readers: `cfi BOOK` computes the locations (same as `cfi generate BOOK`).")
app.add_typer(cfi_app, name="cfi")
BookRefArg = Annotated[str, typer.Argument(help="Book id, sha256 prefix, or an EPUB file (imported if new).")]
OutputOpt = Annotated[Optional[str], typer.Option("--output", "-o", help="Write the data to FILE (atomically), or - for stdout.")]


@cfi_app.command("generate")
def cfi_generate(
    book: BookRefArg,
    chars: Annotated[Optional[int], typer.Option("--chars", help="Characters per location, as epub.js locations.generate(N).")] = None,
    count: Annotated[Optional[int], typer.Option("--count", help="About this many locations (default: settings cfi.count, 2000).")] = None,
    out: OutputOpt = None,
    json_mode: JsonOpt = False,
) -> None:
    """Compute a book's epub.js locations, store them with the book; -o writes what locations.save() gives."""
    from bookreader_cli import output, tasks

    _run(lambda ctx: tasks.generate_cfi_locations(ctx, book, count, chars, _DataOut(out) if out else None),
         json_mode, lambda r: output.print_summary(r, title="CFI locations"), stdout_taken=out == "-")


@cfi_app.command("resolve")
def cfi_resolve(
    book: BookRefArg,
    cfi: Annotated[str, typer.Argument(help="An EPUB CFI, e.g. 'epubcfi(/6/4!/4/2/1:0)' (quote it in the shell).")],
    json_mode: JsonOpt = False,
) -> None:
    """Where a CFI points: chapter, character offset in our chapter text, and a snippet from there."""
    from bookreader_cli import output, tasks

    _run(lambda ctx: tasks.resolve_cfi(ctx, book, cfi), json_mode, lambda r: output.print_summary(r, title="CFI"))


@cfi_app.command("from-percentage")
def cfi_from_percentage_cmd(
    book: BookRefArg,
    percentage: Annotated[float, typer.Argument(help="A fraction from 0 to 1, as in epub.js.")],
    json_mode: JsonOpt = False,
) -> None:
    """The CFI at a percentage of the book (epub.js locations.cfiFromPercentage over the stored locations)."""
    from bookreader_cli import output, tasks

    _run(lambda ctx: tasks.cfi_from_percentage(ctx, book, percentage), json_mode,
         lambda r: output.print_summary(r, title="CFI from percentage"))


@cfi_app.command("to-percentage")
def cfi_to_percentage_cmd(
    book: BookRefArg,
    cfi: Annotated[str, typer.Argument(help="An EPUB CFI (quote it in the shell).")],
    json_mode: JsonOpt = False,
) -> None:
    """How far into the book a CFI is (epub.js locations.percentageFromCfi over the stored locations)."""
    from bookreader_cli import output, tasks

    _run(lambda ctx: tasks.cfi_to_percentage(ctx, book, cfi), json_mode,
         lambda r: output.print_summary(r, title="Percentage from CFI"))


cache_app = typer.Typer(help="The gzip cache of EPUB files: put, get (byte-identical), stats, clear.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("put")
def cache_put_cmd(book: BookRefArg, json_mode: JsonOpt = False) -> None:
    """Cache a book's EPUB (gzip, checksummed, TTL settings cache.ttl_seconds)."""
    from bookreader_cli import output, tasks

    _run(lambda ctx: tasks.cache_epub_file(ctx, book), json_mode, lambda r: output.print_summary(r, title="Cached"))


@cache_app.command("get")
def cache_get_cmd(book: BookRefArg, out: OutputOpt = None, json_mode: JsonOpt = False) -> None:
    """The book's original EPUB bytes through the cache: -o FILE, or -o - for stdout (without -o: only check)."""
    from bookreader_cli import output, tasks

    def human(result: dict) -> None:
        if result.get("warning"):
            output.message(f"warning: {result['warning']}")
        output.print_summary(result, title="Cache get", skip=("warning",))

    _run(lambda ctx: tasks.get_cached_epub(ctx, book, _DataOut(out) if out else None), json_mode, human,
         stdout_taken=out == "-")


@cache_app.command("stats")
def cache_stats_cmd(json_mode: JsonOpt = False) -> None:
    """Entries, original and compressed sizes, space used on disk."""
    from bookreader_cli import output, tasks

    _run(tasks.cache_stats, json_mode, lambda r: output.print_summary(r, title="EPUB cache"))


@cache_app.command("clear")
def cache_clear_cmd(
    expired: Annotated[bool, typer.Option("--expired", help="Only the entries whose TTL has passed.")] = False,
    json_mode: JsonOpt = False,
) -> None:
    """Remove every cache entry (or only the expired ones)."""
    from bookreader_cli import output, tasks

    _run(lambda ctx: tasks.cache_clear(ctx, expired), json_mode, lambda r: output.print_summary(r, title="Cache cleared"))


# ---- images and cleanup -----------------------------------------------------------------------
UserOpt = Annotated[Optional[str], typer.Option("--user", help="Who asked (kept on each image row; the daily limit counts per user).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would be done; send, write and record nothing.")]


def _images_human(result: dict) -> None:
    from bookreader_cli import output

    if result.get("dry_run"):
        output.print_table(["description", "type", "seed", "prompt"],
                           [(r["description_id"], r["type"], r["seed"], r["prompt"]) for r in result["requests"]],
                           title=f"dry run: {len(result['requests'])} requests, {result['allowed_count']} allowed today "
                                 "(nothing sent)")
        if result.get("existing_images"):
            output.message("already there, not asked again: description "
                           + ", ".join(str(e["description_id"]) for e in result["existing_images"]))
        return
    output.print_summary(result, title="Images", skip=("generated_images", "failed", "description_ids",
                                                       "existing_images"))
    if result["generated_images"]:
        output.print_table(["description", "file", "bytes", "size", "tries", "seconds"],
                           [(g["description_id"], Path(g["image_path"]).name, g["size_bytes"],
                             f"{g['width']}x{g['height']}", g["attempts"], f"{g['generation_time_seconds']:.2f}")
                            for g in result["generated_images"]], title="Generated")
    if result.get("existing_images"):
        output.print_table(["description", "file"], [(e["description_id"], Path(e["image_path"]).name)
                                                     for e in result["existing_images"]],
                           title="Already there (not asked again)")
    if result["failed"]:
        output.print_table(["description", "error"], [(f["description_id"], f["error"]) for f in result["failed"]],
                           title="Failed")


@app.command("generate-images")
def generate_images_cmd(
    description_ids: Annotated[Optional[list[int]], typer.Argument(help="Description ids (see `bookreader descriptions`).")] = None,
    book: Annotated[Optional[str], typer.Option("--book", help="Instead of ids: this book's top descriptions that have no image yet.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="With --book: at most this many (default 10).")] = None,
    type: Annotated[Optional[str], typer.Option("--type", help="With --book: only location, character, atmosphere or object.")] = None,
    user: UserOpt = None,
    dry_run: DryRunOpt = False,
    json_mode: JsonOpt = False,
) -> None:
    """Generate pictures for descriptions through the image API.

    Exit 0 when at least one picture was made (failures are listed and recorded), 1 when every requested
    picture failed, 2 for an unknown id or bad options.
    """
    from bookreader_cli import tasks
    from bookreader_cli.errors import BadInput

    def run(ctx):
        if book is None:
            if not description_ids:
                raise BadInput("give description ids or --book ID")
            if limit is not None or type is not None:
                raise BadInput("--limit and --type go with --book")
            return tasks.generate_images(ctx, description_ids, user, dry_run)
        if description_ids:
            raise BadInput("give description ids or --book ID, not both")
        return tasks.batch_generate_for_book(ctx, book, user, limit, type, dry_run)

    _run(run, json_mode, _images_human,
         failed=lambda r: not r.get("dry_run") and r["failed_count"] > 0 and r["generated_count"] == 0
         and not r.get("existing_count"))


@app.command("cleanup")
def cleanup_cmd(
    days: Annotated[Optional[int], typer.Option("--days", help="Delete images older than this (default: settings cleanup_days, 30).")] = None,
    dry_run: DryRunOpt = False,
    json_mode: JsonOpt = False,
) -> None:
    """Delete old images, image files with no row and rows whose file is gone (inside the images dir only),
    and finished task runs older than runs_keep_days."""
    from bookreader_cli import output, tasks

    def human(result: dict) -> None:
        output.print_summary(result, title="Cleanup (dry run: nothing deleted)" if dry_run else "Cleanup",
                             skip=("actions", "deleted_row_ids"))
        if dry_run:
            output.print_table(["action", "reason", "target"],
                               [(a["action"], a["reason"], a.get("path") if a["action"] == "delete_file"
                                 else f"row {a['row_id']}") for a in result["actions"]], title="Would delete")

    _run(lambda ctx: tasks.cleanup_old_images(ctx, days, dry_run), json_mode, human)


# ---- settings ---------------------------------------------------------------------------------
@app.command("config")
def config_show(json_mode: JsonOpt = False) -> None:
    """Show the effective settings and where every file lives."""
    from bookreader_cli import tasks

    _run(tasks.show_config, json_mode)


# ---- stats, health, runs ----------------------------------------------------------------------
runs_app = typer.Typer(help="The record of every task run: list and show.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@app.command("stats")
def stats_cmd(
    format: Annotated[str, typer.Option("--format", help="table, json or prometheus (text exposition format).")] = "table",
    json_mode: JsonOpt = False,
) -> None:
    """Counts, task runs by queue and state, and storage sizes.

    For node_exporter's textfile collector write the file atomically:
    bookreader stats --format prometheus > x.prom.tmp && mv x.prom.tmp /var/lib/node_exporter/bookreader.prom
    """
    from bookreader_cli import output, tasks

    if json_mode or _state["json"]:
        format = "json"
    if format not in tasks.STATS_FORMATS:
        output.error(f"--format: expected one of {', '.join(tasks.STATS_FORMATS)}", False, 2)
        raise typer.Exit(2)

    def human(result: dict) -> None:
        from bookreader_cli import ops

        if format == "prometheus":
            sys.stdout.write(ops.to_prometheus(result))
            sys.stdout.flush()
            return
        output.print_summary(result, title="bookreader stats",
                             skip=("descriptions_by_type", "images_by_status", "task_runs", "storage_bytes"))
        output.print_table(["type", "descriptions"], list(result["descriptions_by_type"].items()),
                           title="Descriptions by type")
        states = list(next(iter(result["task_runs"].values())))
        output.print_table(["queue", *states], [(q, *c.values()) for q, c in result["task_runs"].items()],
                           title="Task runs")
        output.print_table(["store", "bytes"], list(result["storage_bytes"].items()), title="Storage")

    _run(tasks.system_stats, format == "json", human)


@app.command("health")
def health_cmd(
    network: Annotated[bool, typer.Option("--network", help="Also check that the image API answers.")] = False,
    json_mode: JsonOpt = False,
) -> None:
    """Check the database, directories, free disk and NLP processors; exit 1 when unhealthy."""
    from bookreader_cli import output, tasks

    def human(result: dict) -> None:
        output.print_table(["check", "status", "ms", "detail"],
                           [(name, c["status"], f"{c['time_ms']:.1f}", c["detail"]) for name, c in result["checks"].items()],
                           title=f"health: {result['status']} ({result['response_time_ms']:.0f} ms)")

    _run(lambda ctx: tasks.health_check(ctx, network), json_mode, human,
         failed=lambda r: r["status"] == "unhealthy")


@runs_app.command("list")
def runs_list(
    state: Annotated[Optional[str], typer.Option("--state", help="PENDING, STARTED, RETRY, SUCCESS or FAILURE.")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="Only runs of this task (e.g. process_book).")] = None,
    queue: Annotated[Optional[str], typer.Option("--queue", help="books, images or cleanup.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 50,
    json_mode: JsonOpt = False,
) -> None:
    """List task runs, newest first."""
    import time

    from bookreader_cli import output, tasks

    def human(result: dict) -> None:
        output.print_table(
            ["id", "task", "state", "tries", "created", "seconds", "error"],
            [(r["id"][:8], r["task"], r["state"], r["attempts"], time.strftime("%m-%d %H:%M:%S", time.localtime(r["created_at"])),
              "" if r["duration_seconds"] is None else f"{r['duration_seconds']:.3f}", (r["error"] or "")[:80])
             for r in result["runs"]],
            title=f"{result['count']} task runs (newest first)")

    _run(lambda ctx: tasks.list_runs(ctx, state, task, limit, queue), json_mode, human)


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="Run id or an unambiguous prefix of it.")],
              json_mode: JsonOpt = False) -> None:
    """Show one task run with its arguments and result or error."""
    from bookreader_cli import tasks

    _run(lambda ctx: tasks.show_run(ctx, run_id), json_mode)


# ---- celery / cron ----------------------------------------------------------------------------
QueuesOpt = Annotated[str, typer.Option("--queues", "-Q", help="Comma-separated: books,images,cleanup,celery.")]


@app.command("worker")
def celery_worker(
    queues: QueuesOpt = "books,images,cleanup,celery",
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", "-c", help="Worker processes (default: nlp.workers).")] = None,
    pool: Annotated[str, typer.Option("--pool", help="Celery pool: prefork, solo, threads.")] = "prefork",
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "info",
    hostname: Annotated[Optional[str], typer.Option("--hostname", "-n", help="Node name, e.g. nlp1@%h.")] = None,
    celery_args: Annotated[Optional[list[str]], typer.Argument(help="After --: more `celery worker` options.")] = None,
) -> None:
    """Start a Celery worker for the bookreader tasks (needs the celery extra and a reachable broker)."""
    from bookreader_cli import celery_control, output

    command = _run(lambda ctx: celery_control.worker_command(ctx.settings, queues, concurrency, pool, loglevel, hostname,
                                                             celery_args or []),
                   False, lambda r: output.message(f"starting Celery worker (broker {r['broker']})"))
    celery_control.exec_command(command)


@app.command("beat")
def celery_beat(loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "info") -> None:
    """Start Celery beat: cleanup every day at 03:00, stats every 30 minutes (see also `schedule` for cron)."""
    from bookreader_cli import celery_control, output

    command = _run(lambda ctx: celery_control.beat_command(ctx.settings, loglevel), False,
                   lambda r: output.message(f"starting Celery beat (broker {r['broker']})"))
    celery_control.exec_command(command)


@app.command("inspect")
def celery_inspect(
    what: Annotated[str, typer.Argument(help="active, stats, reserved, scheduled, registered or ping.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for replies.")] = 2.0,
    json_mode: JsonOpt = False,
) -> None:
    """Ask the running Celery workers (exit 1 when the broker is unreachable or no worker replies)."""
    from bookreader_cli import celery_control, output

    _run(lambda ctx: celery_control.inspect(ctx.settings, what, timeout), json_mode,
         lambda r: output.print_table(celery_control.worker_columns(r["command"]), celery_control.worker_rows(r),
                                      title=f"inspect {r['command']}"))


@app.command("purge")
def celery_purge(
    queues: QueuesOpt = "books,images,cleanup,celery",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_mode: JsonOpt = False,
) -> None:
    """Delete all waiting tasks from the queues (running tasks are not touched)."""
    from bookreader_cli import celery_control
    from bookreader_cli.errors import BadInput

    def purge(ctx):
        if not yes:
            if not sys.stdin.isatty():
                raise BadInput("purge deletes queued tasks: pass --yes to confirm")
            if not typer.confirm(f"Delete all waiting tasks in {queues}?", err=True):
                raise BadInput("purge cancelled")
        return celery_control.purge(ctx.settings, queues)

    _run(purge, json_mode)


@app.command("schedule")
def cron_schedule(json_mode: JsonOpt = False) -> None:
    """Print crontab lines equivalent to the beat schedule: `(crontab -l; bookreader schedule) | crontab -`."""
    from bookreader_cli import schedule

    def lines(ctx) -> dict:
        return {"lines": schedule.crontab_lines(ctx.settings.home),
                "jobs": [vars(job) for job in schedule.JOBS.values()]}

    _run(lines, json_mode, lambda r: print("\n".join(r["lines"])))


@app.command("cron")
def cron_run(
    job: Annotated[str, typer.Argument(help="cleanup or stats.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait for a running instance instead of failing at once.")] = False,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="With --wait: give up after S seconds.")] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Run a scheduled job once, under its lock, appending a JSON line to <home>/logs/JOB.jsonl (what cron calls)."""
    from bookreader_cli import schedule

    _run(lambda ctx: schedule.run_job(ctx, job, wait=wait, timeout=timeout), json_mode)


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # `bookreader … | head`
        sys.stderr.close()
        sys.exit(0)
    except OSError as exc:  # stdout itself failed (a full disk, a closed terminal): one line, not a traceback
        from bookreader_cli import output

        output.error(f"cannot write output: {exc.strerror or exc}", False, 1)
        sys.exit(1)
