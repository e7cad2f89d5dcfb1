"""The periodic jobs, defined once: Celery beat reads them, and `bookreader schedule` prints them as cron lines.

Each job runs a job function from jobs/. Under cron it runs as `bookreader cron JOB`, which holds a
database lock (`cron:JOB`) so overlapping runs never collide, and appends one JSON line per run to
`<home>/logs/JOB.jsonl`.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ScheduledJob:
    name: str  # the `bookreader cron NAME` argument and the log file's stem
    beat_name: str  # the seed's beat entry name
    task: str  # the Celery task name (workers.worker registers it)
    function: str  # the job function in bookreader_cli.jobs
    minute: str  # cron fields; beat uses the same strings via celery.schedules.crontab
    hour: str
    description: str


JOBS: dict[str, ScheduledJob] = {
    job.name: job
    for job in (
        ScheduledJob(
            "cleanup",
            "cleanup-old-images",
            "bookreader.cleanup_old_images",
            "cleanup_old_images",
            minute="0",
            hour="3",
            description="delete images older than cleanup_days, every day at 03:00",
        ),
        ScheduledJob(
            "stats",
            "system-stats",
            "bookreader.system_stats",
            "system_stats",
            minute="*/30",
            hour="*",
            description="system statistics, every 30 minutes",
        ),
    )
}


def bookreader_command() -> list[str]:
    """Absolute argv of the bookreader that is running now (console script, or python -m)."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "bookreader" and argv0.exists():
        return [str(argv0.absolute())]
    beside = Path(sys.executable).parent / "bookreader"
    if beside.exists():
        return [str(beside.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "bookreader_cli"]


def _cron_quote(text: str) -> str:
    """Shell-quote, and escape '%' (cron turns a bare % into a newline)."""
    return shlex.quote(text).replace("%", "\\%")


def crontab_lines(home: Path, command: list[str] | None = None) -> list[str]:
    """Crontab lines equivalent to the beat schedule, with absolute paths and BOOKREADER_HOME set."""
    command = command or bookreader_command()
    prefix = f"BOOKREADER_HOME={_cron_quote(str(Path(home).absolute()))} " + " ".join(map(_cron_quote, command))
    lines = [f"# bookreader periodic jobs (the same schedule as `bookreader beat`); logs: {home}/logs/*.jsonl"]
    for job in JOBS.values():
        lines.append(f"# {job.name}: {job.description}")
        lines.append(f"{job.minute} {job.hour} * * * {prefix} cron {job.name}")
    return lines


def log_path(home: Path, job: str) -> Path:
    return Path(home) / "logs" / f"{job}.jsonl"


def append_log(home: Path, job: str, record: dict) -> Path:
    """One compact JSON object per line; the append is one write, so concurrent appends do not interleave."""
    path = log_path(home, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
    return path


def run_job(ctx, name: str, wait: bool = False, timeout: float | None = None, **kwargs) -> dict:
    """Run a scheduled job once under its lock (kwargs go to the task function), log the outcome as a JSON
    line, and return the record.

    Busy (another run holds the lock) is raised without running or logging anything else; a failing job
    is logged with its error and re-raised.
    """
    from bookreader_cli import jobs
    from bookreader_cli.errors import BadInput, JobFailed
    from bookreader_cli.locks import db_lock

    job = JOBS.get(name)
    if job is None:
        raise BadInput(f"unknown scheduled job {name!r}: expected one of {', '.join(JOBS)}")
    fn = getattr(jobs, job.function, None)
    if fn is None:
        raise JobFailed(f"this build has no jobs.{job.function}() for job {name!r}")
    home = ctx.settings.home
    with db_lock(
        ctx.store, f"cron:{name}", wait=wait, timeout=timeout, busy_message=f"scheduled job {name!r} is already running"
    ):
        started = time.time()
        record = {"job": name, "started_at": round(started, 3)}
        try:
            result = fn(ctx, **kwargs)
        except Exception as exc:
            record.update(
                status="failed", duration_seconds=round(time.time() - started, 3), error=f"{type(exc).__name__}: {exc}"
            )
            append_log(home, name, record)
            raise
        record.update(status="ok", duration_seconds=round(time.time() - started, 3), result=result)
        record["log"] = str(append_log(home, name, record))
    return record
