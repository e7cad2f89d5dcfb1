"""Book parsing (books/): the shared corpus, its malformed files, the project's sample books, hand-made cases."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from bookreader_cli.books import load_book
from bookreader_cli.books.txt import decode_text, split_paragraphs
from bookreader_cli.errors import BadInput

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus"
SAMPLES = Path(__file__).resolve().parents[1] / "sample_books"


def corpus_books() -> list[str]:
    if not CORPUS.is_dir():
        return []
    return sorted(
        str(p.relative_to(CORPUS))
        for p in CORPUS.glob("*/*")
        if p.is_file() and not p.parent.name.startswith("malformed__")
    )


def _corpus(rel: str) -> Path:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is absent")
    return CORPUS / rel


def assert_well_formed(book) -> None:
    """Every chapter: non-empty text that is exactly its paragraphs joined by newlines, offsets exact."""
    assert book.chapters
    for chapter in book.chapters:
        assert chapter.text and chapter.paragraphs
        texts = chapter.paragraph_texts()
        assert "\n".join(texts) == chapter.text
        assert all(t and "\n" not in t and t == t.strip() for t in texts)
        assert all(p.kind in ("text", "heading", "epigraph", "poem", "subtitle") for p in chapter.paragraphs)


# --------------------------------------------------------------------------------------- shared corpus
@pytest.mark.parametrize("rel", corpus_books() or ["(corpus absent)"])
def test_every_corpus_book_imports(rel):
    book = load_book(_corpus(rel))
    assert_well_formed(book)
    assert book.title
    assert book.format in ("epub2", "epub3", "fb2", "txt")


# (file, format, title, [chapter titles that must appear, in this order], a word in the text, min chapters)
KNOWN = [
    (
        "ru_fb2__de-don_searcher/tolstoy_voina_i_mir_kniga1.nocover.fb2",
        "fb2",
        "Война и мир. Книга 1",
        ["I", "II", "III"],
        "Анна Павловна",
        150,
    ),
    (
        "en_epub2__olekavr_ZF_task/pg2701.epub",
        "epub2",
        "Moby Dick; Or, The Whale",
        ["CHAPTER 1. Loomings.", "CHAPTER 2. The Carpet-Bag."],
        "Call me Ishmael",
        130,
    ),
    (
        "en_epub3__futurepress_epub.js/moby-dick.epub",
        "epub3",
        "Moby-Dick",
        ["Chapter 1. Loomings.", "Chapter 2. The Carpet-Bag."],
        "Call me Ishmael",
        130,
    ),
    (
        "en_txt__jerzybrzoska_Moby-Dick/2701-0.txt",
        "txt",
        "Moby Dick; or The Whale",
        ["CHAPTER 1. Loomings.", "CHAPTER 135. The Chase.—Third Day."],
        "Call me Ishmael",
        130,
    ),
    (
        "en_txt__GITenberg_Pride-and-Prejudice_1342/1342-0.txt",
        "txt",
        "Pride and Prejudice",
        ["Chapter 1", "Chapter 61"],
        "truth universally acknowledged",
        61,
    ),
    (
        "en_epub3__thuleanh543_data_epub/pg2600-images-3.epub",
        "epub3",
        "War and Peace",
        ["CHAPTER I", "CHAPTER II"],
        "Genoa and Lucca",
        360,
    ),
    (
        (
            "en_fb2__lazybones-production_reader-clojure-web-app/"
            "Twain_Mark__The_Adventures_of_Tom_Sawyer__Litmir.net_127829.fb2"
        ),
        "fb2",
        "The Adventures of Tom Sawyer",
        ["PREFACE", "CHAPTER I", "CHAPTER XXXV"],
        "TOM!",
        35,
    ),
    (
        "ru_generated__calibre6.13_pandoc2.17/chekhov_kashtanka.calibre.cp1251.fb2",
        "fb2",
        "Каштанка",
        ["Глава первая. Дурное поведение", "Глава седьмая. Неудачный дебют"],
        "Молодая рыжая собака",
        7,
    ),
    (
        "ru_generated__calibre6.13_pandoc2.17/pushkin_kapitanskaya_dochka.calibre-epub2.epub",
        "epub2",
        "Капитанская дочка",
        ["ГЛАВА I. СЕРЖАНТ ГВАРДИИ", "ГЛАВА II. ВОЖАТЫЙ"],
        "Отец мой",
        14,
    ),
    (
        "ru_generated__calibre6.13_pandoc2.17/chekhov_kashtanka.pandoc-epub3.epub",
        "epub3",
        "Каштанка",
        ["Глава первая. Дурное поведение", "Глава вторая. Таинственный незнакомец"],
        "Молодая рыжая собака",
        7,
    ),
    (
        "ru_txt__d0rj_RusLit/chekhov_kashtanka.txt",
        "txt",
        "Каштанка",
        ["Глава первая. Дурное поведение", "Глава седьмая. Неудачный дебют"],
        "Молодая рыжая собака",
        7,
    ),
    (
        "ru_txt__d0rj_RusLit/pushkin_kapitanskaya_dochka.txt",
        "txt",
        "КАПИТАНСКАЯ ДОЧКА",
        ["ГЛАВА I. СЕРЖАНТ ГВАРДИИ", "ГЛАВА II. ВОЖАТЫЙ"],
        "Отец мой",
        14,
    ),
    ("ru_txt__d0rj_RusLit/gogol_shinel.txt", "txt", "Шинель", ["Шинель"], "Акакий Акакиевич", 1),
    (
        "ru_epub3__thuleanh543_data_epub/pg16527-images-3.epub",
        "epub3",
        "1001 задача для умственного счета",
        [],
        "задача",
        2,
    ),
]


@pytest.mark.parametrize(
    "rel,fmt,title,chapter_titles,word,min_chapters", KNOWN, ids=[k[0].split("/")[1] for k in KNOWN]
)
def test_known_corpus_books(rel, fmt, title, chapter_titles, word, min_chapters):
    book = load_book(_corpus(rel))
    assert book.format == fmt
    assert book.title == title
    assert len(book.chapters) >= min_chapters
    titles = [c.title for c in book.chapters]
    positions = [titles.index(t) for t in chapter_titles]
    assert positions == sorted(positions)
    assert any(word in c.text for c in book.chapters)


def test_war_and_peace_fb2_structure():
    book = load_book(_corpus("ru_fb2__de-don_searcher/tolstoy_voina_i_mir_kniga1.nocover.fb2"))
    assert book.authors == ["Лев Николаевич Толстой"] and book.language == "ru"
    first = book.chapters[0]
    # Volume and part titles lead into the first chapter as headings; the chapter itself is titled "I".
    assert first.paragraph_texts()[:3] == ["Том первый", "Часть первая", "I"]
    assert [p.kind for p in first.paragraphs[:3]] == ["heading"] * 3
    assert first.paragraph_texts()[3].startswith("– Eh bien, mon prince.")
    assert "Так говорила в июле 1805 года" in first.text
    assert first.text.index("Eh bien") < first.text.index("Так говорила")
    # Notes stay out of chapters; note markers in the text are kept.
    assert len(book.notes) == 520
    assert "[1]" in first.text
    assert not any(c.title.isdigit() for c in book.chapters)
    # Each text appears once: total chapter text is close to the body's size, never doubled.
    total = sum(len(c.text) for c in book.chapters)
    assert 1_300_000 < total < 1_700_000


def test_moby_dick_epub2_chapter_text_in_order():
    book = load_book(_corpus("en_epub2__olekavr_ZF_task/pg2701.epub"))
    chapter = next(c for c in book.chapters if c.title == "CHAPTER 1. Loomings.")
    texts = chapter.paragraph_texts()
    assert texts[0] == "CHAPTER 1. Loomings." and chapter.paragraphs[0].kind == "heading"
    assert texts[1].startswith("Call me Ishmael.")
    assert texts[-1].startswith("By reason of these things, then, the whaling voyage was welcome")
    assert "#" in chapter.source  # several TOC entries point into one file: split at anchors
    assert book.cover and book.cover_media_type == "image/png"
    assert book.authors == ["Herman Melville"] and book.language == "en"


def test_epub3_cover_and_metadata():
    book = load_book(_corpus("en_epub3__futurepress_epub.js/moby-dick.epub"))
    assert book.cover_media_type == "image/jpeg" and book.cover[:3] == b"\xff\xd8\xff"
    assert book.publisher == "Harper & Brothers, Publishers"
    assert "code.google.com.epub-samples.moby-dick-basic" in book.identifiers


def test_cp1251_fb2_reads_cyrillic():
    utf8 = load_book(_corpus("ru_generated__calibre6.13_pandoc2.17/chekhov_kashtanka.calibre.fb2"))
    cp1251 = load_book(_corpus("ru_generated__calibre6.13_pandoc2.17/chekhov_kashtanka.calibre.cp1251.fb2"))
    assert [c.text for c in utf8.chapters] == [c.text for c in cp1251.chapters]


def test_fb2_notes_body_kept_apart():
    book = load_book(_corpus("ru_generated__calibre6.13_pandoc2.17/gogol_shinel.pandoc.fb2"))
    assert len(book.chapters) == 1 and book.chapters[0].title == "Шинель"
    assert [n.text for n in book.notes] == ["Добрый день папа!"]
    assert "Добрый день папа!" not in book.chapters[0].text


def test_gutenberg_txt_licence_is_its_own_chapter():
    book = load_book(_corpus("en_txt__jerzybrzoska_Moby-Dick/2701-0.txt"))
    assert book.chapters[-1].title.startswith("*** END OF")
    last_story = next(c for c in reversed(book.chapters) if c.title.startswith("Epilogue") or "Epilogue" in c.title)
    assert "Project Gutenberg-tm" not in last_story.text and "*** END OF" not in last_story.text


# -------------------------------------------------------------------------------------- malformed files
# Each malformed file either imports (a reader would recover) or is refused with a clear message.
# "ok" = imports; anything else is a substring the BadInput message must contain.
MALFORMED = {
    "malformed__Ugtakhbayar2001_Huffman/345-0_declared-utf8_actually-cp1252.txt": "ok",
    "malformed__derived_here/declared-utf8_actually-cp1251__chekhov_kashtanka.fb2": "ok",
    "malformed__derived_here/html-entities-undeclared__chekhov_kashtanka.fb2": "ok",
    "malformed__derived_here/truncated_100k__tolstoy_voina_i_mir_kniga1.fb2": "broken FB2: XML is not well-formed",
    "malformed__futurepress_epub.js/alice_without_cover.epub": "ok",
    "malformed__lazybones-production_reader-clojure-web-app/book_stub_body.fb2": "FB2 has no text",
    "malformed__vers-one_EpubReader/epub2-no-cover-no-guide-issue57.epub": "EPUB has no readable chapters",
    "malformed__vers-one_EpubReader/epub2-spine-missing-toc-attr.epub": "EPUB has no readable chapters",
    "malformed__vers-one_EpubReader/epub3-remote-content.epub": "EPUB has no readable chapters",
    "malformed__vers-one_EpubReader/invalid-manifest-items-epub2.epub": "EPUB has no readable chapters",
    "malformed__vers-one_EpubReader/invalid-manifest-items-epub3.epub": "EPUB has no readable chapters",
    "malformed__vers-one_EpubReader/ncx-navlist-issue55.epub": "EPUB has no readable chapters",
    "malformed__vers-one_EpubReader/ncx-navpoint-missing-content.epub": "EPUB has no readable chapters",
    "malformed__vers-one_EpubReader/typical-epub2.epub": "EPUB has no text",
    "malformed__vers-one_EpubReader/typical-epub3.epub": "ok",
    "malformed__vers-one_EpubReader/xml11-declarations.epub": "EPUB has no readable chapters",
    "malformed__w3c_epubcheck/epub2-bad_opf_namespace.epub": "is not an OPF package",
    "malformed__w3c_epubcheck/epub2-lorem-mimetype.epub": "ok",
    "malformed__w3c_epubcheck/epub2-ncx-dupe-id.epub": "ok",
    "malformed__w3c_epubcheck/epub2-no-rootfile.epub": "is not an OPF package",
    "malformed__w3c_epubcheck/epub3-lorem-zip64.epub": "ok",
    "malformed__w3c_epubcheck/epub3-nav-invalid.epub": "ok",
    "malformed__w3c_epubcheck/minimal.epub": "ok",
    "malformed__w3c_epubcheck/ocf-container-not-ocf-error.epub": "not an EPUB (it is an Office Open XML",
    "malformed__w3c_epubcheck/ocf-directory-empty-warning.epub": "ok",
    "malformed__w3c_epubcheck/ocf-filename-character-forbidden-error.epub": "ok",
    "malformed__w3c_epubcheck/ocf-filename-duplicate-zip-entry-error.epub": "ok",
    "malformed__w3c_epubcheck/ocf-filename-not-utf8-error.epub": "ok",
    "malformed__w3c_epubcheck/ocf-filepath-not-utf8-error.epub": "ok",
    "malformed__w3c_epubcheck/ocf-mimetype-file-missing-error.epub": "ok",
    "malformed__w3c_epubcheck/ocf-minimal-valid.epub": "ok",
    "malformed__w3c_epubcheck/ocf-zip-mimetype-entry-extra-field-error.epub": "ok",
    "malformed__w3c_epubcheck/ocf-zip-unreadable-empty-fatal.epub": "empty file",
    "malformed__w3c_epubcheck/ocf-zip-unreadable-image-with-epub-extension-fatal.epub": "not an EPUB (it is a JPEG image)",
    "malformed__w3c_epubcheck/ocf-zip-unreadable-no-end-header-fatal.epub": "broken EPUB: not a readable zip",
    "malformed__w3c_epubcheck/wrong_extension.ePub": "ok",
}


@pytest.mark.parametrize("rel,expected", sorted(MALFORMED.items()), ids=[Path(k).name for k in sorted(MALFORMED)])
def test_malformed_corpus_file(rel, expected):
    path = _corpus(rel)
    if expected == "ok":
        book = load_book(path)
        assert_well_formed(book)
    else:
        with pytest.raises(BadInput) as info:
            load_book(path)
        message = str(info.value)
        assert expected in message
        assert message.startswith(path.name) and "\n" not in message


def test_malformed_table_covers_every_file():
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is absent")
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("malformed__*/*") if p.is_file()}
    assert on_disk == set(MALFORMED)


def test_recoveries_are_reported_as_warnings():
    missing = load_book(_corpus("malformed__w3c_epubcheck/ocf-mimetype-file-missing-error.epub"))
    assert any("mimetype" in w for w in missing.warnings)
    cp1252 = load_book(_corpus("malformed__Ugtakhbayar2001_Huffman/345-0_declared-utf8_actually-cp1252.txt"))
    assert cp1252.warnings == ["decoded as cp1252"]
    assert any("Jonathan Harker’s Journal".upper() in c.title.upper().replace("'", "’") for c in cp1252.chapters)
    fb2 = load_book(_corpus("malformed__derived_here/declared-utf8_actually-cp1251__chekhov_kashtanka.fb2"))
    assert any("cp1251" in w for w in fb2.warnings) and "Молодая рыжая собака" in fb2.chapters[0].text


# ---------------------------------------------------------------------------------------- sample books
def _expected() -> dict:
    path = SAMPLES / "expected.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(_expected()) or ["(expected.json absent)"])
def test_sample_book_matches_expected(name):
    expected = _expected().get(name)
    if expected is None:
        pytest.skip("sample_books/expected.json is absent")
    book = load_book(SAMPLES / name)
    assert_well_formed(book)
    assert book.format == expected["format"]
    assert [c.title for c in book.chapters] == expected["chapters"]
    assert book.title == expected["title"]
    if expected.get("metadata_declared", True):
        for key in ("language", "authors", "publisher", "date", "identifiers", "cover_media_type"):
            if key in expected:
                assert getattr(book, key) == expected[key], key
    for chapter, paragraphs in zip(book.chapters, expected.get("chapter_paragraphs", [])):
        texts = chapter.paragraph_texts()
        positions = [texts.index(p) for p in paragraphs]  # ValueError if a paragraph is missing
        assert positions == sorted(positions)
    if "notes" in expected:
        assert [n.text for n in book.notes] == expected["notes"]
    for title, subtitles in expected.get("subsection_titles", {}).items():
        chapter = next(c for c in book.chapters if c.title == title)
        headings = [t for t, p in zip(chapter.paragraph_texts(), chapter.paragraphs) if p.kind == "heading"]
        assert all(s in headings for s in subtitles)
    for href, anchors in expected.get("files_with_several_chapters", {}).items():
        sources = [c.source for c in book.chapters]
        for anchor in anchors:
            assert any(s.endswith(f"{href}#{anchor}") for s in sources), (href, anchor, sources)
    for href in expected.get("textless_spine_items", []):
        assert not any(c.source.split("#")[0].endswith(href) for c in book.chapters)
    if "encoding" in expected and expected["encoding"] not in ("utf-8", "utf-8-sig"):
        assert f"decoded as {expected['encoding']}" in book.warnings


# ------------------------------------------------------------------------------- hand-made, no corpus
def _write_epub(path: Path, spine_files: dict[str, str], nav_links: list[tuple[str, str]], version="3.0") -> Path:
    manifest = "".join(
        f'<item id="f{i}" href="{name}" media-type="application/xhtml+xml"/>' for i, name in enumerate(spine_files)
    )
    spine = "".join(f'<itemref idref="f{i}"/>' for i in range(len(spine_files)))
    nav = "".join(f'<li><a href="{href}">{title}</a></li>' for href, title in nav_links)
    opf = f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="{version}" unique-identifier="id">
 <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Тест</dc:title><dc:identifier id="id">x</dc:identifier>
  <dc:language>ru</dc:language></metadata>
 <manifest>{manifest}<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/></manifest>
 <spine>{spine}</spine></package>"""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr(
            "META-INF/container.xml",
            """<?xml version="1.0"?>
<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0"><rootfiles>
<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>""",
        )
        zf.writestr("OEBPS/content.opf", opf)
        zf.writestr(
            "OEBPS/nav.xhtml",
            f"""<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><body>
<nav epub:type="toc"><ol>{nav}</ol></nav></body></html>""",
        )
        for name, body in spine_files.items():
            zf.writestr(
                f"OEBPS/{name}",
                f"""<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head><body>{body}</body></html>""",
            )
    return path


