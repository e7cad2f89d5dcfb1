"""Smaller holes of issue 13 (item 22): option ranges, runs that never started, a vanished EPUB."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

from conftest import SAMPLES, db_snapshot

FB2 = SAMPLES / "ru_sample.fb2"


def test_process_with_zero_or_negative_workers_is_bad_input(cli, home):
    cli("books", "import", FB2)
    before = db_snapshot(home)
    for workers in ("0", "-3"):
        res = cli("process", "1", "--workers", workers, "--processors", "spacy")
        assert res.code == 2, res.stderr
        assert res.stderr.startswith("error: --workers") and len(res.stderr.strip().splitlines()) == 1
    assert db_snapshot(home) == before


def test_nlp_with_an_unknown_language_is_bad_input(cli, home):
    res = cli("nlp", "Кругом лежал глубокий снег.", "--lang", "xx", "--processors", "spacy", "--json")
    assert res.code == 2, res.stdout + res.stderr
    assert "xx" in res.stderr and res.stdout == ""
    assert cli("nlp", "Кругом лежал глубокий снег.", "--lang", "ru", "--processors", "spacy").code == 0


# A real process whose run is recorded as PENDING and then dies before the run starts: it stops (as a
# process killed at that moment would) right when it is about to mark the run STARTED.
STALLED = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bookreader_cli import runs
    from bookreader_cli.store import Store

    store = Store(Path(sys.argv[1]))
    flag = Path(sys.argv[2])

    def trace(sql):
        if sql.startswith("UPDATE task_runs SET state = 'STARTED'"):  # PENDING → STARTED (SQL as run)
            flag.touch()
            time.sleep(600)

    store.conn.set_trace_callback(trace)
    runs.record(store, "process_book", "books", {"book_id": 1}, lambda: {"ok": True})
""")


def test_a_run_whose_process_died_before_it_started_does_not_stay_pending(cli, home, tmp_path):
    assert cli("books", "list").code == 0  # the schema exists
    flag = tmp_path / "about-to-start"
    proc = subprocess.Popen([sys.executable, "-c", STALLED, str(home / "bookreader.db"), str(flag)])
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the child never got to the run"
            time.sleep(0.02)
        pending = cli("runs", "list", "--json").json()["runs"]
        assert [r["state"] for r in pending] == ["PENDING"]  # alive: really pending
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    runs = cli("runs", "list", "--json").json()["runs"]
    assert len(runs) == 1 and runs[0]["state"] == "FAILURE", runs
    assert f"pid {proc.pid}" in runs[0]["error"]


def test_processing_an_epub_whose_file_is_gone_warns(cli, home, tmp_path):
    book = tmp_path / "book.epub"
    shutil.copy(SAMPLES / "ru_sample.epub", book)
    book_id = cli("books", "import", book, "--json").json()["imported"][0]["book_id"]
    book.unlink()
    res = cli("process", str(book_id), "--processors", "spacy", "--mode", "single", "--json")
    assert res.code == 0, res.stderr
    result = res.json()
    assert result["descriptions_found"] > 0 and result["cfi_locations_generated"] == 0
    warnings = [line for line in res.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, res.stderr
    assert str(book) in warnings[0] and "gone" in warnings[0] and "CFI" in warnings[0]
    assert "gone" in result["epub_problem"]
