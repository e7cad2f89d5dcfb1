"""Where a book's chapter NLP runs: the local process pool (nlp.pool.run_book) or Celery workers anywhere.

Both runners have one interface, nlp.pool.run_book's:

    run = book_runner("celery")          # or "local"
    for index, result in run(chapters, lang=…, mode=…, processors=…, workers=…, settings=settings):
        ...                               # result: engine.AnalysisResult; store it per chapter

A chapter's NLP is pure (text, paragraphs, lang, mode, processors, vote settings → AnalysisResult), so the
Celery runner sends each chapter as one `bookreader.nlp_chapter` task, rebuilds the AnalysisResult from
the JSON that comes back, and the coordinator stores it exactly as it stores a local one. Only the broker
and the result backend are shared between machines; the database stays with the coordinator.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, is_dataclass
from typing import Any, Callable, Iterable, Iterator

from bookreader_cli.errors import BadInput, JobFailed

EXECUTORS = ("local", "celery")
# the NLP settings a chapter's result depends on; the coordinator's values travel with each job (model
# paths do not: each worker finds its models under its own BOOKREADER_HOME / settings)
VOTE_SETTINGS = ("processors", "weights", "threshold", "max_description_chars")


def book_runner(executor: str) -> Callable[..., Iterator[tuple[int, Any]]]:
    """`local` → nlp.pool.run_book; `celery` → celery_run_book (same signature, same results)."""
    if executor == "local":
        from bookreader_cli.nlp.pool import run_book

        return run_book
    if executor == "celery":
        try:
            import celery  # noqa: F401
            import redis  # noqa: F401
        except ImportError:
            raise JobFailed("--executor celery needs Celery: pip install 'bookreader[celery]'") from None
        return celery_run_book
    raise BadInput(f"unknown executor {executor!r}: expected one of {', '.join(EXECUTORS)}")


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


def vote_settings(settings) -> dict:
    """The coordinator's NLP settings that decide a chapter's result."""
    if settings is None:
        return {}
    nlp = getattr(settings, "nlp", settings)
    get = nlp.get if isinstance(nlp, dict) else (lambda key: getattr(nlp, key, None))
    return {key: get(key) for key in VOTE_SETTINGS if get(key) is not None}


def chapter_payload(chapter, lang: str, mode: str, processors, settings) -> dict:
    """One chapter's job as JSON: text, paragraphs as [start, end, kind] lists, and the vote settings."""
    from bookreader_cli.nlp.pool import _chapter_input
    from bookreader_cli.nlp.segment import _as_spans

    text, paragraphs = _chapter_input(chapter)
    return {"text": text, "paragraphs": [list(p) for p in _as_spans(paragraphs)] if paragraphs is not None else None,
            "lang": lang, "mode": mode, "processors": list(processors) if processors else None,
            "settings": vote_settings(settings)}


def run_chapter_job(job: dict) -> dict:
    """On a worker: the chapter's AnalysisResult as a dict. Processors run in this process (loaded once per
    worker process and kept), so the worker's concurrency is the parallelism; the votes are the same."""
    from bookreader_cli.config import load_settings
    from bookreader_cli.nlp.engine import analyze_text

    settings = load_settings()  # the worker's own paths and models…
    for key, value in (job.get("settings") or {}).items():
        if key in VOTE_SETTINGS:
            setattr(settings.nlp, key, value)  # …with the coordinator's vote settings
    result = analyze_text(job["text"], job.get("paragraphs"), lang=job.get("lang") or "ru",
                          mode=job.get("mode") or "ensemble", processors=job.get("processors"),
                          settings=settings, in_process=True)
    return jsonable(result)


def result_from_dict(data: dict):
    """Rebuild an engine.AnalysisResult (with ensemble.Description objects) from its JSON form."""
    from bookreader_cli.nlp.engine import AnalysisResult
    from bookreader_cli.nlp.ensemble import Description

    data = dict(data)
    data["descriptions"] = [Description(**d) for d in data.get("descriptions") or []]
    return AnalysisResult(**data)


def celery_run_book(chapters: Iterable, lang: str = "ru", mode: str = "ensemble", processors=None,
                    workers: int = 2, on_chapter: Callable | None = None, settings=None, pool=None, *,
                    app=None, timeout: float | None = None, interval: float = 0.2,
                    on_warning: Callable[[str], None] | None = None) -> Iterator[tuple[int, Any]]:
    """nlp.pool.run_book's contract on Celery: yield (chapter_index, AnalysisResult) as chapters finish.

    `workers` and `pool` are accepted for the same signature and ignored (the workers' concurrency decides).
    A chapter that fails on a worker (after its retries) fails the run with JobFailed; chapters already
    yielded are the caller's to keep, so running again finishes the book.
    """
    from celery.exceptions import TimeoutError as CeleryTimeout
    from celery.result import AsyncResult, ResultSet

    from bookreader_cli.celery_app import NLP_CHAPTER, make_app

    _check_names(mode, processors, settings)
    app = app or make_app(settings if hasattr(settings, "celery") else None)
    jobs = [(index, chapter_payload(chapter, lang, mode, processors, settings))
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
            except Exception:  # best effort: the tasks are pure, a leftover one only wastes work
                pass


def _check_names(mode: str, processors, settings) -> None:
    """Validate mode and processor names here; availability is each worker's business (its own models)."""
    from bookreader_cli.nlp.engine import MODES, _requested
    from bookreader_cli.nlp.processors import REGISTRY

    if mode not in MODES:
        raise BadInput(f"unknown mode {mode!r} (choose from: {', '.join(MODES)})")
    unknown = [n for n in _requested(processors, settings) if n not in REGISTRY]
    if unknown:
        raise BadInput(f"unknown processor(s): {', '.join(unknown)} (known: {', '.join(REGISTRY)})")


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
