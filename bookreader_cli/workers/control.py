"""What `bookreader worker | beat | inspect | purge` do: start Celery's own programs with our app and settings,
or ask the workers through Celery's control API, failing in one line when the broker cannot be reached.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence

from bookreader_cli.broker import safe_url as _safe_url
from bookreader_cli.errors import BadInput, JobFailed

APP = "bookreader_cli.workers.worker"
INSPECT_COMMANDS = ("active", "stats", "reserved", "scheduled", "registered", "ping")


def require_celery() -> None:
    if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
        raise JobFailed("Celery is not installed: pip install 'bookreader[celery]'")


def parse_queues(text: str) -> list[str]:
    from bookreader_cli.runs import QUEUES

    queues = [q.strip() for q in text.split(",") if q.strip()]
    unknown = [q for q in queues if q not in QUEUES]
    if not queues or unknown:
        raise BadInput(f"unknown queue(s) {', '.join(unknown) or text!r}: expected some of {','.join(QUEUES)}")
    return queues


def _command(settings, program: list[str]) -> dict:
    """argv and environment for `python -m celery -A bookreader_cli.workers.worker …` on these settings."""
    require_celery()
    env = {"BOOKREADER_HOME": str(settings.home)}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = os.environ.get(var, "1")  # one math thread per worker process: the pool is the parallelism
    argv = [sys.executable, "-m", "celery", "-A", APP, *program]
    return {"argv": argv, "env": env, "broker": _safe_url(settings.celery.broker_url)}


def worker_command(
    settings,
    queues: str,
    concurrency: int | None,
    pool: str,
    loglevel: str,
    hostname: str | None = None,
    extra: Sequence[str] = (),
) -> dict:
    require_celery()
    names = parse_queues(queues)
    if concurrency is not None and concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    program = [
        "worker",
        "--queues",
        ",".join(names),
        "--pool",
        pool,
        "--concurrency",
        str(concurrency or settings.nlp.workers),
        "--loglevel",
        loglevel,
    ]
    if hostname:
        program += ["--hostname", hostname]
    return _command(settings, program + list(extra))


def beat_command(settings, loglevel: str) -> dict:
    settings.home.mkdir(parents=True, exist_ok=True)
    return _command(
        settings, ["beat", "--schedule", str(settings.home / "celerybeat-schedule"), "--loglevel", loglevel]
    )


def exec_command(command: dict) -> None:
    """Replace this process with Celery's, so signals (Ctrl-C, SIGTERM for a warm shutdown) reach it directly."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command["argv"][0], command["argv"], dict(os.environ, **command["env"]))


def _app(settings, timeout: float):
    require_celery()
    from bookreader_cli.broker import check_broker
    from bookreader_cli.workers.app import make_app

    app = make_app(settings)
    check_broker(app, timeout)
    return app


def inspect(settings, what: str, timeout: float = 2.0) -> dict:
    """Celery's `inspect WHAT`, as {"broker", "workers": {name: reply}}; no reply at all is a failure."""
    if what not in INSPECT_COMMANDS:
        raise BadInput(f"unknown inspect command {what!r}: expected one of {', '.join(INSPECT_COMMANDS)}")
    from bookreader_cli import broker

    app = _app(settings, timeout)
    try:  # one try, with socket timeouts: a broker that dies or freezes now ends in one line too
        with broker.one_try_connection(app, socket_timeout=broker.bounded_wait(timeout)) as conn:
            replies = getattr(app.control.inspect(timeout=timeout, connection=conn), what)()
    except broker.connection_errors() as exc:
        raise broker.unreachable(app, exc) from None
    if not replies:
        raise JobFailed(f"no Celery worker replied within {timeout:g}s (broker {_safe_url(app.conf.broker_url)})")
    return {"broker": _safe_url(app.conf.broker_url), "command": what, "workers": replies}


def purge(settings, queues: str, timeout: float = 2.0) -> dict:
    """Delete every waiting message of the given queues; running tasks are not touched."""
    require_celery()
    names = parse_queues(queues)
    from bookreader_cli import broker

    app = _app(settings, timeout)
    counts = {}
    try:
        with broker.one_try_connection(app, socket_timeout=broker.bounded_wait(timeout)) as conn:
            channel = conn.default_channel
            for name in names:
                counts[name] = channel.queue_purge(name) or 0
    except broker.connection_errors() as exc:
        raise broker.unreachable(app, exc) from None
    return {"broker": _safe_url(app.conf.broker_url), "purged": sum(counts.values()), "queues": counts}


def worker_rows(result: dict) -> list[tuple]:
    """Table rows for `inspect active` / `inspect stats` in a terminal."""
    rows = []
    for worker, reply in sorted(result["workers"].items()):
        if result["command"] in ("active", "reserved", "scheduled"):
            for task in reply or []:
                task = task.get("request", task)
                rows.append(
                    (
                        worker,
                        task.get("name"),
                        task.get("id"),
                        str(task.get("args"))[:60],
                        task.get("delivery_info", {}).get("routing_key"),
                    )
                )
            if not reply:
                rows.append((worker, "(idle)", "", "", ""))
        elif result["command"] == "stats":
            pool = reply.get("pool", {})
            total = sum((reply.get("total") or {}).values())
            rows.append(
                (
                    worker,
                    pool.get("implementation", "").split(":")[0].rsplit(".", 1)[-1],
                    pool.get("max-concurrency"),
                    total,
                    reply.get("uptime"),
                )
            )
        else:
            rows.append((worker, str(reply)[:100], "", "", ""))
    return rows


def worker_columns(command: str) -> list[str]:
    if command in ("active", "reserved", "scheduled"):
        return ["worker", "task", "id", "args", "queue"]
    if command == "stats":
        return ["worker", "pool", "concurrency", "tasks done", "uptime s"]
    return ["worker", "reply", "", "", ""]
