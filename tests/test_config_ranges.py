"""Issue 13, item 22 (part): settings that parse but make no sense, and a home that is a file, are one
clear BadInput line (exit 2) at load, before any command touches the home."""

from __future__ import annotations

import json

import pytest

from bookreader_cli.config import load_settings
from bookreader_cli.errors import BadInput
from bookreader_cli.jobs.context import Context


@pytest.mark.parametrize(
    "toml,expect",
    [
        ("[nlp]\nthreshold = 5\n", "setting nlp.threshold = 5.0 (from config file"),
        ("[nlp]\nworkers = 0\n", "setting nlp.workers = 0"),
        ("[nlp.weights]\nspacy = -1.0\n", "setting nlp.weights"),
        ("[cache]\nttl_seconds = -5\n", "setting cache.ttl_seconds = -5"),
        ("[cfi]\ncount = 0\n", "setting cfi.count = 0"),
        ("[images]\nwidth = 100000\n", "setting images.width = 100000"),
        ("[images]\nconcurrency = 0\n", "setting images.concurrency = 0"),
        ("[celery]\ntime_limit = 10\nsoft_time_limit = 20\n", "setting celery.time_limit = 10"),
        ("[health]\ndisk_degraded_mb = -10\n", "setting health.disk_degraded_mb = -10"),
        ("runs_keep_days = -1\n", "setting runs_keep_days = -1"),
    ],
)
def test_out_of_range_config_values_are_refused(tmp_path, toml, expect):
    (tmp_path / "config.toml").write_text(toml)
    with pytest.raises(BadInput) as info:
        load_settings(tmp_path, environ={})
    assert expect in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "toml,expect",
    [
        ('[nlp]\nprocessors = ["spacy", "bert"]\n', "unknown: bert"),
        ("[nlp]\nprocessors = []\n", "setting nlp.processors = []"),
        ('[nlp]\nmode = "fastest"\n', "setting nlp.mode = 'fastest' (from config file"),
        ("[nlp.weights]\nbert = 1.0\n", "setting nlp.weights"),
    ],
)
def test_unknown_nlp_names_are_refused_by_every_job_context(tmp_path, toml, expect):
    (tmp_path / "config.toml").write_text(toml)
    settings = load_settings(tmp_path, environ={})  # config.py knows no processor names (a lower layer)
    with pytest.raises(BadInput) as info:
        Context(settings)
    assert expect in str(info.value) and "\n" not in str(info.value)


def test_environment_values_are_checked_and_named(tmp_path):
    with pytest.raises(BadInput, match=r"nlp.threshold = 5.0 \(from BOOKREADER_NLP_THRESHOLD\)"):
        load_settings(tmp_path, environ={"BOOKREADER_NLP_THRESHOLD": "5"})
    with pytest.raises(BadInput, match=r"cache.ttl_seconds = -5 \(from BOOKREADER_CACHE_TTL_SECONDS\)"):
        load_settings(tmp_path, environ={"BOOKREADER_CACHE_TTL_SECONDS": "-5"})


def test_defaults_and_edge_values_pass(tmp_path):
    load_settings(tmp_path, environ={})
    (tmp_path / "config.toml").write_text("[nlp]\nthreshold = 1\nworkers = 1\n[images]\nrate_per_second = 0\n")
    settings = load_settings(tmp_path, environ={})
    assert settings.nlp.threshold == 1.0 and settings.nlp.workers == 1


@pytest.mark.parametrize(
    "env",
    [
        {"BOOKREADER_NLP_THRESHOLD": "5"},
        {"BOOKREADER_CACHE_TTL_SECONDS": "-5"},
        {"BOOKREADER_NLP_PROCESSORS": "spacy,bert"},
        {"BOOKREADER_NLP_WORKERS": "0"},
    ],
)
def test_cli_bad_setting_is_exit_2_one_line_and_home_untouched(cli, home, env):
    res = cli("books", "list", env=env)
    assert res.code == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: setting ") and "Traceback" not in res.stderr
    res = cli("books", "list", "--json", env=env)
    assert res.code == 2 and json.loads(res.stderr)["exit_code"] == 2
    assert list(home.iterdir()) == []


def test_home_that_is_a_file_is_exit_2(cli, tmp_path):
    a_file = tmp_path / "hostname"
    a_file.write_text("box\n")
    for home in (a_file, a_file / "below"):
        res = cli("--home", str(home), "books", "list")
        assert res.code == 2, res.stderr  # before: exit 1 FileExistsError / NotADirectoryError
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and f"home {home}: not a directory" in lines[0]
    assert a_file.read_text() == "box\n"
