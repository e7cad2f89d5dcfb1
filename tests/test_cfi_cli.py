"""`cfi` and `cache` through the real CLI: locations as epub.js saves them, CFIs of descriptions, the EPUB cache.

The CFI algorithms themselves are tested against epub.js in test_cfi.py; here we check the wiring: what is
stored, printed and written, what is refused, and that a description's stored CFI leads back to its text.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLES, db_snapshot
from epubjs_helper import epubjs_available, run_epubjs

from bookreader_cli.epubcfi.locations import chars_for_count, generate_locations, percentage_from_cfi
from bookreader_cli.epubcfi.resolve import resolve_text

RU_EPUB = SAMPLES / "ru_sample.epub"
EN_EPUB = SAMPLES / "en_sample.epub"


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def _book_row(home: Path, book_id: int) -> tuple:
    conn = sqlite3.connect(home / "bookreader.db")
    row = conn.execute("SELECT locations, locations_chars FROM books WHERE id = ?", [book_id]).fetchone()
    conn.close()
    return row


def _raw_stdout(home: Path, *args) -> tuple[int, bytes, str]:
    """Like the `cli` fixture, but stdout as the bytes written (for `-o -`)."""
    env = dict(os.environ, BOOKREADER_HOME=str(home), NO_COLOR="1")
    env.pop("BOOKREADER_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bookreader_cli", *map(str, args)],
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# ---- locations ------------------------------------------------------------------------------------------
def test_cfi_chars_writes_exactly_what_epubjs_saves(cli, home, tmp_path):
    expected = generate_locations(RU_EPUB, 150)
    saved = json.dumps(expected, ensure_ascii=False, separators=(",", ":"))  # JSON.stringify(locations)
    out = tmp_path / "locations.json"
    res = cli("cfi", RU_EPUB, "--chars", "150", "--output", out, "--json")
    assert res.code == 0, res.stderr
    result = res.json()
    assert {k: result[k] for k in ("book_id", "locations_generated", "file_format", "status", "chars")} == {
        "book_id": 1,
        "locations_generated": len(expected),
        "file_format": "epub",
        "status": "completed",
        "chars": 150,
    }
    assert result["generation_time_seconds"] >= 0 and result["output"] == str(out)
    assert out.read_text(encoding="utf-8") == saved
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers
    assert _book_row(home, 1) == (saved, 150)  # stored with the book

    # the other spelling, and stdout: the data alone on stdout, the summary (JSON here) on stderr
    code, stdout, stderr = _raw_stdout(home, "cfi", "generate", "1", "--chars", "150", "-o", "-", "--json")
    assert code == 0, stderr
    assert stdout == saved.encode("utf-8")
    assert json.loads(stderr)["locations_generated"] == len(expected)

    runs = cli("runs", "list", "--task", "generate_cfi_locations", "--json").json()["runs"]
    assert len(runs) == 2 and {r["state"] for r in runs} == {"SUCCESS"} and runs[0]["queue"] == "books"


def test_cfi_count_default_and_explicit(cli, home):
    res = cli("cfi", EN_EPUB, "--json")
    assert res.code == 0, res.stderr
    result = res.json()
    assert result["requested_count"] == 2000
    assert result["chars"] == chars_for_count(EN_EPUB, 2000)
    assert result["locations_generated"] == len(generate_locations(EN_EPUB, result["chars"]))

    result = cli("cfi", "1", "--count", "40", "--json").json()
    assert result["chars"] == chars_for_count(EN_EPUB, 40) and abs(result["locations_generated"] - 40) <= 4
    stored, chars = _book_row(home, 1)
    assert chars == result["chars"] and len(json.loads(stored)) == result["locations_generated"]

    for bad in (["--chars", "0"], ["--count", "-3"], ["--chars", "10", "--count", "10"]):
        res = cli("cfi", "1", *bad)
        assert res.code == 2 and _one_error_line(res.stderr).startswith("error:")


def test_resolve_and_percentages_round_trip(cli, home):
    # no stored locations yet: from-percentage makes them (default count) and stores them
    first = cli("cfi", "from-percentage", RU_EPUB, "0.5", "--json")
    assert first.code == 0, first.stderr
    assert first.json()["locations_source"] == "generated"
    locations = json.loads(_book_row(home, 1)[0])
    assert len(locations) == first.json()["locations"]

    for fraction in (0, 0.25, 0.5, 0.9, 1):
        cfi = cli("cfi", "from-percentage", "1", str(fraction), "--json").json()
        assert cfi["locations_source"] == "stored"
        back = cli("cfi", "to-percentage", "1", cfi["cfi"], "--json").json()
        assert back["percentage"] == percentage_from_cfi(locations, cfi["cfi"])
        assert abs(back["percentage"] - fraction) <= 2 / len(locations)

    chapters = cli("books", "show", "1", "--json").json()["chapters"]
    conn = sqlite3.connect(home / "bookreader.db")
    texts = dict(conn.execute("SELECT idx, text FROM chapters WHERE book_id = 1"))
    conn.close()
    for location in (locations[0], locations[len(locations) // 2], locations[-1]):
        res = cli("cfi", "resolve", "1", location, "--json")
        assert res.code == 0, res.stderr
        where = res.json()
        assert where["chapter_title"] == chapters[where["chapter_index"]]["title"]
        text = texts[where["chapter_index"]]
        assert where["snippet"] == text[where["offset"] : where["offset"] + len(where["snippet"])]
        # the location's own text starts where resolve says (our text collapses whitespace)
        assert _squeeze(text[where["offset"] :]).startswith(_squeeze(resolve_text(RU_EPUB, location))[:20].strip())

    for bad in (["resolve", "1", "not-a-cfi"], ["to-percentage", "1", "/6/4!/2"], ["from-percentage", "1", "1.5"]):
        res = cli("cfi", *bad)
        assert res.code == 2 and _one_error_line(res.stderr).startswith("error:")


def test_non_epub_books_are_refused_without_changes(cli, home):
    fb2 = SAMPLES / "ru_sample.fb2"
    assert cli("books", "list").code == 0  # the (empty) database exists
    before = db_snapshot(home)
    for args in (
        ["cfi", fb2],
        ["cfi", fb2, "--chars", "150"],
        ["cfi", "resolve", fb2, "epubcfi(/6/4!/4/2/1:0)"],
        ["cache", "put", fb2],
    ):
        res = cli(*args)
        assert res.code == 2
        line = _one_error_line(res.stderr)
        assert "EPUB" in line and "FB2" in line
        assert db_snapshot(home) == before  # not even imported

    assert cli("books", "import", SAMPLES / "ru_sample.txt").code == 0
    before = db_snapshot(home)
    res = cli("cfi", "1", "--json")
    assert res.code == 2 and "CFIs exist only for EPUB books" in json.loads(res.stderr)["error"]
    for args in (["cfi", "from-percentage", "1", "0.5"], ["cache", "put", "1"], ["cache", "get", "1", "-o", "-"]):
        res = cli(*args)
        assert res.code == 2 and "EPUB" in _one_error_line(res.stderr)
    assert db_snapshot(home) == before


# ---- descriptions get CFI ranges ----------------------------------------------------------------------------
def test_process_stores_a_cfi_per_description_that_resolves_to_its_text(cli, home):
    res = cli("process", RU_EPUB, "--processors", "spacy", "--mode", "single", "--workers", "1", "--json")
    assert res.code == 0, res.stderr
    result = res.json()
    assert result["descriptions_found"] > 0 and result["descriptions_without_cfi"] == 0
    assert result["cfi_locations_generated"] == len(generate_locations(RU_EPUB, result["locations_chars"])) > 0
    assert result["cfi_locations_generated"] == len(json.loads(_book_row(home, 1)[0]))
    assert result["cache_status"] == "cached"

    descriptions = cli("descriptions", "1", "--format", "json").json()["descriptions"]
    assert len(descriptions) == result["descriptions_found"]
    for d in descriptions:
        assert d["cfi"] and d["cfi"].startswith("epubcfi(")
        assert _squeeze(resolve_text(RU_EPUB, d["cfi"])) == _squeeze(d["text"]), d["id"]
    if epubjs_available():  # what a reader highlights: epub.js's own getRange(cfi).toString()
        reference = run_epubjs({"epub": str(RU_EPUB), "ranges": [d["cfi"] for d in descriptions]})
        assert "error" not in reference, reference.get("error")
        assert [_squeeze(t or "") for t in reference["ranges"]] == [_squeeze(d["text"]) for d in descriptions]

    res = cli(
        "process", SAMPLES / "en_sample.txt", "--processors", "spacy", "--mode", "single", "--workers", "1", "--json"
    )
    assert res.code == 0, res.stderr
    assert (res.json()["cfi_locations_generated"], res.json()["cache_status"]) == (0, "not_applicable")


# ---- the EPUB cache ---------------------------------------------------------------------------------------
def test_cache_put_get_stats_clear(cli, home, tmp_path):
    original = RU_EPUB.read_bytes()
    res = cli("cache", "put", RU_EPUB, "--json")
    assert res.code == 0, res.stderr
    put = res.json()
    assert {k: put[k] for k in ("book_id", "cache_key", "file_size_bytes", "ttl_seconds", "status")} == {
        "book_id": 1,
        "cache_key": "epub:1",
        "file_size_bytes": len(original),
        "ttl_seconds": 86400,
        "status": "cached",
    }
    assert put["compression_ratio"] == round(put["compressed_size_bytes"] / len(original), 4)
    assert cli("cache", "put", "1", "--json").json()["status"] == "fresh"
    runs = cli("runs", "list", "--task", "cache_epub_file", "--json").json()["runs"]
    assert [r["state"] for r in runs] == ["SUCCESS", "SUCCESS"] and runs[0]["queue"] == "books"

    out = tmp_path / "copy.epub"
    got = cli("cache", "get", "1", "-o", out, "--json").json()
    assert got["status"] == "hit" and got["output"] == str(out)
    assert out.read_bytes() == original
    code, stdout, stderr = _raw_stdout(home, "cache", "get", "1", "-o", "-")
    assert code == 0 and stdout == original, stderr

    stats = cli("cache", "stats", "--json").json()
    assert stats["entries"] == 1 and stats["original_bytes"] == len(original) and stats["damaged_entries"] == 0
    assert stats["compressed_bytes"] == put["compressed_size_bytes"]
    assert oct((home / "cache").stat().st_mode & 0o777) == "0o700"

    assert cli("cache", "clear", "--expired", "--json").json()["removed"] == 0
    cleared = cli("cache", "clear", "--json").json()
    assert cleared["removed"] == 1 and cleared["remaining"] == 0
    assert cli("cache", "stats", "--json").json()["entries"] == 0
    # a get after clear rebuilds the entry from the file
    code, stdout, _ = _raw_stdout(home, "cache", "get", "1", "-o", "-")
    assert code == 0 and stdout == original


def test_source_file_gone_or_changed(cli, home, tmp_path):
    book = tmp_path / "book.epub"
    shutil.copyfile(RU_EPUB, book)
    assert cli("cache", "put", book).code == 0  # imports it as book 1 and caches it

    book.unlink()  # gone: the cache's verified copy of the book's bytes is served, with a warning
    out = tmp_path / "back.epub"
    res = cli("cache", "get", "1", "-o", out, "--json")
    assert res.code == 0, res.stderr
    assert res.json()["source"] == "cache" and "is gone" in res.json()["warning"]
    assert out.read_bytes() == RU_EPUB.read_bytes()
    res = cli("cfi", "1", "--chars", "150", "--json")  # CFIs come from the same verified bytes
    assert res.code == 0 and res.json()["source"] == "cache"
    assert res.json()["locations_generated"] == len(generate_locations(RU_EPUB, 150))

    res = cli("cache", "put", "1")
    assert res.code == 2 and "is gone" in _one_error_line(res.stderr)
    assert cli("cache", "clear").code == 0
    before = db_snapshot(home)
    for args in (["cache", "get", "1", "-o", "-"], ["cfi", "1"], ["cfi", "resolve", "1", "epubcfi(/6/4!/4/2/1:0)"]):
        res = cli(*args)
        assert res.code == 2 and "is gone" in _one_error_line(res.stderr), args
    assert db_snapshot(home) == before

    shutil.copyfile(EN_EPUB, book)  # another file in its place: the book's content is no longer there
    for args in (["cache", "put", "1"], ["cfi", "1"]):
        res = cli(*args)
        assert res.code == 2 and "changed since it was imported" in _one_error_line(res.stderr)
    assert db_snapshot(home) == before
    res = cli("cfi", book, "--json")  # named by its file, the edited file is a book of its own
    assert res.code == 0 and res.json()["book_id"] == 2


@pytest.mark.parametrize("target", ["missing-dir/x.json", "."])
def test_bad_output_target_changes_nothing(cli, home, tmp_path, target):
    assert cli("books", "import", RU_EPUB).code == 0
    before = db_snapshot(home)
    res = cli("cfi", "1", "-o", tmp_path / target)
    assert res.code == 2 and _one_error_line(res.stderr).startswith("error:")
    assert db_snapshot(home) == before and _book_row(home, 1) == (None, None)
