"""The schema: tables created with sqlite-utils, versioned with PRAGMA user_version (each entry of
MIGRATIONS runs once, in order, in a transaction), and the settings every connection shares."""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000


def _m1_initial(db) -> None:
    db["books"].create(
        {
            "id": int,
            "sha256": str,
            "path": str,
            "file_name": str,
            "file_size": int,
            "file_mtime": float,
            "format": str,
            "title": str,
            "authors": str,
            "language": str,
            "identifiers": str,
            "publisher": str,
            "date": str,
            "notes": str,
            "warnings": str,
            "cover": bytes,
            "cover_media_type": str,
            "imported_at": float,
        },
        pk="id",
        not_null={"sha256", "format", "title"},
    )
    db["books"].create_index(["sha256"], unique=True)
    db["chapters"].create(
        {
            "id": int,
            "book_id": int,
            "idx": int,
            "title": str,
            "text": str,
            "paragraphs": str,
            "source": str,
            "char_count": int,
        },
        pk="id",
        foreign_keys=[("book_id", "books", "id")],
    )
    db["chapters"].create_index(["book_id", "idx"], unique=True)
    db["descriptions"].create(
        {
            "id": int,
            "book_id": int,
            "chapter_id": int,
            "chapter_idx": int,
            "start": int,
            "end": int,
            "text": str,
            "type": str,
            "priority": float,
            "confidence": float,
            "consensus": float,
            "processors": str,
            "cfi": str,
            "created_at": float,
        },
        pk="id",
        foreign_keys=[("book_id", "books", "id"), ("chapter_id", "chapters", "id")],
    )
    db["descriptions"].create_index(["book_id", "chapter_idx"])
    db["descriptions"].create_index(["book_id", "priority"])
    # which chapters a processing run has finished: a killed run resumes after the last stored chapter
    db["chapter_runs"].create(
        {"book_id": int, "chapter_idx": int, "run_key": str, "descriptions": int, "done_at": float},
        pk=("book_id", "chapter_idx"),
        foreign_keys=[("book_id", "books", "id")],
    )
    db["images"].create(
        {
            "id": int,
            "description_id": int,
            "book_id": int,
            "user": str,
            "path": str,
            "sha256": str,
            "prompt": str,
            "params": str,
            "seed": int,
            "model": str,
            "source_url": str,
            "size_bytes": int,
            "width": int,
            "height": int,
            "status": str,
            "error": str,
            "generation_time_seconds": float,
            "created_at": float,
        },
        pk="id",
    )
    db["images"].create_index(["description_id"])
    db["images"].create_index(["user", "created_at"])
    db["task_runs"].create(
        {
            "id": str,
            "task": str,
            "queue": str,
            "args": str,
            "state": str,
            "attempts": int,
            "created_at": float,
            "started_at": float,
            "finished_at": float,
            "duration_seconds": float,
            "result": str,
            "error": str,
        },
        pk="id",
    )
    db["task_runs"].create_index(["task", "state"])
    db["task_runs"].create_index(["created_at"])


def _m2_locations_and_locks(db) -> None:
    db["books"].add_column("locations", str)  # JSON array of epub.js location CFIs
    db["books"].add_column("locations_chars", int)
    db["locks"].create({"name": str, "owner": str, "pid": int, "acquired_at": float, "expires_at": float}, pk="name")


def _m3_run_owner(db) -> None:
    db["task_runs"].add_column("owner", str)  # host:pid of the process running it (see runs.reap_abandoned)


def _m4_api_pauses(db) -> None:
    # a server's Retry-After, shared by every process on this home: nobody sends to `api` before `paused_until`
    db["api_pauses"].create({"api": str, "paused_until": float}, pk="api")


def _m5_title_source(db) -> None:
    # where a book's title came from: metadata, gutenberg header, first lines, file name, given (--title);
    # NULL for books imported before it was recorded
    db["books"].add_column("title_source", str)


MIGRATIONS = [_m1_initial, _m2_locations_and_locks, _m3_run_owner, _m4_api_pauses, _m5_title_source]


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the settings every process must share (WAL, busy timeout, foreign keys)."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn
