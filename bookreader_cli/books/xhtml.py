"""Reading one XHTML file of an EPUB: a safe parse (recovering like a reader on malformed markup), and its
text cut into paragraphs of a kind (text, heading, epigraph, poem) at the TOC's anchors."""

from __future__ import annotations

import posixpath
import re

from lxml import etree

from .safety import html_entities_to_numeric, refuse_declared_entities, safe_xml_parser

OPS_NS = "http://www.idpf.org/2007/ops"
BLOCK_TAGS = {
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "blockquote",
    "pre",
    "td",
    "th",
    "dt",
    "dd",
    "section",
    "article",
    "aside",
    "header",
    "footer",
    "figure",
    "figcaption",
    "table",
    "tr",
    "ul",
    "ol",
    "dl",
    "main",
    "body",
    "hr",
    "address",
    "center",
    "caption",
    "tbody",
    "thead",
    "tfoot",
    "nav",
    "hgroup",
}
SKIP_TAGS = {"head", "script", "style", "title", "svg", "math", "rt", "rp", "noscript", "template", "object"}
HEADING_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


def local_name(el) -> str:
    """Lower-case tag name without namespace ("" for comments and processing instructions)."""
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag[tag.rfind("}") + 1 :].lower()


def clean_text(text: str) -> str:
    return " ".join(text.split())


def parse_xhtml(content: bytes, label: str, warnings: list[str]):
    """Parse one XHTML file; malformed markup is read by lxml's recovering HTML parser, as a reader would."""
    refuse_declared_entities(content, label)
    content, _ = html_entities_to_numeric(content)
    if not content.strip():
        return None
    try:
        return etree.fromstring(content, parser=safe_xml_parser())
    except (etree.XMLSyntaxError, ValueError):
        pass
    from lxml import html

    try:
        parser = html.HTMLParser(recover=True, no_network=True, remove_comments=True, remove_pis=True)
        root = html.document_fromstring(content, parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        warnings.append(f"{label}: unreadable XHTML skipped ({exc})")
        return None
    warnings.append(f"{label}: malformed XHTML, read leniently")
    return root


def _kind_for(el, inherited: str) -> str:
    tag = local_name(el)
    if tag in HEADING_TAGS:
        return "heading"
    classes = (el.get("class") or "").lower()
    epub_type = (el.get(f"{{{OPS_NS}}}type") or "").lower()
    if "epigraph" in classes or "epigraph" in epub_type:
        return "epigraph"
    if any(word in classes for word in ("poem", "verse", "stanza")):
        return "poem"
    return inherited


def split_segments(root, anchors: set[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Split a document's paragraphs at the given anchor ids: [(anchor or "", [(text, kind)])]."""
    segments: list[tuple[str, list[tuple[str, str]]]] = [("", [])]
    body = next((el for el in root.iter() if local_name(el) == "body"), root)

    def switch_if_anchored(el) -> None:
        for node in el.iter():
            if not isinstance(node.tag, str):
                continue
            for key in (node.get("id"), node.get("name") if local_name(node) == "a" else None):
                if key and key in anchors and key != segments[-1][0]:
                    segments.append((key, []))
                    return

    def emit(text: str, kind: str) -> None:
        text = clean_text(text)
        if text:
            segments[-1][1].append((text, kind))

    def inline_text(el, with_tail: bool = False) -> str:
        parts: list[str] = []
        if local_name(el) not in SKIP_TAGS:
            if local_name(el) == "br":
                parts.append(" ")
            parts.append(el.text or "")
            for child in el:
                if isinstance(child.tag, str):
                    parts.append(inline_text(child, with_tail=True))
                else:
                    parts.append(child.tail or "")
        if with_tail:
            parts.append(el.tail or "")
        return "".join(parts)

    def has_block(el) -> bool:
        return any(local_name(d) in BLOCK_TAGS for d in el.iterdescendants() if isinstance(d.tag, str))

    def walk(el, kind: str) -> None:
        tag = local_name(el)
        if tag in SKIP_TAGS or not tag:
            return
        kind = _kind_for(el, kind)
        if not has_block(el):
            switch_if_anchored(el)
            emit(inline_text(el), kind)
            return
        if el.get("id") in anchors:
            switch_if_anchored(el)
        buffer: list[str] = [el.text or ""]
        for child in el:
            if not isinstance(child.tag, str):
                buffer.append(child.tail or "")
                continue
            if local_name(child) in BLOCK_TAGS or local_name(child) in SKIP_TAGS or has_block(child):
                emit("".join(buffer), kind)
                walk(child, kind)
                buffer = [child.tail or ""]
            else:
                if anchors:
                    before = len(segments)
                    switch_if_anchored(child)
                    if len(segments) != before and "".join(buffer).strip():
                        # the anchor sits mid-paragraph: text before it belongs to the previous segment
                        anchor_segment = segments.pop()
                        emit("".join(buffer), kind)
                        segments.append(anchor_segment)
                        buffer = []
                buffer.append(inline_text(child, with_tail=True))
        emit("".join(buffer), kind)

    walk(body, "text")
    return [(anchor, paras) for anchor, paras in segments if paras]


def title_for(anchor: str, entries: list[tuple[str, str]], own: list[tuple[str, str]], path: str) -> str:
    """The TOC title for this segment, else its first heading, else the file name."""
    for entry_anchor, title in entries:
        if entry_anchor == anchor:
            return title
    headings = [text for text, kind in own if kind == "heading"]
    if headings:
        return headings[0][:120]
    return re.sub(r"\.(x?html?|xht)$", "", posixpath.basename(path), flags=re.IGNORECASE)
