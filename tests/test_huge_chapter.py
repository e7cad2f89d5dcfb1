"""A huge one-line TXT through the real CLI (issue 13, item 20): bounded units, offsets kept, a size limit.

The 200 MB case of the issue is measured by hand (README, Contracts); the file here is ~1 MB, generated now.
"""

from __future__ import annotations

import sqlite3

from big_books import one_line_book
from conftest import db_snapshot


def test_a_one_line_book_is_processed_in_parts_with_offsets_kept(cli, home, tmp_path):
    book = tmp_path / "one-line.txt"
    book.write_text(one_line_book(1.0), encoding="utf-8")
    book_id = cli("books", "import", book, "--json").json()["imported"][0]["book_id"]
    res = cli("-v", "process", str(book_id), "--processors", "spacy", "--mode", "single", "--json")
    assert res.code == 0, res.stderr
    result = res.json()
    assert result["total_chapters"] == 1 and result["descriptions_found"] > 0
    parts = [line for line in res.stderr.splitlines() if "part " in line and " done" in line]
    assert len(parts) > 2 and parts[-1].endswith(f"part {len(parts)}/{len(parts)} done")  # progress inside it
    conn = sqlite3.connect(home / "bookreader.db")
    try:
        rows = conn.execute(
            "SELECT c.text, d.start, d.end, d.text FROM descriptions d JOIN chapters c ON c.id = d.chapter_id"
        ).fetchall()
    finally:
        conn.close()
    assert len(rows) == result["descriptions_found"]
    assert all(chapter[start:end] == text for chapter, start, end, text in rows)


def test_a_book_over_the_size_limit_is_refused_with_one_line(cli, home):
    from conftest import SAMPLES

    book_id = cli("books", "import", SAMPLES / "ru_sample.fb2", "--json").json()["imported"][0]["book_id"]
    before = db_snapshot(home)
    res = cli("process", str(book_id), "--processors", "spacy", env={"BOOKREADER_NLP_MAX_BOOK_CHARS": "5000"})
    assert res.code == 2
    assert res.stderr.startswith(f"error: book {book_id} has ") and "at most 5,000" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert db_snapshot(home) == before
