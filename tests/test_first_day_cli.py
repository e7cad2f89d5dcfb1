"""What a user hits on the first day: TXT titles (and --title, and where a title came from) and the
descriptions table on an 80-column terminal."""

from __future__ import annotations

import json
import sqlite3
import time

from conftest import CORPUS, SAMPLES

KARAMAZOVY = CORPUS / "ru_txt__d0rj_RusLit" / "dostoevsky_bratya_karamazovy.txt"


def test_dedication_is_not_the_title_and_show_says_where_it_came_from(cli, tmp_path):
    book = tmp_path / "dostoevsky_bratya_karamazovy.txt"
    book.write_text(
        "     Посвящается Анне Григорьевне Достоевской\n\n  Истинно, истинно говорю вам: если пшеничное "
        "зерно, падши в землю, не умрет, то останется одно; а если умрет, то принесет много плода.\n\n"
        + "Было тихо и темно. "
        * 200,
        encoding="utf-8",
    )
    res = cli("books", "import", book, "--json")
    assert res.code == 0, res.stderr
    (imported,) = res.json()["imported"]
    assert imported["title"] == "dostoevsky bratya karamazovy"
    shown = cli("books", "show", str(imported["book_id"]), "--json").json()
    assert shown["title_source"] == "file name"
    human = cli("books", "show", str(imported["book_id"]))
    assert "file name" in human.stderr
    epub = cli("books", "import", SAMPLES / "ru_sample.epub", "--json").json()["imported"][0]
    assert cli("books", "show", str(epub["book_id"]), "--json").json()["title_source"] == "metadata"


def test_import_title_overrides(cli):
    res = cli("books", "import", SAMPLES / "ru_sample.txt", "--title", "Чердак", "--json")
    assert res.code == 0, res.stderr
    (imported,) = res.json()["imported"]
    assert imported["title"] == "Чердак"
    shown = cli("books", "show", str(imported["book_id"]), "--json").json()
    assert (shown["title"], shown["title_source"]) == ("Чердак", "given (--title)")
    two = cli("books", "import", SAMPLES / "ru_sample.txt", SAMPLES / "en_sample.txt", "--title", "X")
    assert two.code == 2 and "--title" in two.stderr and two.stderr.count("\n") == 1
    assert cli("books", "import", SAMPLES / "en_sample.txt", "--title", "  ").code == 2


def _insert_description(home, book_id: int, text_len: int = 300) -> str:
    conn = sqlite3.connect(home / "bookreader.db", isolation_level=None)
    chapter_id, idx, text = conn.execute(
        "SELECT id, idx, text FROM chapters WHERE book_id = ? ORDER BY idx LIMIT 1", [book_id]
    ).fetchone()
    start = text.index("\n") + 1  # past the heading: one paragraph of prose
    end = min(text.index("\n", start), start + text_len)
    conn.execute(
        'INSERT INTO descriptions (book_id, chapter_id, chapter_idx, start, "end", text, type, priority, '
        "confidence, consensus, processors, cfi, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            book_id,
            chapter_id,
            idx,
            start,
            end,
            text[start:end],
            "location",
            91.5,
            0.9,
            0.67,
            json.dumps(["natasha", "spacy", "stanza"]),
            None,
            time.time(),
        ],
    )
    conn.close()
    return text[start:end]


def test_descriptions_on_80_columns_give_the_text_the_width(cli, home):
    book_id = cli("books", "import", SAMPLES / "ru_sample.txt", "--json").json()["imported"][0]["book_id"]
    text = _insert_description(home, book_id)
    narrow = cli("descriptions", str(book_id), env={"COLUMNS": "80"})
    assert narrow.code == 0, narrow.stderr
    lines = narrow.stderr.splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if "priority" in line)
    assert "processors" not in header and "conf" not in header and "text" in header and "type" in header
    words = text.split()
    assert " ".join(words[:6]) in narrow.stderr  # the first words share a line, not a 16-character column
    wide = cli("descriptions", str(book_id), "--wide", env={"COLUMNS": "200"})
    assert wide.code == 0 and "processors" in wide.stderr and "conf" in wide.stderr
