"""Where a CFI points in an EPUB's DOM text nodes, and the text a range CFI covers (epub.js getRange)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bookreader_cli.epubcfi.dom import TextNode, utf16_to_index
from bookreader_cli.epubcfi.grammar import Step, parse_cfi
from bookreader_cli.epubcfi.locations import EpubSource, open_epub
from bookreader_cli.errors import BadInput

# --- resolving a CFI to a DOM position -----------------------------------------------------------------------


@dataclass
class DomPosition:
    spine_index: int
    href: str
    node_index: int  # index into the section's text-node list (EpubDom.section_dom(i).nodes)
    offset: int  # UTF-16 offset inside that text node


def _steps_key(steps: list[Step | None]) -> tuple:
    return tuple((s.type, s.index) if s is not None else None for s in steps)


def _node_key(node: TextNode) -> tuple:
    out = []
    for step in node.steps:
        match = re.match(r"\d+", step)
        assert match is not None  # every step starts with its number
        num = int(match.group(0))
        out.append(("element", num // 2 - 1) if num % 2 == 0 else ("text", (num - 1) // 2))
    return tuple(out)


def _find_position(nodes: list[TextNode], steps: list[Step | None], offset: int | None) -> tuple[int, int]:
    """The text node a step path names (or the first text node inside the element it names)."""
    key = _steps_key(steps)
    if key and key[-1] is not None and key[-1][0] == "text":
        for i, node in enumerate(nodes):
            if _node_key(node) == key:
                return i, min(offset or 0, node.length)
    for i, node in enumerate(nodes):  # an element (or a miss): the first text inside it, else after it
        node_key = _node_key(node)
        if node_key[: len(key)] == key or node_key > key:
            return i, 0
    if nodes:
        return len(nodes) - 1, nodes[-1].length
    raise BadInput("the CFI points into a section without text")


def _missing_step(shape: dict[tuple[int, ...], tuple[int, int]], steps: list[Step | None]) -> str:
    """The path up to the first step that names nothing in the document, or "" when every step exists.

    As epub.js walks a CFI (walkToNode): element step 2k is the element's child element k, text step
    2k+1 its text node k (counting text nodes only), and a text node has no steps below it. A step with
    an [id] is left alone (epub.js looks it up by id); a document we could not parse is not judged."""
    if not shape:
        return ""
    path: tuple[int, ...] = ()
    shown = ""
    for n, step in enumerate(steps):
        if step is None or step.id:
            return ""
        counts = shape.get(path)
        if counts is None:
            return ""  # not an element we know the inside of (e.g. in <head> of an HTML document)
        elements, texts = counts
        shown += f"/{(step.index + 1) * 2 if step.type == 'element' else 2 * step.index + 1}"
        if step.type == "element":
            if step.index >= elements:
                return shown
            path += (step.index,)
        elif step.index >= texts or n != len(steps) - 1:
            return shown
    return ""


def resolve(epub: EpubSource, cfi: str, end: bool = False) -> DomPosition:
    """Where a CFI points (its start, or its end with end=True) in the DOM text nodes of its section.

    A step that names nothing in the document is BadInput (epub.js gives no range for it either)."""
    dom = open_epub(epub)
    parsed = parse_cfi(cfi)
    if not 0 <= parsed.spine_pos < len(dom.sections):
        raise BadInput(f"CFI points to spine item {parsed.spine_pos}, the book has {len(dom.sections)}")
    section = dom.sections[parsed.spine_pos]
    section_dom = dom.section_dom(section.index)
    nodes = section_dom.nodes
    steps, offset = parsed.end_steps() if end else parsed.start_steps()
    missing = _missing_step(section_dom.shape, steps)
    if missing:
        raise BadInput(
            f"CFI step {missing} does not exist in spine item {parsed.spine_pos} "
            f"({section.href or section.path}): {cfi}"
        )
    node_index, node_offset = _find_position(nodes, steps, offset)
    return DomPosition(section.index, section.href, node_index, node_offset)


def resolve_text(epub: EpubSource, cfi: str) -> str:
    """The text a range CFI covers, as epub.js's `getRange(cfi).toString()` would give it."""
    dom = open_epub(epub)
    start = resolve(dom, cfi)
    finish = resolve(dom, cfi, end=True)
    nodes = dom.section_dom(start.spine_index).nodes
    if start.node_index == finish.node_index:
        data = nodes[start.node_index].data
        return data[utf16_to_index(data, start.offset) : utf16_to_index(data, finish.offset)]
    parts = [nodes[start.node_index].data[utf16_to_index(nodes[start.node_index].data, start.offset) :]]
    parts.extend(node.data for node in nodes[start.node_index + 1 : finish.node_index])
    last = nodes[finish.node_index].data
    parts.append(last[: utf16_to_index(last, finish.offset)])
    return "".join(parts)
