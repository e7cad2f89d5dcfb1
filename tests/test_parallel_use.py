"""Several real `bookreader` processes at once against one home (issue 13, items 15, 16 and 21)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import SAMPLES
from parallel_cli import cli_env, run_at_once

TXT = SAMPLES / "ru_sample.txt"
FB2 = SAMPLES / "ru_sample.fb2"


def test_first_use_of_a_fresh_home_by_four_imports_at_once(tmp_path):
    """Item 15: four imports into a new home raced to create the schema ("table books already exists")."""
    books = [SAMPLES / name for name in ("ru_sample.txt", "ru_sample.fb2", "ru_sample.epub", "en_sample.txt")]
    for round_ in range(3):  # a fresh home each round: the race is in the very first migration
        home = tmp_path / f"home{round_}"
        home.mkdir()
        outcomes = run_at_once(home, tmp_path / f"work{round_}", [["books", "import", b, "--json"] for b in books])
        for book, out in zip(books, outcomes):
            assert out.code == 0, f"{book.name}: {out.stderr}"
            assert json.loads(out.stdout)["imported"][0]["status"] == "imported"
        conn = sqlite3.connect(home / "bookreader.db")
        try:
            assert conn.execute("SELECT count(*) FROM books").fetchone()[0] == 4
            from bookreader_cli.store import MIGRATIONS

            assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        finally:
            conn.close()


def test_the_same_file_imported_in_parallel_gives_one_book(tmp_path, cli, home):
    """Item 16: the same file imported by several processes at once: one book, every run returns it."""
    assert cli("books", "list").code == 0  # the schema exists: this race is on the insert, not on migrations
    outcomes = run_at_once(home, tmp_path / "work", [["books", "import", FB2, "--json"]] * 4)
    for out in outcomes:
        assert out.code == 0, out.stderr
        assert "UNIQUE" not in out.stderr
    results = [json.loads(out.stdout)["imported"][0] for out in outcomes]
    assert {r["book_id"] for r in results} == {1}
    assert sorted(r["status"] for r in results) == ["exists", "exists", "exists", "imported"]
    conn = sqlite3.connect(home / "bookreader.db")
    try:
        assert conn.execute("SELECT count(*) FROM books").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM chapters").fetchone()[0] == results[0]["chapters"]
    finally:
        conn.close()


def _start_process(home, book_id: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bookreader_cli",
            "process",
            str(book_id),
            "--json",
            "--processors",
            "spacy,natasha",
            "--workers",
            "1",
            *extra,
        ],
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_lock(home, name: str, proc: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process ended early: {proc.communicate()}"
        conn = sqlite3.connect(home / "bookreader.db", timeout=30)
        try:
            held = conn.execute("SELECT count(*) FROM locks WHERE name = ?", [name]).fetchone()[0]
        finally:
            conn.close()
        if held:
            return
        time.sleep(0.05)
    raise AssertionError(f"lock {name} never taken")


def test_remove_refuses_a_book_that_is_being_processed(cli, home):
    """Item 21: `books remove` during `process` deleted the book under it (then FOREIGN KEY failed)."""
    book_id = cli("books", "import", FB2, "--json").json()["imported"][0]["book_id"]
    proc = _start_process(home, book_id)
    try:
        _wait_for_lock(home, f"process:{book_id}", proc)
        removed = cli("books", "remove", str(book_id))
        assert removed.code == 1, removed.stderr
        assert removed.stderr.startswith(f"error: book {book_id} is being processed")
        assert len(removed.stderr.strip().splitlines()) == 1
        out, err = proc.communicate(timeout=300)
    finally:  # whatever happened: nothing of this run outlives the test
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == 0, err
    assert json.loads(out)["chapters_processed"] == 4
    assert cli("books", "show", str(book_id)).code == 0  # still there, with its descriptions
    # and once processing is over, remove works
    assert cli("books", "remove", str(book_id)).code == 0
    assert cli("books", "show", str(book_id)).code == 2


def test_process_stops_with_one_line_when_its_book_is_deleted_under_it(cli, home):
    """Item 21, the other half: a tool that ignores the lock deletes the book mid-run (an older
    `bookreader`, or plain SQL); `process` ends with exit 1 and one line, not an IntegrityError."""
    book_id = cli("books", "import", FB2, "--json").json()["imported"][0]["book_id"]
    proc = _start_process(home, book_id)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "no chapter was stored in time"
            conn = sqlite3.connect(home / "bookreader.db", timeout=30)
            try:
                if conn.execute("SELECT count(*) FROM chapter_runs").fetchone()[0] >= 1:
                    with conn:  # what the old `books remove` did, lock or no lock
                        for table in ("descriptions", "images", "chapter_runs", "chapters"):
                            conn.execute(f"DELETE FROM {table} WHERE book_id = ?", [book_id])
                        conn.execute("DELETE FROM books WHERE id = ?", [book_id])
                    break
            finally:
                conn.close()
            time.sleep(0.02)
        out, err = proc.communicate(timeout=300)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == 1, err
    assert (
        json.loads(err.strip().splitlines()[-1])["error"] == f"book {book_id} was removed while it was being processed"
    )
    assert "IntegrityError" not in err and out == ""
