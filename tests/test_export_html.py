"""The HTML reader view, checked in a real browser (headless Chromium; skips when there is none).

Two books: the Russian sample EPUB processed once for the module by the real NLP (real descriptions, real
CFIs), and a hostile TXT whose text, title and description types carry <script> and onerror payloads, with
descriptions stored directly (crossing, nested and spanning a paragraph break) and a picture.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser import Page, launch_or_skip
from conftest import SAMPLES

ENV = {"NO_COLOR": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
HOSTILE_TITLE = 'Сад <script>window.__pwned = "title"</script>'
HOSTILE_TXT = f"""{HOSTILE_TITLE}

Глава 1
<b onmouseover="window.__pwned='heading'">Сад</b>

Он открыл дверь. <script>window.__pwned = "text"</script> За дверью был старый сад с яблонями.

Под деревом лежала <img src=x onerror="window.__pwned='img'"> красная лейка и <img src="http://example.com/leak.png"> ведро.

Вечер был тихий и тёплый, пахло травой.
"""


def bookreader(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, BOOKREADER_HOME=str(home), **ENV)
    env.pop("BOOKREADER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "bookreader_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def export(home: Path, book_id: int, out: Path) -> dict:
    """The site for one book, through the CLI."""
    proc = bookreader(home, "export", str(book_id), "--html", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def stored(home: Path, book_id: int) -> tuple[dict[int, dict], dict[int, str]]:
    """{id: description row} and {chapter idx: chapter text}, straight from SQLite."""
    conn = sqlite3.connect(home / "bookreader.db")
    conn.row_factory = sqlite3.Row
    descriptions = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM descriptions WHERE book_id = ?", [book_id])}
    texts = dict(conn.execute("SELECT idx, text FROM chapters WHERE book_id = ?", [book_id]).fetchall())
    conn.close()
    return descriptions, texts


@pytest.fixture(scope="module")
def browser():
    playwright, browser = launch_or_skip()
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory):
    """ru_sample.epub processed by the NLP ensemble, exported."""
    home = tmp_path_factory.mktemp("sample") / "home"
    proc = bookreader(home, "process", str(SAMPLES / "ru_sample.epub"), "--json")
    assert proc.returncode == 0, proc.stderr
    book_id = json.loads(proc.stdout)["book_id"]
    result = export(home, book_id, home.parent / "site")
    return home, book_id, Path(result["index_html"])


def _insert(conn, book_id: int, chapter: sqlite3.Row, start: int, end: int, dtype: str, priority: float) -> int:
    cur = conn.execute(
        'INSERT INTO descriptions (book_id, chapter_id, chapter_idx, start, "end", text, type, priority, '
        "confidence, consensus, processors, cfi, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            book_id,
            chapter["id"],
            chapter["idx"],
            start,
            end,
            chapter["text"][start:end],
            dtype,
            priority,
            0.5,
            0.67,
            json.dumps(["spacy", "natasha"]),
            None,
            time.time(),
        ],
    )
    return cur.lastrowid


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    """A TXT full of markup, with stored descriptions over it and one picture whose prompt is markup too."""
    from PIL import Image

    root = tmp_path_factory.mktemp("hostile")
    home, book = root / "home", root / "hostile.txt"
    book.write_text(HOSTILE_TXT, encoding="utf-8")
    proc = bookreader(home, "books", "import", str(book), "--json")
    assert proc.returncode == 0, proc.stderr
    book_id = json.loads(proc.stdout)["imported"][0]["book_id"]
    conn = sqlite3.connect(home / "bookreader.db", isolation_level=None)
    conn.row_factory = sqlite3.Row
    chapter = conn.execute(
        "SELECT id, idx, text FROM chapters WHERE book_id = ? ORDER BY idx LIMIT 1", [book_id]
    ).fetchone()
    text = chapter["text"]
    script = text.index("<script>")
    garden = text.index("За дверью")
    lamp = text.index("красная лейка")
    evening = text.index("Вечер")
    ids = {
        "script": _insert(conn, book_id, chapter, script, garden + len("За дверью"), "location", 90.0),
        "crossing": _insert(conn, book_id, chapter, garden, text.index(".", garden) + 1, "atmosphere", 80.0),
        "nested": _insert(conn, book_id, chapter, script + 1, script + 7, "object", 70.0),
        "paragraphs": _insert(conn, book_id, chapter, lamp, evening + len("Вечер был тихий"), "object", 60.0),
        "bad type": _insert(
            conn, book_id, chapter, evening, len(text), '"><script>window.__pwned="type"</script>', 50.0
        ),
    }
    images = home / "images"
    images.mkdir(exist_ok=True)
    Image.new("RGB", (64, 48), (200, 120, 40)).save(images / "lamp.png")
    conn.execute(
        "INSERT INTO images (description_id, book_id, path, prompt, status, created_at) VALUES (?,?,?,?,?,?)",
        [
            ids["paragraphs"],
            book_id,
            "lamp.png",
            'a lamp "><script>window.__pwned="alt"</script>',
            "completed",
            time.time(),
        ],
    )
    conn.close()
    result = export(home, book_id, root / "site")
    return home, book_id, Path(result["index_html"]), ids, result


def highlight_texts(page) -> dict[int, list[list]]:
    """{description id: [[offset, text], …]} for every <mark> part in the page."""
    parts = page.evaluate("""() => {
        const out = {};
        for (const m of document.querySelectorAll('mark[data-d]')) {
            (out[m.dataset.d] = out[m.dataset.d] || []).push([Number(m.dataset.o), m.textContent]);
        }
        return out; }""")
    return {int(k): sorted(v) for k, v in parts.items()}


def joined(parts: list[list], chapter_text: str) -> str:
    """The parts of one description put back together: contiguous parts join directly, parts in the next
    paragraph join with the paragraph break they skipped (one "\\n" in the chapter text)."""
    text, end = "", None
    for offset, part in parts:
        if end is not None and offset != end:
            assert chapter_text[end:offset] == "\n", (end, offset)
            text += "\n"
        text += part
        end = offset + len(part)
    return text


def check_highlights(page, home: Path, book_id: int) -> int:
    descriptions, texts = stored(home, book_id)
    found = highlight_texts(page)
    assert set(found) == set(descriptions)
    for ident, d in descriptions.items():
        assert found[ident][0][0] == d["start"]
        assert (
            joined(found[ident], texts[d["chapter_idx"]]) == d["text"] == texts[d["chapter_idx"]][d["start"] : d["end"]]
        )
    return len(descriptions)


# ---- the sample book, real descriptions --------------------------------------------------------------
def test_every_highlight_is_exactly_the_stored_description(browser, sample_site):
    home, book_id, index = sample_site
    view = Page(browser)
    page = view.open(index)
    assert check_highlights(page, home, book_id) > 10
    cfis = page.evaluate("() => [...document.querySelectorAll('mark[id][data-cfi]')].map(m => m.dataset.cfi)")
    assert cfis and all(c.startswith("epubcfi(") and "," in c for c in cfis)  # EPUB: a range CFI each
    data = json.loads((index.parent / "descriptions.json").read_text(encoding="utf-8"))
    descriptions, _ = stored(home, book_id)
    assert {d["id"]: (d["text"], d["cfi"]) for d in data["descriptions"]} == {
        i: (d["text"], d["cfi"]) for i, d in descriptions.items()
    }
    assert view.console_errors == [] and view.blocked == []
    view.close()


def test_type_filter_hides_and_shows(browser, sample_site):
    _, _, index = sample_site
    view = Page(browser)
    page = view.open(index)

    def visible(selector: str) -> list[bool]:
        return page.eval_on_selector_all(selector, "els => els.map(e => e.offsetParent !== null)")

    def highlighted(dtype: str) -> set[str]:
        return set(
            page.eval_on_selector_all(f"mark.t-{dtype}", "els => els.map(e => getComputedStyle(e).backgroundColor)")
        )

    shown = highlighted("location")
    assert all(visible("#best li.t-location")) and all(visible("#best li.t-character"))
    page.uncheck('#filters input[data-type="location"]')
    assert visible("#best li.t-location") and not any(visible("#best li.t-location"))
    assert all(visible("#best li.t-character"))
    assert highlighted("location") == {"rgba(0, 0, 0, 0)"} and "rgba(0, 0, 0, 0)" not in highlighted("character")
    page.check('#filters input[data-type="location"]')
    assert all(visible("#best li.t-location")) and highlighted("location") == shown
    assert view.console_errors == []
    view.close()


def test_best_passages_link_scrolls_to_its_place(browser, sample_site):
    _, _, index = sample_site
    view = Page(browser, height=500)
    page = view.open(index)
    links = page.eval_on_selector_all("#best a", "els => els.map(a => a.getAttribute('href'))")
    in_view = """id => { const r = document.getElementById(id).getBoundingClientRect();
                         return r.top >= 0 && r.bottom <= window.innerHeight; }"""
    last = max(
        links, key=lambda href: page.evaluate("id => document.getElementById(id).getBoundingClientRect().top", href[1:])
    )
    assert not page.evaluate(in_view, last[1:])  # far below the first screen
    page.click(f'#best a[href="{last}"]')
    page.wait_for_function(in_view, arg=last[1:], timeout=5_000)
    assert page.evaluate("() => location.hash") == last
    assert page.evaluate("() => document.querySelector(':target').id") == last[1:]
    view.close()


def test_priorities_processors_and_consensus_on_focus(browser, sample_site):
    home, book_id, index = sample_site
    view = Page(browser)
    page = view.open(index)
    descriptions, _ = stored(home, book_id)
    ident, d = next(iter(descriptions.items()))
    page.focus(f"#d{ident}")
    tip = page.evaluate("id => getComputedStyle(document.getElementById(id), '::after').content", f"d{ident}")
    assert f"priority {d['priority']:.2f}" in tip and f"consensus {d['consensus']:.2f}" in tip
    assert all(p in tip for p in json.loads(d["processors"]))
    view.close()


# ---- the hostile book --------------------------------------------------------------------------------
def test_hostile_book_is_shown_as_text_and_runs_nothing(browser, hostile_site):
    home, book_id, index, ids, result = hostile_site
    view = Page(browser)
    page = view.open(index)
    page.hover(f"#d{ids['script']}")
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.__pwned") is None
    assert page.evaluate("() => document.scripts.length") == 1  # ours
    assert page.evaluate("() => document.querySelectorAll('[onerror],[onmouseover],b').length") == 0
    body = page.inner_text("main")
    assert '<script>window.__pwned = "text"</script>' in body and "onerror=" in body
    assert page.title() == HOSTILE_TITLE and page.inner_text("h1") == HOSTILE_TITLE
    assert "<b onmouseover=" in page.inner_text("h2")
    assert check_highlights(page, home, book_id) == len(ids)
    # the crossing description is drawn in two parts, the paragraph-spanning one too
    parts = highlight_texts(page)
    assert len(parts[ids["crossing"]]) == 2 and len(parts[ids["paragraphs"]]) == 2
    # the picture sits beside its description, its prompt (markup and all) as plain alt text
    img = page.query_selector(f'figure[data-for="{ids["paragraphs"]}"] img')
    assert img.get_attribute("alt") == 'a lamp "><script>window.__pwned="alt"</script>'
    assert page.evaluate("img => img.complete && img.naturalWidth", img) == 64
    assert (index.parent / "images" / "lamp.png").is_file() and result["images_copied"] == 1
    assert view.blocked == []  # the http://example.com image in the text is text, never requested
    assert all(url.startswith("file://") for url in view.requests)
    assert view.console_errors == []
    view.close()


def test_descriptions_json_matches_the_store(hostile_site):
    home, book_id, index, ids, _ = hostile_site
    data = json.loads((index.parent / "descriptions.json").read_text(encoding="utf-8"))
    descriptions, _ = stored(home, book_id)
    rows = {d["id"]: d for d in data["descriptions"]}
    assert set(rows) == set(descriptions)
    for ident, d in descriptions.items():
        assert (rows[ident]["start"], rows[ident]["end"], rows[ident]["text"]) == (d["start"], d["end"], d["text"])
    assert rows[ids["paragraphs"]]["image"] == "images/lamp.png"
    assert data["book"]["title"] == HOSTILE_TITLE
