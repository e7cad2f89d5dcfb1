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
from bookreader_cli.errors import BadInput, BookreaderError, JobFailed
from bookreader_cli.nlp.engine import AnalysisResult, check_request

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
    return {
        "text": chapter.text,
        "paragraphs": [[p.start, p.end, p.kind] for p in chapter.paragraphs],
        "lang": lang,
        "mode": mode,
        "processors": list(processors) if processors else None,
        "settings": vote_settings(nlp),
    }


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
    result = analyze_chapter(
        chapter,
        lang=job.get("lang") or "ru",
        mode=job.get("mode") or "ensemble",
        processors=job.get("processors"),
        nlp=settings.nlp,
    )
    return jsonable(result)


def result_from_dict(data: dict) -> AnalysisResult:
    """Rebuild an engine.AnalysisResult (with ensemble.Description objects) from its JSON form."""
    from bookreader_cli.nlp.ensemble import Description

    data = dict(data)
    data["descriptions"] = [Description(**d) for d in data.get("descriptions") or []]
    return AnalysisResult(**data)


REPORT_EVERY = 10.0  # seconds without a finished chapter before the coordinator says what it waits for


def celery_run_book(
    chapters: Iterable[Chapter],
    lang: str = "ru",
    mode: str = "ensemble",
    processors: Sequence[str] | None = None,
    workers: int = 2,
    on_chapter: Callable | None = None,
    nlp: NlpSettings | None = None,
    pool=None,
    *,
    settings: Settings | None = None,
    app=None,
    timeout: float | None = None,
    interval: float = 0.2,
    on_warning: Callable[[str], None] | None = None,
    report_every: float = REPORT_EVERY,
    on_part: Callable | None = None,
) -> Iterator[tuple[int, Any]]:
    """nlp.runner.run_book's contract on Celery: yield (chapter_index, AnalysisResult) as chapters finish.

    `settings` give the broker (default: the environment's); `nlp` the vote settings (default: settings.nlp).
    `workers` and `pool` are accepted for the same signature and ignored (the workers' concurrency decides);
    so is `on_part`: a chapter goes to a Celery worker whole (nlp.units cuts only for the local pool).
    A chapter that fails on a worker (after its retries) fails the run with JobFailed; chapters already
    yielded are the caller's to keep, so running again finishes the book. `timeout`: seconds to wait for
    all chapters (None: no limit). After `report_every` s without a finished chapter it warns
    "waiting for N chapters on M workers"; asking the workers is also the check that the broker lives, so a
    lost or frozen broker ends the run with one JobFailed line instead of a silent wait.
    """
    import time

    from celery.exceptions import TimeoutError as CeleryTimeout
    from celery.result import AsyncResult, ResultSet

    from bookreader_cli import broker
    from bookreader_cli.runs import NLP_QUEUE
    from bookreader_cli.workers.app import NLP_CHAPTER, make_app

    if timeout is not None and timeout <= 0:
        raise BadInput("--timeout must be more than 0 seconds")
    nlp = nlp or (settings.nlp if settings is not None else None)
    check_request(mode, processors, nlp)  # the local runner's check: bad input before anything is sent
    app = app or make_app(settings)
    jobs = [(index, chapter_payload(chapter, lang, mode, processors, nlp)) for index, chapter in enumerate(chapters)]
    if not jobs:
        return
    warn = on_warning or logging.getLogger("bookreader.celery").warning
    broker.check_broker(app)
    index_of: dict[str, int] = {}
    pending: set[str] = set()
    handles: dict[str, AsyncResult] = {}
    failures: dict[str, str] = {}
    broker_gone = False
    deadline = None if timeout is None else time.monotonic() + timeout

    def waiting(workers: set[str]) -> None:
        running = set()  # the workers running one of our chapters (a busy solo worker answers no ping)
        for task_id in pending:
            meta = app.backend.get_task_meta(task_id)
            if meta.get("status") == "STARTED" and isinstance(meta.get("result"), dict):
                running.add(meta["result"].get("hostname"))
        workers = workers | (running - {None})
        warn(f"waiting for {len(pending)} chapters on {len(workers)} workers (consuming the '{NLP_QUEUE}' queue)")

    try:
        # with a timeout, a chapter still queued when the coordinator gives up is dropped unrun by the worker
        # that takes it later (a revoke reaches only the workers running now)
        expires = {} if timeout is None else {"expires": timeout}
        consuming = broker.workers_on(app, NLP_QUEUE)  # asked before sending: an idle worker answers
        for index, payload in jobs:
            task_id = app.send_task(NLP_CHAPTER, args=[payload], **expires).id
            index_of[task_id] = index
            pending.add(task_id)
        handles.update((task_id, AsyncResult(task_id, app=app)) for task_id in index_of)
        if not consuming:
            waiting(consuming)
        while pending:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise JobFailed(
                    f"{len(pending)} chapter(s) unfinished after {timeout:g}s: is a worker consuming "
                    f"the '{NLP_QUEUE}' queue?"
                )
            tick = report_every if left is None else min(report_every, left)
            batch = ResultSet([handles[t] for t in pending], app=app)
            came_back = 0  # chapters that came back during this tick
            try:
                for task_id, meta in batch.iter_native(timeout=tick, interval=interval):
                    if task_id not in pending:
                        continue
                    pending.discard(task_id)
                    came_back += 1
                    index = index_of[task_id]
                    if meta["status"] != "SUCCESS":
                        exc = app.backend.exception_to_python(meta.get("result"))
                        if isinstance(exc, BookreaderError):  # the engine's own verdict (say, no processor
                            raise exc from None  # for this language): the local run's message
                        raise JobFailed(f"chapter {index} failed on a Celery worker: {type(exc).__name__}: {exc}")
                    handles[task_id].forget()
                    result = result_from_dict(meta["result"])
                    failures.update(result.processor_failures)  # as the local pool: report failures book-wide
                    result.processor_failures = dict(failures)
                    result.processors_used = [p for p in result.processors_used if p not in failures]
                    if on_chapter is not None:
                        on_chapter(index, result)
                    yield index, result
            except (TimeoutError, CeleryTimeout):
                if not came_back and (deadline is None or time.monotonic() < deadline):
                    waiting(broker.workers_on(app, NLP_QUEUE))  # also proves the broker still answers
    except Exception as exc:
        cause = broker.connection_failure(exc)
        if cause is None:
            raise
        broker_gone = True
        raise broker.unreachable(app, cause) from None
    finally:
        if pending and not broker_gone:  # failed or interrupted: do not leave the rest running for nobody
            broker.revoke_once(app, list(pending))
        _let_go(app, handles.values(), unsubscribe=not broker_gone)


def _let_go(app, handles, unsubscribe: bool) -> None:
    """Stop listening for these results now. Left to AsyncResult.__del__, the unsubscribe may run at
    interpreter exit (the run's traceback keeps them alive), where it prints a traceback of its own."""
    for handle in handles:
        if unsubscribe:
            try:
                app.backend.remove_pending_result(handle)
            except Exception:  # the broker went away meanwhile: do not wait on it for every chapter
                unsubscribe = False
        handle.backend = None  # its __del__ has nothing left to do
