"""The description engine's jobs: process a book chapter by chapter (resumable), analyse a text, list the
processors, train Stanza, list a book's descriptions."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bookreader_cli.errors import BadInput, JobFailed, NotFound
from bookreader_cli.jobs.books import book_language, book_ref_or_file, lookup_book, process_lock
from bookreader_cli.jobs.context import Context
from bookreader_cli.nlp.engine import check_mode, processor_names

DESCRIPTION_FORMATS = ("table", "json", "jsonl", "csv")
NLP_LANGUAGES = ("ru", "en")  # what `nlp --lang` takes: the languages the processors have rules and models for
log = logging.getLogger("bookreader.process")

# run_book's interface (nlp.runner.run_book; runners.book_runner("celery") gives the Celery one)
BookRunner = Callable[..., Iterator[tuple[int, Any]]]


def run_key(mode: str, processors: list[str], settings) -> str:
    """What a stored chapter result depends on: same key, same descriptions (so a killed run can resume)."""
    from bookreader_cli import __version__

    basis = [
        __version__,
        mode,
        sorted(processors),
        sorted(settings.nlp.weights.items()),
        settings.nlp.threshold,
        settings.nlp.max_description_chars,
    ]
    return hashlib.sha256(repr(basis).encode()).hexdigest()[:16]


def process_book(
    ctx: Context,
    ref: str,
    mode: str | None = None,
    processors: str | list[str] | None = None,
    workers: int | None = None,
    executor: str = "local",
    on_chapter=None,
    runner: BookRunner | None = None,
    on_part=None,
) -> dict:
    """Find and store a book's descriptions, chapter by chapter (the seed's process_book_task).

    `runner` runs the chapters' NLP (default: the local process pool; `runners.book_runner(executor)` gives
    the one `executor` names). Each chapter's descriptions are stored in one transaction together with a
    mark that the chapter is done for this run's settings (`run_key`); a killed run, run again, skips the
    chapters already done. When every chapter is done, the next run starts over and replaces the book's
    descriptions.
    """
    from bookreader_cli import epub_source, runs
    from bookreader_cli.locks import db_lock

    settings = ctx.settings
    mode = check_mode(mode or settings.nlp.mode)
    names = processor_names(processors, settings.nlp)
    workers = settings.nlp.workers if workers is None else workers  # 0 is an answer, not "the default"
    if workers < 1:
        raise BadInput(f"--workers must be at least 1, got {workers}")
    if runner is None:
        if executor != "local":
            raise BadInput(f"--executor {executor}: pass its runner (runners.book_runner({executor!r}))")
        from bookreader_cli.nlp.runner import run_book

        runner = run_book
    book = book_ref_or_file(ctx, ref)
    store = ctx.store
    check_book_size(book, store.chapter_totals(book["id"])[1], settings.nlp.max_book_chars)
    args = {"book_id": book["id"], "mode": mode, "processors": names, "workers": workers, "executor": executor}

    run = runner

    def job() -> dict:
        started = time.perf_counter()
        chapters = store.chapters(book["id"])
        # range CFIs, locations and the cache entry (EPUB only)
        epub = epub_source.EpubExtras(
            book, chapters, settings.cache_dir, settings.cache.ttl_seconds, settings.cfi.count
        )
        lang = book_language(book, chapters[0].text if chapters else "")
        key = run_key(mode, names, settings)
        done = store.chapters_done(book["id"], key)
        if len(done) >= len(chapters):  # the last run finished: this one replaces it
            store.reset_chapter_runs(book["id"])
            done = set()
        pending = [c for c in chapters if c.idx not in done]
        totals = {"sentences": 0, "passed": 0, "unanimous": 0.0}
        used: set[str] = set()
        unavailable: dict[str, str] = {}
        failures: dict[str, str] = {}
        progress: dict[str, Any] = {}  # progress inside a huge chapter: on_part(chapter, parts done, parts)
        if on_part is not None:
            progress["on_part"] = lambda position, done_parts, parts: on_part(pending[position], done_parts, parts)
        results = run(pending, lang=lang, mode=mode, processors=names, workers=workers, nlp=settings.nlp, **progress)
        try:
            for position, result in results:
                chapter = pending[position]
                descriptions = [d.to_dict() for d in result.descriptions]
                epub.add_cfis(chapter, descriptions)
                _store_chapter(store, book["id"], chapter, descriptions, key)
                totals["sentences"] += result.sentences_total
                totals["passed"] += result.sentences_passed
                totals["unanimous"] += result.consensus_rate * result.sentences_passed
                used.update(result.processors_used)
                unavailable.update(result.processors_unavailable)
                failures.update(result.processor_failures)
                if on_chapter is not None:
                    on_chapter(chapter, len(descriptions))
        finally:  # ended early (an error, Ctrl-C, SIGTERM): the runner stops its workers now
            getattr(results, "close", lambda: None)()
        by_type = store.descriptions_by_type(book["id"])
        epub_result = epub.finish(lambda text, chars: store.save_locations(book["id"], text, chars))
        if epub_result.get("epub_problem"):  # the descriptions are stored; say what is missing and why
            log.warning(
                "%s; its descriptions are stored without CFIs and no locations were made", epub_result["epub_problem"]
            )
        return {
            "book_id": book["id"],
            "total_chapters": len(chapters),
            "descriptions_found": sum(by_type.values()),
            "processing_time_seconds": round(time.perf_counter() - started, 3),
            "status": "completed" if not failures else "completed_with_fallback",
            "nlp_processors_used": [n for n in names if n in used],
            "ensemble_consensus_rate": round(totals["unanimous"] / totals["passed"], 4) if totals["passed"] else 0.0,
            "cfi_locations_generated": epub_result.pop("cfi_locations_generated"),
            "cache_status": epub_result.pop("cache_status"),
            "title": book["title"],
            "language": lang,
            "mode": mode,
            "executor": executor,
            "workers": workers,
            "chapters_processed": len(pending),
            "chapters_resumed": len(done),
            "sentences_analyzed": totals["sentences"],
            "sentences_passed": totals["passed"],
            "descriptions_by_type": by_type,
            "processors_unavailable": unavailable,
            "processor_failures": failures,
            **epub_result,
        }

    with db_lock(store, process_lock(book["id"]), busy_message=f"book {book['id']} is being processed"):
        return runs.record(store, "process_book", "books", args, job, retries=3)


def check_book_size(book: dict, chars: int, limit: int) -> None:
    """Refuse a book whose NLP would take hours (nlp.max_book_chars; 0: no limit). Measured: the default
    ensemble analyses ~2,600 characters a second on 2 cores, spaCy alone ~35,000 (README, Contracts)."""
    if limit and chars > limit:
        raise BadInput(
            f"book {book['id']} has {chars:,} characters of text; `process` takes at most {limit:,} "
            f"(nlp.max_book_chars): split the file, or raise the limit if you mean it"
        )


def _store_chapter(store, book_id: int, chapter, descriptions: list[dict], run_key: str) -> None:
    """Store one chapter's descriptions; a book deleted under a running `process` (by a tool that ignores
    the lock) ends the run with one clear line instead of a FOREIGN KEY error."""
    import sqlite3

    try:
        store.store_chapter_descriptions(book_id, chapter, descriptions, run_key)
    except sqlite3.IntegrityError:
        try:
            store.book(book_id)
        except NotFound:
            raise JobFailed(f"book {book_id} was removed while it was being processed") from None
        raise


def nlp_text(
    ctx: Context, text: str, mode: str | None = None, processors: str | list[str] | None = None, lang: str | None = None
) -> dict:
    """The seed's process_multi_nlp_ensemble_task for one text, plus the descriptions (offsets into it)."""
    from bookreader_cli import runs
    from bookreader_cli.nlp.runner import analyze_text

    if not text.strip():
        raise BadInput("no text given")
    mode = check_mode(mode or ctx.settings.nlp.mode)
    names = processor_names(processors, ctx.settings.nlp)
    if lang is not None and lang not in NLP_LANGUAGES:
        raise BadInput(f"unknown language {lang!r}: expected one of {', '.join(NLP_LANGUAGES)}")
    lang = lang or book_language({}, text)

    def job() -> dict:
        started = time.perf_counter()
        result = analyze_text(text, lang=lang, mode=mode, processors=names, nlp=ctx.settings.nlp)
        descriptions = [d.to_dict() for d in result.descriptions]
        metrics = {}  # the seed's <name>_confidence: the processor's mean score over the sentences it judged
        for name, v in result.votes_summary.items():
            metrics[f"{name}_confidence"] = v["mean_score"]
            metrics[f"{name}_yes_share"] = round(v["yes"] / v["ran"], 4) if v["ran"] else 0.0
        return {
            "chapter_id": None,
            "mode": mode,
            "processors_used": result.processors_used,
            "descriptions_found": len(descriptions),
            "consensus_rate": result.consensus_rate,
            "processing_time_seconds": round(time.perf_counter() - started, 3),
            "quality_metrics": metrics,
            "language": lang,
            "sentences_analyzed": result.sentences_total,
            "sentences_passed": result.sentences_passed,
            "processors_unavailable": result.processors_unavailable,
            "processor_failures": result.processor_failures,
            "descriptions": descriptions,
        }

    return runs.record(
        ctx.store,
        "process_multi_nlp_ensemble",
        "books",
        {"chars": len(text), "mode": mode, "processors": names},
        job,
        retries=2,
    )


