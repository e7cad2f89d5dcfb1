"""The DOM that epub.js sees, reduced to what CFIs need: each spine section's text nodes and their paths.

epub.js (0.3.x) loads a spine item from the zip as UTF-8, drops a leading BOM, and parses it by file
extension: `.xhtml` with the browser's XML parser (`application/xhtml+xml`), `.html`/`.htm` with the HTML5
parser (`text/html`), `.xml` as XML; anything else it cannot walk. It then visits the Text nodes under the
first `body` element in document order. A CFI step counts *element* children (even numbers) or *Text*
children (odd numbers; comments, CDATA sections and processing instructions are neither, but they split
text). We rebuild exactly that: expat for XML (with the XHTML named entities a browser resolves), Lexbor
(a WHATWG-conformant HTML parser) for HTML. Nothing here builds a full tree; a section is a flat list of
`TextNode`s, each carrying its CFI steps from the root element down.
"""

from __future__ import annotations

import html.entities
import posixpath
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote
from xml.parsers import expat

from lxml import etree

from bookreader_cli.books.safety import SafeZip, open_zip
from bookreader_cli.errors import BadInput

# JavaScript's String.prototype.trim() whitespace (WhiteSpace + LineTerminator); differs from str.isspace.
JS_WHITESPACE = (
    "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)

_XML_EXTENSIONS = {"xhtml", "xml"}
_HTML_EXTENSIONS = {"html", "htm"}


@dataclass(frozen=True)
class TextNode:
    """One DOM Text node under <body>: its CFI steps (strings like "4", "2[id]", "1") and its data."""

    steps: tuple[str, ...]
    data: str
    length: int  # in UTF-16 code units, as JavaScript's `node.length`

    @property
    def blank(self) -> bool:
        """epub.js skips nodes whose `textContent.trim()` is empty."""
        return not self.data.strip(JS_WHITESPACE)


@dataclass
class Section:
    """A spine item as epub.js numbers it."""

    index: int
    idref: str
    href: str  # as written in the manifest (relative to the OPF)
    path: str  # the zip entry name
    linear: bool
    cfi_base: str  # "/6/4" or "/6/4[itemref-id]", exactly as epub.js prints it


# element path (child element indexes from the root) -> (child elements, child text nodes)
Shape = dict[tuple[int, ...], tuple[int, int]]


@dataclass
class SectionDom:
    """The parsed text of one section; `nodes` is empty when there is no <body> or it failed to parse.

    `shape` says which elements exist (the root, <body>'s ancestors, <body> and everything in it) and how
    many child elements and text nodes each has, so a CFI step that names nothing can be told from one
    that names an element without text."""

    section: Section
    nodes: list[TextNode] = field(default_factory=list)
    error: str = ""
    shape: Shape = field(default_factory=dict)


def utf16_len(text: str) -> int:
    """JavaScript string length: astral characters count twice."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def utf16_to_index(text: str, offset16: int) -> int:
    """Python index of the character at UTF-16 offset `offset16` (clamped to the string)."""
    if text.isascii():
        return min(offset16, len(text))
    units = 0
    for i, ch in enumerate(text):
        if units >= offset16:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


def index_to_utf16(text: str, index: int) -> int:
    return utf16_len(text[:index])


# --- CFI base component, emulating EpubCFI.parseComponent + segmentString round trip -----------------


def _js_parse_int(text: str) -> int | None:
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else None


def format_component(component: str) -> str:
    """What epub.js prints back for a component string it parsed (the cfiBase goes through this)."""
    parts = component.split(":")
    steps = parts[0].split("/")
    if steps and steps[0] == "":
        steps = steps[1:]
    out = []
    for step in steps:
        num = _js_parse_int(step)
        if num is None:
            out.append("")  # parseStep returned undefined; joinSteps prints nothing for it
            continue
        m = re.search(r"\[(.*)\]", step)
        step_id = m.group(1) if m and m.group(1) else None
        out.append(str(num) + (f"[{step_id}]" if step_id else ""))  # joinSteps gives back the number
    text = "/" + "/".join(out)
    if len(parts) > 1:
        m = re.search(r"\[(.*)\]", parts[1])
        offset = _js_parse_int(parts[1].split("[")[0] if m and m.group(1) else parts[1])
        if offset is not None:
            text += f":{offset}"
        if m and m.group(1):
            text += f"[{m.group(1)}]"
    return text


# --- the package: container.xml -> OPF -> spine ----------------------------------------------------------

_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=False)


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _first(root, local_name: str):
    for el in root.iter():
        if _local(el.tag) == local_name:
            return el
    return None


def _parse_xml(data: bytes, what: str):
    try:
        return etree.fromstring(data, _SAFE_XML)
    except etree.XMLSyntaxError as exc:
        raise BadInput(f"EPUB {what} is not well-formed XML: {exc}") from None


def _read_exact(archive: SafeZip, name: str) -> bytes:
    """A member by its exact name, as JSZip looks it up (no case folding); KeyError if absent."""
    if archive.find(name) != posixpath.normpath(name):
        raise KeyError(name)
    return archive.read(name)


def read_spine(archive: SafeZip) -> list[Section]:
    """The spine as epub.js builds it (Packaging.parse + Spine.unpack)."""
    try:
        container = _read_exact(archive, "META-INF/container.xml")
    except KeyError:
        raise BadInput("EPUB has no META-INF/container.xml") from None
    rootfile = _first(_parse_xml(container, "container.xml"), "rootfile")
    opf_path = rootfile.get("full-path") if rootfile is not None else None
    if not opf_path:
        raise BadInput("EPUB container.xml names no rootfile")
    opf_path = unquote(opf_path.lstrip("/"))
    try:
        opf = _parse_xml(_read_exact(archive, opf_path), "package document")
    except KeyError:
        raise BadInput(f"EPUB package document {opf_path} is missing") from None
    spine = _first(opf, "spine")
    manifest = _first(opf, "manifest")
    if spine is None or manifest is None:
        raise BadInput("EPUB package document has no spine or manifest")
    hrefs: dict[str, str] = {}
    for item in manifest.iter():
        if _local(item.tag) == "item" and item.get("id") is not None:
            hrefs.setdefault(item.get("id"), item.get("href") or "")
    parent = spine.getparent()
    siblings = [el for el in parent if isinstance(el.tag, str)] if parent is not None else [spine]
    spine_node_index = siblings.index(spine)
    opf_dir = posixpath.dirname(opf_path)
    sections = []
    itemrefs = [el for el in spine.iter() if _local(el.tag) == "itemref"]
    for index, ref in enumerate(itemrefs):
        idref = ref.get("idref") or ""
        href = hrefs.get(idref, "")
        path = unquote(posixpath.normpath(posixpath.join("/", opf_dir, href)).lstrip("/")) if href else ""
        base = f"/{(spine_node_index + 1) * 2}/{(index + 1) * 2}"
        if ref.get("id"):
            base += f"[{ref.get('id')}]"
        sections.append(
            Section(
                index=index,
                idref=idref,
                href=href,
                path=path,
                linear=(ref.get("linear") or "yes") == "yes",
                cfi_base=format_component(base),
            )
        )
    return sections


# --- section parsing ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _xhtml_entity_dtd() -> str:
    """The named entities browsers resolve in XHTML documents (HTML 4 / XHTML 1.x set)."""
    return "".join(
        f'<!ENTITY {name} "&#{code};">'
        for name, code in html.entities.name2codepoint.items()
        if name not in ("amp", "lt", "gt", "quot")
    )


class _Frame:
    __slots__ = ("elements", "steps", "texts")

    def __init__(self, steps: tuple[str, ...]):
        self.steps = steps
        self.elements = 0
        self.texts = 0


def _step(index: int, element_id: str | None) -> str:
    step = str((index + 1) * 2)
    return f"{step}[{element_id}]" if element_id else step


def element_path(steps: tuple[str, ...]) -> tuple[int, ...]:
    """("4", "2[id]") -> (1, 0): the child element indexes CFI element steps name."""
    return tuple(int(step.partition("[")[0]) // 2 - 1 for step in steps)  # steps we built: digits, [id]


def parse_xml_section(text: str, shape: Shape | None = None) -> list[TextNode]:
    """Text nodes under the first <body> of an XML document (expat; browser DOM node boundaries).

    `shape`, if given, is filled with every element's child element and text node counts."""
    parser = expat.ParserCreate("utf-8", " ")
    parser.buffer_text = True
    parser.buffer_size = 1 << 16
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_ALWAYS)
    parser.UseForeignDTD(True)

    def external_entity(context, base, system_id, public_id):
        sub = parser.ExternalEntityParserCreate(context)
        sub.Parse(_xhtml_entity_dtd(), True)
        return 1

    stack: list[_Frame] = []
    pending: list[str] = []
    nodes: list[TextNode] = []
    body_depth = [0]  # stack depth of the body element while inside it; 0 = outside
    body_seen = [False]

    def flush():
        if not pending:
            return
        data = "".join(pending)
        pending.clear()
        if not stack:
            return  # text outside the root element is not part of the DOM
        frame = stack[-1]
        index = frame.texts
        frame.texts += 1
        if body_depth[0]:
            nodes.append(TextNode(frame.steps + (str(index * 2 + 1),), data, utf16_len(data)))

    def start(name, attrs):
        if pending:
            flush()
        local = name.rpartition(" ")[2]
        if stack:
            parent = stack[-1]
            steps = parent.steps + (_step(parent.elements, attrs.get("id")),)
            parent.elements += 1
        else:
            steps = ()
        stack.append(_Frame(steps))
        if local == "body" and not body_seen[0]:
            body_seen[0] = True
            body_depth[0] = len(stack)

    def end(name):
        if pending:
            flush()
        if body_depth[0] == len(stack):
            body_depth[0] = 0
        frame = stack.pop()
        if shape is not None:
            shape[element_path(frame.steps)] = (frame.elements, frame.texts)

    def other(*_args):
        if pending:
            flush()

    cdata = [False]

    def cdata_start():
        other()
        cdata[0] = True

    def cdata_end():
        pending.clear()  # a CDATASection node: not a Text node, invisible to epub.js's walker
        cdata[0] = False

    parser.ExternalEntityRefHandler = external_entity
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = pending.append
    parser.CommentHandler = other
    parser.ProcessingInstructionHandler = other
    parser.StartCdataSectionHandler = cdata_start
    parser.EndCdataSectionHandler = cdata_end
    parser.Parse(text, True)
    return nodes


