"""Tasks that only the integration test's workers load (`bookreader worker -- --include celery_test_tasks`).

They are registered on the product's app with the product's options, so what they show (retries, a killed
worker, a task that keeps killing its worker) is what the real tasks get.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from bookreader_cli.runs import Transient
from bookreader_cli.workers.app import retry_options
from bookreader_cli.workers.worker import app


def _mark(marker_dir: str) -> int:
    """Record this delivery (its number and pid) and return its number."""
    directory = Path(marker_dir)
    directory.mkdir(parents=True, exist_ok=True)
    number = len(list(directory.glob("*.pid"))) + 1
    (directory / f"{number}.pid").write_text(str(os.getpid()))
    return number


@app.task(name="bookreader.test.flaky", bind=True, **retry_options(3))
def flaky(self, counter: str, failures: int) -> dict:
    """Fails with a Transient error `failures` times, then succeeds."""
    path = Path(counter)
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    if attempt <= failures:
        raise Transient(f"attempt {attempt} fails")
    return {"attempts": attempt, "retries": self.request.retries}


@app.task(name="bookreader.test.die_first", bind=True)
def die_first(self, marker_dir: str, job: dict | None = None) -> dict:
    """First delivery: hang until the test kills this process. Later ones: the chapter's NLP (if given)."""
    delivery = _mark(marker_dir)
    if delivery == 1:
        time.sleep(600)
    if job is not None:
        from bookreader_cli.workers.remote import run_chapter_job

        return run_chapter_job(job)
    return {"delivery": delivery, "pid": os.getpid()}


@app.task(name="bookreader.test.suicide", bind=True)
def suicide(self, marker_dir: str) -> None:
    """Kills its own worker process on every delivery (a poison task)."""
    _mark(marker_dir)
    os.kill(os.getpid(), signal.SIGKILL)
