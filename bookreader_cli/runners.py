"""Where a book's chapter NLP runs: "local" → nlp.runner.run_book (a process pool here), "celery" →
workers.remote.celery_run_book (workers anywhere). Both have run_book's interface; jobs.process_book is
handed the one the user chose."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from bookreader_cli.config import Settings
from bookreader_cli.errors import BadInput, JobFailed

EXECUTORS = ("local", "celery")


def book_runner(
    executor: str, settings: Settings | None = None, timeout: float | None = None
) -> Callable[..., Iterator[tuple[int, Any]]]:
    """The run_book for `executor`; `settings` give the Celery broker (default: the environment's), `timeout`
    how long the Celery runner waits for its workers (None: as long as it takes; the local pool has no such
    wait, so a timeout there is bad input)."""
    if executor == "local":
        if timeout is not None:
            raise BadInput("--timeout applies to --executor celery only")
        from bookreader_cli.nlp.runner import run_book

        return run_book
    if executor == "celery":
        if timeout is not None and timeout <= 0:
            raise BadInput("--timeout must be more than 0 seconds")
        try:
            import celery  # noqa: F401
            import redis  # noqa: F401
        except ImportError:
            raise JobFailed("--executor celery needs Celery: pip install 'bookreader[celery]'") from None
        from bookreader_cli.workers.remote import celery_run_book

        return functools.partial(celery_run_book, settings=settings, timeout=timeout)
    raise BadInput(f"unknown executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
