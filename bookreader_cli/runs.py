"""The record of every task run (what Celery's result backend kept in the original app), and retries.

`record(store, task, queue, args, fn, retries=N)` runs `fn()` as one run: a task_runs row goes PENDING →
STARTED → (RETRY → STARTED)* → SUCCESS | FAILURE with attempts, timings and the result or error. A
`Transient` error is retried with exponential backoff and jitter; a BadInput removes the row again, because
bad input must leave the database as it was.

The SQL is in store/runs.py: plain statements on `store.conn` (autocommit, one statement per state change)
so that fast commands such as `health` and `stats` never import sqlite-utils, and so each state change is
visible to other processes (`bookreader runs list` in another terminal) the moment it happens.
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

from bookreader_cli.errors import BadInput, BookreaderError, NotFound
from bookreader_cli.locks import gone, this_process
from bookreader_cli.store import runs as sql

log = logging.getLogger("bookreader.tasks")

STATES = ("PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE")
ABANDONED = "abandoned: the process running it (pid {pid}) ended without finishing it"
# The Celery queues, defined once: "nlp" for the pure chapter jobs (any machine with the models), "books" for
# the tasks that need the coordinator's database (process_book, CFI, EPUB cache), and "celery", Celery's
# default queue, for the small tasks such as the health check. Task runs are recorded under RUN_QUEUES (a
# health check counts as "cleanup"; a chapter job is part of its process_book run).
QUEUES = ("books", "nlp", "images", "cleanup", "celery")
NLP_QUEUE = "nlp"
RUN_QUEUES = ("books", "images", "cleanup")
INTERRUPTED = "interrupted"  # the error of a run stopped by Ctrl-C


class Transient(BookreaderError):
    """A failure worth retrying (a timeout, a worker that died, a locked resource)."""


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return random.uniform(0, min(cap, base * (2**attempt)))


# Set by the Celery door: Celery retries the task itself (self.retry with backoff), so record() must not
# retry inside the attempt as well (that would multiply the attempts).
retried_by_caller: contextvars.ContextVar[bool] = contextvars.ContextVar("retried_by_caller", default=False)


def record(
    store, task: str, queue: str, args: dict, fn: Callable[[], Any], retries: int = 0, backoff_base: float = 1.0
) -> Any:
    """Run fn() as one recorded task run and return its result (a dict result gains `task_id`)."""
    if retried_by_caller.get():
        retries = 0
    run_id = uuid.uuid4().hex
    created = time.time()
    # the owner from the start: a process that dies before STARTED is reaped too
    sql.insert_run(store.conn, run_id, task, queue, _dumps(args), created, this_process())
    extra = {"task_id": run_id, "task_name": task, "queue": queue}
    log.info("task received", extra=dict(extra, state="PENDING"))
    started = None
    attempt = 0
    while True:
        attempt += 1
        now = time.time()
        started = started or now
        _update(store, run_id, state="STARTED", attempts=attempt, started_at=started, owner=this_process())
        log.info("task started", extra=dict(extra, state="STARTED", attempt=attempt))
        try:
            result = fn()
        except BadInput:
            sql.delete_run(store.conn, run_id)
            log.info("task rejected: bad input", extra=dict(extra, attempt=attempt))
            raise
        except Transient as exc:
            if attempt <= retries:
                delay = backoff_delay(attempt - 1, backoff_base)
                _update(store, run_id, state="RETRY", error=str(exc))
                log.warning(
                    "task retry in %.2fs: %s",
                    delay,
                    exc,
                    extra=dict(extra, state="RETRY", attempt=attempt, retry_in_seconds=round(delay, 3)),
                )
                time.sleep(delay)
                continue
            _finish(store, run_id, started, attempt, "FAILURE", error=str(exc), extra=extra)
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C ("interrupted") or SIGTERM (errors.Terminated): failed, resumable
            _finish(store, run_id, started, attempt, "FAILURE", error=str(exc) or INTERRUPTED, extra=extra)
            raise
        except BaseException as exc:
            _finish(store, run_id, started, attempt, "FAILURE", error=f"{type(exc).__name__}: {exc}", extra=extra)
            raise
        if isinstance(result, dict):
            result.setdefault("task_id", run_id)
        _finish(store, run_id, started, attempt, "SUCCESS", result=result, extra=extra)
        return result


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _update(store, run_id: str, **values) -> None:
    sql.update_run(store.conn, run_id, **values)


def _finish(
    store,
    run_id: str,
    started: float,
    attempts: int,
    state: str,
    result: Any = None,
    error: str | None = None,
    extra: dict | None = None,
) -> None:
    finished = time.time()
    duration = round(finished - started, 3)
    _update(
        store,
        run_id,
        state=state,
        finished_at=finished,
        duration_seconds=duration,
        result=_dumps(result) if result is not None else None,
        error=error,
    )
    # INFO either way: the CLI already prints a failure's one line; JSON logs (level INFO) carry it with timings
    log.info(
        "task %s%s",
        state.lower(),
        f": {error}" if error else "",
        extra=dict(extra or {}, state=state, attempts=attempts, duration_seconds=duration),
    )


def list_runs(
    store, state: str | None = None, task: str | None = None, limit: int = 50, queue: str | None = None
) -> list[dict]:
    """The newest runs first, optionally only one state / task name / queue."""
    if state and state.upper() not in STATES:
        raise BadInput(f"unknown state {state!r}: expected one of {', '.join(STATES)}")
    if queue and queue not in RUN_QUEUES:
        raise BadInput(f"unknown queue {queue!r}: expected one of {', '.join(RUN_QUEUES)}")
    if limit < 1:
        raise BadInput("--limit must be at least 1")
    reap_abandoned(store.conn)
    return sql.select_runs(store.conn, state.upper() if state else None, task, queue, limit)


def get_run(store, run_id: str) -> dict:
    """One run by id or by an unambiguous id prefix, with its arguments and result decoded."""
    run_id = (run_id or "").strip().lower()
    if not run_id or any(c not in "0123456789abcdef" for c in run_id):
        raise NotFound(f"no task run with id {run_id!r}")
    reap_abandoned(store.conn)
    rows = sql.runs_by_prefix(store.conn, run_id)
    if len(rows) != 1:
        if not rows:
            raise NotFound(f"no task run with id {run_id!r}")
        raise BadInput(f"run id {run_id!r} is ambiguous")
    row = rows[0]
    for key in ("args", "result"):
        if row[key]:
            try:
                row[key] = json.loads(row[key])
            except (TypeError, json.JSONDecodeError):
                pass
    return row


def reap_abandoned(conn: sqlite3.Connection) -> int:
    """Mark FAILURE the unfinished runs (PENDING/STARTED/RETRY) whose process on this host is gone: killed
    with SIGKILL, by the OOM killer, or with its machine's power, before or after the run started. Runs of
    other hosts are left alone (their pid means nothing here). Called wherever runs are read, so `runs list`
    never shows a dead run as waiting or running."""
    reaped = 0
    for run_id, owner, started in sql.unfinished_runs(conn):
        if not gone(owner):
            continue
        now = time.time()
        reaped += sql.fail_unfinished(
            conn, run_id, ABANDONED.format(pid=owner.rsplit(":", 1)[1]), now, round(now - (started or now), 3)
        )
    return reaped


def prune(store, older_than_seconds: float) -> int:
    """Delete finished runs (SUCCESS/FAILURE) created more than `older_than_seconds` ago; returns how many.
    `cleanup` calls it: `health` from a monitor every minute alone adds ~1,400 rows a day."""
    return sql.delete_finished_before(store.conn, time.time() - older_than_seconds)


def prunable(store, older_than_seconds: float) -> int:
    """How many runs prune() would delete (for a dry run)."""
    return sql.count_finished_before(store.conn, time.time() - older_than_seconds)


def counts_by_queue_and_state(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """{queue: {state: n}} with every known queue and state present (zeros included)."""
    reap_abandoned(conn)
    counts = {queue: dict.fromkeys(STATES, 0) for queue in RUN_QUEUES}
    for queue, state, n in sql.counts_by_queue_and_state(conn):
        counts.setdefault(queue or "unknown", dict.fromkeys(STATES, 0))[state] = n
    return counts
