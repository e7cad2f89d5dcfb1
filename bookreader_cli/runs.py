"""The record of every task run (what Celery's result backend kept in the original app), and retries.

`record(ctx, task, queue, args, fn, retries=N)` runs `fn()` as one run: a task_runs row goes PENDING →
STARTED → (RETRY →)* SUCCESS | FAILURE with attempts, timings and the result or error. A `Transient`
error is retried with exponential backoff and jitter; a BadInput removes the row again, because bad input
must leave the database as it was.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from typing import Any, Callable

from bookreader_cli.errors import BadInput, BookreaderError

log = logging.getLogger("bookreader.tasks")

STATES = ("PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE")
QUEUES = ("books", "images", "cleanup")


class Transient(BookreaderError):
    """A failure worth retrying (a timeout, a worker that died, a locked resource)."""


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return random.uniform(0, min(cap, base * (2 ** attempt)))


def record(store, task: str, queue: str, args: dict, fn: Callable[[], Any], retries: int = 0,
           backoff_base: float = 1.0) -> Any:
    run_id = uuid.uuid4().hex
    created = time.time()
    store.db["task_runs"].insert({
        "id": run_id, "task": task, "queue": queue, "args": json.dumps(args, ensure_ascii=False, default=str),
        "state": "PENDING", "attempts": 0, "created_at": created,
    })
    attempt = 0
    extra = {"task_id": run_id, "task_name": task, "queue": queue}
    while True:
        attempt += 1
        started = time.time()
        _update(store, run_id, state="STARTED", attempts=attempt,
                **({"started_at": started} if attempt == 1 else {}))
        log.info("task started", extra=dict(extra, attempt=attempt))
        try:
            result = fn()
        except BadInput:
            store.conn.execute("DELETE FROM task_runs WHERE id = ?", [run_id])
            raise
        except Transient as exc:
            if attempt <= retries:
                delay = backoff_delay(attempt - 1, backoff_base)
                _update(store, run_id, state="RETRY", error=str(exc))
                log.warning("task retry in %.1fs: %s", delay, exc, extra=dict(extra, attempt=attempt))
                time.sleep(delay)
                continue
            _finish(store, run_id, created, "FAILURE", error=str(exc), extra=extra)
            raise
        except BaseException as exc:
            _finish(store, run_id, created, "FAILURE", error=f"{type(exc).__name__}: {exc}", extra=extra)
            raise
        if isinstance(result, dict):
            result.setdefault("task_id", run_id)
        _finish(store, run_id, created, "SUCCESS", result=result, extra=extra)
        return result


def _update(store, run_id: str, **values) -> None:
    store.db["task_runs"].update(run_id, values)


def _finish(store, run_id: str, created: float, state: str, result: Any = None, error: str | None = None,
            extra: dict | None = None) -> None:
    finished = time.time()
    row = store.db["task_runs"].get(run_id)
    duration = finished - (row["started_at"] or created)
    _update(store, run_id, state=state, finished_at=finished, duration_seconds=round(duration, 3),
            result=json.dumps(result, ensure_ascii=False, default=str) if result is not None else None,
            error=error)
    log.info("task %s", state.lower(), extra=dict(extra or {}, state=state, duration_seconds=round(duration, 3)))


def list_runs(store, state: str | None = None, task: str | None = None, limit: int = 50) -> list[dict]:
    where, params = [], []
    if state:
        if state.upper() not in STATES:
            raise BadInput(f"unknown state {state!r}: expected one of {', '.join(STATES)}")
        where.append("state = ?")
        params.append(state.upper())
    if task:
        where.append("task = ?")
        params.append(task)
    sql = ("SELECT id, task, queue, state, attempts, created_at, duration_seconds, error FROM task_runs"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at DESC LIMIT ?")
    return list(store.db.query(sql, params + [limit]))


def get_run(store, run_id: str) -> dict:
    rows = list(store.db.query("SELECT * FROM task_runs WHERE id LIKE ?", [run_id + "%"])) if run_id else []
    if len(rows) != 1:
        raise BadInput(f"no task run with id {run_id!r}" if not rows else f"run id {run_id!r} is ambiguous")
    row = rows[0]
    for key in ("args", "result"):
        if row[key]:
            row[key] = json.loads(row[key])
    return row
