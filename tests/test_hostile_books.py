"""Issue 13, items 12, 13, 17, 18: hostile books that used to import as junk or amplify into tens of
millions of stored characters. Files are built at test time by tests/hostile_books.py."""

from __future__ import annotations

import json
import unicodedata
import zipfile

import hostile_books as hb
import pytest
from conftest import db_snapshot
from epubjs_helper import needs_epubjs, run_epubjs_batch

from bookreader_cli.books import load_book, safety
from bookreader_cli.books.txt import decode_text
from bookreader_cli.epubcfi.align import ChapterMap
from bookreader_cli.epubcfi.grammar import parse_cfi
from bookreader_cli.epubcfi.locations import generate_locations
from bookreader_cli.errors import BadInput


def refused(path) -> str:
    with pytest.raises(BadInput) as info:
        load_book(path)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def no_control_characters(book) -> bool:
    return not any(unicodedata.category(ch) == "Cc" and ch != "\n" for c in book.chapters for ch in c.text)


# ----------------------------------------------------------------------------- 12: spine repeats, text cap
def test_spine_listing_one_chapter_200_times_is_refused(tmp_path):
    path = hb.spine_repeat_epub(tmp_path / "repeat.epub", repeats=200)
    assert path.stat().st_size < 5000
    message = refused(path)  # before: 200 chapters, 54,601,000 characters
    assert "refused: the spine lists 'OEBPS/c1.xhtml' 200 times (limit 4; possible amplification)" in message


def test_spine_listing_a_file_a_few_times_reads_it_once(tmp_path):
    path = hb.spine_repeat_epub(tmp_path / "repeat.epub", repeats=4)
    book = load_book(path)  # before: 4 chapters, the same text 4 times
    assert len(book.chapters) == 1 and sum(len(c.text) for c in book.chapters) < 300_000
    assert any("spine lists a file more than once (3 repeated entries)" in w for w in book.warnings)


def test_spine_repeat_import_is_exit_2_and_stores_nothing(cli, home, tmp_path):
    path = hb.spine_repeat_epub(tmp_path / "repeat.epub", repeats=400)
    res = cli("books", "import", path, "--json")  # before: exit 0, 107 M characters, a 185 MB home
    assert res.code == 2 and "possible amplification" in json.loads(res.stderr)["error"]
    assert db_snapshot(home)["tables"].get("books", 0) == 0


def test_text_budget_is_relative_to_the_file_size(tmp_path, monkeypatch):
    path = hb.epub(tmp_path / "ok.epub", {"c1.xhtml": hb.chapter_xhtml(hb.SENTENCE, 200)})
    book = load_book(path)
    chars = sum(len(c.text) for c in book.chapters)
    ratio = chars / path.stat().st_size
    assert ratio > 2  # a very repetitive chapter: more text per byte than any corpus book
    monkeypatch.setattr(safety, "TEXT_CHARS_FLOOR", 1000)
    monkeypatch.setattr(safety, "MAX_TEXT_CHARS_PER_FILE_BYTE", 2)
    message = refused(path)
    assert "refused: book yields more than" in message and "possible amplification" in message


def test_text_budget_has_an_absolute_cap(tmp_path, monkeypatch):
    path = hb.russian_txt(tmp_path / "r.txt", "utf-8")
    assert load_book(path).chapters
    monkeypatch.setattr(safety, "MAX_BOOK_TEXT_CHARS", 100)
    assert "refused: book yields more than 100 characters" in refused(path)


def test_text_budget_defaults_leave_room_for_real_books():
    assert safety.text_budget_chars(1) == safety.TEXT_CHARS_FLOOR
    assert safety.text_budget_chars(200_000) == 10_000_000
    assert safety.text_budget_chars(1_847_173) > 10 * 3_210_328  # War and Peace EPUB: 3.2 M chars in 1.8 MB
    assert safety.text_budget_chars(300 * 2**20) == safety.MAX_BOOK_TEXT_CHARS


# ----------------------------------------------------------------------------- 13: zip bomb in many members
def test_zip_bomb_split_into_many_members_is_refused(tmp_path):
    path = hb.split_bomb_epub(tmp_path / "split.epub", count=200)
    with zipfile.ZipFile(path) as zf:  # every member passes the per-member checks on its own
        chapters = [i for i in zf.infolist() if i.filename.endswith(".xhtml")]
        assert len(chapters) == 200 and all(i.file_size <= safety.RATIO_CHECK_MIN_BYTES for i in chapters)
    message = refused(path)  # before: imported, 118,517,800 characters
    assert "possible zip bomb" in message and f"over {safety.MAX_ARCHIVE_RATIO}:1 for the whole archive" in message


