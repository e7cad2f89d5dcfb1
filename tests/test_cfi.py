"""CFI locations, percentages and ranges: hand-made EPUBs with known answers, then epub.js itself.

The expected strings in the unit tests were checked against epub.js 0.3.93 under jsdom (the comparison
tests below do that again on every run where node and tests/js/node_modules are present).
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest
from epubjs_helper import needs_epubjs, run_epubjs_batch

from bookreader_cli.books.model import Chapter
from bookreader_cli.epubcfi.align import ChapterMap, cfi_to_chapter_offset, chapter_range_to_cfi
from bookreader_cli.epubcfi.dom import EpubDom, parse_html_section, parse_xml_section, utf16_len
from bookreader_cli.epubcfi.grammar import compare_cfi, parse_cfi
from bookreader_cli.epubcfi.locations import (
    cfi_from_percentage,
    chars_for_count,
    generate_locations,
    percentage_from_cfi,
)
from bookreader_cli.epubcfi.resolve import resolve, resolve_text
from bookreader_cli.errors import BadInput

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_books"
CORPUS = REPO.parent / "shared" / "corpus"

XHTML = (
    '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head>\n'
)


def build_epub(path: Path, sections: list[tuple[str, str, str]], before_spine: str = "") -> Path:
    """A minimal EPUB 3: sections are (file name, content, extra itemref attributes)."""
    manifest = "".join(
        f'<item id="s{i}" href="{name}" media-type="{"text/html" if name.endswith(".html") else "application/xhtml+xml"}"/>'
        for i, (name, _, _) in enumerate(sections)
    )
    spine = "".join(f'<itemref idref="s{i}" {attrs}/>' for i, (_, _, attrs) in enumerate(sections))
    opf = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="uid">x</dc:identifier>'
        "<dc:title>T</dc:title><dc:language>en</dc:language></metadata>"
        f"<manifest>{manifest}</manifest>{before_spine}<spine>{spine}</spine></package>"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        zf.writestr("OEBPS/content.opf", opf)
        for name, content, _ in sections:
            zf.writestr("OEBPS/" + name, content)
    return path


EDGE_SECTIONS = [
    (
        "a.xhtml",
        XHTML
        + '<body>\n  <p id="p1">'
        + "a" * 320
        + '</p>\n  <p>Short <em>nested <b>bold</b> text</em> and <a id="n1">more</a>.</p>\n</body></html>',
        "",
    ),
    (
        "b.xhtml",
        XHTML + '<body><div id="d"><p>' + "Привет, мир! Ёжик в тумане. " * 20 + "</p></div></body></html>",
        'id="ref-b"',
    ),
    ("c.xhtml", XHTML + "<body><p>" + "emoji \U0001f600 here \U0001f600\U0001f600 " * 30 + "</p></body></html>", ""),
    ("d.xhtml", XHTML + "<body>  \n  </body></html>", ""),
    ("e.xhtml", XHTML + "<body><p>skipped because linear no</p></body></html>", 'linear="no"'),
    (
        "f.xhtml",
        XHTML + "<body><p>one<!-- c -->two<![CDATA[ cdata ]]>three &amp; &#169; &#x1F600;</p>\n"
        "<p>  </p><p>x</p></body></html>",
        "",
    ),
    (
        "g.html",
        "<!DOCTYPE html><html><head><title/></head><body><p>never seen: the title swallows it</p></body></html>",
        "",
    ),
    (
        "h.html",
        (
            '<html><head><title>h</title></head><body><p>para <a id="x"/>anchor swallows</p>text after<br/>line'
            "</body></html>\n"
        ),
        "",
    ),
    (
        "i.xhtml",
        XHTML
        + "<body><section><h1>Title</h1>"
        + "".join(f"<p>Paragraph {i} " + "word " * (i * 7) + "</p>\n" for i in range(40))
        + "</section></body></html>",
        "",
    ),
]


@pytest.fixture(scope="module")
def edge_epub(tmp_path_factory) -> Path:
    # a <guide> before the spine moves the spine to the 4th element of <package>: cfiBase /8/...
    return build_epub(tmp_path_factory.mktemp("edge") / "edge.epub", EDGE_SECTIONS, before_spine="<guide></guide>")


# --- DOM model --------------------------------------------------------------------------------------------


def test_utf16_length_counts_astral_characters_twice():
    assert utf16_len("abc") == 3
    assert utf16_len("Ёжик") == 4
    assert utf16_len("a\U0001f600b") == 4


def test_text_nodes_split_by_comments_and_cdata_with_entities():
    nodes = parse_xml_section(EDGE_SECTIONS[5][1])
    assert [(n.steps, n.data) for n in nodes] == [
        (("4", "2", "1"), "one"),
        (("4", "2", "3"), "two"),  # the comment ends a Text node; CDATA is not one
        (("4", "2", "5"), "three & © \U0001f600"),
        (("4", "1"), "\n"),
        (("4", "4", "1"), "  "),
        (("4", "6", "1"), "x"),
    ]
    assert nodes[2].length == 12 and nodes[3].blank and nodes[4].blank


def test_xhtml_named_entities_resolve_as_in_a_browser():
    doc = (
        '<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
        '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd"><html xmlns="http://www.w3.org/1999/xhtml">'
        '<body id="b"><p>a&nbsp;b&mdash;c&laquo;d&raquo;</p></body></html>'
    )
    assert [(n.steps, n.data) for n in parse_xml_section(doc)] == [(("2[b]", "2", "1"), "a\xa0b—c«d»")]  # no <head>


def test_html_files_get_html5_parsing():
    nodes = parse_html_section(EDGE_SECTIONS[7][1])
    # <a id="x"/> is an open <a> in HTML: it swallows the rest of the paragraph, and the parser
    # reopens it after </p> (active formatting elements), so the text after sits in a second <a id="x">
    assert [(n.steps, n.data) for n in nodes] == [
        (("4", "2", "1"), "para "),
        (("4", "2", "2[x]", "1"), "anchor swallows"),
        (("4", "4[x]", "1"), "text after"),
        (("4", "4[x]", "3"), "line\n"),  # whitespace after </html> is appended inside <body>
    ]
    assert parse_html_section(EDGE_SECTIONS[6][1]) == []


def test_spine_bases_and_linear_flags(edge_epub):
    dom = EpubDom(edge_epub)
    assert [s.cfi_base for s in dom.sections][:3] == ["/8/2", "/8/4[ref-b]", "/8/6"]
    assert [s.linear for s in dom.sections] == [True, True, True, True, False, True, True, True, True]


# --- locations ------------------------------------------------------------------------------------------


def test_locations_known_strings(edge_epub):
    locations = generate_locations(edge_epub, 150)
    assert locations[:12] == [
        "epubcfi(/8/2!/4/2[p1],/1:1,/1:151)",  # a long first node starts at 1: epub.js's pos += 1
        "epubcfi(/8/2!/4/2[p1],/1:152,/1:302)",
        "epubcfi(/8/2!/4,/2[p1]/1:303,/4/5:1)",  # every section ends with a partial location
        "epubcfi(/8/4[ref-b]!/4/2[d]/2,/1:1,/1:151)",
        "epubcfi(/8/4[ref-b]!/4/2[d]/2,/1:152,/1:302)",
        "epubcfi(/8/4[ref-b]!/4/2[d]/2,/1:303,/1:453)",
        "epubcfi(/8/4[ref-b]!/4/2[d]/2,/1:454,/1:560)",
        "epubcfi(/8/6!/4/2,/1:1,/1:151)",
        "epubcfi(/8/6!/4/2,/1:152,/1:302)",
        "epubcfi(/8/6!/4/2,/1:303,/1:453)",
        "epubcfi(/8/6!/4/2,/1:454,/1:570)",  # 30 x 19 UTF-16 units, not 30 x 16 code points
        "epubcfi(/8/12!/4,/2/1:0,/6/1:1)",  # blank, non-linear and title-swallowed sections add nothing
    ]
    assert locations[12] == "epubcfi(/8/16!/4,/2/1:0,/4[x]/3:5)"
    assert len(locations) == 198
    assert len(generate_locations(edge_epub, 1)) == 14663
    assert len(generate_locations(edge_epub, 1000)) == 33


def test_count_picks_chars_near_the_target(edge_epub):
    for target in (20, 100, 500):
        chars = chars_for_count(edge_epub, target)
        got = len(generate_locations(edge_epub, chars))
        assert abs(got - target) <= max(2, target // 10), (target, chars, got)


def test_bad_arguments(edge_epub, tmp_path):
    with pytest.raises(BadInput):
        generate_locations(edge_epub, 0)
    with pytest.raises(BadInput):
        parse_cfi("/6/4!/4/2/1:0")
    (tmp_path / "x.epub").write_bytes(b"not a zip")
    with pytest.raises(BadInput):
        generate_locations(tmp_path / "x.epub")


def test_malformed_xhtml_section_contributes_nothing(tmp_path):
    path = build_epub(
        tmp_path / "m.epub",
        [
            ("a.xhtml", XHTML + "<body><p>open</body></html>", ""),
            ("b.xhtml", XHTML + "<body><p>fine text</p></body></html>", ""),
        ],
    )
    assert generate_locations(path) == ["epubcfi(/6/4!/4/2,/1:0,/1:9)"]


# --- percentages and comparison ------------------------------------------------------------------------------


def test_percentages(edge_epub):
    locations = generate_locations(edge_epub, 150)
    total = len(locations) - 1
    assert cfi_from_percentage(locations, 0) == locations[0]
    assert cfi_from_percentage(locations, 0.5) == locations[-(-total // 2)]
    assert cfi_from_percentage(locations, 1) == "epubcfi(/8/18!/4/2/82/1:1378)"
    assert percentage_from_cfi(locations, locations[50]) == 50 / total
    assert percentage_from_cfi(locations, locations[0]) == 0
    assert percentage_from_cfi([], locations[0]) is None
    assert compare_cfi(locations[3], locations[4]) == -1
    assert compare_cfi(locations[4], locations[3]) == 1
    assert compare_cfi(locations[4], locations[4]) == 0


# --- ranges and chapter offsets --------------------------------------------------------------------------------


def _chapters_like_an_importer(dom: EpubDom) -> list[Chapter]:
    """One chapter per section with text, paragraphs = its block elements, whitespace collapsed."""
    chapters = []
    for section in dom.sections:
        nodes = dom.section_dom(section.index).nodes
        by_block: dict[tuple, list[str]] = {}
        for node in nodes:
            by_block.setdefault(node.steps[:2], []).append(node.data)
        paras = [("".join(parts), "text") for parts in by_block.values()]
        if any(text.strip() for text, _ in paras):
            chapters.append(Chapter.from_paragraphs(section.href, paras, source=section.path))
    return chapters


def test_range_cfi_round_trip(edge_epub):
    dom = EpubDom(edge_epub)
    chapters = _chapters_like_an_importer(dom)
    mapping = ChapterMap(dom, chapters)
    text = chapters[1].text  # Cyrillic
    start = text.index("Ёжик")
    cfi = mapping.range_cfi(1, start, start + len("Ёжик в тумане."))
    assert cfi == "epubcfi(/8/4[ref-b]!/4/2[d]/2,/1:13,/1:27)"
    assert resolve_text(dom, cfi) == "Ёжик в тумане."
    assert mapping.chapter_offset(cfi) == (1, start)
    emoji = chapters[2].text
    start = emoji.index("here", 30)
    cfi = mapping.range_cfi(2, start, start + 7)  # "here 😀" ends after an astral character
    assert resolve_text(dom, cfi) == emoji[start : start + 7]
    assert mapping.chapter_offset(cfi) == (2, start)
    assert cfi_to_chapter_offset(dom, chapters, cfi) == (2, start)
    assert chapter_range_to_cfi(dom, chapters, 2, start, start + 7) == cfi


def test_range_across_paragraphs_and_inline_markup(edge_epub):
    dom = EpubDom(edge_epub)
    chapters = _chapters_like_an_importer(dom)
    mapping = ChapterMap(dom, chapters)
    text = chapters[0].text
    start = text.index("aaa\n") + 1
    end = text.index("more") + 4
    cfi = mapping.range_cfi(0, start, end)
    got = resolve_text(dom, cfi)
    # the DOM keeps its "\n  " between the paragraphs; our text has "\n": equal once whitespace is collapsed
    assert " ".join(got.split()) == " ".join(text[start:end].split())
    assert got.startswith("aa") and got.endswith("more")
    # leading/trailing whitespace of a span is trimmed, never included
    assert mapping.range_cfi(0, start - 0, end + 0) == mapping.range_cfi(0, start, end)


def test_cfi_in_text_we_did_not_import_maps_to_the_next_text(edge_epub):
    dom = EpubDom(edge_epub)
    chapters = _chapters_like_an_importer(dom)[1:]  # drop the first section's chapter
    mapping = ChapterMap(dom, chapters)
    assert mapping.chapter_offset("epubcfi(/8/2!/4/2[p1]/1:10)") == (0, 0)


@pytest.mark.skipif(not (SAMPLES / "en_sample.epub").exists(), reason="sample books not built")
@pytest.mark.parametrize("name", ["en_sample.epub", "ru_sample.epub"])
def test_importer_chapters_round_trip(name):
    from bookreader_cli.books import load_book

    path = SAMPLES / name
    book = load_book(path)
    mapping = ChapterMap(path, book.chapters)
    rng = random.Random(5)
    for _ in range(60):
        index = rng.randrange(len(book.chapters))
        text = book.chapters[index].text
        start = rng.randrange(len(text) - 1)
        end = min(len(text), start + rng.randrange(1, 200))
        if not text[start:end].strip():
            continue
        cfi = mapping.range_cfi(index, start, end)
        assert "".join(resolve_text(mapping.dom, cfi).split()) == "".join(text[start:end].split())
        first = start + len(text[start:end]) - len(text[start:end].lstrip())
        assert mapping.chapter_offset(cfi) == (index, first)


def test_resolve_points_at_text_nodes(edge_epub):
    position = resolve(edge_epub, "epubcfi(/8/4[ref-b]!/4/2[d]/2/1:13)")
    assert (position.spine_index, position.href, position.offset) == (1, "b.xhtml", 13)
    with pytest.raises(BadInput):
        resolve(edge_epub, "epubcfi(/8/40!/4/2/1:0)")


# --- the real epub.js -------------------------------------------------------------------------------------------
# Every question below is put to epub.js in one batch (module fixture `epubjs`): node starts once or twice,
# not once per book, and the long books run beside the short ones.


def _reference_epubs() -> list[Path]:
    found = sorted(SAMPLES.glob("*.epub"))
    if CORPUS.is_dir():
        found += sorted(p for p in CORPUS.glob("*/*.epub") if not p.parent.name.startswith("malformed"))
    return found


PERCENT_VALUES = [0, 0.001, 0.25, 0.5, 0.73, 0.999, 1]


def _percentage_cfis(locations: list[str]) -> list[str]:
    return [
        locations[0],
        locations[7],
        locations[-1],
        "epubcfi(/8/6!/4/2/1:200)",
        "epubcfi(/8/18!/4/2/40/1:3)",
        "epubcfi(/8/2!/4/2[p1]/1:0)",
        "epubcfi(/8/4[ref-b]!/4/2[d]/2,/1:13,/1:27)",
    ]


def _range_cases(path: Path, chapters: list[Chapter]) -> tuple[ChapterMap, list[str], list[str]]:
    """25 random chapter spans of one book: (its map, their range CFIs, their chapter text)."""
    mapping = ChapterMap(path, chapters)
    rng = random.Random(11)
    cfis, wanted = [], []
    while len(cfis) < 25:
        index = rng.randrange(len(chapters))
        text = chapters[index].text
        if len(text) < 2:
            continue
        start = rng.randrange(len(text) - 1)
        end = min(len(text), start + rng.randrange(1, 250))
        if not text[start:end].strip():
            continue
        cfi = mapping.range_cfi(index, start, end)
        if (
            parse_cfi(cfi).spine_pos != parse_cfi(mapping.range_cfi(index, end - 1, end)).spine_pos
            if text[end - 1].strip()
            else False
        ):
            continue  # spans two spine files (a carried heading): epub.js ranges stay in one
        cfis.append(cfi)
        wanted.append(text[start:end])
    return mapping, cfis, wanted


@pytest.fixture(scope="module")
def epubjs(edge_epub) -> dict:
    """epub.js's answers, keyed by question: ("locations", path, chars), "percentages", ("ranges", path)."""
    from bookreader_cli.books import load_book

    questions: dict = {}
    for chars in (150, 1):
        questions[("locations", edge_epub, chars)] = {"epub": str(edge_epub), "chars": chars, "pause": 0}
    for path in _reference_epubs():
        questions[("locations", path, 150)] = {"epub": str(path), "chars": 150, "pause": 0}
    locations = generate_locations(edge_epub, 150)
    questions["percentages"] = {
        "epub": str(edge_epub),
        "percentages": {"locations": locations, "cfis": _percentage_cfis(locations), "values": PERCENT_VALUES},
    }
    cases = {edge_epub: _range_cases(edge_epub, _chapters_like_an_importer(EpubDom(edge_epub)))}
    for path in _reference_epubs()[:3]:
        cases[path] = _range_cases(path, load_book(path).chapters)
    for path, (_, cfis, _) in cases.items():
        questions[("ranges", path)] = {"epub": str(path), "ranges": cfis}
    answers = dict(zip(questions, run_epubjs_batch(list(questions.values()))))
    answers["range_cases"] = cases
    return answers


