"""The task_runs table: one row per recorded job run (runs.py decides the states; this is its SQL).

Autocommit, one statement per state change, so each change is visible to other processes at once."""

from __future__ import annotations

import sqlite3
from typing import Any

_OLD_FINISHED = "FROM task_runs WHERE state IN ('SUCCESS', 'FAILURE') AND created_at < ?"
LIST_COLUMNS = "id, task, queue, state, attempts, created_at, started_at, finished_at, duration_seconds, error"


def insert_run(
    conn: sqlite3.Connection, run_id: str, task: str, queue: str, args: str, created: float, owner: str | None = None
) -> None:
    """A PENDING run; `owner` (host:pid) from the start, so a process that dies before STARTED is reaped."""
    conn.execute(
        "INSERT INTO task_runs (id, task, queue, args, state, attempts, created_at, owner) "
        "VALUES (?, ?, ?, ?, 'PENDING', 0, ?, ?)",
        [run_id, task, queue, args, created, owner],
    )


def update_run(conn: sqlite3.Connection, run_id: str, **values: Any) -> None:
    assignments = ", ".join(f"{key} = ?" for key in values)
    conn.execute(f"UPDATE task_runs SET {assignments} WHERE id = ?", [*values.values(), run_id])


def delete_run(conn: sqlite3.Connection, run_id: str) -> None:
    conn.execute("DELETE FROM task_runs WHERE id = ?", [run_id])


def _rows(conn: sqlite3.Connection, sql: str, params: list) -> list[dict]:
    cursor = conn.execute(sql, params)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def select_runs(
    conn: sqlite3.Connection, state: str | None, task: str | None, queue: str | None, limit: int
) -> list[dict]:
    """The newest runs first (list columns), optionally only one state / task name / queue."""
    where, params = [], []
    for column, value in (("state", state), ("task", task), ("queue", queue)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    sql = (
        f"SELECT {LIST_COLUMNS} FROM task_runs"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY created_at DESC, rowid DESC LIMIT ?"
    )
    return _rows(conn, sql, params + [limit])


def runs_by_prefix(conn: sqlite3.Connection, prefix: str, limit: int = 2) -> list[dict]:
    return _rows(conn, "SELECT * FROM task_runs WHERE id LIKE ? LIMIT ?", [prefix + "%", limit])


def unfinished_runs(conn: sqlite3.Connection) -> list[tuple[str, str, float | None]]:
    """(id, owner, started_at or created_at) of the runs PENDING, STARTED or waiting to RETRY that name
    their process."""
    return conn.execute(
        "SELECT id, owner, coalesce(started_at, created_at) FROM task_runs "
        "WHERE state IN ('PENDING', 'STARTED', 'RETRY') AND owner IS NOT NULL"
    ).fetchall()


def fail_unfinished(conn: sqlite3.Connection, run_id: str, error: str, finished: float, duration: float) -> int:
    """Mark a still-unfinished run FAILURE; 0 when it finished meanwhile."""
    return conn.execute(
        "UPDATE task_runs SET state = 'FAILURE', error = ?, finished_at = ?, duration_seconds = ? "
        "WHERE id = ? AND state IN ('PENDING', 'STARTED', 'RETRY')",
        [error, finished, duration, run_id],
    ).rowcount


def delete_finished_before(conn: sqlite3.Connection, before: float) -> int:
    return conn.execute("DELETE " + _OLD_FINISHED, [before]).rowcount


def count_finished_before(conn: sqlite3.Connection, before: float) -> int:
    return conn.execute("SELECT count(*) " + _OLD_FINISHED, [before]).fetchone()[0]


def counts_by_queue_and_state(conn: sqlite3.Connection) -> list[tuple[str | None, str, int]]:
    return conn.execute("SELECT queue, state, count(*) FROM task_runs GROUP BY queue, state").fetchall()