def test_epub_anchors_split_one_file_into_chapters(tmp_path):
    body = (
        '<h2 id="c1">Пролог</h2><p>Туман над <em>рекой</em> &amp; лугом&nbsp;стоял.</p>'
        '<div class="epigraph"><p>Эпиграф.</p></div>'
        '<h2><a id="c2"></a>Глава двадцать первая</h2><p>Первый абзац.</p><p>Второй абзац.</p>'
    )
    path = _write_epub(
        tmp_path / "a.epub",
        {"cover.xhtml": '<div><img src="c.png" alt=""/></div>', "text.xhtml": body},
        [("text.xhtml#c1", "Пролог"), ("text.xhtml#c2", "Глава двадцать первая")],
    )
    book = load_book(path)
    assert [c.title for c in book.chapters] == ["Пролог", "Глава двадцать первая"]
    assert [c.source for c in book.chapters] == ["OEBPS/text.xhtml#c1", "OEBPS/text.xhtml#c2"]
    first, second = book.chapters
    assert first.paragraph_texts() == [
        "Пролог",
        "Туман над рекой & лугом\u00a0стоял.".replace("\u00a0", " "),
        "Эпиграф.",
    ]
    assert [p.kind for p in first.paragraphs] == ["heading", "text", "epigraph"]
    assert second.paragraph_texts() == ["Глава двадцать первая", "Первый абзац.", "Второй абзац."]
    assert book.format == "epub3" and book.language == "ru"


