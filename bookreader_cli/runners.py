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


def book_runner(executor: str, settings: Settings | None = None) -> Callable[..., Iterator[tuple[int, Any]]]:
    """The run_book for `executor`; `settings` give the Celery broker (default: the environment's)."""
    if executor == "local":
        from bookreader_cli.nlp.runner import run_book

        return run_book
    if executor == "celery":
        try:
            import celery  # noqa: F401
            import redis  # noqa: F401
        except ImportError:
            raise JobFailed("--executor celery needs Celery: pip install 'bookreader[celery]'") from None
        from bookreader_cli.workers.remote import celery_run_book

        return functools.partial(celery_run_book, settings=settings)
    raise BadInput(f"unknown executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
