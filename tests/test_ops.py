"""`stats` and `health`: real counts from a real SQLite store, Prometheus text that parses, health checks
that find real problems (a database path that is a directory, a full-disk threshold, a dead image API)."""

from __future__ import annotations

import http.server
import json
import math
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bookreader_cli import ops, runs
from bookreader_cli.config import load_settings
from bookreader_cli.store import Store

SEED_STATS_KEYS = {
    "timestamp",
    "users_total",
    "books_total",
    "descriptions_total",
    "images_generated",
    "active_sessions",
    "celery_queue_lengths",
}
SEED_HEALTH_KEYS = {"status", "worker_id", "timestamp", "response_time_ms"}


def _fill(home: Path) -> Store:
    """Two books, three chapters, descriptions of three types, images of two users, and task runs."""
    settings = load_settings(home, environ={})
    store = Store(settings.db_path)
    c = store.conn
    for book_id in (1, 2):
        c.execute(
            "INSERT INTO books (id, sha256, format, title) VALUES (?, ?, 'txt', ?)",
            [book_id, f"{book_id:064x}", f"Book {book_id}"],
        )
    for chapter_id, book_id in ((1, 1), (2, 1), (3, 2)):
        c.execute(
            "INSERT INTO chapters (id, book_id, idx, text, char_count) VALUES (?, ?, ?, 'text', 4)",
            [chapter_id, book_id, chapter_id],
        )
    for type_, n in (("location", 3), ("character", 2), ("atmosphere", 1)):
        for _ in range(n):
            c.execute(
                "INSERT INTO descriptions (book_id, chapter_id, chapter_idx, start, end, text, type) "
                "VALUES (1, 1, 1, 0, 4, 'text', ?)",
                [type_],
            )
    for user, status in (
        ("anna", "completed"),
        ("anna", "completed"),
        ("boris", "completed"),
        ("boris", "failed"),
        (None, "completed"),
    ):
        c.execute("INSERT INTO images (description_id, book_id, user, status) VALUES (1, 1, ?, ?)", [user, status])
    runs.record(store, "process_book", "books", {}, dict)
    with pytest.raises(ValueError):
        runs.record(store, "generate_images", "images", {}, lambda: int("x"))
    c.execute(
        "INSERT INTO task_runs (id, task, queue, state, attempts, created_at) "
        "VALUES ('aa', 'process_book', 'books', 'PENDING', 0, 1)"
    )
    settings.images_dir.mkdir(parents=True, exist_ok=True)
    (settings.images_dir / "ab").mkdir()
    (settings.images_dir / "ab" / "one.png").write_bytes(b"x" * 1000)
    (settings.images_dir / "two.jpg").write_bytes(b"y" * 234)
    (settings.images_dir / "link.jpg").symlink_to(settings.images_dir / "two.jpg")  # not counted twice
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    (settings.cache_dir / "cache.db").write_bytes(b"z" * 4096)
    return store


