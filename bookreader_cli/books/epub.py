"""EPUB 2 and 3 into a Book, through ebooklib, with every byte it sees checked first.

How the pieces divide:
- We open the zip ourselves (safety.open_zip: limits checked, read in memory only), read
  META-INF/container.xml and the OPF with the safe XML parser, and hand ebooklib a *cleaned* OPF (manifest
  items without id/href dropped, with a warning). ebooklib then loads metadata and the manifest; its file
  reads come from our checked zip, and every XML member is refused if its DTD declares entities.
- The table of contents (EPUB 3 nav, else EPUB 2 NCX) and the chapter text are read here with lxml,
  because we need what ebooklib does not give: titles for several TOC entries that point into one file by
  #anchor, each becoming its own chapter (`Chapter.source` = "href#anchor").
- Chapters follow the spine. A spine file (or anchor segment) without text is skipped (title pages that are
  only an image); one whose text is only headings (a "Part One" page) is carried into the next chapter as
  heading paragraphs. A chapter with no TOC title takes its first h1-h3, else the file name.
- Recovery, as a reader would do it (each noted in Book.warnings): a missing or wrong `mimetype` file; a
  container rootfile with a misspelt media type; manifest items missing id/href; a spine entry naming an
  unknown manifest id (skipped); a malformed XHTML file (read with lxml's recovering HTML parser); a spine
  file that is not text (binary bytes: skipped); a spine that lists one file more than once (read once).
  Refused with BadInput: no container.xml, no OPF, OPF not well-formed or not in the OPF namespace, an
  empty spine, a spine file missing from the archive, content documents encrypted by META-INF/encryption.xml
  (DRM; font obfuscation is fine), more text than books/safety.TextBudget allows, and anything ebooklib
  itself chokes on.
- A repeated spine entry: epub.js renders every entry, so a book's CFIs keep their spine positions; we
  store the file's text once, at its first position, which is where `cfi` aligns our chapters (an honest
  book never repeats a spine file, so nothing changes for it). A file listed more than MAX_SPINE_REPEATS
  times is an amplification attack (epub.js, and our CFI code with it, would lay its text out that many
  times): refused.
"""

from __future__ import annotations

import io
import posixpath
from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree

from ..errors import BadInput, UnreadableBook
from .drm import drm_refusal, encrypted_paths
from .model import Book, Chapter
from .safety import SafeZip, TextBudget, open_zip, parse_xml, refuse_declared_entities
from .txt import binary_reason
from .xhtml import OPS_NS, clean_text, local_name, parse_xhtml, split_segments, title_for

OPF_NS = "http://www.idpf.org/2007/opf"
DC_NS = "http://purl.org/dc/elements/1.1/"
EPUB_MIMETYPE = b"application/epub+zip"
XML_EXTENSIONS = (".xml", ".opf", ".ncx", ".xhtml", ".html", ".htm", ".xht", ".smil")
XHTML_TYPES = ("application/xhtml+xml", "text/html", "application/x-dtbook+xml")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/svg+xml", "image/webp")

MAX_SPINE_REPEATS = 4  # times one file may appear in the spine (a cover page repeated at the end is honest)


# ------------------------------------------------------------------------------------------ the package
@dataclass
class Package:
    """What we read ourselves before ebooklib: where the OPF is and a cleaned copy of it."""

    archive: SafeZip
    opf_path: str
    opf_bytes: bytes
    version: str
    cover_id: str = ""  # EPUB 2 <meta name="cover" content="…">
    warnings: list[str] = field(default_factory=list)


def parse_epub(data: bytes, label: str) -> Book:
    archive = open_zip(data, label, kind="EPUB")
    package = _read_package(archive, label)
    _refuse_entities_in_members(archive)
    ebook = _load_with_ebooklib(package, label)
    return _build_book(ebook, package, label)


