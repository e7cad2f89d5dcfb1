"""Broker faults (issue 12, items 7–11): a private redis-server that dies (SIGKILL) or freezes (SIGSTOP)
under `process --executor celery`, `inspect` and `purge`; silent waits; the NLP queue; validation before
anything is sent. Every command runs as a real subprocess with a hang guard: a hang fails the test."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("celery")
pytest.importorskip("redis")

from conftest import cli_env
from redis_server import RedisServer, have_redis_server

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SAMPLE = REPO / "sample_books" / "ru_sample.txt"
EN_SAMPLE = REPO / "sample_books" / "en_sample.txt"
GUARD = 90  # seconds: a command that is still running after this is hanging
BROKER_ERROR = "cannot reach the Celery broker"

pytestmark = pytest.mark.skipif(not have_redis_server(), reason="redis-server is not installed")


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def broker_env(server: RedisServer) -> dict:
    return {"BOOKREADER_CELERY_BROKER_URL": server.url, "BOOKREADER_CELERY_RESULT_BACKEND": server.url}


def start_cli(home: Path, *args: str, env: dict) -> subprocess.Popen:
    full_env = cli_env(home, **env)
    return subprocess.Popen(
        [sys.executable, "-m", "bookreader_cli", *map(str, args)],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, guard: float = GUARD) -> tuple[int, str, str]:
    """(exit code, stdout, stderr), or a failed test when the process is still running after `guard` s."""
    try:
        out, err = proc.communicate(timeout=guard)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running after {guard} s (hangs); stderr so far: {err[-2000:]!r}")
    return proc.returncode, out, err


def queued(server: RedisServer) -> int:
    """Messages waiting in the broker's NLP queues (`nlp` now, `books` before it had its own)."""
    client = server.client()
    try:
        return sum(client.llen(name) for name in ("nlp", "books"))
    finally:
        client.close()


def wait_for(predicate, what: str, limit: float = 60.0):
    deadline = time.monotonic() + limit
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)
    return value


