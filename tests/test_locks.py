"""The database lock: one winner among racing processes, waiting, stale-lock takeover, lease renewal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bookreader_cli import locks
from bookreader_cli.locks import Busy, db_lock
from bookreader_cli.store import Store

# A child process: waits for the go file, tries the lock, reports, holds it until the release file appears.
CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bookreader_cli.locks import Busy, db_lock
    from bookreader_cli.store import Store

    db, name, go, release, out, wait = sys.argv[1:7]
    store = Store(Path(db))
    while not Path(go).exists():
        time.sleep(0.01)
    try:
        with db_lock(store, name, wait=wait == "wait", timeout=60):
            Path(out).write_text(f"won {time.time()!r}")
            while not Path(release).exists():
                time.sleep(0.01)
            Path(out).write_text(Path(out).read_text() + f" released {time.time()!r}")
    except Busy as exc:
        Path(out).write_text(f"busy {exc}")
        sys.exit(1)
""")


def _wait_for(predicate, what: str, limit: float = 60.0):
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def _spawn(tmp_path: Path, db: Path, name: str, tag: str, wait: bool = False) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / f"out-{tag}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(db),
            name,
            str(tmp_path / "go"),
            str(tmp_path / "release"),
            str(out),
            "wait" if wait else "fail",
        ]
    )
    return proc, out


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "db.sqlite")
    yield s
    s.close()


def test_second_holder_is_busy_until_release(store):
    with db_lock(store, "job") as owner:
        assert locks.holder(store, "job")["owner"] == owner
        with pytest.raises(Busy, match=r"job is busy: held by pid \d+"), db_lock(store, "job"):
            pass
    assert locks.holder(store, "job") is None
    with db_lock(store, "job"):
        pass


def test_busy_is_exit_1_not_bad_input(store):
    with (
        db_lock(store, "job"),
        pytest.raises(Busy) as info,
        db_lock(store, "job", busy_message="book 7 is being processed"),
    ):
        pass
    from bookreader_cli.cli.common import exit_code
    from bookreader_cli.errors import BadInput

    assert exit_code(info.value) == 1 and not isinstance(info.value, BadInput)
    assert str(info.value).startswith("book 7 is being processed: held by pid")


def test_wait_gives_up_after_timeout(store):
    with (
        db_lock(store, "job"),
        pytest.raises(Busy, match=r"waited 0.3s"),
        db_lock(store, "job", wait=True, timeout=0.3),
    ):
        pass


def test_processes_racing_have_exactly_one_winner(tmp_path, store):
    procs = [_spawn(tmp_path, store.path, "race", str(i)) for i in range(4)]
    (tmp_path / "go").touch()
    _wait_for(lambda: sum(out.exists() for _, out in procs) == 4, "all racers to report")
    outcomes = sorted(out.read_text().split()[0] for _, out in procs)
    assert outcomes == ["busy", "busy", "busy", "won"]
    (tmp_path / "release").touch()
    assert sorted(p.wait(60) for p, _ in procs) == [0, 1, 1, 1]
    assert locks.holder(store, "race") is None


def test_waiter_gets_the_lock_after_the_holder_releases(tmp_path, store):
    holder, holder_out = _spawn(tmp_path, store.path, "queue", "holder")
    (tmp_path / "go").touch()
    _wait_for(holder_out.exists, "the holder to win")
    waiter, waiter_out = _spawn(tmp_path, store.path, "queue", "waiter", wait=True)
    _wait_for(lambda: locks.holder(store, "queue") is not None, "the lock row")
    assert not waiter_out.exists()
    (tmp_path / "release").touch()
    assert holder.wait(60) == 0 and waiter.wait(60) == 0
    released = float(holder_out.read_text().split()[3])
    won = float(waiter_out.read_text().split()[1])
    assert won >= released


def test_lock_of_a_killed_process_is_taken_over(tmp_path, store):
    proc, out = _spawn(tmp_path, store.path, "crash", "victim")
    (tmp_path / "go").touch()
    _wait_for(out.exists, "the victim to take the lock")
    assert locks.holder(store, "crash")["pid"] == proc.pid
    with pytest.raises(Busy), db_lock(store, "crash"):
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(60)
    with db_lock(store, "crash") as owner:  # the dead holder's lock is stale: taken over
        assert locks.holder(store, "crash")["owner"] == owner


def _plant(store, name: str, pid: int, expires_in: float, host: str | None = None) -> None:
    host = host or socket.gethostname()
    now = time.time()
    store.conn.execute(
        "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?)",
        [name, f"{host}:{pid}:planted", pid, now, now + expires_in],
    )


def test_stale_rules(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _plant(store, "dead-pid", dead.pid, 3600)
    _plant(store, "expired", os.getpid(), -1)
    _plant(store, "alive", os.getpid(), 3600)
    _plant(store, "other-host", dead.pid, 3600, host="some-other-machine")
    with db_lock(store, "dead-pid"), db_lock(store, "expired"):
        pass
    for name in ("alive", "other-host"):  # a pid on another host cannot be checked: only expiry frees it
        with pytest.raises(Busy), db_lock(store, name):
            pass


def test_release_never_drops_someone_elses_lock(store):
    _plant(store, "job", os.getpid(), 3600)
    assert locks.release(store, "job", "me:1:nottheowner") is False
    assert locks.holder(store, "job") is not None


def test_lease_is_renewed_while_held(store):
    with db_lock(store, "long", ttl=0.3):
        first = locks.holder(store, "long")["expires_at"]
        _wait_for(lambda: locks.holder(store, "long")["expires_at"] > first, "a renewal")
        # still ours after several lease periods: nobody can take it over
        _wait_for(lambda: locks.holder(store, "long")["expires_at"] > first + 0.3, "more renewals")
        with pytest.raises(Busy), db_lock(store, "long"):
            pass


def test_second_process_of_the_same_book_is_busy(cli, home):
    from conftest import SAMPLES

    book_id = cli("books", "import", str(SAMPLES / "ru_sample.txt"), "--json").json()["imported"][0]["book_id"]
    store = Store(home / "bookreader.db")
    try:
        with db_lock(store, f"process:{book_id}"):  # what a running `process` of this book holds
            result = cli("process", str(book_id))
    finally:
        store.close()
    assert result.code == 1
    assert result.stderr.startswith(f"error: book {book_id} is being processed: held by pid {os.getpid()}")
    assert len(result.stderr.strip().splitlines()) == 1
