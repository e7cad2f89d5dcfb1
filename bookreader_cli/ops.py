"""Stats and health: what is in the store, how big it is, and whether this installation can do its work.

Both run from cron and monitoring every few minutes, so both must be cheap: plain SQL on the store's sqlite3
connection (no sqlite-utils), directory walks with os.scandir, and NLP processors checked by package and
model-file presence only (spaCy, Natasha, Stanza and torch are never imported here).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import socket
import sqlite3
import tempfile
import time
from pathlib import Path

from bookreader_cli.config import Settings
from bookreader_cli.images.statuses import COMPLETED
from bookreader_cli.runs import RUN_QUEUES, STATES, counts_by_queue_and_state
from bookreader_cli.store import stats as sql

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
_SEVERITY = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}


def iso_timestamp(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- stats ------------------------------------------------------------------------------------
def collect_stats(settings: Settings, conn: sqlite3.Connection) -> dict:
    """The seed's system_stats dict (keys kept) plus per-type, per-queue/state and storage detail."""
    from bookreader_cli.nlp.base import DESCRIPTION_TYPES

    started = time.perf_counter()
    collected_at = time.time()
    with sql.read_snapshot(conn):  # all counts from the same moment, even while others write
        stats = _counts(settings, conn, DESCRIPTION_TYPES)
    stats["celery_queue_lengths"] = broker_queue_lengths(settings)
    stats["timestamp"] = iso_timestamp(collected_at)
    stats["collected_at"] = round(collected_at, 3)
    stats["collection_time_seconds"] = round(time.perf_counter() - started, 4)
    return stats


def _counts(settings: Settings, conn: sqlite3.Connection, description_types) -> dict:
    by_type = dict.fromkeys(description_types, 0)
    for type_, n in sql.descriptions_by_type(conn):
        by_type[type_] = n
    images_by_status = sql.images_by_status(conn)
    totals = sql.totals(conn)
    runs = counts_by_queue_and_state(conn)
    storage = {
        "database": _file_size(settings.db_path),
        "database_wal": _file_size(Path(f"{settings.db_path}-wal")),
        "cache": dir_size(settings.cache_dir),
        "images": dir_size(settings.images_dir),
    }
    return {
        "timestamp": None,  # filled in by collect_stats (keeps the seed's key order)
        **totals,  # users_total, books_total, chapters_total
        "descriptions_total": sum(by_type.values()),
        "descriptions_by_type": by_type,
        "images_generated": images_by_status.get(COMPLETED, 0),
        "images_by_status": images_by_status,
        # the app counted logged-in sessions; here: task runs executing right now (this one included)
        "active_sessions": sum(q["STARTED"] for q in runs.values()),
        # the seed's key, the seed's meaning: messages waiting in the broker's queues (filled in by
        # collect_stats; None when no broker answers)
        "celery_queue_lengths": None,
        # runs recorded in this database waiting to start or to be retried, per queue
        "task_runs_waiting": {queue: runs[queue]["PENDING"] + runs[queue]["RETRY"] for queue in runs},
        "task_runs": runs,
        "storage_bytes": storage,
        "storage_mb_total": round(sum(storage.values()) / 2**20, 3),
    }


