"""FictionBook 2 (plain `.fb2` and `.fb2.zip`) into a Book.

Chapters: the main body (the first <body> not named "notes") is walked section by section. A section that
holds only further sections (plus a title/epigraph) and is titled like a volume or part («Том первый»,
«Часть первая», "Book One") or has sections two levels down, is a *container*:
its title and epigraph become heading/epigraph paragraphs at the top of its first chapter, and its child
sections are walked in turn. Any other section is one chapter; sections nested inside it contribute their
titles (as heading paragraphs) and text in document order, so every text appears exactly once. A body with
no sections is one chapter. Notes bodies become `Book.notes`, one entry per note section.

Recovery (what a reader would show, each noted in `Book.warnings`): HTML named entities such as `&nbsp;`
(undefined in XML) are rewritten to characters; a file that declares UTF-8 but is not UTF-8 is re-read in
the single-byte code page TXT files would get (cp1251, KOI8-R, cp866 or cp1252), or refused if none fits. A file cut short or otherwise not well-formed is refused.
"""

from __future__ import annotations

import base64
import binascii
import re

from lxml import etree

from ..errors import BadInput, UnreadableBook
from .model import Book, Chapter
from .safety import html_entities_to_numeric, open_zip, parse_xml, refuse_declared_entities, safe_xml_parser
from .txt import detect_single_byte

XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*\?>")
_ENCODING_DECL = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_BLOCKS_IN_SECTION = {"p", "poem", "cite", "subtitle", "table", "empty-line"}


def _local(el) -> str:
    """Tag name without namespace ("" for comments and processing instructions)."""
    tag = el.tag
    return tag[tag.rfind("}") + 1 :] if isinstance(tag, str) else ""


def _children(el, name: str | None = None):
    return [c for c in el if isinstance(c.tag, str) and (name is None or _local(c) == name)]


def _child(el, name: str):
    for c in el:
        if isinstance(c.tag, str) and _local(c) == name:
            return c
    return None


def _text(el) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


# ---------------------------------------------------------------------------------------------- parsing
def parse_fb2_zip(data: bytes, label: str) -> Book:
    """A zip holding exactly one .fb2 file."""
    archive = open_zip(data, label, kind="FB2 zip")
    inner = [n for n in archive.names() if n.lower().endswith(".fb2")]
    if not inner:
        raise UnreadableBook(f"{label}: not an FB2 zip: no .fb2 file inside")
    if len(inner) > 1:
        raise UnreadableBook(f"{label}: zip holds {len(inner)} .fb2 files; import them one at a time")
    book = parse_fb2(archive.read(inner[0]), f"{label}:{inner[0]}")
    book.warnings.extend(f"ignored unsafe zip member name {n!r}" for n in archive.ignored)
    return book


def parse_fb2(data: bytes, label: str) -> Book:
    warnings: list[str] = []
    root = _parse_root(data, label, warnings)
    if _local(root) != "FictionBook":
        raise UnreadableBook(f"{label}: not an FB2: root element is <{_local(root)}>, not <FictionBook>")
    bodies = _children(root, "body")
    main = next((b for b in bodies if b.get("name") not in ("notes", "comments")), None)
    if main is None:
        raise UnreadableBook(f"{label}: broken FB2: no main <body>")
    book = _metadata(root)
    book.warnings = warnings
    book.chapters = _chapters(main, book.title)
    if not book.chapters:
        raise UnreadableBook(f"{label}: FB2 has no text in its main <body>")
    for body in bodies:
        if body is not main and body.get("name") in ("notes", "comments"):
            book.notes.extend(_notes(body))
    book.cover, book.cover_media_type = _cover(root)
    return book


