"""Named locks in the database, so two cron runs of one job, or two `process` runs of one book, never overlap.

A lock is a row of the `locks` table (name, owner, pid, acquired_at, expires_at), taken inside a
BEGIN IMMEDIATE transaction, so exactly one process wins a race. A lock whose holder is dead (same host,
pid gone) or whose lease has expired is stale and is taken over. While a lock is held, a background thread
renews its lease on its own connection, so a long job keeps it and a killed job loses it within `ttl`.

    with db_lock(ctx.store, f"process:book:{book_id}", wait=False):
        ...   # raises Busy (exit 1, one line) when another live process holds it
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from bookreader_cli.errors import Busy
from bookreader_cli.store import locks as sql

DEFAULT_TTL = 600.0  # seconds of lease; renewed every ttl/3 while held
POLL_SECONDS = 0.2


def this_process() -> str:
    """host:pid — the host tells whether the pid can be checked from here."""
    return f"{socket.gethostname()}:{os.getpid()}"


def make_owner() -> str:
    """host:pid:token (the token tells two holders in one process apart)."""
    return f"{this_process()}:{uuid.uuid4().hex[:8]}"


def gone(owner: str, pid: int | None = None) -> bool:
    """The process `owner` names (host:pid…; or its `pid` given apart) ran on this host and no longer
    exists. A process of another host cannot be checked from here: never gone."""
    host, _, rest = (owner or "").partition(":")
    if pid is None:
        text = rest.split(":", 1)[0]
        if not text.isdigit():
            return False
        pid = int(text)
    return host == socket.gethostname() and not pid_alive(pid)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped still answers kill(0); /proc says it is dead (Linux only)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def is_stale(row: dict, now: float | None = None) -> bool:
    """Expired, or held by a process on this host that no longer exists."""
    now = time.time() if now is None else now
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return True
    return gone(row["owner"], row["pid"] or 0)


def holder(store, name: str) -> dict | None:
    return sql.lock_row(store.conn, name)


def try_acquire(store, name: str, owner: str, ttl: float = DEFAULT_TTL) -> dict | None:
    """Take the lock if it is free or stale; returns None on success, else the live holder's row."""
    with store.transaction():
        current = holder(store, name)
        if current is not None and current["owner"] != owner and not is_stale(current):
            return current
        now = time.time()
        sql.put_lock(store.conn, name, owner, os.getpid(), now, now + ttl)
    return None


def release(store, name: str, owner: str) -> bool:
    """Drop the lock only if we still own it (a stale-taken-over lock belongs to someone else now)."""
    with store.transaction():
        return sql.delete_lock(store.conn, name, owner)


def renew(conn: sqlite3.Connection, name: str, owner: str, ttl: float) -> bool:
    return sql.extend_lock(conn, name, owner, time.time() + ttl)


def describe(row: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["acquired_at"] or 0))
    host = (row["owner"] or "?").split(":", 1)[0]
    return f"held by pid {row['pid']} on {host} since {since}"


@contextmanager
def db_lock(
    store,
    name: str,
    wait: bool = False,
    timeout: float | None = None,
    ttl: float = DEFAULT_TTL,
    busy_message: str | None = None,
) -> Iterator[str]:
    """Hold lock `name` for the block; yields the owner string.

    wait=False fails fast with Busy; wait=True polls until the lock is free (or stale), giving up with
    Busy after `timeout` seconds (None: wait as long as it takes).
    """
    owner = make_owner()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        current = try_acquire(store, name, owner, ttl)
        if current is None:
            break
        if not wait or (deadline is not None and time.monotonic() >= deadline):
            what = busy_message or f"{name} is busy"
            raise Busy(f"{what}: {describe(current)}" + (f" (waited {timeout:g}s)" if wait else ""))
        time.sleep(POLL_SECONDS)
    stop = threading.Event()
    keeper = threading.Thread(
        target=_keep_alive, args=(store.path, name, owner, ttl, stop), name=f"lock-{name}", daemon=True
    )
    keeper.start()
    try:
        yield owner
    finally:
        stop.set()
        keeper.join()
        release(store, name, owner)


def _keep_alive(path, name: str, owner: str, ttl: float, stop: threading.Event) -> None:
    """Renew the lease every ttl/3 on a connection of its own (sqlite connections are per thread)."""
    from bookreader_cli.store.schema import connect

    conn = None
    try:
        while not stop.wait(ttl / 3):
            try:
                conn = conn or connect(path)
                if not renew(conn, name, owner, ttl):
                    return  # taken over: nothing left to renew
            except sqlite3.Error:
                continue  # a busy database: try again next period
    finally:
        if conn is not None:
            conn.close()