def broker_queue_lengths(settings: Settings, timeout: float = 1.0) -> dict | None:
    """Messages waiting per Celery queue, asked from the broker within about `timeout` s; None without one."""
    from bookreader_cli.broker import queue_lengths

    return queue_lengths(settings.celery.broker_url, timeout=timeout)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def dir_size(path: Path) -> int:
    """Bytes in regular files under path, symlinks not followed (a missing dir is 0)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:  # removed while we walked
                        continue
        except OSError:
            continue
    return total


# ---- Prometheus text exposition ---------------------------------------------------------------
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _label_value(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _metric(lines: list[str], name: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
    assert METRIC_NAME.match(name), name
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} gauge")
    for labels, value in samples:
        label_text = ",".join(f'{key}="{_label_value(val)}"' for key, val in labels.items())
        lines.append(f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def to_prometheus(stats: dict) -> str:
    """Prometheus text format (for node_exporter's textfile collector); every sample is a gauge."""
    lines: list[str] = []
    _metric(lines, "bookreader_books_total", "Books in the store.", [({}, stats["books_total"])])
    _metric(lines, "bookreader_chapters_total", "Chapters in the store.", [({}, stats["chapters_total"])])
    _metric(
        lines,
        "bookreader_descriptions_total",
        "Descriptions found, by type.",
        [({"type": t}, n) for t, n in stats["descriptions_by_type"].items()],
    )
    _metric(
        lines,
        "bookreader_images_total",
        "Image rows, by status.",
        [({"status": s}, n) for s, n in stats["images_by_status"].items()],
    )
    _metric(lines, "bookreader_users_total", "Distinct users that requested images.", [({}, stats["users_total"])])
    _metric(
        lines,
        "bookreader_task_runs_total",
        "Recorded task runs, by queue and state.",
        [({"queue": q, "state": s}, n) for q, states in stats["task_runs"].items() for s, n in states.items()],
    )
    _metric(
        lines,
        "bookreader_storage_bytes",
        "Bytes on disk, by store.",
        [({"store": name}, n) for name, n in stats["storage_bytes"].items()],
    )
    _metric(
        lines,
        "bookreader_stats_collection_seconds",
        "Seconds the stats collection took.",
        [({}, float(stats["collection_time_seconds"]))],
    )
    _metric(
        lines,
        "bookreader_stats_collected_timestamp_seconds",
        "Unix time the stats were collected.",
        [({}, float(stats["collected_at"]))],
    )
    return "\n".join(lines) + "\n"


# ---- health -----------------------------------------------------------------------------------
def _check(status: str, detail: str, started: float, **extra) -> dict:
    return {"status": status, "detail": detail, "time_ms": round((time.perf_counter() - started) * 1000, 2), **extra}


class Damage(list):
    """`PRAGMA quick_check`'s findings ([] = sound) and the milliseconds the check took."""

    ms: float = 0.0


def quick_check(conn: sqlite3.Connection, max_findings: int = 5) -> Damage:
    """SQLite's own `PRAGMA quick_check` (every page and b-tree, indexes not matched to their tables):
    empty when the file is sound, else its first findings. Reads only; O(file size)."""
    started = time.perf_counter()
    try:
        rows = sql.quick_check(conn, max_findings)
    except sqlite3.DatabaseError as exc:  # so damaged that the check itself cannot run
        rows = [str(exc)]
    found = Damage([] if rows == ["ok"] else rows)
    found.ms = round((time.perf_counter() - started) * 1000, 2)
    return found


def check_database(
    conn: sqlite3.Connection | None, error: str | None = None, busy_ms: int = 2000, damage: list[str] | None = None
) -> dict:
    """`PRAGMA quick_check` first (`damage`: its findings when the caller ran it already); on a sound file,
    a real write (a row in `locks`) inside a transaction that is rolled back: proves the file, its
    directory (for the WAL) and the lock are all writable, and leaves nothing behind. A damaged file is
    never written to."""
    started = time.perf_counter()
    if conn is None:
        return _check(UNHEALTHY, f"database unusable: {error or 'no connection'}", started)
    damage = quick_check(conn) if damage is None else damage
    started -= getattr(damage, "ms", 0.0) / 1000  # the check's time counts, wherever it ran
    if damage:
        return _check(UNHEALTHY, f"damaged: PRAGMA quick_check: {'; '.join(damage)}", started, findings=list(damage))
    try:
        version, mode = sql.write_probe(conn, busy_ms)
    except sqlite3.OperationalError as exc:
        status = DEGRADED if "locked" in str(exc) or "busy" in str(exc) else UNHEALTHY
        return _check(status, f"write failed: {exc}", started)
    except sqlite3.Error as exc:
        return _check(UNHEALTHY, f"write failed: {exc}", started)
    return _check(
        HEALTHY,
        f"quick_check ok, writable (schema version {version}, journal {mode})",
        started,
        schema_version=version,
        journal_mode=mode,
    )


def check_dir_writable(path: Path) -> dict:
    """Create the directory if needed, then write, read back and delete a small file in it."""
    started = time.perf_counter()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".health-", suffix=".tmp") as fh:
            fh.write(b"ok")
            fh.flush()
            with open(fh.name, "rb") as back:
                if back.read() != b"ok":
                    return _check(UNHEALTHY, f"{path}: wrote a file but read back something else", started)
    except OSError as exc:
        return _check(UNHEALTHY, f"{path}: not writable: {exc.strerror or exc}", started, path=str(path))
    return _check(HEALTHY, f"{path}: writable", started, path=str(path))


