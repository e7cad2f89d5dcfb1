"""Issue 13, item 22 (part): a sha256 prefix of decimal digits still names its book, and `cfi resolve` of a
step that is not in the document is refused (exit 2) instead of pointing at the chapter start."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from conftest import SAMPLES

RU_EPUB = SAMPLES / "ru_sample.epub"


def decimal_sha_text() -> bytes:
    """A small TXT whose sha256 starts with 8 decimal digits (about 1 file in 43 does)."""
    n = 0
    while True:
        data = f"Глава первая\n\nТекст книги, вариант {n}.\n".encode()
        if hashlib.sha256(data).hexdigest()[:8].isdigit():
            return data
        n += 1


def test_all_decimal_sha_prefix_is_tried_as_a_prefix_too(cli, home, tmp_path):
    path = tmp_path / "decimal.txt"
    path.write_bytes(decimal_sha_text())
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert cli("books", "import", path).code == 0
    for ref in (sha[:8], sha[:12], sha):
        res = cli("books", "show", ref, "--json")
        assert res.code == 0, res.stderr  # before: "no book with id '36532030'"
        assert res.json()["id"] == 1 and res.json()["sha256"] == sha
    assert cli("books", "show", "1", "--json").json()["sha256"] == sha
    res = cli("books", "show", "99999999")
    assert res.code == 2 and "no book" in res.stderr


def test_cfi_resolve_of_a_missing_step_is_exit_2(cli, home):
    assert cli("books", "import", RU_EPUB).code == 0
    for cfi in (
        "epubcfi(/6/4!/4/2/1:0)",
        "epubcfi(/6/4!/4/2/4/1:3)",
        "epubcfi(/6/4!/4/2/4/3:0)",
        "epubcfi(/6/4!/4/2/4)",
    ):
        res = cli("cfi", "resolve", "1", cfi, "--json")
        assert res.code == 0, (cfi, res.stderr)
    for cfi in (
        "epubcfi(/6/4!/4/2/998/1:0)",
        "epubcfi(/6/4!/4/98/1:0)",
        "epubcfi(/6/4!/4/2/99:0)",
        "epubcfi(/6/4!/4/2/4/2/2/1:0)",
    ):
        res = cli("cfi", "resolve", "1", cfi, "--json")
        assert res.code == 2, (cfi, res.stdout)  # before: exit 0, offset 0 of the chapter
        error = json.loads(res.stderr)["error"]
        assert "does not exist" in error and "\n" not in error


def test_a_decimal_ref_that_is_an_id_and_another_books_sha_prefix_is_ambiguous(cli, home, tmp_path):
    first = tmp_path / "decimal.txt"
    first.write_bytes(decimal_sha_text())
    sha = hashlib.sha256(first.read_bytes()).hexdigest()
    other = tmp_path / "other.txt"
    other.write_text("Глава первая\n\nДругая книга.\n", encoding="utf-8")
    assert cli("books", "import", first, other).code == 0
    # give the second book the id that the first one's sha256 starts with (a store of 10 M+ books)
    conn = sqlite3.connect(home / "bookreader.db")
    with conn:
        conn.execute("UPDATE chapters SET book_id = ? WHERE book_id = 2", [int(sha[:8])])
        conn.execute("UPDATE books SET id = ? WHERE id = 2", [int(sha[:8])])
    conn.close()
    res = cli("books", "show", sha[:8])
    assert res.code == 2 and "ambiguous: 2 books match" in res.stderr
    assert cli("books", "show", sha[:10], "--json").json()["id"] == 1