def test_fb2_zip_padded_with_many_members_is_refused(tmp_path):
    path = hb.split_bomb_fb2zip(tmp_path / "split.fb2.zip", count=200)
    assert "possible zip bomb" in refused(path)  # before: imported


def test_bytes_actually_inflated_count_against_the_archive_budget(tmp_path, monkeypatch):
    path = hb.epub(tmp_path / "three.epub", {f"c{n}.xhtml": hb.chapter_xhtml(hb.SENTENCE, 300) for n in (1, 2, 3)})
    archive = safety.open_zip(path.read_bytes(), "three.epub")
    per_chapter = len(archive.read("OEBPS/c1.xhtml"))
    monkeypatch.setattr(safety, "ARCHIVE_RATIO_MIN_BYTES", 0)
    monkeypatch.setattr(safety, "MAX_ARCHIVE_RATIO", (per_chapter * 2.5) / path.stat().st_size)
    archive.read("OEBPS/c2.xhtml")
    with pytest.raises(BadInput, match="zip members read so far inflate to more than"):
        archive.read("OEBPS/c3.xhtml")
    assert archive.inflated > 2 * per_chapter


def test_a_small_honest_archive_is_not_held_to_the_ratio(tmp_path):
    """Below ARCHIVE_RATIO_MIN_BYTES only the per-member limits apply: a tiny, very compressible book imports."""
    path = hb.epub(tmp_path / "tiny.epub", {"c1.xhtml": hb.chapter_xhtml(hb.SENTENCE, 2000)})
    with zipfile.ZipFile(path) as zf:
        declared = sum(i.file_size for i in zf.infolist())
    assert declared / path.stat().st_size > safety.MAX_ARCHIVE_RATIO
    assert load_book(path).chapters


# ----------------------------------------------------------------------------- 17: DRM and binary chapters
@pytest.mark.parametrize("encrypted,share", [(3, "all"), (1, "1 of 3")])
def test_adept_encrypted_epub_is_refused_as_drm(tmp_path, encrypted, share):
    path = hb.adept_epub(tmp_path / "drm.epub", encrypted=encrypted)
    message = refused(path)  # before: imported with control characters from the ciphertext
    assert "this EPUB is DRM-protected" in message and f"({share} content documents encrypted" in message


def test_obfuscated_fonts_alone_are_fine(tmp_path):
    book = load_book(hb.obfuscated_fonts_epub(tmp_path / "fonts.epub"))
    assert len(book.chapters) == 2 and not book.warnings and no_control_characters(book)


def test_encrypted_image_only_warns(tmp_path):
    path = hb.epub(
        tmp_path / "img.epub",
        {"c1.xhtml": hb.chapter_xhtml(hb.SENTENCE)},
        extra={
            "META-INF/encryption.xml": hb.encryption_xml([("OEBPS/i.png", hb.ADEPT_ALGORITHM)]),
            "OEBPS/i.png": b"\x00" * 64,
        },
        extra_manifest='<item id="i" href="i.png" media-type="image/png"/>',
    )
    book = load_book(path)
    assert book.chapters and any("non-text resource(s) are encrypted" in w for w in book.warnings)


def test_binary_chapter_is_skipped_with_a_warning(tmp_path):
    book = load_book(hb.binary_chapter_epub(tmp_path / "bin.epub"))
    assert [c.source for c in book.chapters] == ["OEBPS/c1.xhtml", "OEBPS/c3.xhtml"]
    assert no_control_characters(book)  # before: the random bytes were stored as a chapter
    assert any("OEBPS/c2.xhtml: not text (binary data" in w for w in book.warnings)


def test_epub_of_only_binary_chapters_is_refused(tmp_path):
    message = refused(hb.binary_chapter_epub(tmp_path / "bin.epub", readable=False))
    assert "no readable chapters (none of its 1 spine file(s) is text)" in message


# ----------------------------------------------------------------------------- 18: Cyrillic code pages
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1251", "koi8-r", "cp866"])
def test_russian_txt_in_every_common_encoding(tmp_path, encoding):
    book = load_book(hb.russian_txt(tmp_path / "r.txt", encoding))
    text = "\n".join(c.text for c in book.chapters)
    assert "Молодая рыжая собака, помесь таксы с дворняжкой" in text  # before: koi8-r/cp866 came out garbled
    if encoding in ("cp1251", "koi8-r", "cp866"):
        assert f"decoded as {encoding}" in book.warnings