def _read_package(archive: SafeZip, label: str) -> Package:
    warnings = [f"ignored unsafe zip member name {n!r}" for n in archive.ignored]
    if "mimetype" not in archive.members:
        warnings.append("no mimetype file (read anyway)")
    else:
        mimetype = archive.read("mimetype")
        if mimetype != EPUB_MIMETYPE:
            warnings.append(f"mimetype file says {mimetype[:60]!r}, not 'application/epub+zip' (read anyway)")
    if archive.find("META-INF/container.xml") is None:
        raise UnreadableBook(f"{label}: broken EPUB: no META-INF/container.xml")
    container = parse_xml(archive.read("META-INF/container.xml"), f"{label}: META-INF/container.xml")
    rootfiles = [el for el in container.iter("{*}rootfile") if el.get("full-path")]
    chosen = next((r for r in rootfiles if r.get("media-type") == "application/oebps-package+xml"), None)
    if chosen is None:
        chosen = next((r for r in rootfiles if r.get("full-path", "").lower().endswith(".opf")), None)
        if chosen is None:
            raise UnreadableBook(f"{label}: broken EPUB: container.xml names no OPF package file")
        warnings.append(f"container.xml rootfile has media-type {chosen.get('media-type')!r} (read anyway)")
    opf_path = archive.find(chosen.get("full-path") or "")
    if opf_path is None:
        raise UnreadableBook(f"{label}: broken EPUB: OPF package file {chosen.get('full-path')!r} is missing")
    root = parse_xml(archive.read(opf_path), f"{label}: {opf_path}", what="OPF")
    if root.tag != f"{{{OPF_NS}}}package":
        raise UnreadableBook(
            f"{label}: broken EPUB: {opf_path} is not an OPF package (root {root.tag!r}; "
            f"expected <package> in namespace {OPF_NS})"
        )
    for part in ("metadata", "manifest", "spine"):
        if root.find(f"{{{OPF_NS}}}{part}") is None:
            raise UnreadableBook(f"{label}: broken EPUB: {opf_path} has no <{part}>")
    manifest = root.find(f"{{{OPF_NS}}}manifest")
    assert manifest is not None  # checked just above
    invalid = [item for item in manifest if isinstance(item.tag, str) and not (item.get("id") and item.get("href"))]
    for item in invalid:
        manifest.remove(item)
    if invalid:
        warnings.append(f"ignored {len(invalid)} manifest item(s) without id or href")
    cover_meta = next((m for m in root.iter(f"{{{OPF_NS}}}meta") if m.get("name") == "cover"), None)
    return Package(
        archive,
        opf_path,
        etree.tostring(root, encoding="utf-8", xml_declaration=True),
        root.get("version", ""),
        cover_meta.get("content", "") if cover_meta is not None else "",
        warnings,
    )


def _refuse_entities_in_members(archive: SafeZip) -> None:
    """Every XML-ish member is checked before any parser (ours or ebooklib's) can see it."""
    for name in archive.names():
        if name.lower().endswith(XML_EXTENSIONS):
            refuse_declared_entities(archive.read(name), f"{archive.label}: {name}")


def _load_with_ebooklib(package: Package, label: str):
    from ebooklib import epub

    class CheckedReader(epub.EpubReader):
        """ebooklib's reader, fed from our checked zip and cleaned OPF; TOC parsing is ours."""

        missing: set[str]

        def read_file(self, name):
            full = posixpath.normpath(name)
            if full == package.opf_path:
                return package.opf_bytes
            try:
                return package.archive.read(full)
            except KeyError:
                self.missing.add(full)
                return b""

        def _load_container(self):
            self.opf_file = package.opf_path
            self.opf_dir = posixpath.dirname(package.opf_path)

        def _load_spine(self):
            spine = self.container.find(f"{{{OPF_NS}}}spine")
            self.book.spine = [
                (t.get("idref"), t.get("linear", "yes")) for t in spine if isinstance(t.tag, str) and t.get("idref")
            ]
            self.book.toc_id = spine.get("toc", "")

        def _parse_nav(self, data, base_path, navtype="toc"):
            return None

        def _parse_ncx(self, data):
            return None

    reader = CheckedReader(io.BytesIO(package.archive.data), {"ignore_ncx": True})
    reader.missing = set()
    try:
        ebook = reader.load()
    except BadInput:
        raise
    except Exception as exc:  # ebooklib's own complaints and whatever a malformed package trips in it
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableBook(f"{label}: broken EPUB: {message}") from None
    ebook.missing_files = reader.missing
    return ebook