def parse_html_section(text: str, shape: Shape | None = None) -> list[TextNode]:
    """Text nodes under <body> of an HTML5-parsed document (Lexbor, as a browser or parse5 builds it).

    `shape`, if given, is filled with the child element and text node counts of <body>'s ancestors,
    <body> and its descendants."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(text)
    body = tree.body
    if body is None:
        return []
    # steps of <body> itself: its element index inside <html>
    html_el = body.parent
    steps: tuple[str, ...] = ()
    chain = []
    node = body
    while node is not None and node.parent is not None and node.parent.tag != "-document":
        chain.append(node)
        node = node.parent
    for el in reversed(chain):
        index = 0
        sib = el.prev
        while sib is not None:
            if _is_element(sib.tag or ""):
                index += 1
            sib = sib.prev
        if shape is not None:
            shape[element_path(steps)] = _child_counts(el.parent)
        steps = steps + (_step(index, el.attributes.get("id")),)
    del html_el
    nodes: list[TextNode] = []
    _walk_html(body, steps, nodes, shape)
    return nodes


def _child_counts(element) -> tuple[int, int]:
    elements = texts = 0
    child = element.child
    while child is not None:
        elements += _is_element(child.tag or "")
        texts += child.tag == "-text"
        child = child.next
    return elements, texts


def _is_element(tag: str) -> bool:
    return not (tag.startswith(("-", "#", "_")))


def _walk_html(element, steps: tuple[str, ...], out: list[TextNode], shape: Shape | None = None) -> None:
    elements = 0
    texts = 0
    child = element.child
    while child is not None:
        tag = child.tag
        if tag == "-text":
            data = child.text_content or ""
            out.append(TextNode(steps + (str(texts * 2 + 1),), data, utf16_len(data)))
            texts += 1
        elif _is_element(tag):
            attrs = child.attributes
            child_steps = steps + (_step(elements, attrs.get("id") if attrs else None),)
            elements += 1
            if tag != "template":  # template content lives in a separate fragment
                _walk_html(child, child_steps, out, shape)
            elif shape is not None:
                shape[element_path(child_steps)] = (0, 0)
        child = child.next
    if shape is not None:
        shape[element_path(steps)] = (elements, texts)


def parse_section_text(text: str, extension: str, shape: Shape | None = None) -> list[TextNode]:
    text = text.removeprefix("\ufeff")
    if extension in _HTML_EXTENSIONS:
        return parse_html_section(text, shape)
    return parse_xml_section(text, shape)


class EpubDom:
    """An EPUB opened once: its spine, and each section's text nodes parsed on demand (and kept)."""

    def __init__(self, source: str | Path | bytes):
        if isinstance(source, bytes):
            data, label = source, "EPUB"
        else:
            label = str(source)
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise BadInput(f"cannot read {label}: {exc.strerror or exc}") from None
        self._zip = open_zip(data, label, "EPUB")
        self.sections = read_spine(self._zip)
        self._doms: dict[int, SectionDom] = {}

    def section_dom(self, index: int) -> SectionDom:
        if index not in self._doms:
            self._doms[index] = self._load(self.sections[index])
        return self._doms[index]

    def _load(self, section: Section) -> SectionDom:
        dom = SectionDom(section)
        extension = section.path.rpartition("/")[2].rpartition(".")[2] if "." in section.path else ""
        if extension not in _XML_EXTENSIONS | _HTML_EXTENSIONS:
            dom.error = f"not an (X)HTML document: {section.href or section.idref}"
            return dom
        try:
            raw = _read_exact(self._zip, section.path)
        except KeyError:
            dom.error = f"missing from the archive: {section.path}"
            return dom
        text = raw.decode("utf-8", errors="replace")  # JSZip's async("string") decodes UTF-8, whatever is declared
        try:
            dom.nodes = parse_section_text(text, extension, dom.shape)
        except expat.ExpatError as exc:
            dom.error = f"{section.path}: not well-formed XML ({exc})"
        return dom
