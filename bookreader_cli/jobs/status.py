"""Status jobs: system statistics, the health check, and the record of task runs."""

from __future__ import annotations

from bookreader_cli.jobs.context import Context

STATS_FORMATS = ("table", "json", "prometheus")


def system_stats(ctx: Context) -> dict:
    """Counts, task runs by queue and state, and storage sizes (the seed's system_stats_task)."""
    from bookreader_cli import ops, runs

    store = ctx.store
    return runs.record(store, "system_stats", "cleanup", {}, lambda: ops.collect_stats(ctx.settings, store.conn))


def health_check(ctx: Context, network: bool = False) -> dict:
    """Every health check (the seed's health_check_task). A database that cannot be opened or written is a
    finding, not a crash: the checks still run, unrecorded, and report it."""
    import sqlite3

    from bookreader_cli import ops, runs
    from bookreader_cli.errors import BookreaderError

    try:
        store = ctx.store
    except (BookreaderError, sqlite3.Error, OSError) as exc:
        return ops.health(ctx.settings, None, network=network, store_error=str(exc))
    damage = ops.quick_check(store.conn)
    if damage:  # never write into a damaged file, not even the run's own row
        return ops.health(ctx.settings, store.conn, network=network, damage=damage)
    try:
        return runs.record(
            store,
            "health_check",
            "cleanup",
            {"network": network},
            lambda: ops.health(ctx.settings, store.conn, network=network, damage=damage),
        )
    except sqlite3.Error as exc:  # the run itself could not be recorded: read-only file, full disk
        return ops.health(ctx.settings, None, network=network, store_error=str(exc))


def list_runs(
    ctx: Context, state: str | None = None, task: str | None = None, limit: int = 50, queue: str | None = None
) -> dict:
    from bookreader_cli import runs

    rows = runs.list_runs(ctx.store, state=state, task=task, limit=limit, queue=queue)
    return {"count": len(rows), "runs": rows}


def show_run(ctx: Context, run_id: str) -> dict:
    from bookreader_cli import runs

    return runs.get_run(ctx.store, run_id)
