"""`bookreader schedule` (crontab lines) and `bookreader cron JOB` (the locked, logged run cron calls)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from bookreader_cli.jobs import cron as schedule
from bookreader_cli.locks import db_lock
from bookreader_cli.store import Store

CRON_FIELD = re.compile(r"^(\*|\*/\d+|\d+)$")


def _jobs(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("#")]


def test_lines_match_the_beat_schedule(tmp_path):
    lines = schedule.crontab_lines(tmp_path, ["/opt/venv/bin/bookreader"])
    jobs = _jobs(lines)
    assert jobs == [
        f"0 3 * * * BOOKREADER_HOME={tmp_path} /opt/venv/bin/bookreader cron cleanup",
        f"*/30 * * * * BOOKREADER_HOME={tmp_path} /opt/venv/bin/bookreader cron stats",
    ]
    for line in jobs:
        assert all(CRON_FIELD.match(f) for f in line.split()[:5])


def test_paths_are_quoted_and_percent_escaped(tmp_path):
    home = tmp_path / "my home 100%"
    line = _jobs(schedule.crontab_lines(home, ["/x y/bookreader"]))[0]
    assert f"BOOKREADER_HOME='{tmp_path}/my home 100\\%'" in line
    assert "'/x y/bookreader' cron cleanup" in line
    assert "%" not in line.replace("\\%", "")  # a bare % would end the command in cron


def test_default_command_is_an_absolute_path_to_this_bookreader():
    command = schedule.bookreader_command()
    assert Path(command[0]).is_absolute() and Path(command[0]).exists()


def test_cli_prints_lines_on_stdout(cli, home):
    result = cli("schedule")
    assert result.code == 0
    lines = result.stdout.strip().splitlines()
    assert len(_jobs(lines)) == 2
    for line in _jobs(lines):
        env, exe = line.split()[5:7]
        assert env == f"BOOKREADER_HOME={home}"
        assert Path(exe).is_absolute() and Path(exe).exists()
    data = cli("schedule", "--json").json()
    assert data["lines"] == lines
    assert {j["name"] for j in data["jobs"]} == {"cleanup", "stats"}


def _cron_shell(line: str, home: Path) -> subprocess.CompletedProcess:
    """Run a crontab line's command the way cron does: % unescaped, /bin/sh, a bare environment."""
    command = " ".join(line.split()[5:]).replace("\\%", "%")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_printed_stats_line_runs_and_appends_json_lines(cli, home):
    stats_line = next(l for l in _jobs(cli("schedule").stdout.splitlines()) if l.endswith("cron stats"))
    for _ in range(2):
        proc = _cron_shell(stats_line, home)
        assert proc.returncode == 0, proc.stderr
    records = [json.loads(l) for l in (home / "logs" / "stats.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for record in records:
        assert record["job"] == "stats" and record["status"] == "ok"
        assert {"books_total", "descriptions_total"} <= set(record["result"])


def test_overlapping_cron_run_is_busy_and_logs_nothing(cli, home):
    store = Store(home / "bookreader.db")
    try:
        with db_lock(store, "cron:stats"):
            result = cli("cron", "stats")
            assert result.code == 1
            assert len(result.stderr.strip().splitlines()) == 1 and "already running" in result.stderr
            assert "Traceback" not in result.stderr
            waited = cli("cron", "stats", "--wait", "--timeout", "0.5")
            assert waited.code == 1 and "waited 0.5s" in waited.stderr
        assert not (home / "logs" / "stats.jsonl").exists()
        assert cli("cron", "stats").code == 0  # free again
    finally:
        store.close()
    assert len((home / "logs" / "stats.jsonl").read_text().splitlines()) == 1


def test_unknown_job_is_bad_input(cli, home):
    result = cli("cron", "backup")
    assert result.code == 2
    assert "unknown scheduled job 'backup'" in result.stderr


def test_a_failing_job_is_logged_and_exits_1(home, monkeypatch):
    from bookreader_cli import jobs as tasks
    from bookreader_cli.cli.common import exit_code
    from bookreader_cli.config import load_settings
    from bookreader_cli.errors import JobFailed

    def broken(ctx):
        raise JobFailed("disk on fire")

    monkeypatch.setattr(tasks, "system_stats", broken)
    ctx = tasks.Context(load_settings(home))
    try:
        try:
            schedule.run_job(ctx, "stats")
        except JobFailed as exc:
            assert exit_code(exc) == 1
        else:
            raise AssertionError("expected JobFailed")
    finally:
        ctx.close()
    record = json.loads((home / "logs" / "stats.jsonl").read_text())
    assert record["status"] == "failed" and "disk on fire" in record["error"]
