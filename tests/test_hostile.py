"""Hostile book files, built here in tmp dirs: each is refused with one BadInput line, or (for bad zip member
names) imported with the bad member ignored. No other exception may leave load_book, and nothing is written."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from bookreader_cli.books import load_book
from bookreader_cli.books.safety import (
    MAX_ZIP_MEMBER_UNCOMPRESSED,
    MAX_ZIP_RATIO,
    safe_xml_parser,
)
from bookreader_cli.errors import BadInput

CONTAINER = """<?xml version="1.0"?>
<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0"><rootfiles>
<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"""
XHTML = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head><body><h1>Глава</h1><p>{text}</p></body></html>"""
FB2 = """<?xml version="1.0" encoding="utf-8"?>
{doctype}<FictionBook xmlns="http://www.gribuser.ru/xml/fictionbook/2.0" xmlns:l="http://www.w3.org/1999/xlink">
<description><title-info><book-title>Книга</book-title><lang>ru</lang></title-info></description>
<body><section><title><p>Глава</p></title><p>{text}</p></section></body></FictionBook>"""
LAUGHS = """<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
"""


def opf(title: str = "Книга", doctype: str = "") -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
{doctype}<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
 <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title>
  <dc:identifier id="id">x</dc:identifier><dc:language>ru</dc:language></metadata>
 <manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/></manifest>
 <spine><itemref idref="c1"/></spine></package>"""


def make_epub(path: Path, members: dict[str, bytes | str]) -> Path:
    base = {
        "mimetype": "application/epub+zip",
        "META-INF/container.xml": CONTAINER,
        "OEBPS/content.opf": opf(),
        "OEBPS/c1.xhtml": XHTML.format(text="Мирный текст."),
    }
    base.update(members)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in base.items():
            zf.writestr(zipfile.ZipInfo(name) if name.startswith("/") else name, data)
    return path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-CONTENT-4711")
    return path


def refused(path: Path) -> str:
    with pytest.raises(BadInput) as info:
        load_book(path)
    message = str(info.value)
    assert "\n" not in message and message
    return message


def test_baseline_hand_made_epub_imports(tmp_path):
    book = load_book(make_epub(tmp_path / "ok.epub", {}))
    assert book.title == "Книга" and book.chapters[0].paragraph_texts() == ["Глава", "Мирный текст."]


# -------------------------------------------------------------------------------------- XXE, billion laughs
def test_xxe_in_epub_opf_is_refused(tmp_path, secret):
    doctype = f'<!DOCTYPE package [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
    path = make_epub(tmp_path / "xxe.epub", {"OEBPS/content.opf": opf("&xxe;", doctype)})
    message = refused(path)
    assert "refused: XML declares entities" in message and "TOP-SECRET" not in message


def test_xxe_in_fb2_is_refused(tmp_path, secret):
    doctype = f'<!DOCTYPE FictionBook [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
    path = tmp_path / "xxe.fb2"
    path.write_text(FB2.format(doctype=doctype, text="&xxe;"), encoding="utf-8")
    message = refused(path)
    assert "refused: XML declares entities" in message and "TOP-SECRET" not in message


def test_xxe_through_xhtml_in_epub_is_refused(tmp_path, secret):
    doc = XHTML.format(text="&xxe;").replace(
        "<html", f'<!DOCTYPE html [<!ENTITY xxe SYSTEM "file://{secret}">]>\n<html', 1
    )
    message = refused(make_epub(tmp_path / "xxe2.epub", {"OEBPS/c1.xhtml": doc}))
    assert "refused" in message and "TOP-SECRET" not in message


def test_billion_laughs_in_fb2_is_refused(tmp_path):
    path = tmp_path / "lol.fb2"
    path.write_text(FB2.format(doctype=LAUGHS, text="&lol9;"), encoding="utf-8")
    assert "refused: XML declares entities" in refused(path)


def test_billion_laughs_in_utf16_fb2_is_refused(tmp_path):
    path = tmp_path / "lol16.fb2"
    path.write_bytes(FB2.format(doctype=LAUGHS, text="&lol9;").replace("utf-8", "utf-16").encode("utf-16"))
    assert "refused: XML declares entities" in refused(path)


def test_billion_laughs_in_epub_xhtml_is_refused(tmp_path):
    doc = XHTML.format(text="&lol9;").replace("<html", LAUGHS.replace("lolz", "html") + "<html", 1)
    assert "refused: XML declares entities" in refused(make_epub(tmp_path / "lol.epub", {"OEBPS/c1.xhtml": doc}))


def test_safe_parser_alone_never_resolves_external_entities(secret):
    """Defence in depth: even past the pre-check, the parser itself leaves the entity unexpanded."""
    doc = f'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{secret}">]><r>&xxe;</r>'.encode()
    root = etree.fromstring(doc, parser=safe_xml_parser())
    assert "TOP-SECRET" not in etree.tostring(root, encoding="unicode")


# ------------------------------------------------------------------------------------------------ zips
def test_zip_bomb_by_ratio_is_refused_without_inflating(tmp_path):
    size = 4 * 1024 * 1024  # 4 MB of zeros compresses ~1000:1
    path = make_epub(tmp_path / "bomb.epub", {"OEBPS/c1.xhtml": b"\0" * size})
    message = refused(path)
    assert "possible zip bomb" in message and f"{MAX_ZIP_RATIO}:1" in message


def test_zip_member_over_size_cap_is_refused(tmp_path):
    path = tmp_path / "big.epub"
    make_epub(path, {})
    chunk = b"\0" * (1024 * 1024)
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open("OEBPS/huge.bin", "w", force_zip64=True) as fh,
    ):
        for _ in range(MAX_ZIP_MEMBER_UNCOMPRESSED // len(chunk) + 1):
            fh.write(chunk)
    assert path.stat().st_size < 5 * 1024 * 1024
    assert "possible zip bomb" in refused(path)


def test_zip_member_lying_about_its_size_is_refused(tmp_path):
    """A member whose directory entry claims 10 bytes but inflates to far more is never read past its claim."""
    path = make_epub(tmp_path / "liar.epub", {"OEBPS/c1.xhtml": XHTML.format(text="x" * 100_000)})
    data = bytearray(path.read_bytes())
    # Patch the uncompressed size (offset 24) of the c1.xhtml entry in the central directory to 10 bytes.
    name = b"OEBPS/c1.xhtml"
    patched = 0
    index = data.find(b"PK\x01\x02")
    while index != -1:
        name_len = int.from_bytes(data[index + 28 : index + 30], "little")
        if data[index + 46 : index + 46 + name_len] == name:
            data[index + 24 : index + 28] = (10).to_bytes(4, "little")
            patched += 1
        index = data.find(b"PK\x01\x02", index + 4)
    assert patched == 1
    path.write_bytes(bytes(data))
    assert "damaged zip member 'OEBPS/c1.xhtml'" in refused(path)


def test_path_traversal_members_are_ignored_and_nothing_written(tmp_path):
    workdir = tmp_path / "deep" / "work"
    workdir.mkdir(parents=True)
    path = make_epub(
        workdir / "trav.epub",
        {"../../evil.txt": "EVIL", "/tmp/evil_abs.txt": "EVIL", "OEBPS/../../../evil2.txt": "EVIL"},
    )
    before = set(tmp_path.rglob("*"))
    cwd = os.getcwd()
    try:
        os.chdir(workdir)
        book = load_book(path)
    finally:
        os.chdir(cwd)
    assert book.chapters[0].paragraph_texts() == ["Глава", "Мирный текст."]
    assert sum("unsafe zip member" in w for w in book.warnings) == 3
    assert set(tmp_path.rglob("*")) == before
    assert not Path("/tmp/evil_abs.txt").exists()


def test_spine_item_pointing_outside_the_archive_is_refused(tmp_path):
    bad_opf = opf().replace('href="c1.xhtml"', 'href="../../evil.xhtml"')
    path = make_epub(tmp_path / "out.epub", {"OEBPS/content.opf": bad_opf, "../evil.xhtml": XHTML.format(text="EVIL")})
    assert "missing from the archive" in refused(path)


def test_fb2_zip_with_one_book_imports_and_with_traversal_names_ignores_them(tmp_path):
    path = tmp_path / "book.fb2.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("book.fb2", FB2.format(doctype="", text="Снег."))
        zf.writestr("../../evil.fb2", "EVIL")
    book = load_book(path)
    assert book.format == "fb2" and "Снег." in book.chapters[0].text
    assert any("unsafe zip member" in w for w in book.warnings)


# ----------------------------------------------------------------------------------- wrong or no content
def test_png_renamed_epub(tmp_path):
    path = tmp_path / "x.epub"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    assert refused(path) == "x.epub: not an EPUB (it is a PNG image)"


def test_fb2_that_is_not_xml(tmp_path):
    path = tmp_path / "x.fb2"
    path.write_text("Just some words, no markup at all.\n", encoding="utf-8")
    assert refused(path) == "x.fb2: not an FB2 (it is plain text)"


def test_broken_fb2_xml(tmp_path):
    path = tmp_path / "x.fb2"
    path.write_text(FB2.format(doctype="", text="Снег.")[:-40], encoding="utf-8")
    assert "x.fb2: broken FB2: XML is not well-formed" in refused(path)


def test_binary_garbage_with_no_extension(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(bytes(range(256)) * 20)
    assert refused(path) == "blob: not an e-book: looks like binary data"


def test_pdf_named_txt(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"%PDF-1.7\n...")
    assert refused(path) == "x.txt: not a TXT (it is a PDF document)"


def test_plain_zip_named_epub(tmp_path):
    path = tmp_path / "x.epub"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.md", "hello")
    assert refused(path) == "x.epub: not an EPUB (it is a zip archive with no e-book inside)"


def test_fb2_named_txt_imports_with_a_warning(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text(FB2.format(doctype="", text="Снег."), encoding="utf-8")
    book = load_book(path)
    assert book.format == "fb2" and "file name says TXT but the contents are FB2" in book.warnings


def test_empty_file(tmp_path):
    path = tmp_path / "x.epub"
    path.write_bytes(b"")
    assert refused(path) == "x.epub: empty file (0 bytes)"


def test_directory(tmp_path):
    assert "is a directory" in refused(tmp_path)


def test_missing_file(tmp_path):
    assert "no such file" in refused(tmp_path / "nope.epub")


def test_corrupted_epub_bytes_never_raise_anything_but_badinput(tmp_path):
    """Flip bytes all through a valid EPUB: each variant imports or is refused, nothing else."""
    good = make_epub(tmp_path / "good.epub", {}).read_bytes()
    outcomes = set()
    for offset in range(0, len(good), max(1, len(good) // 60)):
        for junk in (b"\xff\xfe\x00", b"<!"):
            mutated = good[:offset] + junk + good[offset + len(junk) :]
            path = tmp_path / "m.epub"
            path.write_bytes(mutated)
            try:
                load_book(path)
                outcomes.add("ok")
            except BadInput:
                outcomes.add("refused")
    assert "refused" in outcomes
