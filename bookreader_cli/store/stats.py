"""The queries behind `stats` and `health` (ops.py shapes the results): counts from one read snapshot, and
a write probe that leaves nothing behind."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: all counts from the same moment, even while others write."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        yield
    finally:
        if own:
            conn.execute("COMMIT")


def scalar(conn: sqlite3.Connection, sql: str) -> int:
    return conn.execute(sql).fetchone()[0]


def totals(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        "users_total": scalar(conn, "SELECT count(DISTINCT user) FROM images WHERE user IS NOT NULL AND user != ''"),
        "books_total": scalar(conn, "SELECT count(*) FROM books"),
        "chapters_total": scalar(conn, "SELECT count(*) FROM chapters"),
    }


def descriptions_by_type(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    return conn.execute("SELECT coalesce(type, 'unknown'), count(*) FROM descriptions GROUP BY 1").fetchall()


def images_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT coalesce(status, 'unknown'), count(*) FROM images GROUP BY 1 ORDER BY 1"))


def quick_check(conn: sqlite3.Connection, max_findings: int = 5) -> list[str]:
    """SQLite's `PRAGMA quick_check`: ["ok"] for a sound file, else its first findings. Reads only."""
    return [str(row[0]) for row in conn.execute(f"PRAGMA quick_check({int(max_findings)})")]


def write_probe(conn: sqlite3.Connection, busy_ms: int) -> tuple[int, str]:
    """A real write (a row in `locks`) inside a transaction that is rolled back: proves the file, its
    directory (for the WAL) and the lock are all writable. Returns (schema version, journal mode); raises
    sqlite3.Error when the write fails."""
    old_timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO locks (name, owner, pid, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                [f"health-check-{uuid.uuid4().hex}", "health", os.getpid(), time.time(), time.time()],
            )
        finally:
            conn.execute("ROLLBACK")
        return conn.execute("PRAGMA user_version").fetchone()[0], conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(old_timeout)}")
