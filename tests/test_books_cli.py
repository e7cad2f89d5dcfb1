"""`bookreader books …` end to end: the real CLI on the project's own sample books, a real SQLite file."""

import json
import shutil

import pytest
from conftest import SAMPLES, db_snapshot

SAMPLE_FILES = ["ru_sample.epub", "ru_sample.fb2", "en_sample.epub", "ru_sample.txt"]


@pytest.fixture
def samples():
    missing = [n for n in SAMPLE_FILES if not (SAMPLES / n).exists()]
    assert not missing, f"sample books missing: {missing} (run python sample_books/build.py)"
    return [SAMPLES / n for n in SAMPLE_FILES]


def test_import_list_show_remove(cli, home, samples):
    res = cli("books", "import", *samples, "--json")
    assert res.code == 0, res.stderr
    imported = res.json()["imported"]
    assert [r["status"] for r in imported] == ["imported"] * 4
    assert {r["format"] for r in imported} == {"epub3", "fb2", "epub2", "txt"}
    ids = [r["book_id"] for r in imported]

    listed = cli("books", "list", "--json").json()["books"]
    assert [b["id"] for b in listed] == ids
    assert all(b["chapters"] > 0 and b["chars"] > 0 for b in listed)

    shown = cli("books", "show", str(ids[0]), "--json").json()
    assert shown["format"] == "epub3" and shown["language"].startswith("ru")
    assert shown["chapters"] and all(c["characters"] > 0 for c in shown["chapters"])
    assert shown["cover_bytes"] and shown["cover_media_type"].startswith("image/")
    assert cli("books", "show", shown["sha256"][:12], "--json").json()["id"] == ids[0]

    removed = cli("books", "remove", str(ids[0]), "--json")
    assert removed.code == 0 and removed.json()["status"] == "removed"
    assert cli("books", "show", str(ids[0])).code == 2
    assert len(cli("books", "list", "--json").json()["books"]) == 3


def test_same_file_twice_is_one_book(cli, home, samples, tmp_path):
    first = cli("books", "import", samples[1], "--json").json()["imported"][0]
    before = db_snapshot(home)
    copy = tmp_path / "renamed.fb2"
    shutil.copy(samples[1], copy)
    again = cli("books", "import", copy, "--json").json()["imported"][0]
    assert again["status"] == "exists" and again["book_id"] == first["book_id"]
    assert db_snapshot(home) == before


def test_human_output_goes_to_stderr(cli, home, samples):
    res = cli("books", "import", samples[0])
    assert res.code == 0 and res.stdout == ""
    assert "Imported books" in res.stderr


@pytest.mark.parametrize(
    "content,name,expect",
    [
        (b"PK\x03\x04 broken zip", "broken.epub", "EPUB"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "picture.epub", "PNG"),
        (b"<?xml version='1.0'?><FictionBook><body><section>", "cut.fb2", ""),
        (b"", "empty.txt", ""),
    ],
)
def test_bad_files_exit_2_and_change_nothing(cli, home, tmp_path, samples, content, name, expect):
    cli("books", "import", samples[3])
    before = db_snapshot(home)
    bad = tmp_path / name
    bad.write_bytes(content)
    res = cli("books", "import", bad)
    assert res.code == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.stderr
    assert expect in lines[0]
    assert db_snapshot(home) == before
    res = cli("books", "import", bad, "--json")
    assert res.code == 2 and json.loads(res.stderr.strip())["exit_code"] == 2


def test_missing_file_and_directory(cli, home, tmp_path):
    res = cli("books", "import", tmp_path / "nope.epub")
    assert res.code == 2 and "no such file" in res.stderr
    res = cli("books", "import", tmp_path)
    assert res.code == 2 and "not a regular file" in res.stderr
    assert db_snapshot(home)["tables"].get("books", 0) == 0


def test_good_and_bad_together(cli, home, tmp_path, samples):
    bad = tmp_path / "bad.epub"
    bad.write_bytes(b"nonsense")
    res = cli("books", "import", samples[3], bad, "--json")
    assert res.code == 2
    doc = res.json()
    assert len(doc["imported"]) == 1 and doc["errors"][0]["file"].endswith("bad.epub")