# -------------------------------------------------------------------------------------------- the book
def _build_book(ebook, package: Package, label: str) -> Book:
    opf_dir = posixpath.dirname(package.opf_path)
    warnings = list(package.warnings)
    book = Book(format="epub3" if package.version.startswith("3") else "epub2", title="", chapters=[])
    _metadata(ebook, book)

    def full_path(item) -> str:
        return posixpath.normpath(posixpath.join(opf_dir, item.file_name))

    toc = _read_toc(ebook, package, full_path, warnings)
    encrypted = encrypted_paths(package.archive, warnings)
    spine_docs = []
    seen: dict[str, int] = {}
    repeats = 0
    for idref, _linear in ebook.spine:
        item = ebook.get_item_with_id(idref)
        if item is None:
            warnings.append(f"spine refers to unknown manifest id {idref!r} (skipped)")
            continue
        path = full_path(item)
        if path in ebook.missing_files:
            raise UnreadableBook(f"{label}: broken EPUB: spine file {path!r} is missing from the archive")
        if (item.media_type or "") not in XHTML_TYPES and not path.lower().endswith((".xhtml", ".html", ".htm")):
            continue  # images or other non-text spine items
        if path in seen:
            repeats += 1
            seen[path] += 1
            if seen[path] > MAX_SPINE_REPEATS:
                raise UnreadableBook(
                    f"{label}: refused: the spine lists {path!r} {_spine_count(ebook, path, full_path)} "
                    f"times (limit {MAX_SPINE_REPEATS}; possible amplification)"
                )
            continue
        seen[path] = 1
        spine_docs.append((path, item.content or b""))  # raw bytes: EpubHtml.get_content() rewrites them
    if repeats:
        warnings.append(
            f"spine lists a file more than once ({repeats} repeated entr{'y' if repeats == 1 else 'ies'}); "
            "each file's text is read once, at its first position"
        )
    refusal = drm_refusal(label, [path for path, _ in spine_docs], encrypted)
    if refusal:
        raise UnreadableBook(refusal)
    if encrypted:
        warnings.append(
            f"{len(encrypted)} non-text resource(s) are encrypted (images or fonts); the text is unaffected"
        )
    if not spine_docs:
        raise UnreadableBook(f"{label}: EPUB has no readable chapters (its spine lists no XHTML files)")

    budget = TextBudget(label, len(package.archive.data))
    chapters: list[Chapter] = []
    pending: list[tuple[str, str]] = []
    binary = 0
    for path, content in spine_docs:
        reason = binary_reason(content)
        if reason:
            binary += 1
            warnings.append(f"{label}: {path}: not text ({reason}); skipped")
            continue
        entries = toc.get(path, [])
        anchors = {anchor for anchor, _ in entries if anchor}
        root = parse_xhtml(content, f"{label}: {path}", warnings)
        if root is None:
            continue
        segments = split_segments(root, anchors)
        found = {anchor for anchor, _ in segments}
        if not any(anchor == "" for anchor, _ in entries):
            # TOC anchors that are not in the file: their title belongs to the file's start
            lost = [title for anchor, title in entries if anchor not in found]
            if lost:
                entries = [("", lost[0])] + entries
        for anchor, own in segments:
            paras = pending + own
            pending = []
            if not any(kind != "heading" for _, kind in paras):
                pending = paras  # nothing but headings: carry into the next chapter
                continue
            title = title_for(anchor, entries, own, path)
            source = f"{path}#{anchor}" if anchor else path
            chapters.append(Chapter.from_paragraphs(title, paras, source=source))
            budget.add(len(chapters[-1].text))
    if not chapters and binary == len(spine_docs):
        raise UnreadableBook(f"{label}: EPUB has no readable chapters (none of its {binary} spine file(s) is text)")
    if not chapters:
        raise UnreadableBook(f"{label}: EPUB has no text in any of its {len(spine_docs)} spine file(s)")
    book.chapters = chapters
    book.cover, book.cover_media_type = _cover(ebook, package.cover_id)
    book.warnings = warnings
    return book


def _spine_count(ebook, path: str, full_path) -> int:
    """How many spine entries name the file at `path`."""
    items = (ebook.get_item_with_id(idref) for idref, _linear in ebook.spine)
    return sum(1 for item in items if item is not None and full_path(item) == path)


