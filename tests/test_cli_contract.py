"""The stdout/stderr/exit-code contract, checked in-process with Typer's CliRunner (fast: no interpreter
start-up per command). The subprocess tests elsewhere check the same contract end to end.

Contract: data (JSON with --json) on stdout and nothing else; one line on stderr for an error (a JSON
object with --json); exit 0 success, 1 the job ran and failed, 2 bad usage or bad input (nothing changed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bookreader_cli import __version__
from bookreader_cli.cli import app
from bookreader_cli.cli.common import exit_code
from bookreader_cli.errors import BadInput, Busy, JobFailed, NotAnEpub, NotFound, UnreadableBook

SAMPLES = Path(__file__).resolve().parents[1] / "sample_books"


@pytest.fixture
def run(tmp_path):
    runner = CliRunner(env={"NO_COLOR": "1", "BOOKREADER_CONFIG": None, "BOOKREADER_HOME": None})
    home = tmp_path / "home"

    def invoke(*args: str):
        return runner.invoke(app, ["--home", str(home), *map(str, args)])

    invoke.home = home
    return invoke


def test_version_on_stdout(run):
    result = run("--version")
    assert result.exit_code == 0 and result.stdout == f"bookreader {__version__}\n" and result.stderr == ""


def test_json_result_is_one_document_on_stdout(run):
    result = run("books", "import", SAMPLES / "ru_sample.fb2", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["errors"] == [] and data["imported"][0]["status"] == "imported"
    assert result.stderr == ""
    listed = json.loads(run("--json", "books", "list").stdout)  # --json before the command works too
    assert [b["id"] for b in listed["books"]] == [data["imported"][0]["book_id"]]


def test_unknown_book_is_exit_2_with_one_json_error_line(run):
    result = run("books", "show", "999", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert json.loads(result.stderr) == {"error": "no book with id 999", "exit_code": 2}


def test_bad_option_value_is_exit_2_plain_line(run):
    result = run("descriptions", "1", "--format", "xml")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "error: --format: expected one of table, json, jsonl, csv\n"


def test_unknown_mode_and_processor_have_one_message(run):
    mode = run("nlp", "Тёмный лес.", "--mode", "sideways")
    assert mode.exit_code == 2
    assert mode.stderr == (
        "error: unknown mode 'sideways': expected one of single, parallel, sequential, ensemble, adaptive\n"
    )
    proc = run("nlp", "Тёмный лес.", "--processors", "spacy,gpt")
    assert proc.exit_code == 2 and proc.stderr.startswith("error: unknown processor(s) gpt: expected some of spacy")


def test_a_job_that_cannot_run_now_is_exit_1(run):
    from bookreader_cli.config import load_settings
    from bookreader_cli.locks import db_lock
    from bookreader_cli.store import Store

    store = Store(load_settings(run.home, environ={}).db_path)
    try:
        with db_lock(store, "cron:stats"):
            result = run("cron", "stats")
    finally:
        store.close()
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: scheduled job 'stats' is already running: held by pid")
    assert result.stderr.count("\n") == 1


def test_an_epub_only_command_refuses_another_format_without_importing_it(run):
    result = run("cfi", SAMPLES / "ru_sample.fb2", "--json")
    assert result.exit_code == 2
    assert "CFIs exist only for EPUB books" in json.loads(result.stderr)["error"]
    assert json.loads(run("books", "list", "--json").stdout)["books"] == []


def test_exit_codes_live_in_one_place():
    for error in (BadInput("x"), NotFound("x"), UnreadableBook("x"), NotAnEpub("x")):
        assert exit_code(error) == 2
    assert exit_code(JobFailed("x")) == 1 and exit_code(Busy("x")) == 1
    assert exit_code(KeyboardInterrupt()) == 130


def test_health_checks_each_processor_with_its_nlp_settings(run):
    """The health check builds each processor from settings.nlp (a whole Settings made them unimportable)."""
    result = run("health", "--json")
    checks = json.loads(result.stdout)["checks"]
    for name in ("nlp_spacy", "nlp_natasha", "nlp_stanza"):
        assert "cannot import" not in checks[name]["detail"], checks[name]
        assert "AttributeError" not in checks[name]["detail"], checks[name]