def _parse_root(data: bytes, label: str, warnings: list[str]):
    refuse_declared_entities(data, label)
    data, replaced = html_entities_to_numeric(data)
    if replaced:
        warnings.append(f"replaced {replaced} HTML entity reference(s) undefined in XML")
    try:
        return parse_xml(data, label)
    except BadInput as first_error:
        message = str(first_error).replace(f"{label}: XML", f"{label}: broken FB2: XML", 1)
        declared = _ENCODING_DECL.match(data)
        declared_utf8 = declared is None or declared.group(1).lower() in (b"utf-8", b"utf8", b"utf_8")
        if "refused" in message or not declared_utf8 or _is_utf8(data):
            raise UnreadableBook(message) from None
        encoding, convincing = detect_single_byte(data)
        if not convincing:
            raise UnreadableBook(
                f"{message} (declared UTF-8 but is not, and no single-byte code page reads it)"
            ) from None
        text = _XML_DECL.sub(b"", data, count=1).decode(encoding, errors="replace")
        try:
            root = etree.fromstring(text, parser=safe_xml_parser())
        except etree.XMLSyntaxError:
            raise UnreadableBook(message) from None
        warnings.append(f"declared UTF-8 but is not; read as {encoding}")
        return root


def _is_utf8(data: bytes) -> bool:
    """UTF-8 throughout, allowing a character cut off at the very end (a truncated file)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3
    return True


# --------------------------------------------------------------------------------------------- metadata
def _metadata(root) -> Book:
    description = _child(root, "description")
    title_info = _child(description, "title-info") if description is not None else None
    doc_info = _child(description, "document-info") if description is not None else None
    publish = _child(description, "publish-info") if description is not None else None
    book = Book(format="fb2", title="", chapters=[])
    if title_info is not None:
        book.title = _text(_child(title_info, "book-title"))
        for author in _children(title_info, "author"):
            parts = [_text(_child(author, k)) for k in ("first-name", "middle-name", "last-name")]
            name = " ".join(p for p in parts if p) or _text(_child(author, "nickname"))
            if name:
                book.authors.append(name)
        book.language = _text(_child(title_info, "lang"))
        date = _child(title_info, "date")
        if date is not None:
            book.date = date.get("value", "") or _text(date)
    if publish is not None:
        book.publisher = _text(_child(publish, "publisher"))
        isbn = _text(_child(publish, "isbn"))
        if isbn:
            book.identifiers.append(f"isbn:{isbn}")
        if not book.date:
            book.date = _text(_child(publish, "year"))
    if doc_info is not None:
        doc_id = _text(_child(doc_info, "id"))
        if doc_id:
            book.identifiers.append(doc_id)
    return book


def _cover(root) -> tuple[bytes | None, str]:
    for image in root.iter("{*}image"):
        parent = image.getparent()
        if parent is None or _local(parent) != "coverpage":
            continue
        href = image.get(XLINK_HREF) or next((v for k, v in image.attrib.items() if k.endswith("href")), "")
        wanted = href.lstrip("#")
        for binary in _children(root, "binary"):
            if binary.get("id") == wanted:
                try:
                    return base64.b64decode("".join((binary.text or "").split())), binary.get("content-type", "")
                except (binascii.Error, ValueError):
                    return None, ""
        return None, ""
    return None, ""


# --------------------------------------------------------------------------------------------- chapters
def _title_text(title_el) -> str:
    lines = [_text(p) for p in _children(title_el)]
    lines = [line for line in lines if line]
    out = ""
    for line in lines:
        out = f"{out}{'' if not out else (' ' if out[-1] in '.!?:;…' else '. ')}{line}"
    return out


def _blocks(el, out: list[tuple[str, str]], kind: str = "text") -> None:
    """Append (text, kind) paragraphs for the block content of `el` (a section, epigraph, cite, …)."""
    for child in _children(el):
        _block(child, out, kind)


def _block(child, out: list[tuple[str, str]], kind: str = "text") -> None:
    """Append the paragraphs of one block element; nested sections add their title as a heading."""
    name = _local(child)
    if name == "section":
        title = _child(child, "title")
        if title is not None:
            out.append((_title_text(title), "heading"))
        _blocks(child, out, kind)
    elif name == "title":
        return  # handled by whoever owns the title
    elif name in ("p", "text-author"):
        out.append((_text(child), kind))
    elif name == "subtitle":
        out.append((_text(child), "subtitle" if kind == "text" else kind))
    elif name == "epigraph":
        _blocks(child, out, "epigraph")
    elif name == "poem":
        title = _child(child, "title")
        if title is not None:
            out.append((_title_text(title), "heading"))
        _blocks(child, out, "epigraph" if kind == "epigraph" else "poem")
    elif name == "stanza":
        title = _child(child, "title")
        if title is not None:
            out.append((_title_text(title), kind))
        for v in _children(child):
            if _local(v) in ("v", "subtitle"):
                out.append((_text(v), kind))
    elif name in ("cite", "annotation"):
        _blocks(child, out, kind)
    elif name == "v":
        out.append((_text(child), kind))
    elif name == "table":
        for row in _children(child, "tr"):
            out.append((" | ".join(_text(c) for c in _children(row)), kind))
    elif name == "date":
        out.append((_text(child), kind))
    # image, empty-line: no text


_PART_TITLE = re.compile(r"^(?:том|часть|книга|раздел|volume|part|book)\b", re.IGNORECASE)


def _is_container(section) -> bool:
    """A volume/part that only groups chapters: no text of its own, and either a part-like title
    («Том первый», «Часть вторая», "Book One") or sections nested two levels below it. A chapter split
    into numbered sub-sections («Глава третья» → I, II) stays one chapter."""
    kids = _children(section)
    subsections = [c for c in kids if _local(c) == "section"]
    if not subsections or any(_local(c) in _BLOCKS_IN_SECTION and _text(c) for c in kids):
        return False
    title = _child(section, "title")
    if title is not None and _PART_TITLE.match(_title_text(title)):
        return True
    return any(_child(sub, "section") is not None for sub in subsections)


def _chapters(body, book_title: str) -> list[Chapter]:
    chapters: list[Chapter] = []
    pending: list[tuple[str, str]] = []  # container titles/epigraphs waiting for the next chapter

    def lead_in(el) -> list[tuple[str, str]]:
        """A container's own material before its first section: title, epigraphs, annotation, images."""
        out: list[tuple[str, str]] = []
        title = _child(el, "title")
        if title is not None and _title_text(title):
            out.append((_title_text(title), "heading"))
        for c in _children(el):
            if _local(c) == "section":
                break
            if _local(c) in ("epigraph", "annotation"):
                _block(c, out)
        return out

    def walk(container, path: str) -> None:
        nonlocal pending
        pending = pending + lead_in(container)
        for index, section in enumerate(_children(container, "section"), start=1):
            where = f"{path}/section[{index}]"
            if _is_container(section):
                walk(section, where)
                continue
            paras: list[tuple[str, str]] = list(pending)
            pending = []
            title_el = _child(section, "title")
            title = _title_text(title_el) if title_el is not None else ""
            if title:
                paras.append((title, "heading"))
            _blocks(section, paras)
            if not any(text.strip() for text, kind in paras if kind != "heading"):
                pending = paras  # a section with only a title: carry it into the next chapter
                continue
            chapters.append(Chapter.from_paragraphs(title, paras, source=where))

    walk(body, "body")
    if not chapters:
        paras = list(pending)
        _blocks(body, paras)
        if any(t.strip() for t, _ in paras):
            chapters.append(Chapter.from_paragraphs(book_title or "Text", paras, source="body"))
        return chapters
    for number, chapter in enumerate(chapters, start=1):
        if not chapter.title:
            chapter.title = book_title if len(chapters) == 1 and book_title else f"Section {number}"
    return chapters


def _notes(body) -> list[Chapter]:
    notes: list[Chapter] = []
    for section in body.iter("{*}section"):
        title_el = _child(section, "title")
        title = _title_text(title_el) if title_el is not None else ""
        paras: list[tuple[str, str]] = []
        for child in _children(section):
            if _local(child) not in ("section", "title"):
                _block(child, paras)
        chapter = Chapter.from_paragraphs(title, paras, source=f"#{section.get('id', '')}")
        if chapter.text:
            notes.append(chapter)
    return notes
