"""`bookreader worker | beat | inspect | purge` (Celery) and `schedule | cron` (the same jobs under cron)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bookreader_cli.cli.common import JsonOpt, app, run

QueuesOpt = Annotated[str, typer.Option("--queues", "-Q", help="Comma-separated: books,nlp,images,cleanup,celery.")]


@app.command("worker")
def celery_worker(
    queues: QueuesOpt = "books,nlp,images,cleanup,celery",
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", help="Worker processes (default: nlp.workers).")
    ] = None,
    pool: Annotated[str, typer.Option("--pool", help="Celery pool: prefork, solo, threads.")] = "prefork",
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "info",
    hostname: Annotated[str | None, typer.Option("--hostname", "-n", help="Node name, e.g. nlp1@%h.")] = None,
    celery_args: Annotated[list[str] | None, typer.Argument(help="After --: more `celery worker` options.")] = None,
) -> None:
    """Start a Celery worker for the bookreader tasks (needs the celery extra and a reachable broker)."""
    from bookreader_cli import output
    from bookreader_cli.workers import control

    command = run(
        lambda ctx: control.worker_command(
            ctx.settings, queues, concurrency, pool, loglevel, hostname, celery_args or []
        ),
        False,
        lambda r: output.message(f"starting Celery worker (broker {r['broker']})"),
    )
    control.exec_command(command)


@app.command("beat")
def celery_beat(loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "info") -> None:
    """Start Celery beat: cleanup every day at 03:00, stats every 30 minutes (see also `schedule` for cron)."""
    from bookreader_cli import output
    from bookreader_cli.workers import control

    command = run(
        lambda ctx: control.beat_command(ctx.settings, loglevel),
        False,
        lambda r: output.message(f"starting Celery beat (broker {r['broker']})"),
    )
    control.exec_command(command)


@app.command("inspect")
def celery_inspect(
    what: Annotated[str, typer.Argument(help="active, stats, reserved, scheduled, registered or ping.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for replies.")] = 2.0,
    json_mode: JsonOpt = False,
) -> None:
    """Ask the running Celery workers (exit 1 when the broker is unreachable or no worker replies)."""
    from bookreader_cli import output
    from bookreader_cli.workers import control

    run(
        lambda ctx: control.inspect(ctx.settings, what, timeout),
        json_mode,
        lambda r: output.print_table(
            control.worker_columns(r["command"]), control.worker_rows(r), title=f"inspect {r['command']}"
        ),
    )


@app.command("purge")
def celery_purge(
    queues: QueuesOpt = "books,nlp,images,cleanup,celery",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_mode: JsonOpt = False,
) -> None:
    """Delete all waiting tasks from the queues (running tasks are not touched)."""
    from bookreader_cli.errors import BadInput
    from bookreader_cli.workers import control

    def purge(ctx):
        if not yes:
            if not sys.stdin.isatty():
                raise BadInput("purge deletes queued tasks: pass --yes to confirm")
            if not typer.confirm(f"Delete all waiting tasks in {queues}?", err=True):
                raise BadInput("purge cancelled")
        return control.purge(ctx.settings, queues)

    run(purge, json_mode)


@app.command("schedule")
def cron_schedule(json_mode: JsonOpt = False) -> None:
    """Print crontab lines equivalent to the beat schedule: `(crontab -l; bookreader schedule) | crontab -`."""
    from bookreader_cli.jobs import cron

    def lines(ctx) -> dict:
        return {"lines": cron.crontab_lines(ctx.settings.home), "jobs": [vars(job) for job in cron.JOBS.values()]}

    run(lines, json_mode, lambda r: print("\n".join(r["lines"])))


@app.command("cron")
def cron_run(
    job: Annotated[str, typer.Argument(help="cleanup or stats.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for a running instance instead of failing at once.")
    ] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="With --wait: give up after S seconds.")] = None,
    json_mode: JsonOpt = False,
) -> None:
    """Run a scheduled job once, under its lock, appending a JSON line to <home>/logs/JOB.jsonl (what cron calls)."""
    from bookreader_cli.jobs import cron

    run(lambda ctx: cron.run_job(ctx, job, wait=wait, timeout=timeout), json_mode)