def list_models(ctx: Context, load: bool = False, lang: str = "ru") -> dict:
    """Each NLP processor: available or why not, model source, load time (when `load`)."""
    from bookreader_cli.nlp.engine import models_report

    return {"processors": models_report(ctx.settings.nlp, load=load, lang=lang)}


def train_stanza(ctx: Context, size: str = "smoke", out: Path | None = None, sources=None) -> dict:
    """Train Stanza models locally (tokenize, pos, lemma, depparse, ner) where the processor will find them."""
    from bookreader_cli.nlp.compat import single_thread_math

    single_thread_math()
    from bookreader_cli.training.stanza_train import train_stanza_cli

    return train_stanza_cli(out or ctx.settings.stanza_dir, size=size, sources=sources)


def fit_scorers(
    ctx: Context, gold: Path | None = None, out: Path | None = None, langs=("ru", "en"), cv: bool = True
) -> dict:
    """Fit the per-processor description scorers on labelled books, print leave-one-book-out CV (stderr),
    write nlp/scorer/<lang>.json (or into `out`)."""
    import sys

    from bookreader_cli.nlp.compat import single_thread_math

    single_thread_math()
    from bookreader_cli.training import fit_scorer

    gold = Path(gold) if gold else fit_scorer.DEFAULT_GOLD
    missing = [lang for lang in langs if not fit_scorer.has_gold(gold, lang)]
    if missing:
        raise BadInput(
            f"no labelled books for {', '.join(missing)} in {gold} "
            f"(expected e.g. {fit_scorer.SPLITS[missing[0]][0]}-passages.jsonl and -gold.jsonl)"
        )
    reports = fit_scorer.fit_command(gold, out, langs=langs, cv=cv, echo=lambda line: print(line, file=sys.stderr))
    return {"gold": str(gold), "written": reports.pop("_written", []), "lobo": reports}


def list_descriptions(
    ctx: Context, ref: str, type: str | None = None, top: int | None = None, min_priority: float | None = None
) -> dict:
    from bookreader_cli.nlp.base import DESCRIPTION_TYPES

    if type and type not in DESCRIPTION_TYPES:
        raise BadInput(f"unknown type {type!r}: expected one of {', '.join(DESCRIPTION_TYPES)}")
    if top is not None and top < 1:
        raise BadInput("--top must be at least 1")
    book = lookup_book(ctx, ref)
    rows = ctx.store.descriptions(book["id"], type=type, min_priority=min_priority, top=top)
    return {"book_id": book["id"], "title": book["title"], "count": len(rows), "descriptions": rows}