def test_epub_without_toc_titles_uses_headings_then_file_name(tmp_path):
    path = _write_epub(
        tmp_path / "b.epub", {"one.xhtml": "<h1>Начало</h1><p>Текст.</p>", "two.xhtml": "<p>Ещё.</p>"}, []
    )
    assert [c.title for c in load_book(path).chapters] == ["Начало", "two"]


def test_malformed_xhtml_is_read_leniently(tmp_path):
    path = _write_epub(
        tmp_path / "c.epub", {"bad.xhtml": "<p>Открыт <b>жирный<p>Второй</body>"}, [("bad.xhtml", "Глава")]
    )
    book = load_book(path)
    assert "Открыт жирный" in book.chapters[0].text and "Второй" in book.chapters[0].text
    assert any("malformed XHTML" in w for w in book.warnings)


def test_txt_encodings(tmp_path):
    russian = "Глава первая\n\nМороз и солнце; день чудесный!\n"
    for encoding in ("utf-8", "utf-8-sig", "cp1251"):
        (tmp_path / "r.txt").write_bytes(russian.encode(encoding))
        book = load_book(tmp_path / "r.txt")
        assert "Мороз и солнце" in book.chapters[0].text, encoding
    french = "Chapter 1\n\nLe café était très animé, déjà plein à midi.\n"
    assert decode_text(french.encode("cp1252")) == (french, "cp1252")
    assert decode_text(russian.encode("cp1251")) == (russian, "cp1251")


