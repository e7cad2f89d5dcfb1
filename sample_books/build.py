#!/usr/bin/env python3
"""Rebuild the sample books in this folder from the texts in src/ (stdlib only, byte-for-byte reproducible).

Usage:
    python sample_books/build.py            # write every book and expected.json next to this script
    python sample_books/build.py --check    # exit 1 if a committed file differs from a fresh build

Each src/*.md file holds one book: a front-matter block of `key: value` lines between `---` lines, then
one paragraph per line. Markup (see README.md): `# Title {file.xhtml#anchor}` starts a chapter, `## Title`
a sub-section, `> ` lines an epigraph, `| ` lines a poem (a bare `|` splits stanzas), `@empty name.xhtml`
an EPUB spine document with no text, `@break` a scene break, `@note ID text` a note, `{#id} ` an id on a
paragraph and `{.location}` (or character, atmosphere, object, narration, dialogue) a label that only goes
to expected.json. Paragraph text is an XHTML inline fragment (<em>, <strong>, <span>, <a>, numeric entities).
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import sys
import textwrap
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
ZIP_DATE = (2024, 1, 1, 0, 0, 0)  # fixed member timestamps keep the archives reproducible

# One entry per output file: the source text, the format, and format-specific layout choices.
BOOKS = [
    {"out": "ru_sample.epub", "src": "ru_sample_epub.md", "format": "epub3"},
    {"out": "ru_sample.fb2", "src": "ru_sample_fb2.md", "format": "fb2"},
    {"out": "en_sample.epub", "src": "en_sample_epub.md", "format": "epub2"},
    # cp1251 with Windows line ends, one paragraph per line, no blank lines between paragraphs.
    {
        "out": "ru_sample.txt",
        "src": "ru_sample_txt.md",
        "format": "txt",
        "encoding": "cp1251",
        "newline": "\r\n",
        "blank_between": False,
        "wrap": 0,
    },
    # UTF-8 with a BOM, paragraphs separated by blank lines.
    {
        "out": "ru_sample_utf8bom.txt",
        "src": "ru_sample_utf8bom_txt.md",
        "format": "txt",
        "encoding": "utf-8-sig",
        "newline": "\n",
        "blank_between": True,
        "wrap": 0,
    },
    # cp1252, hard-wrapped at 70 columns like a Project Gutenberg file, blank lines between paragraphs.
    {
        "out": "en_sample.txt",
        "src": "en_sample_txt.md",
        "format": "txt",
        "encoding": "cp1252",
        "newline": "\n",
        "blank_between": True,
        "wrap": 70,
    },
]

INLINE_TAGS = {"em", "strong", "span", "a"}


# ---------------------------------------------------------------- source parsing


@dataclass
class Block:
    kind: str  # "p" | "epigraph" | "poem" | "break"
    html: str = ""  # "p": the inline fragment
    para_id: str = ""
    label: str = ""  # "p": what the paragraph is, for NLP tests (see LABELS); never written into a book
    lines: list[str] = field(default_factory=list)  # "epigraph": inline fragments, one per line
    stanzas: list[list[str]] = field(default_factory=list)  # "poem"


@dataclass
class Section:
    title: str
    file: str = ""
    anchor: str = ""
    blocks: list[Block] = field(default_factory=list)
    subsections: list["Section"] = field(default_factory=list)


@dataclass
class Empty:
    file: str  # an EPUB spine document without any text


@dataclass
class Source:
    meta: dict[str, list[str]]
    items: list[Section | Empty]
    notes: list[tuple[str, str]]

    def get(self, key: str, default: str = "") -> str:
        return self.meta.get(key, [default])[0]

    @property
    def chapters(self) -> list[Section]:
        return [item for item in self.items if isinstance(item, Section)]


HEADING_RE = re.compile(r"^(#{1,2}) (.+?)(?:\s+\{([^}#\s]+)(?:#([\w-]+))?\})?$")
PARA_ATTRS_RE = re.compile(r"^\{((?:\s*[#.][\w-]+)+)\s*\}\s+")
# Descriptive kinds an illustrator could draw, and two kinds that are clearly not descriptions.
LABELS = ("location", "character", "atmosphere", "object", "narration", "dialogue")
DIALOGUE_START = ("—", "&#8212;", "“", '"')


def parse_source(path: Path) -> Source:
    """Read one src/*.md book; fail loudly on anything malformed so a bad edit never builds."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines[0] != "---":
        raise SystemExit(f"{path.name}: must start with a '---' front-matter block")
    end = lines.index("---", 1)
    meta: dict[str, list[str]] = {}
    for line in lines[1:end]:
        key, _, value = line.partition(":")
        meta.setdefault(key.strip(), []).append(value.strip())

    items: list[Section | Empty] = []
    notes: list[tuple[str, str]] = []
    chapter: Section | None = None
    target: Section | None = None  # where blocks go: the chapter or its current sub-section
    prev = ""  # kind of the previous non-blank line, to group epigraph and poem lines
    for lineno, line in enumerate(lines[end + 1 :], start=end + 2):
        where = f"{path.name}:{lineno}"
        stripped = line.strip()
        if not stripped:
            prev = ""
            continue
        if match := HEADING_RE.match(stripped):
            level, title, file, anchor = match.groups()
            section = Section(title=title, file=file or "", anchor=anchor or "")
            if level == "#":
                chapter = target = section
                items.append(section)
            else:
                if chapter is None:
                    raise SystemExit(f"{where}: sub-section outside a chapter")
                chapter.subsections.append(section)
                target = section
            prev = "heading"
            continue
        if stripped.startswith("@empty "):
            items.append(Empty(file=stripped.split(None, 1)[1]))
            chapter = target = None
            prev = ""
            continue
        if stripped.startswith("@note "):
            _, note_id, note_text = stripped.split(None, 2)
            check_inline(note_text, where)
            notes.append((note_id, note_text))
            prev = ""
            continue
        if target is None:
            raise SystemExit(f"{where}: text outside a chapter")
        if stripped == "@break":
            target.blocks.append(Block(kind="break"))
        elif stripped.startswith(">"):
            fragment = stripped[1:].strip()
            check_inline(fragment, where)
            if prev != "epigraph":
                target.blocks.append(Block(kind="epigraph"))
            target.blocks[-1].lines.append(fragment)
            prev = "epigraph"
            continue
        elif stripped.startswith("|"):
            verse = stripped[1:].strip()
            if prev != "poem":
                target.blocks.append(Block(kind="poem", stanzas=[[]]))
            poem = target.blocks[-1]
            if verse:
                check_inline(verse, where)
                poem.stanzas[-1].append(verse)
            else:
                poem.stanzas.append([])
            prev = "poem"
            continue
        else:
            para_id = label = ""
            if match := PARA_ATTRS_RE.match(stripped):
                for token in match.group(1).split():
                    if token.startswith("#"):
                        para_id = token[1:]
                    elif token[1:] in LABELS:
                        label = token[1:]
                    else:
                        raise SystemExit(f"{where}: unknown label {token!r}; use one of {LABELS}")
                stripped = stripped[match.end() :]
            if not label and stripped.startswith(DIALOGUE_START):
                label = "dialogue"
            check_inline(stripped, where)
            target.blocks.append(Block(kind="p", html=stripped, para_id=para_id, label=label))
        prev = "p"
    return Source(meta=meta, items=items, notes=notes)


def parse_inline(fragment: str) -> ET.Element:
    return ET.fromstring(f"<p>{fragment}</p>")


def check_inline(fragment: str, where: str) -> None:
    """Only well-formed XML with numeric entities and the four inline tags may reach the books."""
    try:
        root = parse_inline(fragment)
    except ET.ParseError as exc:
        raise SystemExit(f"{where}: not a well-formed inline fragment: {exc}") from None
    bad = {el.tag for el in root.iter() if el is not root} - INLINE_TAGS
    if bad:
        raise SystemExit(f"{where}: unsupported tags {sorted(bad)}")


def plain(fragment: str) -> str:
    """The text a reader sees, whitespace collapsed the way importers collapse it."""
    return " ".join("".join(parse_inline(fragment).itertext()).split())


def strip_dash(author_line: str) -> str:
    return re.sub(r"^(—|&#8212;|--)\s*", "", author_line)


# ---------------------------------------------------------------- cover image


def hex_rgb(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    return tuple(int(value[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def make_cover_png(colors: list[str], width: int = 120, height: int = 180) -> bytes:
    """A small landscape: a sky gradient, a pale disc and striped water, as an RGB PNG."""
    top, bottom, disc = (hex_rgb(c) for c in colors)
    cx, cy, radius = width * 0.66, height * 0.28, width * 0.14
    horizon = int(height * 0.68)
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        t = y / (height - 1)
        sky = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom))
        water = tuple(c // 2 for c in top) if (y // 4) % 2 else tuple((a + b) // 3 for a, b in zip(top, bottom))
        for x in range(width):
            if y >= horizon:
                rows.extend(water)
            elif (x - cx) ** 2 + (y - cy) ** 2 <= radius**2:
                rows.extend(disc)
            else:
                rows.extend(sky)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- EPUB


def write_zip(members: list[tuple[str, bytes]]) -> bytes:
    """An EPUB container: `mimetype` first and stored, everything else deflated, fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


CONTAINER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"""

STYLE_CSS = """body { font-family: serif; margin: 0 5%; }
h2 { text-align: center; margin: 2em 0 1em; }
p { text-indent: 1.5em; margin: 0; }
.epigraph { margin: 1em 0 2em 40%; font-style: italic; }
.epigraph p { text-indent: 0; }
.epigraph-author { text-align: right; }
.break { text-align: center; }
.titlepage { text-align: center; }
.titlepage img { max-width: 100%; }
"""

XHTML11_DOCTYPE = '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">'


def xhtml_page(title: str, body: str, lang: str, epub3: bool, css_href: str) -> str:
    if epub3:
        doctype = "<!DOCTYPE html>"
        html_open = (
            f'<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"'
            f' xml:lang="{lang}" lang="{lang}">'
        )
    else:
        doctype = XHTML11_DOCTYPE
        html_open = f'<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="{lang}">'
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"{doctype}\n{html_open}\n<head>\n  <title>{escape(title)}</title>\n"
        f'  <link rel="stylesheet" type="text/css" href="{css_href}"/>\n</head>\n'
        f"<body>\n{body}</body>\n</html>\n"
    )


def xhtml_blocks(blocks: list[Block], epub3: bool, indent: str) -> str:
    out = []
    for block in blocks:
        if block.kind == "p":
            id_attr = f' id="{block.para_id}"' if block.para_id else ""
            out.append(f"{indent}<p{id_attr}>{block.html}</p>\n")
        elif block.kind == "break":
            out.append(f'{indent}<p class="break">&#160;</p>\n')
        elif block.kind == "epigraph":
            type_attr = ' epub:type="epigraph"' if epub3 else ""
            out.append(f'{indent}<div class="epigraph"{type_attr}>\n')
            for line in block.lines:
                is_author = strip_dash(line) != line
                cls = ' class="epigraph-author"' if is_author else ""
                out.append(f"{indent}  <p{cls}>{line}</p>\n")
            out.append(f"{indent}</div>\n")
        elif block.kind == "poem":
            out.append(f'{indent}<div class="poem">\n')
            for stanza in block.stanzas:
                out.append(f'{indent}  <div class="stanza">\n')
                out.extend(f'{indent}    <p class="verse">{verse}</p>\n' for verse in stanza)
                out.append(f"{indent}  </div>\n")
            out.append(f"{indent}</div>\n")
    return "".join(out)


def epub_documents(source: Source, epub3: bool) -> list[tuple[str, str, str]]:
    """(file name, page title, body markup) per spine document, title page first, in reading order.

    Several chapters may share one file: the first gets its anchor on the <section>, later ones on
    their <h2>, so importers must split a file at an anchor wherever it sits.
    """
    title = source.get("title")
    docs: list[tuple[str, str, str]] = [
        (
            "titlepage.xhtml",
            title,
            f'  <div class="titlepage">\n    <img src="{image_href(epub3)}" alt={quoteattr(title)}/>\n  </div>\n',
        )
    ]
    by_file: dict[str, list[str]] = {}
    order: list[str] = []
    for item in source.items:
        if isinstance(item, Empty):
            order.append(item.file)
            type_attr = ' epub:type="bodymatter"' if epub3 else ""
            by_file[item.file] = [f'  <div class="section"{type_attr}>\n    \n    <hr/>\n  </div>\n']
            continue
        if item.file not in by_file:
            order.append(item.file)
            by_file[item.file] = []
        first_in_file = not by_file[item.file]
        section_id = f' id="{item.anchor}"' if item.anchor and first_in_file else ""
        h2_id = f' id="{item.anchor}"' if item.anchor and not first_in_file else ""
        tag = "section" if epub3 else "div"
        type_attr = ' epub:type="chapter"' if epub3 else ""
        part = [f'  <{tag} class="chapter"{type_attr}{section_id}>\n', f"    <h2{h2_id}>{escape(item.title)}</h2>\n"]
        part.append(xhtml_blocks(item.blocks, epub3, "    "))
        for sub in item.subsections:
            part.append(f"    <h3>{escape(sub.title)}</h3>\n")
            part.append(xhtml_blocks(sub.blocks, epub3, "    "))
        part.append(f"  </{tag}>\n")
        by_file[item.file].append("".join(part))
    for name in order:
        chapters_here = [c for c in source.chapters if c.file == name]
        page_title = chapters_here[0].title if chapters_here else title
        docs.append((name, page_title, "".join(by_file[name])))
    return docs


def text_dir(epub3: bool) -> str:
    return "Text/" if epub3 else ""  # EPUB 3 sample uses a Sigil-like tree, EPUB 2 a flat one


def image_href(epub3: bool) -> str:
    return "../Images/cover.png" if epub3 else "cover.png"


def toc_entries(source: Source, epub3: bool) -> list[tuple[str, str]]:
    """(label, href relative to the OPF) for the NCX; the EPUB 2 NCX also lists the text-less title page."""
    entries = [] if epub3 else [("Title Page", "titlepage.xhtml")]
    for chapter in source.chapters:
        href = text_dir(epub3) + chapter.file + (f"#{chapter.anchor}" if chapter.anchor else "")
        entries.append((chapter.title, href))
    return entries


def build_ncx(source: Source, epub3: bool) -> str:
    points = []
    for order, (label, href) in enumerate(toc_entries(source, epub3), start=1):
        points.append(
            f'    <navPoint id="navpoint-{order}" playOrder="{order}">\n'
            f"      <navLabel><text>{escape(label)}</text></navLabel>\n"
            f'      <content src="{href}"/>\n'
            "    </navPoint>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE ncx PUBLIC "-//NISO//DTD ncx 2005-1//EN" "http://www.daisy.org/z3986/2005/ncx-2005-1.dtd">\n'
        f'<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1" xml:lang="{source.get("language")}">\n'
        "  <head>\n"
        f'    <meta name="dtb:uid" content="{escape(source.get("identifier"))}"/>\n'
        '    <meta name="dtb:depth" content="1"/>\n'
        '    <meta name="dtb:totalPageCount" content="0"/>\n'
        '    <meta name="dtb:maxPageNumber" content="0"/>\n'
        "  </head>\n"
        f"  <docTitle><text>{escape(source.get('title'))}</text></docTitle>\n"
        f"  <docAuthor><text>{escape(source.get('author'))}</text></docAuthor>\n"
        "  <navMap>\n" + "".join(points) + "  </navMap>\n</ncx>\n"
    )


def build_nav(source: Source) -> str:
    """EPUB 3 navigation document; it lives in Text/, so its hrefs are relative to that folder."""
    lang = source.get("language")
    items = []
    for chapter in source.chapters:
        href = chapter.file + (f"#{chapter.anchor}" if chapter.anchor else "")
        items.append(f'      <li><a href="{href}">{escape(chapter.title)}</a></li>\n')
    first = source.chapters[0].file
    body = (
        '  <nav epub:type="toc" id="toc">\n    <h1>Оглавление</h1>\n    <ol>\n'
        + "".join(items)
        + "    </ol>\n  </nav>\n"
        '  <nav epub:type="landmarks" id="landmarks" hidden="hidden">\n    <ol>\n'
        '      <li><a epub:type="cover" href="titlepage.xhtml">Обложка</a></li>\n'
        f'      <li><a epub:type="bodymatter" href="{first}">Начало</a></li>\n'
        "    </ol>\n  </nav>\n"
    )
    return xhtml_page("Оглавление", body, lang, True, "../Styles/style.css")


def build_opf(source: Source, epub3: bool, docs: list[tuple[str, str, str]]) -> str:
    identifiers = source.meta.get("identifier", [])
    author = escape(source.get("author"))
    file_as = source.get("author_file_as")
    lines = []
    if epub3:
        lines.append(
            '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="bookid"'
            f' xml:lang="{source.get("language")}">'
        )
        lines.append('  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">')
        for n, ident in enumerate(identifiers):
            id_attr = ' id="bookid"' if n == 0 else ""
            lines.append(f"    <dc:identifier{id_attr}>{escape(ident)}</dc:identifier>")
        lines.append(f"    <dc:title>{escape(source.get('title'))}</dc:title>")
        lines.append(f'    <dc:creator id="creator">{author}</dc:creator>')
        lines.append('    <meta refines="#creator" property="role" scheme="marc:relators">aut</meta>')
        lines.append(f'    <meta refines="#creator" property="file-as">{escape(file_as)}</meta>')
    else:
        lines.append('<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="bookid">')
        lines.append(
            '  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">'
        )
        for n, ident in enumerate(identifiers):
            id_attr = ' id="bookid" opf:scheme="UUID"' if n == 0 else ""
            lines.append(f"    <dc:identifier{id_attr}>{escape(ident)}</dc:identifier>")
        lines.append(f"    <dc:title>{escape(source.get('title'))}</dc:title>")
        lines.append(f'    <dc:creator opf:role="aut" opf:file-as={quoteattr(file_as)}>{author}</dc:creator>')
    lines.append(f"    <dc:language>{source.get('language')}</dc:language>")
    lines.append(f"    <dc:publisher>{escape(source.get('publisher'))}</dc:publisher>")
    lines.append(f"    <dc:date>{source.get('date')}</dc:date>")
    lines.append(f"    <dc:description>{escape(source.get('description'))}</dc:description>")
    lines.append("    <dc:rights>Public domain (CC0 1.0)</dc:rights>")
    if epub3:
        lines.append(f'    <meta property="dcterms:modified">{source.get("date")}T00:00:00Z</meta>')
    lines.append('    <meta name="cover" content="cover-image"/>')
    lines.append("  </metadata>")
    lines.append("  <manifest>")
    text = text_dir(epub3)
    if epub3:
        lines.append('    <item id="nav" href="Text/nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>')
    lines.append('    <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>')
    css = "Styles/style.css" if epub3 else "style.css"
    lines.append(f'    <item id="css" href="{css}" media-type="text/css"/>')
    cover_props = ' properties="cover-image"' if epub3 else ""
    cover = "Images/cover.png" if epub3 else "cover.png"
    lines.append(f'    <item id="cover-image" href="{cover}" media-type="image/png"{cover_props}/>')
    for name, _title, _body in docs:
        lines.append(f'    <item id="{Path(name).stem}" href="{text}{name}" media-type="application/xhtml+xml"/>')
    lines.append("  </manifest>")
    lines.append('  <spine toc="ncx">')
    lines.extend(f'    <itemref idref="{Path(name).stem}"/>' for name, _t, _b in docs)
    lines.append("  </spine>")
    if not epub3:
        lines.append("  <guide>")
        lines.append('    <reference type="cover" title="Cover" href="titlepage.xhtml"/>')
        lines.append(f'    <reference type="text" title="Start" href="{source.chapters[0].file}"/>')
        lines.append("  </guide>")
    lines.append("</package>")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(lines) + "\n"


def build_epub(source: Source, epub3: bool) -> bytes:
    lang = source.get("language")
    docs = epub_documents(source, epub3)
    css_href = "../Styles/style.css" if epub3 else "style.css"
    members: list[tuple[str, bytes]] = [
        ("mimetype", b"application/epub+zip"),
        ("META-INF/container.xml", CONTAINER_XML.encode()),
        ("OEBPS/content.opf", build_opf(source, epub3, docs).encode()),
        ("OEBPS/toc.ncx", build_ncx(source, epub3).encode()),
    ]
    if epub3:
        members.append(("OEBPS/Text/nav.xhtml", build_nav(source).encode()))
    members.append(("OEBPS/" + ("Styles/style.css" if epub3 else "style.css"), STYLE_CSS.encode()))
    members.append(
        (
            "OEBPS/" + ("Images/cover.png" if epub3 else "cover.png"),
            make_cover_png(source.meta["cover_colors"][0].split()),
        )
    )
    for name, title, body in docs:
        page = xhtml_page(title, body, lang, epub3, css_href)
        members.append((f"OEBPS/{text_dir(epub3)}{name}", page.encode()))
    return write_zip(members)


# ---------------------------------------------------------------- FB2


def fb2_inline(fragment: str) -> str:
    """Map the inline fragment onto FB2 markup: em→emphasis, strong→strong, a→a l:href, span→its text."""
    root = parse_inline(fragment)

    def render(el: ET.Element) -> str:
        inner = escape(el.text or "") + "".join(render(child) + escape(child.tail or "") for child in el)
        if el.tag == "em":
            return f"<emphasis>{inner}</emphasis>"
        if el.tag == "strong":
            return f"<strong>{inner}</strong>"
        if el.tag == "a":
            note_type = f' type="{el.get("type")}"' if el.get("type") else ""
            return f'<a l:href="{escape(el.get("href", ""))}"{note_type}>{inner}</a>'
        return inner

    return escape(root.text or "") + "".join(render(child) + escape(child.tail or "") for child in root)


def fb2_blocks(blocks: list[Block], indent: str) -> list[str]:
    out = []
    for block in blocks:
        if block.kind == "p":
            id_attr = f' id="{block.para_id}"' if block.para_id else ""
            out.append(f"{indent}<p{id_attr}>{fb2_inline(block.html)}</p>")
        elif block.kind == "break":
            out.append(f"{indent}<empty-line/>")
        elif block.kind == "epigraph":
            out.append(f"{indent}<epigraph>")
            for line in block.lines:
                if strip_dash(line) != line:
                    out.append(f"{indent}  <text-author>{fb2_inline(strip_dash(line))}</text-author>")
                else:
                    out.append(f"{indent}  <p>{fb2_inline(line)}</p>")
            out.append(f"{indent}</epigraph>")
        elif block.kind == "poem":
            out.append(f"{indent}<poem>")
            for stanza in block.stanzas:
                out.append(f"{indent}  <stanza>")
                out.extend(f"{indent}    <v>{fb2_inline(v)}</v>" for v in stanza)
                out.append(f"{indent}  </stanza>")
            out.append(f"{indent}</poem>")
    return out


def fb2_section(section: Section, indent: str) -> list[str]:
    out = [f"{indent}<section>", f"{indent}  <title><p>{escape(section.title)}</p></title>"]
    # FB2 wants epigraphs straight after the title, which is where the sources put them.
    out.extend(fb2_blocks(section.blocks, indent + "  "))
    for sub in section.subsections:
        out.extend(fb2_section(sub, indent + "  "))
    out.append(f"{indent}</section>")
    return out


def build_fb2(source: Source) -> bytes:
    date = source.get("date")
    cover = base64.encodebytes(make_cover_png(source.meta["cover_colors"][0].split())).decode("ascii")
    lines = [
        '<?xml version="1.0" encoding="windows-1251"?>',
        '<FictionBook xmlns="http://www.gribuser.ru/xml/fictionbook/2.0" xmlns:l="http://www.w3.org/1999/xlink">',
        "  <description>",
        "    <title-info>",
        f"      <genre>{source.get('genre')}</genre>",
        "      <author>",
        f"        <first-name>{escape(source.get('author_first'))}</first-name>",
        f"        <last-name>{escape(source.get('author_last'))}</last-name>",
        "      </author>",
        f"      <book-title>{escape(source.get('title'))}</book-title>",
        f"      <annotation><p>{escape(source.get('description'))}</p></annotation>",
        f'      <date value="{date}">{date[:4]}</date>',
        '      <coverpage><image l:href="#cover.png"/></coverpage>',
        f"      <lang>{source.get('language')}</lang>",
        "    </title-info>",
        "    <document-info>",
        "      <author><nickname>bookreader</nickname></author>",
        "      <program-used>sample_books/build.py</program-used>",
        f'      <date value="{date}">{date}</date>',
        f"      <id>{source.get('identifier')}</id>",
        "      <version>1.0</version>",
        "    </document-info>",
        "    <publish-info>",
        f"      <publisher>{escape(source.get('publisher'))}</publisher>",
        f"      <year>{date[:4]}</year>",
        "    </publish-info>",
        "  </description>",
        "  <body>",
        "    <title>",
        f"      <p>{escape(source.get('author_first'))} {escape(source.get('author_last'))}</p>",
        f"      <p>{escape(source.get('title'))}</p>",
        "    </title>",
    ]
    for chapter in source.chapters:
        lines.extend(fb2_section(chapter, "    "))
    lines.append("  </body>")
    if source.notes:
        lines.append('  <body name="notes">')
        lines.append("    <title><p>Примечания</p></title>")
        for number, (note_id, note_text) in enumerate(source.notes, start=1):
            lines.append(f'    <section id="{note_id}">')
            lines.append(f"      <title><p>{number}</p></title>")
            lines.append(f"      <p>{fb2_inline(note_text)}</p>")
            lines.append("    </section>")
        lines.append("  </body>")
    lines.append('  <binary id="cover.png" content-type="image/png">')
    lines.append(cover.rstrip("\n"))
    lines.append("  </binary>")
    lines.append("</FictionBook>")
    # strict: every character must exist in cp1251, or the build fails
    return ("\n".join(lines) + "\n").encode("cp1251")


# ---------------------------------------------------------------- TXT

BODY_LINE_LOOKS_LIKE_HEADING = re.compile(r"^\s*(глава|chapter|[IVXLC]+\.?\s*$)", re.IGNORECASE)


def build_txt(source: Source, spec: dict) -> bytes:
    """Title and author lines, then each chapter as its heading line followed by its paragraphs."""
    out = [source.get("title"), source.get("author"), ""]
    for chapter in source.chapters:
        out.extend(["", chapter.title, ""])
        for block in chapter.blocks:
            if block.kind == "p":
                paragraph = plain(block.html)
                lines = textwrap.wrap(paragraph, spec["wrap"], break_long_words=False) if spec["wrap"] else [paragraph]
                for line in lines:
                    if BODY_LINE_LOOKS_LIKE_HEADING.match(line):
                        raise SystemExit(f"{spec['out']}: body line would read as a heading: {line!r}")
                out.extend(lines)
            elif block.kind == "epigraph":
                out.extend(plain(line) for line in block.lines)
            elif block.kind == "poem":
                for stanza in block.stanzas:
                    out.extend(plain(v) for v in stanza)
            if spec["blank_between"] or block.kind != "p":
                out.append("")
        if out[-1] != "":
            out.append("")
    while out and out[-1] == "":
        out.pop()
    text = spec["newline"].join(out) + spec["newline"]
    return text.encode(spec["encoding"])  # strict: a character outside the code page fails the build


# ---------------------------------------------------------------- expected results


def chapter_paragraphs(section: Section) -> list[str]:
    paras = [plain(b.html) for b in section.blocks if b.kind == "p"]
    for sub in section.subsections:
        paras.extend(chapter_paragraphs(sub))
    return paras


def labelled_paragraphs(source: Source) -> dict[str, list[str]]:
    """Paragraph texts by label; unlabelled paragraphs mix kinds and belong to no list."""
    labelled: dict[str, list[str]] = {label: [] for label in LABELS}

    def walk(section: Section) -> None:
        for block in section.blocks:
            if block.kind == "p" and block.label:
                labelled[block.label].append(plain(block.html))
        for sub in section.subsections:
            walk(sub)

    for chapter in source.chapters:
        walk(chapter)
    return labelled


def expected_entry(source: Source, spec: dict) -> dict:
    fmt = spec["format"]
    entry: dict = {"format": fmt, "title": source.get("title"), "language": source.get("language")}
    if fmt == "fb2":
        entry["authors"] = [f"{source.get('author_first')} {source.get('author_last')}"]
    else:
        entry["authors"] = [source.get("author")]
    if fmt in ("epub2", "epub3", "fb2"):
        entry["publisher"] = source.get("publisher")
        entry["date"] = source.get("date")
        entry["identifiers"] = source.meta.get("identifier", [])
        entry["cover_media_type"] = "image/png"
    if fmt == "txt":
        entry["metadata_declared"] = False  # title, author and language are not marked up in a TXT file
        entry["encoding"] = spec["encoding"]
        entry["front_matter_lines"] = [source.get("title"), source.get("author")]
    entry["chapters"] = [chapter.title for chapter in source.chapters]
    entry["chapter_paragraphs"] = [chapter_paragraphs(chapter) for chapter in source.chapters]
    if fmt == "fb2":
        entry["notes"] = [plain(text) for _id, text in source.notes]
        entry["subsection_titles"] = {
            c.title: [s.title for s in c.subsections] for c in source.chapters if c.subsections
        }
    if fmt in ("epub2", "epub3"):
        entry["textless_spine_items"] = [text_dir(fmt == "epub3") + "titlepage.xhtml"] + [
            text_dir(fmt == "epub3") + item.file for item in source.items if isinstance(item, Empty)
        ]
        shared: dict[str, list[str]] = {}
        for chapter in source.chapters:
            if chapter.anchor:
                shared.setdefault(text_dir(fmt == "epub3") + chapter.file, []).append(chapter.anchor)
        entry["files_with_several_chapters"] = shared
    entry["labelled_paragraphs"] = labelled_paragraphs(source)
    return entry


# ---------------------------------------------------------------- main


def build_all() -> dict[str, bytes]:
    """Every output file's name and bytes, built in memory from src/."""
    outputs: dict[str, bytes] = {}
    expected: dict[str, dict] = {}
    for spec in BOOKS:
        source = parse_source(SRC / spec["src"])
        if spec["format"] == "epub3":
            data = build_epub(source, epub3=True)
        elif spec["format"] == "epub2":
            data = build_epub(source, epub3=False)
        elif spec["format"] == "fb2":
            data = build_fb2(source)
        else:
            data = build_txt(source, spec)
        outputs[spec["out"]] = data
        expected[spec["out"]] = expected_entry(source, spec)
    outputs["expected.json"] = (json.dumps(expected, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    return outputs


def main(argv: list[str]) -> int:
    outputs = build_all()
    if "--check" in argv:
        stale = [
            name for name, data in outputs.items() if not (HERE / name).is_file() or (HERE / name).read_bytes() != data
        ]
        for name in stale:
            print(f"out of date: sample_books/{name}", file=sys.stderr)
        return 1 if stale else 0
    for name, data in outputs.items():
        (HERE / name).write_bytes(data)
        print(f"wrote sample_books/{name} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
