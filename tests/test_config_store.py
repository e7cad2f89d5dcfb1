"""Settings precedence and the store's migrations, on a real SQLite file."""

import pytest

from bookreader_cli.config import load_settings
from bookreader_cli.errors import BadInput
from bookreader_cli.store import MIGRATIONS, Store


def test_every_path_derives_from_home(tmp_path):
    s = load_settings(tmp_path, environ={})
    assert s.db_path == tmp_path / "bookreader.db"
    assert s.cache_dir == tmp_path / "cache" and s.images_dir == tmp_path / "images"
    assert s.stanza_dir == tmp_path / "models" / "stanza"


def test_home_from_environment(tmp_path):
    assert load_settings(environ={"BOOKREADER_HOME": str(tmp_path)}).home == tmp_path.resolve()


def test_config_file_then_environment(tmp_path):
    (tmp_path / "config.toml").write_text(
        "[nlp]\nthreshold = 0.5\nweights = {spacy = 2, natasha = 1.0}\n[cache]\nttl_seconds = 60\n"
    )
    s = load_settings(tmp_path, environ={})
    assert s.nlp.threshold == 0.5 and s.nlp.weights == {"spacy": 2, "natasha": 1.0}
    assert s.cache.ttl_seconds == 60
    s = load_settings(
        tmp_path, environ={"BOOKREADER_NLP_THRESHOLD": "0.7", "BOOKREADER_NLP_PROCESSORS": "natasha,spacy"}
    )
    assert s.nlp.threshold == 0.7 and s.nlp.processors == ["natasha", "spacy"]


@pytest.mark.parametrize("text", ["[nlp]\nthreshold = 'high'\n", "[nlp]\nbogus = 1\n", "not toml ["])
def test_bad_config_is_bad_input(tmp_path, text):
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(BadInput):
        load_settings(tmp_path, environ={})


def test_bad_environment_value(tmp_path):
    with pytest.raises(BadInput, match="BOOKREADER_NLP_WORKERS"):
        load_settings(tmp_path, environ={"BOOKREADER_NLP_WORKERS": "many"})


def test_migrations_run_once_and_wal(tmp_path):
    store = Store(tmp_path / "x.db")
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"books", "chapters", "descriptions", "images", "task_runs", "locks"} <= set(store.db.table_names())
    store.close()
    Store(tmp_path / "x.db").close()  # reopening does not re-run migrations (they would fail)


def test_transaction_rolls_back(tmp_path):
    store = Store(tmp_path / "x.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.db["task_runs"].insert({"id": "a", "task": "t", "state": "PENDING"})
        raise RuntimeError("boom")
    assert store.db["task_runs"].count == 0


def test_config_command(cli, home):
    res = cli("config", "--json")
    assert res.code == 0, res.stderr
    data = res.json()
    assert data["paths"]["database"] == str(home.resolve() / "bookreader.db")
    assert data["nlp"]["weights"] == {"spacy": 1.0, "natasha": 1.2, "stanza": 0.8}


def test_version_and_help(cli):
    assert cli("--version").stdout.startswith("bookreader ")
    res = cli("--help")
    assert res.code == 0 and "books" in res.stdout


def test_unknown_id_is_exit_2_with_one_line(cli, home):
    res = cli("books", "show", "999")
    assert res.code == 2
    assert res.stderr.strip().count("\n") == 0 and "no book with id" in res.stderr
    res = cli("books", "show", "999", "--json")
    assert res.code == 2 and res.stdout == ""
    import json

    assert json.loads(res.stderr)["exit_code"] == 2


def test_a_stdout_that_fails_is_one_line_not_a_traceback(home):
    import os
    import subprocess
    import sys

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    env = dict(os.environ, BOOKREADER_HOME=str(home), NO_COLOR="1")
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "bookreader_cli", "config", "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            check=False,
        )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: cannot write output: No space left on device"]