def _metadata(ebook, book: Book) -> None:
    def values(name: str) -> list[str]:
        out = []
        for value, _attrs in ebook.get_metadata("DC", name):
            if value and value.strip():
                out.append(clean_text(value))
        return out

    titles = values("title")
    book.title = titles[0] if titles else ""
    book.authors = values("creator")
    languages = values("language")
    book.language = languages[0] if languages else ""
    book.identifiers = values("identifier")
    publishers = values("publisher")
    book.publisher = publishers[0] if publishers else ""
    dates = values("date")
    book.date = dates[0] if dates else ""


def _cover(ebook, cover_id: str) -> tuple[bytes | None, str]:
    """EPUB 3 properties="cover-image" (ebooklib's EpubCover), else EPUB 2 <meta name="cover">."""
    from ebooklib import epub

    candidates = [item for item in ebook.get_items() if isinstance(item, epub.EpubCover)]
    if cover_id:
        item = ebook.get_item_with_id(cover_id) or ebook.get_item_with_href(cover_id)
        if item is not None:
            candidates.append(item)
    for item in candidates:
        if (item.media_type or "") in IMAGE_TYPES and item.content:
            return item.content, item.media_type
    return None, ""


# ------------------------------------------------------------------------------------------------- TOC
def _read_toc(ebook, package: Package, full_path, warnings: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Map spine file path -> [(anchor or "", title)] in TOC order, from the EPUB 3 nav or the NCX."""
    from ebooklib import epub

    entries: list[tuple[str, str]] = []  # (full href, title)
    nav = next((i for i in ebook.get_items() if isinstance(i, epub.EpubNav)), None)
    if nav is not None and nav.content:
        entries = _nav_entries(nav.content, full_path(nav), package.archive.label, warnings)
    if not entries:
        ncx = ebook.get_item_with_id(getattr(ebook, "toc_id", "")) if getattr(ebook, "toc_id", "") else None
        if ncx is None:
            ncx = next((i for i in ebook.get_items() if i.media_type == "application/x-dtbncx+xml"), None)
        if ncx is not None and ncx.content:
            entries = _ncx_entries(ncx.content, full_path(ncx), package.archive.label, warnings)
    toc: dict[str, list[tuple[str, str]]] = {}
    for href, title in entries:
        path, _, anchor = href.partition("#")
        if title and not any(a == anchor for a, _ in toc.get(path, [])):
            toc.setdefault(path, []).append((anchor, title))
    return toc


def _resolve(base_file: str, href: str) -> str:
    path, _, anchor = unquote(href).partition("#")
    full = posixpath.normpath(posixpath.join(posixpath.dirname(base_file), path)) if path else base_file
    return f"{full}#{anchor}" if anchor else full


def _nav_entries(content: bytes, nav_path: str, label: str, warnings: list[str]) -> list[tuple[str, str]]:
    root = parse_xhtml(content, f"{label}: {nav_path}", warnings)
    if root is None:
        return []
    navs = [el for el in root.iter() if local_name(el) == "nav"]
    toc_navs = [n for n in navs if "toc" in (n.get(f"{{{OPS_NS}}}type") or n.get("epub:type") or "").split()]
    chosen = toc_navs[0] if toc_navs else (navs[0] if navs else None)
    if chosen is None:
        warnings.append(f"{nav_path}: navigation document has no <nav> (chapter titles from headings)")
        return []
    out = []
    for a in chosen.iter():
        if local_name(a) == "a" and a.get("href"):
            out.append((_resolve(nav_path, a.get("href")), clean_text("".join(a.itertext()))))
    return out


def _ncx_entries(content: bytes, ncx_path: str, label: str, warnings: list[str]) -> list[tuple[str, str]]:
    try:
        root = parse_xml(content, f"{label}: {ncx_path}", what="NCX")
    except BadInput as exc:
        warnings.append(f"{exc} (chapter titles from headings)")
        return []
    out = []
    for point in root.iter("{*}navPoint"):
        label_el = next((c for c in point if local_name(c) == "navlabel"), None)
        content_el = next((c for c in point if local_name(c) == "content"), None)
        if content_el is None or not content_el.get("src"):
            continue
        title = clean_text("".join(str(t) for t in label_el.itertext())) if label_el is not None else ""
        out.append((_resolve(ncx_path, content_el.get("src") or ""), title))
    return out