def test_txt_paragraph_rule():
    wrapped = "First line of a paragraph\nthat continues here.\n\nSecond paragraph.\n"
    assert split_paragraphs(wrapped) == ["First line of a paragraph that continues here.", "Second paragraph."]
    one_per_line = "A line that is a whole paragraph.\nAnother one.\n"
    assert split_paragraphs(one_per_line) == ["A line that is a whole paragraph.", "Another one."]


def test_txt_table_of_contents_is_not_chapters(tmp_path):
    toc = "\n\n".join(f"CHAPTER {i}. Title {i}." for i in range(1, 6))
    text = (
        "My Book\n\n"
        + toc
        + "\n\n"
        + "\n\n".join(f"CHAPTER {i}. Title {i}.\n\nText of chapter {i}." for i in range(1, 6))
    )
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    book = load_book(tmp_path / "t.txt")
    assert [c.title for c in book.chapters] == [f"CHAPTER {i}. Title {i}." for i in range(1, 6)]
    assert book.title == "My Book"


RICH_FB2 = """<?xml version="1.0" encoding="{encoding}"?>
<FictionBook xmlns="http://www.gribuser.ru/xml/fictionbook/2.0" xmlns:l="http://www.w3.org/1999/xlink">
<description><title-info><author><first-name>Иван</first-name><last-name>Тестов</last-name></author>
<book-title>Проба</book-title><date value="1900-01-02">1900</date><lang>ru</lang>
<coverpage><image l:href="#cover.png"/></coverpage></title-info></description>
<body><title><p>Проба</p></title>
<section><title><p>Часть первая</p></title><epigraph><p>Всё проходит.</p><text-author>Соломон</text-author></epigraph>
 <section><title><p>Глава 1</p></title>
  <p>Снег <emphasis>шёл</emphasis> и <strong>шёл</strong>, см.<a l:href="#n1" type="note">[1]</a></p>
  <poem><stanza><v>Мороз и солнце;</v><v>день чудесный!</v></stanza></poem>
  <cite><p>Цитата.</p><text-author>Автор цитаты</text-author></cite>
  <subtitle>* * *</subtitle>
  <section><title><p>Подглава</p></title><p>Вложенный текст.</p></section>
 </section>
 <section><title><p>Глава 2</p></title><p>Второй текст.</p></section>
</section></body>
<body name="notes"><section id="n1"><title><p>1</p></title><p>Примечание.</p></section></body>
<binary id="cover.png" content-type="image/png">iVBORw0KGgo=</binary>
</FictionBook>"""


