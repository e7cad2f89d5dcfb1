"""The Celery door: its configuration, the CLI around it, and (with a real redis-server and real workers)
distributed book processing, retries, and workers killed mid-task."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("celery")

from celery.schedules import crontab

from bookreader_cli.config import load_settings
from bookreader_cli.jobs.cron import JOBS

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SAMPLE = REPO / "sample_books" / "ru_sample.txt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app(env: dict | None = None):
    from bookreader_cli.workers.app import make_app

    return make_app(load_settings(environ=dict(env or {}, BOOKREADER_HOME="/nonexistent")))


# ---- configuration ---------------------------------------------------------------------------------
def test_tasks_are_registered_under_stable_names():
    from bookreader_cli.celery_app import app

    names = {n for n in app.tasks if n.startswith("bookreader.")}
    assert names == {
        "bookreader.process_book",
        "bookreader.nlp_chapter",
        "bookreader.generate_images",
        "bookreader.batch_generate_for_book",
        "bookreader.cleanup_old_images",
        "bookreader.system_stats",
        "bookreader.health_check",
        "bookreader.generate_cfi_locations",
        "bookreader.cache_epub_file",
    }
    assert app.tasks["bookreader.process_book"].max_retries == 3
    assert app.tasks["bookreader.generate_images"].max_retries == 2
    assert app.tasks["bookreader.batch_generate_for_book"].max_retries == 2
    from bookreader_cli.runs import Transient

    assert Transient in app.tasks["bookreader.process_book"].autoretry_for
    assert app.tasks["bookreader.process_book"].retry_backoff


def test_routes_follow_the_seed():
    conf = _app().conf
    queue = {name: route["queue"] for name, route in conf.task_routes.items()}
    assert queue["bookreader.process_book"] == "books"
    assert queue["bookreader.nlp_chapter"] == "nlp"  # not the seed's: NLP machines need no database
    assert queue["bookreader.generate_images"] == "images"
    assert queue["bookreader.batch_generate_for_book"] == "images"
    assert queue["bookreader.cleanup_old_images"] == "cleanup"
    assert {q.name for q in conf.task_queues} == {"books", "nlp", "images", "cleanup", "celery"}


def test_beat_schedule_matches_the_cron_lines():
    beat = _app().conf.beat_schedule
    assert beat["cleanup-old-images"]["task"] == "bookreader.cleanup_old_images"
    assert beat["cleanup-old-images"]["schedule"] == crontab(minute=0, hour=3)
    assert beat["system-stats"]["task"] == "bookreader.system_stats"
    assert beat["system-stats"]["schedule"] == crontab(minute="*/30")
    for job in JOBS.values():  # one definition feeds both: beat and `bookreader schedule`
        assert beat[job.beat_name]["schedule"] == crontab(minute=job.minute, hour=job.hour)


def test_delivery_settings():
    conf = _app(
        {
            "BOOKREADER_CELERY_VISIBILITY_TIMEOUT": "900",
            "BOOKREADER_CELERY_MAX_REDELIVERIES": "5",
            "BOOKREADER_CELERY_BROKER_URL": "redis://broker.example:6380/2",
        }
    ).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit > conf.task_soft_time_limit > 0
    assert conf.broker_transport_options["visibility_timeout"] == 900
    assert conf.bookreader_max_redeliveries == 5
    assert conf.broker_url == "redis://broker.example:6380/2"
    assert _app().conf.broker_url == "redis://localhost:6379/0"


def test_a_task_function_missing_from_this_build_fails_as_a_task(monkeypatch, tmp_path):
    from bookreader_cli.errors import JobFailed
    from bookreader_cli.workers.worker import call_task_function

    monkeypatch.setenv("BOOKREADER_HOME", str(tmp_path))
    with pytest.raises(JobFailed, match="no jobs.no_such_job"):
        call_task_function("no_such_job")
    assert call_task_function("health_check")["status"] in ("healthy", "degraded", "unhealthy")


def test_under_celery_the_only_retry_loop_is_celerys(monkeypatch, tmp_path):
    from bookreader_cli import jobs as tasks, runs
    from bookreader_cli.workers.worker import call_task_function

    calls = []

    def flaky_job(ctx):
        def attempt():
            calls.append(1)
            raise runs.Transient("network down")

        return runs.record(ctx.store, "flaky_job", "books", {}, attempt, retries=3, backoff_base=0.0)

    monkeypatch.setattr(tasks, "flaky_job", flaky_job, raising=False)
    monkeypatch.setenv("BOOKREADER_HOME", str(tmp_path))
    with pytest.raises(runs.Transient):  # Celery's autoretry_for catches this and schedules self.retry
        call_task_function("flaky_job")
    assert len(calls) == 1
    ctx = tasks.Context(load_settings(tmp_path))
    with pytest.raises(runs.Transient):  # the CLI door keeps record()'s own retries
        flaky_job(ctx)
    ctx.close()
    assert len(calls) == 1 + 4


def test_seed_style_arguments_reach_the_task_functions(monkeypatch, tmp_path):
    from bookreader_cli.errors import BadInput
    from bookreader_cli.workers.worker import call_task_function, seed_arguments

    def process_book(ctx, ref, mode=None):
        return ref

    def generate_images(ctx, description_ids, user=None):
        return user

    assert seed_arguments(process_book, (), {"book_id": 123}) == ((), {"ref": "123"})
    assert seed_arguments(process_book, (123,), {}) == (("123",), {})
    assert seed_arguments(generate_images, ([1, 2], 456), {}) == (([1, 2], "456"), {})
    assert seed_arguments(generate_images, ([1, 2],), {"user_id": 456}) == (([1, 2],), {"user": "456"})
    monkeypatch.setenv("BOOKREADER_HOME", str(tmp_path))
    with pytest.raises(BadInput, match="no book with id"):  # the real task: bad input, not a TypeError
        call_task_function("process_book", book_id=999)


def test_unreachable_broker_is_one_line_exit_1(cli):
    broker = f"redis://127.0.0.1:{_free_port()}/0"
    for args in (["inspect", "active"], ["inspect", "stats"], ["purge", "--yes"]):
        result = cli(*args, env={"BOOKREADER_CELERY_BROKER_URL": broker})
        assert result.code == 1, args
        assert result.stderr.count("\n") == 1 and "cannot reach the Celery broker" in result.stderr
        assert "Traceback" not in result.stderr


def test_bad_worker_options_are_bad_input(cli):
    assert cli("worker", "--queues", "books,nope").code == 2
    assert cli("inspect", "everything").code == 2
    assert cli("purge").code == 2  # not a terminal and no --yes


# ---- integration: a real redis-server and real workers ----------------------------------------------
needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("redis") / "redis.log"
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(log),
        ]
    )
    import redis

    client = redis.Redis(port=port)
    _wait_for(lambda: _pings(client), "redis-server to answer", proc=proc)
    yield f"redis://127.0.0.1:{port}/0"
    import gc

    gc.collect()  # results still subscribed to the backend unsubscribe now, while Redis is up
    proc.terminate()
    proc.wait(30)


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


def _wait_for(predicate, what: str, limit: float = 120.0, proc=None):
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


class Workers:
    """Starts `bookreader worker` processes against the test broker; each gets its own BOOKREADER_HOME."""

    def __init__(self, broker: str, tmp: Path):
        self.broker = broker
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def env(self, **extra) -> dict:
        return dict(
            os.environ,
            BOOKREADER_CELERY_BROKER_URL=self.broker,
            BOOKREADER_CELERY_RESULT_BACKEND=self.broker,
            PYTHONPATH=os.pathsep.join([str(TESTS), str(REPO)]),
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            NO_COLOR="1",
            **extra,
        )

    def start(self, name: str, queues: str, pool: str = "prefork", **env) -> subprocess.Popen:
        home = self.tmp / f"worker-{name}"
        with open(self.tmp / f"worker-{name}.log", "ab") as log:  # the worker keeps its own copy of the fd
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bookreader_cli",
                    "--home",
                    str(home),
                    "worker",
                    "--queues",
                    queues,
                    "--pool",
                    pool,
                    "--concurrency",
                    "1",
                    "--hostname",
                    f"{name}@test",
                    "--loglevel",
                    "info",
                    "--",
                    "--include",
                    "celery_test_tasks",
                    "--without-gossip",
                    "--without-mingle",
                ],
                env=self.env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        app = self.app()
        _wait_for(
            lambda: app.control.inspect(timeout=0.5, destination=[f"{name}@test"]).ping(),
            f"worker {name} to answer",
            proc=proc,
        )
        return proc

    def app(self):
        from bookreader_cli.workers.app import make_app

        env = {"BOOKREADER_CELERY_BROKER_URL": self.broker, "BOOKREADER_CELERY_RESULT_BACKEND": self.broker}
        return make_app(load_settings(self.tmp / "client", environ=env))

    def kill(self, proc: subprocess.Popen) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # warm shutdown
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill(proc)

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)


@pytest.fixture(scope="module")
def workers(redis_url, tmp_path_factory):
    pool = Workers(redis_url, tmp_path_factory.mktemp("workers"))
    # the main worker: prefork with one child, so killing that child exercises reject_on_worker_lost
    pool.start("main", "books,nlp,celery", BOOKREADER_CELERY_MAX_REDELIVERIES="2")
    yield pool
    pool.stop_all()


def _descriptions(home: Path) -> list[tuple]:
    conn = sqlite3.connect(home / "bookreader.db")
    try:
        return conn.execute(
            'SELECT chapter_idx, start, "end", text, type, priority, confidence, consensus, processors '
            "FROM descriptions ORDER BY chapter_idx, start"
        ).fetchall()
    finally:
        conn.close()


@needs_redis
def test_process_with_celery_executor_stores_what_a_local_run_stores(workers, cli, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    env = {"BOOKREADER_CELERY_BROKER_URL": workers.broker, "BOOKREADER_CELERY_RESULT_BACKEND": workers.broker}
    with ThreadPoolExecutor(2) as both:  # the two runs are independent: let them overlap
        remote = both.submit(
            cli, "--home", str(tmp_path / "remote"), "process", str(SAMPLE), "--executor", "celery", "--json", env=env
        )
        local = both.submit(cli, "--home", str(tmp_path / "local"), "process", str(SAMPLE), "--json")
        remote, local = remote.result(), local.result()
    assert remote.code == 0, remote.stderr
    assert local.code == 0, local.stderr
    r, l = remote.json(), local.json()
    assert r["executor"] == "celery" and l["executor"] == "local"
    for key in (
        "total_chapters",
        "descriptions_found",
        "status",
        "nlp_processors_used",
        "ensemble_consensus_rate",
        "descriptions_by_type",
        "sentences_analyzed",
        "sentences_passed",
    ):
        assert r[key] == l[key], key
    stored = _descriptions(tmp_path / "remote")
    assert stored and stored == _descriptions(tmp_path / "local")
    assert not (workers.tmp / "worker-main" / "bookreader.db").exists()  # NLP workers need no database


@needs_redis
def test_transient_failure_is_retried_with_celerys_retry(workers, tmp_path):
    app = workers.app()
    result = app.send_task("bookreader.test.flaky", args=[str(tmp_path / "counter"), 2], queue="books")
    assert result.get(timeout=120) == {"attempts": 3, "retries": 2}


@needs_redis
def test_killed_worker_process_does_not_lose_the_chapter(workers, tmp_path):
    from bookreader_cli.workers.remote import chapter_payload, run_chapter_job

    app = workers.app()
    from bookreader_cli.books import load_book

    chapter = load_book(SAMPLE).chapters[1]
    job = chapter_payload(chapter, "ru", "single", ["natasha"], load_settings(tmp_path).nlp)
    markers = tmp_path / "markers"
    result = app.send_task("bookreader.test.die_first", args=[str(markers), job], queue="books")
    first = _wait_for(lambda: (markers / "1.pid").exists() and int((markers / "1.pid").read_text()), "delivery 1")
    os.kill(first, signal.SIGKILL)  # the pool child running the task dies mid-task
    got = result.get(timeout=180)
    second = int((markers / "2.pid").read_text())
    assert second != first
    expected = run_chapter_job(job)
    assert got["descriptions"] == expected["descriptions"] and expected["sentences_total"] > 0


@needs_redis
def test_a_task_that_keeps_killing_its_worker_is_capped(workers, tmp_path):
    app = workers.app()
    markers = tmp_path / "poison"
    result = app.send_task("bookreader.test.suicide", args=[str(markers)], queue="books")
    with pytest.raises(Exception, match="delivered 4 times"):
        result.get(timeout=120)
    assert len(list(markers.glob("*.pid"))) == 3  # 1 delivery + max_redeliveries=2, then it fails unrun
    assert app.send_task("bookreader.test.flaky", args=[str(tmp_path / "c"), 0], queue="books").get(timeout=60)


@needs_redis
def test_whole_worker_killed_task_goes_to_another_worker(workers, tmp_path):
    app = workers.app()
    markers = tmp_path / "markers"
    short = {"BOOKREADER_CELERY_VISIBILITY_TIMEOUT": "3"}
    doomed = workers.start("doomed", "images", pool="solo", **short)
    result = app.send_task("bookreader.test.die_first", args=[str(markers)], queue="images")
    _wait_for(lambda: (markers / "1.pid").exists(), "delivery 1")
    workers.kill(doomed)  # the whole machine's worker is gone, message unacknowledged
    rescuer = workers.start("rescuer", "images", pool="solo", **short)
    try:
        got = result.get(timeout=120)
    finally:  # its 3 s visibility timeout would also "rescue" the main worker's longer tasks
        workers.stop(rescuer)
    assert got["delivery"] == 2 and got["pid"] != int((markers / "1.pid").read_text())


@needs_redis
def test_no_worker_warns_and_a_timeout_fails_cleanly(redis_url):
    from bookreader_cli.errors import JobFailed
    from bookreader_cli.nlp.segment import chapter_from_text
    from bookreader_cli.workers.remote import celery_run_book

    lonely = redis_url.rsplit("/", 1)[0] + "/7"  # a database no worker listens on
    settings = load_settings(
        environ={
            "BOOKREADER_HOME": "/nonexistent",
            "BOOKREADER_CELERY_BROKER_URL": lonely,
            "BOOKREADER_CELERY_RESULT_BACKEND": lonely,
        }
    )
    warnings = []
    with pytest.raises(JobFailed, match=r"1 chapter\(s\) unfinished after 1s"):
        list(
            celery_run_book(
                [chapter_from_text("Тёмный лес стоял стеной.")],
                settings=settings,
                timeout=1,
                on_warning=warnings.append,
            )
        )
    assert warnings and warnings[0].startswith("waiting for 1 chapters on 0 workers")
    from bookreader_cli.errors import BadInput

    with pytest.raises(BadInput, match="unknown mode"):
        list(celery_run_book([chapter_from_text("text")], mode="telepathy", settings=settings))


@needs_redis
def test_a_beat_job_runs_on_a_worker_like_the_cron_job(workers):
    """What beat sends every 30 minutes: `bookreader.system_stats` with no arguments."""
    app = workers.app()
    result = app.send_task("bookreader.system_stats", queue="celery").get(timeout=120)
    assert {"books_total", "descriptions_total", "timestamp"} <= set(result)
    log = workers.tmp / "worker-main" / "logs" / "stats.jsonl"
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["job"] == "stats" and record["status"] == "ok" and record["result"] == result