def test_western_cp1252_still_reads():
    french = "Chapter 1\n\nLe café était très animé, déjà plein à midi.\n"
    assert decode_text(french.encode("cp1252")) == (french, "cp1252")


@pytest.mark.parametrize("build", [hb.greek_cp1253_txt, hb.high_byte_noise_txt])
def test_txt_no_code_page_reads_is_refused(tmp_path, build):
    message = refused(build(tmp_path / "x.txt"))  # before: imported as cp1251 junk
    assert "cannot tell the text's encoding" in message


@pytest.mark.parametrize("encoding", ["cp1251", "koi8-r", "cp866"])
def test_fb2_declaring_utf8_but_in_a_cyrillic_code_page(tmp_path, encoding):
    book = load_book(hb.fb2_declared_utf8(tmp_path / "k.fb2", encoding))
    assert "Молодая рыжая собака" in book.chapters[0].text  # before: koi8-r/cp866 read as cp1251 junk
    assert f"declared UTF-8 but is not; read as {encoding}" in book.warnings


def test_fb2_declaring_utf8_that_no_code_page_reads_is_refused(tmp_path):
    path = hb.fb2_declared_utf8(tmp_path / "g.fb2", "cp1253", text=hb.GREEK)
    assert "no single-byte code page reads it" in refused(path)


# ----------------------------------------------------------------------------- the CLI contract
REFUSED = {
    "repeat.epub": (hb.spine_repeat_epub, "possible amplification"),
    "split.epub": (lambda p: hb.split_bomb_epub(p, 200), "possible zip bomb"),
    "split.fb2.zip": (lambda p: hb.split_bomb_fb2zip(p, 200), "possible zip bomb"),
    "drm.epub": (hb.adept_epub, "this EPUB is DRM-protected"),
    "partly-drm.epub": (lambda p: hb.adept_epub(p, encrypted=1), "this EPUB is DRM-protected"),
    "binary.epub": (lambda p: hb.binary_chapter_epub(p, readable=False), "no readable chapters"),
    "greek.txt": (hb.greek_cp1253_txt, "cannot tell the text's encoding"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_cli_refuses_with_exit_2_one_line_and_changes_nothing(cli, home, tmp_path, name):
    build, expect = REFUSED[name]
    good = hb.russian_txt(tmp_path / "good.txt", "koi8-r")
    assert cli("books", "import", good).code == 0
    before = db_snapshot(home)
    path = build(tmp_path / name)
    res = cli("books", "import", path)
    assert res.code == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], res.stderr
    res = cli("books", "import", path, "--json")
    assert res.code == 2 and json.loads(res.stderr.strip())["exit_code"] == 2
    assert db_snapshot(home) == before


@needs_epubjs
def test_repeated_spine_cfis_match_epubjs(tmp_path):
    """epub.js renders every spine entry: locations still cover each repeat, and our once-read chapter's
    range CFIs point into its first occurrence and resolve in epub.js to exactly our text."""
    path = hb.epub(
        tmp_path / "rep.epub",
        {
            "c1.xhtml": hb.chapter_xhtml("Первая глава. " + hb.SENTENCE, 4),
            "c2.xhtml": hb.chapter_xhtml("Вторая глава. " + hb.SENTENCE, 4),
        },
        spine=["c1", "c2", "c1", "c1"],
    )
    chapters = load_book(path).chapters
    assert len(chapters) == 2
    mapping = ChapterMap(path, chapters)
    spans = [(0, 0, 40), (0, 50, 200), (1, 10, 120), (1, 100, len(chapters[1].text))]
    cfis = [mapping.range_cfi(index, start, end) for index, start, end in spans]
    assert [parse_cfi(c).spine_pos for c in cfis] == [0, 0, 1, 1]
    locations, ranges = run_epubjs_batch(
        [{"epub": str(path), "chars": 150, "pause": 0}, {"epub": str(path), "ranges": cfis}], processes=1
    )
    assert generate_locations(path, 150) == locations["locations"]
    assert parse_cfi(locations["locations"][-1]).spine_pos == 3
    for (index, start, end), got in zip(spans, ranges["ranges"]):
        assert "".join(got.split()) == "".join(chapters[index].text[start:end].split())
