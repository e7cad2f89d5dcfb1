"""`bookreader export BOOK --html DIR` through the CLI (what the page shows is checked in test_export_html.py)."""

from __future__ import annotations

import json

from conftest import SAMPLES, db_snapshot


def test_export_writes_a_site_for_a_processed_book(cli, home, tmp_path):
    processed = cli("process", SAMPLES / "ru_sample.txt", "--processors", "spacy", "--mode", "single", "--json")
    assert processed.code == 0, processed.stderr
    book_id = processed.json()["book_id"]
    out = tmp_path / "site"
    res = cli("export", str(book_id), "--html", out, "--json")
    assert res.code == 0, res.stderr
    result = res.json()
    assert result["book_id"] == book_id and result["descriptions_exported"] == processed.json()["descriptions_found"]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert result["page_bytes"] == len(page.encode("utf-8"))
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    data = json.loads((out / "descriptions.json").read_text(encoding="utf-8"))
    assert len(data["descriptions"]) == result["descriptions_exported"]
    human = cli("export", SAMPLES / "ru_sample.txt", "--html", out)  # by file, again: overwrites
    assert human.code == 0 and "index.html" in human.stderr


def test_export_bad_input_exits_2_and_writes_nothing(cli, home, tmp_path):
    book_id = cli("books", "import", SAMPLES / "ru_sample.txt", "--json").json()["imported"][0]["book_id"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    before = db_snapshot(home)
    for args in (("999", "--html", tmp_path / "s1"), (str(book_id), "--html", a_file), (str(book_id),)):
        res = cli("export", *args, "--json")
        assert res.code == 2, (args, res.stderr)
        assert json.loads(res.stderr.strip().splitlines()[-1])["exit_code"] == 2
    assert not (tmp_path / "s1").exists()
    assert db_snapshot(home) == before
