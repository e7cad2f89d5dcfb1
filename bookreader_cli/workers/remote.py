"""The Celery side of a book's NLP: each chapter travels as one `bookreader.nlp_chapter` task.

    for index, result in celery_run_book(chapters, lang=…, mode=…, processors=…, nlp=settings.nlp,
                                         settings=settings):
        ...                               # result: engine.AnalysisResult; stored as a local one is

A chapter's NLP is pure (text, paragraphs, lang, mode, processors, vote settings → AnalysisResult), so
celery_run_book sends each chapter as one task, and run_chapter_job (on the worker) answers with the result
as JSON, which is rebuilt here into an AnalysisResult. Only the broker and the result backend are shared
between machines; the database stays with the coordinator. Celery itself is imported only when a book is
actually sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

from bookreader_cli.books.model import Chapter, Paragraph
from bookreader_cli.config import NlpSettings, Settings
from bookreader_cli.errors import JobFailed
from bookreader_cli.nlp.engine import AnalysisResult, check_mode, processor_names

# the NLP settings a chapter's result depends on; the coordinator's values travel with each job (model
# paths do not: each worker finds its models under its own BOOKREADER_HOME / settings)
VOTE_SETTINGS = ("processors", "weights", "threshold", "max_description_chars")


def jsonable(value: Any) -> Any:
    """Dataclasses → dicts, tuples → lists: the shape a value has after a trip through JSON."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def vote_settings(nlp: NlpSettings | None) -> dict:
    """The coordinator's NLP settings that decide a chapter's result."""
    return {} if nlp is None else {key: getattr(nlp, key) for key in VOTE_SETTINGS}


def chapter_payload(chapter: Chapter, lang: str, mode: str, processors, nlp: NlpSettings | None) -> dict:
    """One chapter's job as JSON: text, paragraphs as [start, end, kind] lists, and the vote settings."""
    return {"text": chapter.text, "paragraphs": [[p.start, p.end, p.kind] for p in chapter.paragraphs],
            "lang": lang, "mode": mode, "processors": list(processors) if processors else None,
            "settings": vote_settings(nlp)}


def run_chapter_job(job: dict) -> dict:
    """On a worker: the chapter's AnalysisResult as a dict. Processors run in this process (loaded once per
    worker process and kept), so the worker's concurrency is the parallelism; the votes are the same."""
    from bookreader_cli.config import load_settings
    from bookreader_cli.nlp.engine import analyze_chapter
    from bookreader_cli.nlp.segment import chapter_from_text

    settings = load_settings()  # the worker's own paths and models…
    for key, value in (job.get("settings") or {}).items():
        if key in VOTE_SETTINGS:
            setattr(settings.nlp, key, value)  # …with the coordinator's vote settings
    if job.get("paragraphs") is None:
        chapter = chapter_from_text(job["text"])
    else:
        chapter = Chapter("", job["text"], [Paragraph(int(s), int(e), k) for s, e, k in job["paragraphs"]])
    result = analyze_chapter(chapter, lang=job.get("lang") or "ru", mode=job.get("mode") or "ensemble",
                             processors=job.get("processors"), nlp=settings.nlp)
    return jsonable(result)


def result_from_dict(data: dict) -> AnalysisResult:
    """Rebuild an engine.AnalysisResult (with ensemble.Description objects) from its JSON form."""
    from bookreader_cli.nlp.ensemble import Description

    data = dict(data)
    data["descriptions"] = [Description(**d) for d in data.get("descriptions") or []]
    return AnalysisResult(**data)


def celery_run_book(chapters: Iterable[Chapter], lang: str = "ru", mode: str = "ensemble",
                    processors: Sequence[str] | None = None, workers: int = 2, on_chapter: Callable | None = None,
                    nlp: NlpSettings | None = None, pool=None, *, settings: Settings | None = None, app=None,
                    timeout: float | None = None, interval: float = 0.2,
                    on_warning: Callable[[str], None] | None = None,
                    on_part: Callable | None = None) -> Iterator[tuple[int, Any]]:
    """nlp.runner.run_book's contract on Celery: yield (chapter_index, AnalysisResult) as chapters finish.

    `settings` give the broker (default: the environment's); `nlp` the vote settings (default: settings.nlp).
    `workers` and `pool` are accepted for the same signature and ignored (the workers' concurrency decides);
    so is `on_part`: a chapter goes to a Celery worker whole (nlp.units cuts only for the local pool).
    A chapter that fails on a worker (after its retries) fails the run with JobFailed; chapters already
    yielded are the caller's to keep, so running again finishes the book.
    """
    from celery.exceptions import TimeoutError as CeleryTimeout
    from celery.result import AsyncResult, ResultSet

    from bookreader_cli.workers.app import NLP_CHAPTER, make_app

    nlp = nlp or (settings.nlp if settings is not None else None)
    check_mode(mode)  # availability is each worker's business (its own models)
    processor_names(processors, nlp)
    app = app or make_app(settings)
    jobs = [(index, chapter_payload(chapter, lang, mode, processors, nlp))
            for index, chapter in enumerate(chapters)]
    if not jobs:
        return
    check_broker(app)
    if not _workers_answer(app):
        (on_warning or logging.getLogger("bookreader.celery").warning)(
            "no Celery worker answered a ping; the chapters wait in the queue until one starts")
    index_of = {app.send_task(NLP_CHAPTER, args=[payload]).id: index for index, payload in jobs}
    pending = set(index_of)
    results = ResultSet([AsyncResult(task_id, app=app) for task_id in index_of], app=app)
    failures: dict[str, str] = {}
    try:
        for task_id, meta in results.iter_native(timeout=timeout, interval=interval):
            pending.discard(task_id)
            index = index_of[task_id]
            if meta["status"] != "SUCCESS":
                exc = app.backend.exception_to_python(meta.get("result"))
                raise JobFailed(f"chapter {index} failed on a Celery worker: {type(exc).__name__}: {exc}")
            AsyncResult(task_id, app=app).forget()
            result = result_from_dict(meta["result"])
            failures.update(result.processor_failures)  # as the local pool: report failures book-wide
            result.processor_failures = dict(failures)
            result.processors_used = [p for p in result.processors_used if p not in failures]
            if on_chapter is not None:
                on_chapter(index, result)
            yield index, result
    except (TimeoutError, CeleryTimeout):
        raise JobFailed(f"{len(pending)} chapter(s) unfinished after {timeout:g}s: is a worker consuming "
                        f"the 'books' queue?") from None
    finally:
        if pending:  # failed or interrupted: do not leave the rest of the book running for nobody
            try:
                app.control.revoke(list(pending))
            except Exception as exc:  # best effort: the tasks are pure, a leftover one only wastes work
                logging.getLogger("bookreader.celery").info("could not revoke %d chapter task(s): %s", len(pending), exc)


def _workers_answer(app) -> bool:
    try:
        return bool(app.control.inspect(timeout=1.0, limit=1).ping())  # returns at the first reply
    except Exception:
        return False


def check_broker(app, timeout: float = 5.0) -> None:
    """Fail fast with one line when the broker cannot be reached (Celery itself would keep retrying)."""
    conn = app.connection_for_write()
    try:
        conn.ensure_connection(max_retries=1, interval_start=0.2, interval_step=0.5, timeout=timeout)
    except Exception as exc:
        raise JobFailed(f"cannot reach the Celery broker at {safe_url(app.conf.broker_url)}: {exc}") from None
    finally:
        conn.release()


def safe_url(url: str) -> str:
    """A broker URL without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url or "")
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