def rows(home: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(home / "bookreader.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def one_error_line(stderr: str, needle: str) -> str:
    """The run ended in exactly one error line containing `needle`, and no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], stderr
    return errors[0]


# ---- item 7: Redis dies mid-run ------------------------------------------------------------------
def test_redis_killed_mid_run_ends_in_one_line_and_frees_the_book(redis_server, home, cli):
    proc = start_cli(home, "process", SAMPLE, "--executor", "celery", env=broker_env(redis_server))
    wait_for(lambda: queued(redis_server) or proc.poll() is not None, "the chapters to be sent")
    assert proc.poll() is None
    redis_server.kill()  # no worker ever took them; the coordinator is waiting for results
    code, _, err = finish(proc)
    assert code == 1
    one_error_line(err, BROKER_ERROR)
    assert rows(home, "SELECT name FROM locks") == []  # the book is free again
    assert rows(home, "SELECT task, state FROM task_runs") == [("process_book", "FAILURE")]


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_the_revoke_after_a_failed_run_tries_once(redis_server, fault):
    """The `finally` of a failed or interrupted run asks the workers to drop its chapters: one try, bounded."""
    from bookreader_cli.broker import revoke_once
    from bookreader_cli.config import load_settings
    from bookreader_cli.workers.app import make_app

    app = make_app(load_settings(environ={"BOOKREADER_HOME": "/nonexistent", **broker_env(redis_server)}))
    assert revoke_once(app, ["a-task-id"]) is True
    getattr(redis_server, fault)()
    started = time.monotonic()
    assert revoke_once(app, ["a-task-id"]) is False
    assert time.monotonic() - started < GUARD  # a hang guard, not a timing claim


def test_ctrl_c_while_waiting_is_prompt_and_frees_the_book(redis_server, home):
    import signal

    proc = start_cli(home, "process", SAMPLE, "--executor", "celery", env=broker_env(redis_server))
    wait_for(lambda: queued(redis_server) or proc.poll() is not None, "the chapters to be sent")
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130
    one_error_line(err, "interrupted")
    assert rows(home, "SELECT name FROM locks") == []


# ---- item 8: a frozen broker (accepts connections, never answers) ----------------------------------
@pytest.mark.parametrize(
    "args",
    [("inspect", "active", "--timeout", "2"), ("purge", "--yes"), ("process", str(SAMPLE), "--executor", "celery")],
    ids=["inspect", "purge", "process"],
)
def test_a_frozen_broker_does_not_hang_the_command(redis_server, home, args):
    redis_server.freeze()
    code, _, err = finish(start_cli(home, *args, env=broker_env(redis_server)))
    assert code == 1
    one_error_line(err, BROKER_ERROR)


def test_a_broker_frozen_mid_run_does_not_hang_process(redis_server, home):
    proc = start_cli(home, "process", SAMPLE, "--executor", "celery", env=broker_env(redis_server))
    wait_for(lambda: queued(redis_server) or proc.poll() is not None, "the chapters to be sent")
    redis_server.freeze()
    code, _, err = finish(proc)
    assert code == 1
    one_error_line(err, BROKER_ERROR)
    assert rows(home, "SELECT name FROM locks") == []


# ---- item 9: no silent waits -----------------------------------------------------------------------
def test_process_timeout_and_waiting_lines_when_no_worker_runs(redis_server, home):
    code, _, err = finish(
        start_cli(home, "process", SAMPLE, "--executor", "celery", "--timeout", "3", env=broker_env(redis_server))
    )
    assert code == 1
    chapters = rows(home, "SELECT count(*) FROM chapters")[0][0]
    assert f"waiting for {chapters} chapters on 0 workers" in err
    one_error_line(err, f"{chapters} chapter(s) unfinished after 3s")
    assert rows(home, "SELECT name FROM locks") == []


def test_process_timeout_must_be_positive(cli, redis_server):
    result = cli(
        "process", SAMPLE, "--executor", "celery", "--timeout", "0", env=broker_env(redis_server), timeout=GUARD
    )
    assert result.code == 2 and "--timeout" in result.stderr
    assert queued(redis_server) == 0


# ---- item 11: validated before anything is sent ----------------------------------------------------
def test_single_mode_with_several_processors_is_refused_before_sending(redis_server, home, cli):
    local = cli("process", SAMPLE, "--mode", "single", "--processors", "natasha,spacy,stanza")
    assert local.code == 2
    code, _, err = finish(
        start_cli(
            home,
            "process",
            SAMPLE,
            "--mode",
            "single",
            "--processors",
            "natasha,spacy,stanza",
            "--executor",
            "celery",
            env=broker_env(redis_server),
        )
    )
    assert code == 2
    assert one_error_line(err, "mode 'single' takes exactly one processor") == local.stderr.strip()
    assert queued(redis_server) == 0  # nothing was sent
    assert rows(home, "SELECT count(*) FROM task_runs") == [(0,)]  # nothing recorded, as locally


def test_queues_are_declared_with_their_own_routing_keys():
    from bookreader_cli.config import load_settings
    from bookreader_cli.workers.app import make_app

    app = make_app(load_settings(environ={"BOOKREADER_HOME": "/nonexistent"}))
    queues = app.conf.task_queues
    assert queues and all(q.routing_key == q.name for q in queues)


def test_stats_reads_queue_lengths_from_the_broker(redis_server, cli):
    from kombu import Connection

    with Connection(redis_server.url) as conn:  # three chapter jobs that no worker takes
        queue = conn.SimpleQueue("nlp")
        for n in range(3):
            queue.put({"n": n})
        queue.close()
    result = cli("stats", "--json", env=broker_env(redis_server), timeout=GUARD)
    assert result.code == 0, result.stderr
    stats = result.json()
    assert stats["celery_queue_lengths"]["nlp"] == 3
    assert stats["celery_queue_lengths"]["books"] == 0
    assert set(stats["task_runs_waiting"]) >= {"books", "images", "cleanup"}  # the database's count, renamed


def test_stats_without_a_broker_is_fast_and_says_so(cli, redis_server):
    redis_server.freeze()
    result = cli("stats", "--json", env=broker_env(redis_server), timeout=GUARD)
    assert result.code == 0, result.stderr
    assert result.json()["celery_queue_lengths"] is None


# ---- item 10: the NLP queue ------------------------------------------------------------------------
def test_nlp_chapters_have_their_own_queue():
    from bookreader_cli.config import load_settings
    from bookreader_cli.workers.app import make_app

    conf = make_app(load_settings(environ={"BOOKREADER_HOME": "/nonexistent"})).conf
    queue = {name: route["queue"] for name, route in conf.task_routes.items()}
    assert queue["bookreader.nlp_chapter"] == "nlp"
    assert queue["bookreader.process_book"] == queue["bookreader.generate_cfi_locations"] == "books"
    assert queue["bookreader.cache_epub_file"] == "books"
    assert "nlp" in {q.name for q in conf.task_queues}


class Worker:
    """One real `bookreader worker` process on the given queues, with its own home."""

    def __init__(self, server: RedisServer, tmp: Path, queues: str, **extra_env: str):
        self.log = tmp / f"worker-{queues.replace(',', '-')}.log"
        env = dict(
            os.environ,
            **broker_env(server),
            PYTHONPATH=os.pathsep.join([str(TESTS), str(REPO)]),
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            NO_COLOR="1",
            **extra_env,
        )
        self.name = f"{queues.replace(',', '-')}@test"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bookreader_cli",
                    "--home",
                    str(tmp / "worker-home"),
                    "worker",
                    "--queues",
                    queues,
                    "--pool",
                    "solo",
                    "--hostname",
                    self.name,
                    "--loglevel",
                    "info",
                    "--",
                    "--without-gossip",
                    "--without-mingle",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit
        while "ready." not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("worker did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            import signal

            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(20)


@pytest.fixture
def no_stanza(tmp_path) -> dict:
    """One Stanza dir for the worker and the coordinator: English has no bundled model, so Stanza fails."""
    return {"BOOKREADER_NLP_STANZA_DIR": str(tmp_path / "no-stanza-models")}


@pytest.fixture
def nlp_worker(redis_server, tmp_path, no_stanza):
    worker = Worker(redis_server, tmp_path, "nlp", **no_stanza)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def test_a_worker_on_the_nlp_queue_alone_processes_a_book(nlp_worker, redis_server, home):
    """The NLP machines consume `nlp` only; the database-bound tasks never reach them."""
    code, out, err = finish(
        start_cli(
            home,
            "process",
            SAMPLE,
            "--executor",
            "celery",
            "--processors",
            "natasha",
            "--timeout",
            "300",
            "--json",
            env=broker_env(redis_server),
        ),
        guard=400,
    )
    assert code == 0, err
    assert json.loads(out)["executor"] == "celery" and json.loads(out)["descriptions_found"] > 0


def test_processor_failure_messages_match_the_local_run_for_an_english_book(
    nlp_worker, redis_server, cli, home, no_stanza
):
    remote = cli(
        "process",
        EN_SAMPLE,
        "--executor",
        "celery",
        "--mode",
        "ensemble",
        "--timeout",
        "300",
        "--json",
        env={**broker_env(redis_server), **no_stanza},
        timeout=400,
    )
    assert remote.code == 0, remote.stderr
    local = cli(
        "--home",
        str(home.parent / "local"),
        "process",
        EN_SAMPLE,
        "--mode",
        "ensemble",
        "--json",
        env=no_stanza,
        timeout=400,
    )
    assert local.code == 0, local.stderr
    r, lo = remote.json(), local.json()
    assert r["processors_unavailable"] == lo["processors_unavailable"]
    assert r["processor_failures"] == lo["processor_failures"]
    assert r["nlp_processors_used"] == lo["nlp_processors_used"]
    assert r["status"] == lo["status"]


def test_no_processor_for_the_language_is_the_same_line_under_both_executors(nlp_worker, redis_server, cli, home):
    """Natasha reads Russian only: an English book with only Natasha fails alike, in the local run's words."""
    remote = cli(
        "process",
        EN_SAMPLE,
        "--executor",
        "celery",
        "--processors",
        "natasha",
        "--timeout",
        "300",
        env=broker_env(redis_server),
        timeout=400,
    )
    local = cli("--home", str(home.parent / "local"), "process", EN_SAMPLE, "--processors", "natasha", timeout=400)
    assert local.code == remote.code == 1
    assert one_error_line(remote.stderr, "no NLP processor is available") == one_error_line(local.stderr, "natasha")
