"""`bookreader config | runs | stats | health`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bookreader_cli.cli.common import JsonOpt, app, bad_option, json_wanted, run


@app.command("config")
def config_show(json_mode: JsonOpt = False) -> None:
    """Show the effective settings and where every file lives."""
    from bookreader_cli import jobs

    run(jobs.show_config, json_mode)


runs_app = typer.Typer(help="The record of every task run: list and show.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@app.command("stats")
def stats_cmd(
    format: Annotated[
        str, typer.Option("--format", help="table, json or prometheus (text exposition format).")
    ] = "table",
    json_mode: JsonOpt = False,
) -> None:
    """Counts, task runs by queue and state, and storage sizes.

    For node_exporter's textfile collector write the file atomically:
    bookreader stats --format prometheus > x.prom.tmp && mv x.prom.tmp /var/lib/node_exporter/bookreader.prom
    """
    from bookreader_cli import jobs, output
    from bookreader_cli.jobs.status import STATS_FORMATS

    if json_wanted(json_mode):
        format = "json"
    if format not in STATS_FORMATS:
        bad_option(f"--format: expected one of {', '.join(STATS_FORMATS)}")

    def human(result: dict) -> None:
        from bookreader_cli import ops

        if format == "prometheus":
            sys.stdout.write(ops.to_prometheus(result))
            sys.stdout.flush()
            return
        output.print_summary(
            result,
            title="bookreader stats",
            skip=("descriptions_by_type", "images_by_status", "task_runs", "storage_bytes"),
        )
        output.print_table(
            ["type", "descriptions"], list(result["descriptions_by_type"].items()), title="Descriptions by type"
        )
        states = list(next(iter(result["task_runs"].values())))
        output.print_table(
            ["queue", *states], [(q, *c.values()) for q, c in result["task_runs"].items()], title="Task runs"
        )
        output.print_table(["store", "bytes"], list(result["storage_bytes"].items()), title="Storage")

    run(jobs.system_stats, format == "json", human)


@app.command("health")
def health_cmd(
    network: Annotated[bool, typer.Option("--network", help="Also check that the image API answers.")] = False,
    json_mode: JsonOpt = False,
) -> None:
    """Check the database, directories, free disk and NLP processors; exit 1 when unhealthy."""
    from bookreader_cli import jobs, output

    def human(result: dict) -> None:
        output.print_table(
            ["check", "status", "ms", "detail"],
            [(name, c["status"], f"{c['time_ms']:.1f}", c["detail"]) for name, c in result["checks"].items()],
            title=f"health: {result['status']} ({result['response_time_ms']:.0f} ms)",
        )

    run(lambda ctx: jobs.health_check(ctx, network), json_mode, human, failed=lambda r: r["status"] == "unhealthy")


@runs_app.command("list")
def runs_list(
    state: Annotated[str | None, typer.Option("--state", help="PENDING, STARTED, RETRY, SUCCESS or FAILURE.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Only runs of this task (e.g. process_book).")] = None,
    queue: Annotated[str | None, typer.Option("--queue", help="books, images or cleanup.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 50,
    json_mode: JsonOpt = False,
) -> None:
    """List task runs, newest first."""
    import time

    from bookreader_cli import jobs, output

    def human(result: dict) -> None:
        output.print_table(
            ["id", "task", "state", "tries", "created", "seconds", "error"],
            [
                (
                    r["id"][:8],
                    r["task"],
                    r["state"],
                    r["attempts"],
                    time.strftime("%m-%d %H:%M:%S", time.localtime(r["created_at"])),
                    "" if r["duration_seconds"] is None else f"{r['duration_seconds']:.3f}",
                    (r["error"] or "")[:80],
                )
                for r in result["runs"]
            ],
            title=f"{result['count']} task runs (newest first)",
        )

    run(lambda ctx: jobs.list_runs(ctx, state, task, limit, queue), json_mode, human)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id or an unambiguous prefix of it.")], json_mode: JsonOpt = False
) -> None:
    """Show one task run with its arguments and result or error."""
    from bookreader_cli import jobs

    run(lambda ctx: jobs.show_run(ctx, run_id), json_mode)