@needs_epubjs
@pytest.mark.parametrize("chars", [150, 1])
def test_edge_book_matches_epubjs(edge_epub, epubjs, chars):
    reference = epubjs[("locations", edge_epub, chars)]
    assert "error" not in reference, reference.get("error")
    assert generate_locations(edge_epub, chars) == reference["locations"]


@needs_epubjs
@pytest.mark.parametrize("path", _reference_epubs(), ids=lambda p: p.name)
def test_real_books_match_epubjs(path, epubjs):
    reference = epubjs[("locations", path, 150)]
    if "error" in reference:
        pytest.skip(f"epub.js itself fails on {path.name}: {reference['error'][:200]}")
    assert generate_locations(path, 150) == reference["locations"]


@needs_epubjs
def test_percentages_match_epubjs(edge_epub, epubjs):
    locations = generate_locations(edge_epub, 150)
    reference = epubjs["percentages"]
    assert [percentage_from_cfi(locations, c) for c in _percentage_cfis(locations)] == pytest.approx(
        reference["percentage_from_cfi"]
    )
    assert [cfi_from_percentage(locations, v) for v in PERCENT_VALUES] == reference["cfi_from_percentage"]


@needs_epubjs
def test_range_cfis_resolve_in_epubjs_to_the_description_text(epubjs):
    """epub.js getRange(cfi).toString() gives exactly our resolve_text, and the chapter text's characters."""
    for path, (mapping, cfis, wanted) in epubjs["range_cases"].items():
        reference = epubjs[("ranges", path)]
        assert "error" not in reference, reference.get("error")
        for cfi, want, got in zip(cfis, wanted, reference["ranges"]):
            assert got == resolve_text(mapping.dom, cfi), cfi
            assert "".join(got.split()) == "".join(want.split()), cfi
