"""Task runs: the PENDING → STARTED → RETRY → SUCCESS/FAILURE record, retries, and `bookreader runs`."""

from __future__ import annotations

import json
import logging

import pytest

from bookreader_cli import runs
from bookreader_cli.errors import BadInput
from bookreader_cli.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "runs.db")
    yield s
    s.close()


def _row(store, run_id):
    return runs.get_run(store, run_id)


def _only_run(store):
    rows = runs.list_runs(store)
    assert len(rows) == 1
    return runs.get_run(store, rows[0]["id"])


def test_transient_twice_then_success_retries_through_retry_state(store, monkeypatch):
    calls = []
    states_while_waiting = []
    real_sleep = runs.time.sleep

    def sleep_and_look(seconds):
        # what another process would see during the backoff pause
        states_while_waiting.append(_only_run(store)["state"])
        real_sleep(seconds)

    monkeypatch.setattr(runs.time, "sleep", sleep_and_look)

    def flaky():
        calls.append(_only_run(store)["state"])
        if len(calls) < 3:
            raise runs.Transient(f"timeout #{len(calls)}")
        return {"value": 42}

    result = runs.record(store, "process_book", "books", {"book_id": 7}, flaky, retries=3, backoff_base=0.001)

    assert result["value"] == 42
    assert calls == ["STARTED", "STARTED", "STARTED"]
    assert states_while_waiting == ["RETRY", "RETRY"]
    row = _row(store, result["task_id"])
    assert row["state"] == "SUCCESS"
    assert row["attempts"] == 3
    assert row["error"] is None
    assert row["args"] == {"book_id": 7}
    assert row["result"]["value"] == 42
    assert row["queue"] == "books" and row["task"] == "process_book"
    assert row["finished_at"] >= row["started_at"] >= row["created_at"]
    assert row["duration_seconds"] >= 0


def test_transient_beyond_retries_ends_in_failure(store):
    def always_down():
        raise runs.Transient("image API timed out")

    with pytest.raises(runs.Transient):
        runs.record(store, "generate_images", "images", {}, always_down, retries=2, backoff_base=0.001)
    row = _only_run(store)
    assert row["state"] == "FAILURE"
    assert row["attempts"] == 3
    assert row["error"] == "image API timed out"


def test_bad_input_leaves_no_row(store):
    def rejects():
        raise BadInput("no book with id 99")

    with pytest.raises(BadInput):
        runs.record(store, "process_book", "books", {"book_id": 99}, rejects, retries=3, backoff_base=0.001)
    assert runs.list_runs(store) == []


def test_unexpected_exception_ends_in_failure_with_error_text(store):
    def broken():
        raise ValueError("chapter 3 has no text")

    with pytest.raises(ValueError):
        runs.record(store, "generate_cfi_locations", "books", {}, broken, retries=3, backoff_base=0.001)
    row = _only_run(store)
    assert row["state"] == "FAILURE"
    assert row["attempts"] == 1  # only Transient errors are retried
    assert row["error"] == "ValueError: chapter 3 has no text"
    assert row["result"] is None


def test_log_lines_carry_task_id_name_and_timings(store, caplog):
    with caplog.at_level(logging.INFO, logger="bookreader.tasks"):
        result = runs.record(store, "system_stats", "cleanup", {}, lambda: {"ok": True})
    records = [r for r in caplog.records if r.name == "bookreader.tasks"]
    assert [r.state for r in records] == ["PENDING", "STARTED", "SUCCESS"]
    assert {r.task_id for r in records} == {result["task_id"]}
    assert {r.task_name for r in records} == {"system_stats"}
    assert records[-1].duration_seconds >= 0


def test_list_filters_and_id_prefixes(store):
    ids = [
        runs.record(store, task, queue, {}, dict)["task_id"]
        for task, queue in [("process_book", "books"), ("process_book", "books"), ("cleanup_old_images", "cleanup")]
    ]
    with pytest.raises(ZeroDivisionError):
        runs.record(store, "process_book", "books", {}, lambda: 1 / 0)
    assert len(runs.list_runs(store)) == 4
    assert len(runs.list_runs(store, task="process_book")) == 3
    assert len(runs.list_runs(store, state="failure")) == 1
    assert len(runs.list_runs(store, queue="cleanup")) == 1
    assert len(runs.list_runs(store, limit=2)) == 2
    assert runs.list_runs(store)[-1]["id"] == ids[0]  # newest first
    assert runs.get_run(store, ids[2][:10])["task"] == "cleanup_old_images"
    for bad in ("", "zz", "g" * 32, "%", ids[0] + "0"):
        with pytest.raises(BadInput):
            runs.get_run(store, bad)
    with pytest.raises(BadInput):
        runs.list_runs(store, state="DONE")
    with pytest.raises(BadInput):
        runs.list_runs(store, queue="default")


def test_counts_by_queue_and_state_has_every_queue_and_state(store):
    runs.record(store, "generate_images", "images", {}, dict)
    counts = runs.counts_by_queue_and_state(store.conn)
    assert set(counts) == set(runs.RUN_QUEUES)
    assert all(set(c) == set(runs.STATES) for c in counts.values())
    assert counts["images"]["SUCCESS"] == 1
    assert sum(sum(c.values()) for c in counts.values()) == 1