@pytest.mark.parametrize("encoding", ["utf-8", "windows-1251", "koi8-r"])
def test_fb2_structure_inline_markup_and_encodings(tmp_path, encoding):
    path = tmp_path / "rich.fb2"
    path.write_bytes(RICH_FB2.format(encoding=encoding).encode(encoding))
    book = load_book(path)
    assert book.title == "Проба" and book.authors == ["Иван Тестов"] and book.date == "1900-01-02"
    assert book.cover == b"\x89PNG\r\n\x1a\n" and book.cover_media_type == "image/png"
    assert [c.title for c in book.chapters] == ["Глава 1", "Глава 2"]
    first = book.chapters[0]
    pairs = list(zip(first.paragraph_texts(), [p.kind for p in first.paragraphs]))
    assert pairs == [
        ("Проба", "heading"),
        ("Часть первая", "heading"),
        ("Всё проходит.", "epigraph"),
        ("Соломон", "epigraph"),
        ("Глава 1", "heading"),
        ("Снег шёл и шёл, см.[1]", "text"),
        ("Мороз и солнце;", "poem"),
        ("день чудесный!", "poem"),
        ("Цитата.", "text"),
        ("Автор цитаты", "text"),
        ("* * *", "subtitle"),
        ("Подглава", "heading"),
        ("Вложенный текст.", "text"),
    ]
    assert sum(c.text.count("Вложенный текст.") for c in book.chapters) == 1
    assert [n.text for n in book.notes] == ["Примечание."] and book.notes[0].title == "1"


def test_fb2_body_without_sections_is_one_chapter(tmp_path):
    path = tmp_path / "flat.fb2"
    path.write_text(
        RICH_FB2.format(encoding="utf-8").split("<body><title>")[0]
        + "<body><p>Первый.</p><p>Второй.</p></body></FictionBook>",
        encoding="utf-8",
    )
    book = load_book(path)
    assert len(book.chapters) == 1 and book.chapters[0].paragraph_texts() == ["Первый.", "Второй."]
