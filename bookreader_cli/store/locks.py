"""The locks table: one row per held lock (locks.py decides who may take one; this is its SQL)."""

from __future__ import annotations

import sqlite3

COLUMNS = ("name", "owner", "pid", "acquired_at", "expires_at")


def lock_row(conn: sqlite3.Connection, name: str) -> dict | None:
    row = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM locks WHERE name = ?", [name]).fetchone()
    return dict(zip(COLUMNS, row)) if row else None


def put_lock(conn: sqlite3.Connection, name: str, owner: str, pid: int, acquired: float, expires: float) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO locks (name, owner, pid, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        [name, owner, pid, acquired, expires],
    )


def delete_lock(conn: sqlite3.Connection, name: str, owner: str) -> bool:
    """Delete the lock only if `owner` still holds it."""
    return conn.execute("DELETE FROM locks WHERE name = ? AND owner = ?", [name, owner]).rowcount == 1


def extend_lock(conn: sqlite3.Connection, name: str, owner: str, expires: float) -> bool:
    return (
        conn.execute("UPDATE locks SET expires_at = ? WHERE name = ? AND owner = ?", [expires, name, owner]).rowcount
        == 1
    )