# ---- stats ------------------------------------------------------------------------------------
def _no_broker() -> dict:
    """A broker URL on a port nothing listens on (a Redis on the default port must not change the figures)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"BOOKREADER_CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0"}


def test_stats_on_a_fresh_home_are_zeros(cli, home):
    result = cli("stats", "--json", env=_no_broker())
    assert result.code == 0, result.stderr
    stats = result.json()
    assert SEED_STATS_KEYS <= set(stats)
    assert stats["books_total"] == stats["descriptions_total"] == stats["images_generated"] == 0
    assert stats["users_total"] == 0
    assert set(stats["descriptions_by_type"]) >= {"location", "character", "atmosphere", "object"}
    assert stats["task_runs_waiting"] == {"books": 0, "images": 0, "cleanup": 0}
    assert stats["celery_queue_lengths"] is None  # no broker answered (tests/test_celery_faults.py: one does)
    assert stats["storage_bytes"]["database"] > 0  # the store was created
    assert stats["storage_bytes"]["images"] == 0 and stats["storage_bytes"]["cache"] == 0
    assert stats["collection_time_seconds"] >= 0
    assert stats["task_runs"]["cleanup"]["STARTED"] == 1  # the stats run itself, while it counted


def test_stats_count_what_is_stored(cli, home):
    _fill(home).close()
    stats = cli("stats", "--json", env=_no_broker()).json()
    assert stats["books_total"] == 2
    assert stats["chapters_total"] == 3
    assert stats["descriptions_total"] == 6
    assert stats["descriptions_by_type"] == {"location": 3, "character": 2, "atmosphere": 1, "object": 0}
    assert stats["images_generated"] == 4
    assert stats["images_by_status"] == {"completed": 4, "failed": 1}
    assert stats["users_total"] == 2
    assert stats["task_runs"]["books"]["SUCCESS"] == 1
    assert stats["task_runs"]["books"]["PENDING"] == 1
    assert stats["task_runs"]["images"]["FAILURE"] == 1
    assert stats["task_runs_waiting"] == {"books": 1, "images": 0, "cleanup": 0}
    assert stats["storage_bytes"]["images"] == 1234
    assert stats["storage_bytes"]["cache"] == 4096
    assert stats["storage_bytes"]["database"] > 0
    assert stats["storage_mb_total"] > 0
    shown = cli("runs", "show", stats["task_id"], "--json").json()
    assert shown["task"] == "system_stats" and shown["queue"] == "cleanup" and shown["state"] == "SUCCESS"


def test_stats_format_table_goes_to_stderr_and_bad_format_is_exit_2(cli):
    table = cli("stats")
    assert table.code == 0 and table.stdout == ""
    assert "books_total" in table.stderr and "Task runs" in table.stderr
    bad = cli("stats", "--format", "xml")
    assert bad.code == 2
    assert bad.stderr.strip() == "error: --format: expected one of table, json, prometheus"


# ---- Prometheus text format -------------------------------------------------------------------
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? (\S+)$")
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> dict[tuple[str, tuple], float]:
    """A strict little parser of the text exposition format: every line is HELP, TYPE or a sample; each
    metric's HELP and TYPE come before its samples; values are floats; no sample is repeated."""
    assert text.endswith("\n")
    samples: dict[tuple[str, tuple], float] = {}
    typed: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name) and doc and name not in helped, line
            helped.add(name)
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name) and kind in ("gauge", "counter", "untyped"), line
            assert name not in typed, f"TYPE twice for {name}"
            typed[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            assert name in typed and name in helped, f"sample before HELP/TYPE: {line!r}"
            pairs = tuple(
                (k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                for k, v in _LABEL_PAIR.findall(labels or "")
            )
            number = float(value)
            assert not math.isnan(number)
            assert (name, pairs) not in samples, f"duplicate sample {line!r}"
            samples[(name, pairs)] = number
    return samples


def test_prometheus_output_parses_and_carries_the_counts(cli, home):
    _fill(home).close()
    result = cli("stats", "--format", "prometheus")
    assert result.code == 0, result.stderr
    samples = parse_prometheus(result.stdout)
    assert samples[("bookreader_books_total", ())] == 2
    assert samples[("bookreader_chapters_total", ())] == 3
    assert samples[("bookreader_descriptions_total", (("type", "location"),))] == 3
    assert samples[("bookreader_descriptions_total", (("type", "object"),))] == 0
    assert samples[("bookreader_users_total", ())] == 2
    assert samples[("bookreader_images_total", (("status", "completed"),))] == 4
    assert samples[("bookreader_task_runs_total", (("queue", "books"), ("state", "SUCCESS")))] == 1
    assert samples[("bookreader_task_runs_total", (("queue", "images"), ("state", "FAILURE")))] == 1
    assert samples[("bookreader_storage_bytes", (("store", "images"),))] == 1234
    assert samples[("bookreader_storage_bytes", (("store", "database"),))] > 0
    assert abs(samples[("bookreader_stats_collected_timestamp_seconds", ())] - time.time()) < 600
    # every queue × state pair is present, so a dashboard's series never vanish
    assert sum(1 for name, _ in samples if name == "bookreader_task_runs_total") == 15


def test_prometheus_label_values_are_escaped(home):
    store = _fill(home)
    store.conn.execute("UPDATE descriptions SET type = ? WHERE id = 1", ['odd "type"\\with\nnewline'])
    stats = ops.collect_stats(load_settings(home, environ={}), store.conn)
    store.close()
    samples = parse_prometheus(ops.to_prometheus(stats))
    assert samples[("bookreader_descriptions_total", (("type", 'odd "type"\\with\nnewline'),))] == 1
    assert samples[("bookreader_descriptions_total", (("type", "location"),))] == 2


def test_dir_size_skips_symlinks_and_missing_dirs(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"1" * 10)
    (tmp_path / "a" / "g").write_bytes(b"1" * 5)
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    assert ops.dir_size(tmp_path / "a") == 15
    assert ops.dir_size(tmp_path / "missing") == 0


# ---- health -----------------------------------------------------------------------------------
def _health(cli, *args, env=None):
    result = cli("health", "--json", *args, env=env)
    data = json.loads(result.stdout)
    assert result.code == (1 if data["status"] == "unhealthy" else 0), result.stderr
    return result, data


def test_health_on_a_fresh_home_creates_the_store_and_leaves_nothing_behind(cli, home):
    _result, data = _health(cli)
    assert SEED_HEALTH_KEYS <= set(data)
    assert data["status"] in ("healthy", "degraded")
    assert data["response_time_ms"] > 0
    checks = data["checks"]
    assert {"database", "cache_dir", "images_dir", "disk"} <= set(checks)
    assert all(checks[name]["status"] == "healthy" for name in ("database", "cache_dir", "images_dir"))
    assert {f"nlp_{name}" for name in load_settings(home, environ={}).nlp.processors} <= set(checks)
    assert data["problems"] == [f"{n}: {c['detail']}" for n, c in checks.items() if c["status"] != "healthy"]
    assert (home / "bookreader.db").exists() and (home / "cache").is_dir() and (home / "images").is_dir()
    assert not [p for p in home.rglob(".health-*")]
    conn = sqlite3.connect(home / "bookreader.db")
    assert conn.execute("SELECT count(*) FROM locks").fetchone()[0] == 0  # the test write was rolled back
    assert conn.execute("SELECT task, queue, state FROM task_runs").fetchall() == [
        ("health_check", "cleanup", "SUCCESS")
    ]


def test_health_human_output_is_a_table_on_stderr(cli):
    result = cli("health")
    assert result.code in (0, 1)
    assert result.stdout == ""
    assert "health:" in result.stderr and "database" in result.stderr


def test_health_is_healthy_when_every_configured_processor_is_available(cli, home):
    settings = load_settings(home, environ={})
    from bookreader_cli.nlp.processors import check

    available = [name for name in settings.nlp.processors if check(name, settings)[0]]
    if not available:
        pytest.skip("no NLP processor is available here")
    _, data = _health(
        cli,
        env={
            "BOOKREADER_NLP_PROCESSORS": ",".join(available),
            "BOOKREADER_HEALTH_DISK_DEGRADED_MB": "1",
            "BOOKREADER_HEALTH_DISK_UNHEALTHY_MB": "0",
        },
    )
    assert data["status"] == "healthy", data["problems"]
    assert data["problems"] == []


def test_an_unknown_processor_is_a_bad_setting_not_a_crash(cli):
    """Issue 13 (22): unknown processor names are refused when a command starts, health included."""
    result = cli("health", "--json", env={"BOOKREADER_NLP_PROCESSORS": "nosuch"})
    assert result.code == 2 and result.stdout == ""
    assert "setting nlp.processors = ['nosuch'] (from BOOKREADER_NLP_PROCESSORS)" in json.loads(result.stderr)["error"]


def test_low_disk_thresholds_give_degraded_then_unhealthy(cli):
    huge = str(10**12)  # MB: more free space than any disk has
    _, degraded = _health(cli, env={"BOOKREADER_HEALTH_DISK_DEGRADED_MB": huge})
    assert degraded["checks"]["disk"]["status"] == "degraded"
    assert degraded["status"] in ("degraded", "unhealthy") and degraded["status"] != "healthy"
    result, unhealthy = _health(cli, env={"BOOKREADER_HEALTH_DISK_UNHEALTHY_MB": huge})
    assert unhealthy["checks"]["disk"]["status"] == "unhealthy"
    assert unhealthy["status"] == "unhealthy" and result.code == 1
    assert unhealthy["checks"]["disk"]["free_bytes"] > 0


def test_a_database_that_cannot_be_opened_is_unhealthy_exit_1(cli, home):
    (home / "bookreader.db").mkdir()  # a directory where the database file should be
    result, data = _health(cli)
    assert result.code == 1
    assert data["status"] == "unhealthy"
    assert data["checks"]["database"]["status"] == "unhealthy"
    assert "database" in data["problems"][0]
    assert data["checks"]["cache_dir"]["status"] == "healthy"  # the other checks still ran


def test_an_images_dir_that_is_a_file_is_unhealthy(cli, home):
    (home / "images").write_text("not a directory")
    result, data = _health(cli)
    assert result.code == 1
    assert data["checks"]["images_dir"]["status"] == "unhealthy"
    assert data["checks"]["database"]["status"] == "healthy"


def test_check_database_rolls_back_its_write(home):
    store = Store(load_settings(home, environ={}).db_path)
    check = ops.check_database(store.conn)
    assert check["status"] == "healthy" and check["journal_mode"] == "wal"
    assert store.conn.execute("SELECT count(*) FROM locks").fetchone()[0] == 0
    assert not store.conn.in_transaction
    # a database another process holds for writing is reported as busy (degraded), without waiting 30 s
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        busy = ops.check_database(store.conn, busy_ms=50)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert busy["status"] == "degraded" and "locked" in busy["detail"]
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000  # restored
    store.close()


def test_health_and_stats_import_no_heavy_library(cli, home):
    """What keeps them fast: no spaCy/Natasha/Stanza/torch, and no sqlite-utils once the schema exists."""
    cli("health", "--json")  # create and migrate the store first
    probe = (
        "import sys\n"
        "from bookreader_cli.cli import app\n"
        "for args in (['health', '--json'], ['stats', '--json']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('spacy', 'torch', 'natasha', 'stanza', 'numpy', 'sqlite_utils', 'httpx')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", "import json\n" + probe],
        capture_output=True,
        text=True,
        env={"BOOKREADER_HOME": str(home), "NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []


# ---- health --network against a local server ---------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        body = b"image api"
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def image_api():
    servers = []

    def start(status: int = 200) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.status = status
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_network_check_reaches_a_local_image_api(cli, image_api):
    url = image_api(200)
    _, data = _health(cli, "--network", env={"BOOKREADER_IMAGES_BASE_URL": url})
    check = data["checks"]["image_api"]
    assert check["status"] == "healthy" and check["http_status"] == 200 and check["url"] == url


def test_network_check_reports_5xx_as_degraded(cli, image_api):
    _, data = _health(cli, "--network", env={"BOOKREADER_IMAGES_BASE_URL": image_api(503)})
    assert data["checks"]["image_api"]["status"] == "degraded"
    assert data["checks"]["image_api"]["http_status"] == 503


def test_network_check_against_a_closed_port_is_degraded(cli):
    url = f"http://127.0.0.1:{_closed_port()}"
    _, data = _health(
        cli, "--network", env={"BOOKREADER_IMAGES_BASE_URL": url, "BOOKREADER_HEALTH_NETWORK_TIMEOUT": "2"}
    )
    check = data["checks"]["image_api"]
    assert check["status"] == "degraded"
    assert "unreachable" in check["detail"]
    assert data["status"] != "healthy"


def test_without_network_the_image_api_is_not_checked(cli):
    _, data = _health(cli, env={"BOOKREADER_IMAGES_BASE_URL": f"http://127.0.0.1:{_closed_port()}"})
    assert "image_api" not in data["checks"]
