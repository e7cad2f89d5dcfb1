"""A library in one command: `process` over files, directories, ids and --all; `generate-images --book` and
`cfi` over several books. Real files, the real CLI, the real NLP (spaCy alone, to keep it quick)."""

from __future__ import annotations

import json
import shutil
import sqlite3

from conftest import SAMPLES, db_snapshot

FAST = ("--processors", "spacy", "--mode", "single")
SEED_KEYS = (
    "book_id",
    "total_chapters",
    "descriptions_found",
    "processing_time_seconds",
    "status",
    "nlp_processors_used",
    "ensemble_consensus_rate",
    "cfi_locations_generated",
    "cache_status",
)


def library(tmp_path, *names: str):
    folder = tmp_path / "Books"
    folder.mkdir()
    for name in names:
        shutil.copy(SAMPLES / name, folder / name)
    return folder


def test_directory_is_imported_processed_then_skipped_then_changed_file_redone(cli, home, tmp_path):
    folder = library(tmp_path, "ru_sample.txt", "en_sample.txt")
    first = cli("process", folder, *FAST, "--json")
    assert first.code == 0, first.stderr
    doc = first.json()
    assert doc["errors"] == [] and len(doc["books"]) == 2
    assert {b["status"] for b in doc["books"]} == {"completed"}
    for book in doc["books"]:
        assert all(key in book for key in SEED_KEYS) and book["descriptions_found"] > 0
        assert book["file"].endswith(("ru_sample.txt", "en_sample.txt"))
    assert doc["summary"] == {"books": 2, "processed": 2, "skipped": 0, "failed": 0}

    again = cli("process", folder, *FAST, "--json")
    assert again.code == 0, again.stderr
    doc2 = again.json()
    assert [b["status"] for b in doc2["books"]] == ["skipped", "skipped"]
    assert {b["book_id"] for b in doc2["books"]} == {b["book_id"] for b in doc["books"]}
    for skipped, done in zip(
        sorted(doc2["books"], key=lambda b: b["book_id"]), sorted(doc["books"], key=lambda b: b["book_id"])
    ):
        assert skipped["descriptions_found"] == done["descriptions_found"]
        assert "unchanged" in skipped["reason"]
    assert doc2["summary"] == {"books": 2, "processed": 0, "skipped": 2, "failed": 0}
    human = cli("process", folder, *FAST)
    assert human.code == 0 and human.stderr.count("skipped") >= 2

    changed = folder / "en_sample.txt"
    with changed.open("ab") as fh:  # bytes: the sample is cp1252
        fh.write(b"\r\nThe garden gate was painted a bright, cheerful green.\r\n")
    third = cli("process", folder, *FAST, "--json").json()
    by_file = {b["file"].rsplit("/", 1)[-1]: b for b in third["books"]}
    assert by_file["en_sample.txt"]["status"] == "completed" and by_file["ru_sample.txt"]["status"] == "skipped"

    other_settings = cli("process", folder, "--processors", "natasha", "--mode", "single", "--json").json()
    assert {b["status"] for b in other_settings["books"]} == {"completed"}  # settings changed: redone


def test_a_bad_book_among_good_ones_is_reported_and_the_rest_go_on(cli, home, tmp_path):
    folder = library(tmp_path, "ru_sample.txt")
    (folder / "broken.epub").write_bytes(b"this is not a zip at all")
    res = cli("process", folder, *FAST, "--json")
    assert res.code == 1
    doc = res.json()
    assert [b["status"] for b in doc["books"]] == ["completed"]
    (error,) = doc["errors"]
    assert error["target"].endswith("broken.epub") and "not an EPUB" in error["error"]
    assert doc["summary"]["failed"] == 1


def test_nothing_readable_exits_2_and_changes_nothing(cli, home, tmp_path):
    folder = tmp_path / "Empty"
    folder.mkdir()
    (folder / "a.epub").write_bytes(b"nope")
    before = db_snapshot(home)
    for args in ((folder,), (tmp_path / "missing.txt", tmp_path / "missing2.txt"), ("999",)):
        res = cli("process", *args, *FAST, "--json")
        assert res.code == 2, (args, res.stderr)
        assert "error" in json.loads(res.stderr.strip().splitlines()[-1]) or res.stdout
    assert db_snapshot(home)["tables"].get("descriptions", 0) == before["tables"].get("descriptions", 0)


def test_all_and_ids_and_a_single_book_keeps_its_shape(cli, home, tmp_path):
    imported = cli("books", "import", SAMPLES / "ru_sample.txt", SAMPLES / "en_sample.txt", "--json").json()
    ids = [str(r["book_id"]) for r in imported["imported"]]
    single = cli("process", ids[0], *FAST, "--json")
    assert single.code == 0
    result = single.json()
    assert "books" not in result and all(key in result for key in SEED_KEYS)  # today's shape, exactly
    everything = cli("process", "--all", *FAST, "--json").json()
    statuses = {str(b["book_id"]): b["status"] for b in everything["books"]}
    assert statuses == {ids[0]: "skipped", ids[1]: "completed"}
    both = cli("process", *ids, *FAST, "--json").json()
    assert [b["status"] for b in both["books"]] == ["skipped", "skipped"]
    forced = cli("process", *ids, *FAST, "--force", "--json").json()
    assert [b["status"] for b in forced["books"]] == ["completed", "completed"]
    assert cli("process", "--all", ids[0], *FAST).code == 2  # either books or --all


def test_cfi_over_several_books(cli, home):
    res = cli("cfi", SAMPLES / "ru_sample.epub", SAMPLES / "en_sample.epub", "--json")
    assert res.code == 0, res.stderr
    doc = res.json()
    assert len(doc["books"]) == 2 and all(b["locations_generated"] > 0 for b in doc["books"])
    single = cli("cfi", SAMPLES / "ru_sample.epub", "--json").json()
    assert "books" not in single and single["locations_generated"] > 0


def test_generate_images_dry_run_over_several_books(cli, home):
    conn_books = []
    for name in ("ru_sample.txt", "en_sample.txt"):
        result = cli("process", SAMPLES / name, *FAST, "--json").json()
        conn_books.append(str(result["book_id"]))
    res = cli(
        "generate-images", "--book", conn_books[0], "--book", conn_books[1], "--limit", "2", "--dry-run", "--json"
    )
    assert res.code == 0, res.stderr
    doc = res.json()
    assert [b["book_id"] for b in doc["books"]] == [int(i) for i in conn_books]
    assert all(len(b["requests"]) == 2 for b in doc["books"])
    conn = sqlite3.connect(home / "bookreader.db")
    assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 0  # a dry run records nothing
    conn.close()