def check_disk(path: Path, degraded_mb: int, unhealthy_mb: int) -> dict:
    started = time.perf_counter()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return _check(UNHEALTHY, f"{probe}: cannot read disk usage: {exc}", started)
    free_mb = usage.free / 2**20
    status = UNHEALTHY if free_mb < unhealthy_mb else DEGRADED if free_mb < degraded_mb else HEALTHY
    return _check(
        status,
        f"{free_mb:,.0f} MB free of {usage.total / 2**20:,.0f} MB "
        f"(degraded below {degraded_mb} MB, unhealthy below {unhealthy_mb} MB)",
        started,
        free_bytes=usage.free,
        total_bytes=usage.total,
    )


def processor_availability(settings: Settings, name: str) -> tuple[bool, str]:
    """(available, why) for one NLP processor, from the registry's own cheap check: it imports only our
    processor module (find_spec and file checks inside), never spaCy, Natasha, Stanza or torch."""
    from bookreader_cli.nlp.processors import check

    available, why, _ = check(name, settings.nlp)
    return available, why


def check_processors(settings: Settings) -> dict[str, dict]:
    checks = {}
    for name in settings.nlp.processors:
        started = time.perf_counter()
        try:
            available, why = processor_availability(settings, name)
        except Exception as exc:  # a broken install is a finding, not a crash
            available, why = False, f"{type(exc).__name__}: {exc}"
        # one processor missing weakens the ensemble's vote, it does not stop the tool: degraded
        checks[f"nlp_{name}"] = _check(HEALTHY if available else DEGRADED, why, started, available=available)
    return checks


def check_image_api(base_url: str, timeout: float) -> dict:
    """Any HTTP answer from the image API's base URL counts as reachable; 5xx or no answer is degraded
    (images cannot be made, everything else still works)."""
    import httpx

    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.get(base_url, headers={"User-Agent": "bookreader-health"})
    except httpx.HTTPError as exc:
        return _check(DEGRADED, f"{base_url}: unreachable: {type(exc).__name__}: {exc}", started, url=base_url)
    status = DEGRADED if response.status_code >= 500 else HEALTHY
    return _check(
        status, f"{base_url}: HTTP {response.status_code}", started, url=base_url, http_status=response.status_code
    )


def check_cache_index(cache_dir: Path) -> dict:
    """`PRAGMA quick_check` of the EPUB cache's index (diskcache's cache.db). The cache is disposable:
    its next use moves a damaged one aside and starts afresh (cache.py), so this only reports."""
    from bookreader_cli.cache import index_damage, index_path

    started = time.perf_counter()
    path = index_path(cache_dir)
    if not path.is_file():
        return _check(HEALTHY, f"{path}: none yet", started, path=str(path))
    damage = index_damage(cache_dir)
    if damage:
        return _check(
            UNHEALTHY,
            f"{path}: damaged ({'; '.join(damage)}); its next use moves it aside and rebuilds it",
            started,
            path=str(path),
            findings=damage,
        )
    return _check(HEALTHY, f"{path}: quick_check ok", started, path=str(path))


def health(
    settings: Settings,
    conn: sqlite3.Connection | None,
    network: bool = False,
    store_error: str | None = None,
    damage: list[str] | None = None,
) -> dict:
    """Run every check; the overall status is the worst of them. Keys of the seed's health_check kept.
    `damage`: the database's quick_check findings when the caller ran it already ([] = sound)."""
    started = time.perf_counter()
    checks = {"database": check_database(conn, store_error, damage=damage)}
    checks["cache_dir"] = check_dir_writable(settings.cache_dir)
    checks["cache_index"] = check_cache_index(settings.cache_dir)
    checks["images_dir"] = check_dir_writable(settings.images_dir)
    checks["disk"] = check_disk(settings.home, settings.health.disk_degraded_mb, settings.health.disk_unhealthy_mb)
    checks.update(check_processors(settings))
    if network:
        checks["image_api"] = check_image_api(settings.images.base_url, settings.health.network_timeout)
    status = max((c["status"] for c in checks.values()), key=_SEVERITY.__getitem__)
    return {
        "status": status,
        "worker_id": f"bookreader@{socket.gethostname()}",
        "pid": os.getpid(),
        "timestamp": iso_timestamp(time.time()),
        "response_time_ms": round((time.perf_counter() - started) * 1000, 2),
        "problems": [f"{name}: {c['detail']}" for name, c in checks.items() if c["status"] != HEALTHY],
        "checks": checks,
    }


__all__ = [
    "DEGRADED",
    "HEALTHY",
    "RUN_QUEUES",
    "STATES",
    "UNHEALTHY",
    "check_cache_index",
    "check_database",
    "check_dir_writable",
    "check_disk",
    "check_image_api",
    "check_processors",
    "collect_stats",
    "dir_size",
    "health",
    "quick_check",
    "to_prometheus",
]
