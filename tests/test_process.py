"""`process`, `nlp`, `descriptions` and `models` through the real CLI, with the real NLP processors."""

import csv
import io
import json
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import SAMPLES, db_snapshot

FB2 = SAMPLES / "ru_sample.fb2"


def _descriptions(home) -> list[tuple]:
    conn = sqlite3.connect(home / "bookreader.db")
    rows = conn.execute(
        "SELECT chapter_idx, start, end, type, text FROM descriptions ORDER BY chapter_idx, start"
    ).fetchall()
    conn.close()
    return rows


def _offsets_hold(home) -> None:
    conn = sqlite3.connect(home / "bookreader.db")
    rows = conn.execute(
        "SELECT c.text, d.start, d.end, d.text FROM descriptions d JOIN chapters c ON c.id = d.chapter_id"
    )
    for chapter_text, start, end, text in rows:
        assert chapter_text[start:end] == text
    conn.close()


def test_process_spacy_then_descriptions_formats(cli, home):
    res = cli("process", FB2, "--processors", "spacy", "--mode", "single", "--json")
    assert res.code == 0, res.stderr
    result = res.json()
    for key in (
        "book_id",
        "total_chapters",
        "descriptions_found",
        "processing_time_seconds",
        "status",
        "nlp_processors_used",
        "ensemble_consensus_rate",
        "cfi_locations_generated",
        "cache_status",
    ):
        assert key in result
    assert result["nlp_processors_used"] == ["spacy"] and result["descriptions_found"] > 0
    assert result["total_chapters"] == result["chapters_processed"] == 4
    _offsets_hold(home)

    listed = cli("descriptions", str(result["book_id"]), "--format", "json").json()
    assert listed["count"] == result["descriptions_found"]
    priorities = [d["priority"] for d in listed["descriptions"]]
    assert priorities == sorted(priorities, reverse=True)

    top = cli("descriptions", str(result["book_id"]), "--top", "3", "--type", "location", "--format", "jsonl")
    lines = [json.loads(line) for line in top.stdout.splitlines()]
    assert 0 < len(lines) <= 3 and all(d["type"] == "location" for d in lines)

    table = list(csv.DictReader(io.StringIO(cli("descriptions", str(result["book_id"]), "--format", "csv").stdout)))
    assert len(table) == result["descriptions_found"] and {"id", "start", "end", "type", "text"} <= set(table[0])

    assert cli("descriptions", str(result["book_id"]), "--type", "dragon").code == 2


def test_reprocessing_replaces_descriptions(cli, home):
    first = cli("process", FB2, "--processors", "spacy", "--mode", "single", "--json").json()
    before = _descriptions(home)
    again = cli("process", str(first["book_id"]), "--processors", "spacy", "--mode", "single", "--json").json()
    assert again["chapters_processed"] == 4 and again["chapters_resumed"] == 0
    assert _descriptions(home) == before  # replaced, not duplicated


def test_killed_run_resumes_without_duplicates(cli, home):
    args = ["process", FB2, "--workers", "1", "--processors", "spacy,natasha", "--json"]
    reference = cli(*args).json()
    expected = _descriptions(home)
    assert reference["chapters_processed"] == 4
    # a second full run, killed after its first chapter is stored
    env = dict(__import__("os").environ, BOOKREADER_HOME=str(home), NO_COLOR="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bookreader_cli", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        conn = sqlite3.connect(home / "bookreader.db", timeout=30)
        done = conn.execute("SELECT count(*) FROM chapter_runs").fetchone()[0]
        conn.close()
        if 1 <= done < 4:
            break
        time.sleep(0.02)
    import os

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = cli(*args).json()
    assert resumed["chapters_resumed"] >= 1 and resumed["chapters_processed"] + resumed["chapters_resumed"] == 4
    assert _descriptions(home) == expected
    _offsets_hold(home)


def test_ensemble_with_every_available_processor(cli, home):
    res = cli("process", SAMPLES / "ru_sample.epub", "--json")
    assert res.code == 0, res.stderr
    result = res.json()
    models = cli("models", "--json").json()["processors"]
    available = [m["name"] for m in models if m["available"]]
    assert set(result["nlp_processors_used"]) == set(available)
    assert 0.0 <= result["ensemble_consensus_rate"] <= 1.0 and result["descriptions_found"] > 0
    _offsets_hold(home)


def test_nlp_command_offsets_into_the_given_text(cli):
    text = (
        "Над рекой висел густой белый туман, и мокрые ивы склонялись к самой воде.\n"
        "— Пойдём домой, — сказала она.\n"
        "Он подумал, что завтра надо бы написать брату."
    )
    res = cli("nlp", "-", "--json", input=text)
    assert res.code == 0, res.stderr
    result = res.json()
    assert result["descriptions_found"] == len(result["descriptions"]) >= 1
    for d in result["descriptions"]:
        assert text[d["start"] : d["end"]] == d["text"]
        assert "сказала" not in d["text"] and "подумал" not in d["text"]


def test_bad_engine_options_exit_2(cli, home):
    cli("books", "import", FB2)
    before = db_snapshot(home)
    assert cli("process", "1", "--mode", "telepathy").code == 2
    assert cli("process", "1", "--processors", "gpt").code == 2
    assert cli("process", "77").code == 2
    assert cli("nlp", "", "--json").code == 2
    assert db_snapshot(home) == before


def test_models_lists_every_processor(cli):
    res = cli("models", "--json")
    assert res.code == 0
    names = {m["name"]: m for m in res.json()["processors"]}
    assert set(names) == {"spacy", "natasha", "stanza"}
    for m in names.values():
        assert m["available"] or m["reason"]


def test_train_stanza_refuses_bad_options(cli, home, tmp_path):
    assert cli("models", "train-stanza", "--size", "huge").code == 2
    res = cli("models", "train-stanza", tmp_path / "missing.txt", "--out", tmp_path / "m")
    assert res.code == 2 and "not found" in res.stderr
    assert not (tmp_path / "m").exists()
