"""Signals to a running `process` (issue 13, item 14): workers die with their parent, SIGTERM is exit 143.

Real `bookreader process` runs with real NLP workers; processes are found through /proc (Linux), not psutil.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLES
from parallel_cli import cli_env

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

FB2 = SAMPLES / "ru_sample.fb2"
ARGS = ["--processors", "spacy,natasha", "--workers", "2", "--json"]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a live process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0].decode(), int(fields[1])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.add(int(entry))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _workers(pid: int) -> set[int]:
    return {c for c in _children(pid) if "spawn_main" in _cmdline(c)}


def _wait(predicate, what: str, limit: float = 180.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended before {what}: {proc.returncode} {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def _chapters_done(home: Path) -> int:
    conn = sqlite3.connect(home / "bookreader.db", timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM chapter_runs").fetchone()[0]
    finally:
        conn.close()


def _read_to_eof(stream, limit: float) -> bytes | None:
    """Everything until EOF, or None when the pipe is still open after `limit` seconds."""
    fd = stream.fileno()
    data = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk
    return None


@pytest.fixture
def running(cli, home):
    """Start `process` of the sample FB2 with two workers; stdout is a pipe, as in `… --json | cat`."""
    book_id = cli("books", "import", FB2, "--json").json()["imported"][0]["book_id"]
    procs = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bookreader_cli", "process", str(book_id), *ARGS],
            env=cli_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield book_id, start
    for proc in procs:  # whatever the test did: nothing of ours outlives it
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def test_kill_9_of_process_takes_its_workers_and_frees_stdout(running, home):
    _, start = running
    proc = start()
    workers = _wait(lambda: _workers(proc.pid) if len(_workers(proc.pid)) >= 2 else None, "two NLP workers", proc=proc)
    helpers = _children(proc.pid)  # the workers and multiprocessing's resource tracker
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _read_to_eof(proc.stdout, 30) is not None, "stdout still open: something of the run still holds it"
    _wait(lambda: not any(_alive(p) for p in helpers), "the workers to die", limit=30)
    assert workers <= helpers


def test_sigterm_is_exit_143_recorded_and_resumable(running, home, cli):
    book_id, start = running
    proc = start()
    _wait(lambda: 1 <= _chapters_done(home) < 4, "a chapter to be stored", proc=proc, limit=300)
    helpers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGTERM)  # the main process only, as `kill PID` or a service manager does
    out = _read_to_eof(proc.stdout, 60)
    assert out is not None, "stdout still open 60 s after SIGTERM"
    assert proc.wait(timeout=60) == 143
    err = proc.stderr.read().decode()
    assert json.loads(err.strip().splitlines()[-1])["exit_code"] == 143
    assert "Traceback" not in err
    assert out == b""  # no result document: the run did not finish
    _wait(lambda: not any(_alive(p) for p in helpers), "the workers to die", limit=30)
    runs = cli("runs", "list", "--task", "process_book", "--json").json()["runs"]
    assert runs[0]["state"] == "FAILURE" and "SIGTERM" in runs[0]["error"]
    resumed = cli("process", str(book_id), *ARGS)
    assert resumed.code == 0, resumed.stderr
    result = resumed.json()
    assert result["chapters_resumed"] >= 1 and result["chapters_resumed"] + result["chapters_processed"] == 4


def test_ctrl_c_to_the_whole_group_is_exit_130_without_worker_tracebacks(running, home):
    _, start = running
    proc = start()
    _wait(lambda: len(_workers(proc.pid)) >= 2, "two NLP workers", proc=proc)
    helpers = _children(proc.pid)
    time.sleep(1.0)  # let the workers get into their models or a chapter
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the group
    assert _read_to_eof(proc.stdout, 60) == b""
    assert proc.wait(timeout=60) == 130
    err = proc.stderr.read().decode()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert json.loads(err.strip().splitlines()[-1])["exit_code"] == 130
    _wait(lambda: not any(_alive(p) for p in helpers), "the workers to die", limit=30)