def test_prune_deletes_only_old_finished_runs(store):
    for task in ("a", "b"):
        runs.record(store, task, "books", {}, dict)
    store.conn.execute(
        "INSERT INTO task_runs (id, task, queue, state, attempts, created_at) "
        "VALUES ('0ld', 'process_book', 'books', 'STARTED', 1, 1)"
    )
    store.conn.execute("UPDATE task_runs SET created_at = 1 WHERE task = 'a'")
    assert runs.prune(store, older_than_seconds=3600) == 1
    assert sorted(r["task"] for r in runs.list_runs(store)) == ["b", "process_book"]  # still running: kept


def test_run_of_a_killed_process_is_reported_abandoned(tmp_path, store):
    """SIGKILL leaves no chance to write FAILURE: the next read of the runs does it, for this host only."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    code = (
        "import sys, time\n"
        "from bookreader_cli import runs\n"
        "from bookreader_cli.store import Store\n"
        "runs.record(Store(__import__('pathlib').Path(sys.argv[1])), 'process_book', 'books', {}, "
        "lambda: time.sleep(600))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "runs.db")])
    try:
        deadline = time.time() + 60
        while not runs.list_runs(store, state="STARTED"):
            assert time.time() < deadline and proc.poll() is None, "the child never started its run"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    here = socket.gethostname()
    for run_id, owner in (("a11ce", f"{here}:{os.getpid()}"), ("e15e", "another-host:1")):
        store.conn.execute(
            "INSERT INTO task_runs (id, task, queue, state, attempts, created_at, started_at, owner) "
            "VALUES (?, 'x', 'books', 'STARTED', 1, ?, ?, ?)",
            [run_id, time.time(), time.time(), owner],
        )
    dead = runs.list_runs(store, task="process_book")[0]
    assert dead["state"] == "FAILURE" and f"pid {proc.pid}" in dead["error"] and "abandoned" in dead["error"]
    assert dead["finished_at"] and dead["duration_seconds"] >= 0
    assert runs.get_run(store, "a11ce")["state"] == "STARTED"  # this process is alive
    assert runs.get_run(store, "e15e")["state"] == "STARTED"  # another machine's pid means nothing here
    assert runs.counts_by_queue_and_state(store.conn)["books"]["FAILURE"] == 1


def test_cleanup_prunes_old_finished_runs(cli, home):
    import sqlite3

    assert cli("stats", "--json").code == 0
    conn = sqlite3.connect(home / "bookreader.db")
    conn.execute("UPDATE task_runs SET created_at = 1")  # 1970: older than any runs_keep_days
    conn.commit()
    conn.close()
    dry = cli("cleanup", "--dry-run", "--json")
    assert dry.code == 0 and dry.json()["task_runs_to_prune"] == 1
    res = cli("cleanup", "--json")
    assert res.code == 0 and res.json()["task_runs_pruned"] == 1
    listed = cli("runs", "list", "--json").json()["runs"]
    assert [r["task"] for r in listed] == ["cleanup_old_images"]  # the stats run is gone, this one stays
    zero = cli("cleanup", "--json", env={"BOOKREADER_CONFIG": str(_config(home, "runs_keep_days = 0\n"))})
    assert zero.code == 0 and zero.json()["task_runs_pruned"] == 1  # the last cleanup's run; its own is running
    bad = cli("cleanup", env={"BOOKREADER_CONFIG": str(_config(home, 'runs_keep_days = "ninety"\n'))})
    assert bad.code == 2 and "runs_keep_days" in bad.stderr


def _config(home, text: str):
    path = home / "extra.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---- the CLI ----------------------------------------------------------------------------------
def test_runs_list_and_show_from_the_cli(cli):
    assert cli("stats", "--json").code == 0
    assert cli("health", "--json").code in (0, 1)
    listed = cli("runs", "list", "--json")
    assert listed.code == 0, listed.stderr
    data = listed.json()
    assert data["count"] == 2
    assert [r["task"] for r in data["runs"]] == ["health_check", "system_stats"]
    assert all(r["state"] == "SUCCESS" and r["queue"] == "cleanup" for r in data["runs"])

    only = cli("runs", "list", "--task", "system_stats", "--json").json()
    assert [r["task"] for r in only["runs"]] == ["system_stats"]

    shown = cli("runs", "show", only["runs"][0]["id"][:8], "--json")
    assert shown.code == 0, shown.stderr
    run = shown.json()
    assert run["task"] == "system_stats"
    assert run["result"]["books_total"] == 0
    assert run["result"]["task_id"] == run["id"]

    human = cli("runs", "list")
    assert human.code == 0 and human.stdout == "" and "system_stats" in human.stderr


def test_runs_bad_input_is_one_line_and_exit_2(cli):
    missing = cli("runs", "show", "abcdef", "--json")
    assert missing.code == 2
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["exit_code"] == 2
    assert missing.stdout == ""
    bad_state = cli("runs", "list", "--state", "DONE")
    assert bad_state.code == 2
    assert bad_state.stderr.strip().splitlines() == [
        "error: unknown state 'DONE': expected one of PENDING, STARTED, RETRY, SUCCESS, FAILURE"
    ]


def test_log_format_json_gives_structured_stderr_and_one_json_document(cli):
    result = cli("--log-format", "json", "stats", "--json")
    assert result.code == 0, result.stderr
    stats = json.loads(result.stdout)  # exactly one document
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "expected log lines on stderr"
    events = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) for e in events)
    task_events = [e for e in events if e.get("logger") == "bookreader.tasks"]
    assert [e["state"] for e in task_events] == ["PENDING", "STARTED", "SUCCESS"]
    assert all(e["task_id"] == stats["task_id"] and e["task_name"] == "system_stats" for e in task_events)
    assert task_events[-1]["duration_seconds"] >= 0
    assert all("ts" in e and "level" in e for e in events)
