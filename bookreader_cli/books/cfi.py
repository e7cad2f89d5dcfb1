"""EPUB CFIs exactly as epub.js 0.3 makes and reads them: locations, percentages, ranges.

`generate_locations(epub, chars)` returns what `book.locations.generate(chars)` followed by
`book.locations.save()` gives (the same strings, same order), so a reader can `locations.load()` ours
instead of spending seconds generating its own. The algorithm is a line-by-line port of
`Locations.parse` (including its quirks: a new location that starts inside a text node starts one
character *after* the previous end, and every section ends with a partial location), over the DOM
text nodes rebuilt in `cfi_dom`. Offsets are UTF-16 code units, as in JavaScript.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from bookreader_cli.books.cfi_dom import EpubDom, TextNode, utf16_len, utf16_to_index
from bookreader_cli.errors import BadInput

DEFAULT_CHARS = 150
DEFAULT_COUNT = 2000

EpubSource = str | Path | bytes | EpubDom


def open_epub(source: EpubSource) -> EpubDom:
    return source if isinstance(source, EpubDom) else EpubDom(source)


# --- making CFI strings ---------------------------------------------------------------------------------


def range_cfi(base: str, start: tuple[TextNode, int], end: tuple[TextNode, int]) -> str:
    """EpubCFI.fromRange(...).toString() for a range between two text positions (UTF-16 offsets).

    epub.js moves the steps the two ends share into the common path, except the start's last step
    (its terminal objects never compare equal), so even a range inside one text node prints as
    `/4/2,/1:0,/1:150`.
    """
    start_steps = start[0].steps
    end_steps = end[0].steps
    limit = min(len(start_steps) - 1, len(end_steps))
    common = 0
    while common < limit and start_steps[common] == end_steps[common]:
        common += 1
    return (
        f"epubcfi({base}!/{'/'.join(start_steps[:common])},"
        f"/{'/'.join(start_steps[common:])}:{start[1]},"
        f"/{'/'.join(end_steps[common:])}:{end[1]})"
    )


def point_cfi(base: str, position: tuple[TextNode, int]) -> str:
    """EpubCFI.fromRange for a collapsed range: one position."""
    return f"epubcfi({base}!/{'/'.join(position[0].steps)}:{position[1]})"


# --- locations -----------------------------------------------------------------------------------------


def section_locations(nodes: list[TextNode], base: str, chars: int) -> list[str]:
    """Locations.parse, ported statement by statement (see epub.js src/locations.js)."""
    locations: list[str] = []
    counter = 0
    start = None
    prev = None
    for node in nodes:
        if node.blank:
            continue
        length = node.length
        pos = 0
        if counter == 0:
            start = (node, 0)
        dist = chars - counter
        if dist > length:
            counter += length
            pos = length
        while pos < length:
            dist = chars - counter
            if counter == 0:
                pos += 1
                start = (node, pos)
            if pos + dist >= length:
                counter += length - pos
                pos = length
            else:
                pos += dist
                locations.append(range_cfi(base, start, (node, pos)))
                counter = 0
        prev = node
    if start is not None and prev is not None:
        locations.append(range_cfi(base, start, (prev, prev.length)))
    return locations


def section_location_count(lengths: list[int], chars: int) -> int:
    """How many locations section_locations makes from the non-blank node lengths, without strings."""
    count = 0
    counter = 0
    for length in lengths:
        if chars - counter > length:
            counter += length
            continue
        pos = 0
        while pos < length:
            dist = chars - counter
            if counter == 0:
                pos += 1
            if pos + dist >= length:
                counter += length - pos
                pos = length
            else:
                pos += dist
                count += 1
                counter = 0
    return count + (1 if lengths else 0)


def linear_sections(dom: EpubDom):
    """The sections epub.js's generate() visits: linear ones, in spine order, that have a body."""
    for section in dom.sections:
        if section.linear:
            section_dom = dom.section_dom(section.index)
            yield section, section_dom.nodes


def generate_locations(epub: EpubSource, chars: int = DEFAULT_CHARS) -> list[str]:
    """The list epub.js `book.locations.generate(chars)` resolves to (and `save()` serialises)."""
    if not isinstance(chars, int) or chars < 1:
        raise BadInput(f"--chars must be a positive whole number, not {chars!r}")
    dom = open_epub(epub)
    locations: list[str] = []
    for section, nodes in linear_sections(dom):
        locations.extend(section_locations(nodes, section.cfi_base, chars))
    return locations


def counted_chars(epub: EpubSource) -> int:
    """The characters epub.js counts: UTF-16 length of the non-blank text nodes in linear sections."""
    dom = open_epub(epub)
    return sum(node.length for _, nodes in linear_sections(dom) for node in nodes if not node.blank)


def chars_for_count(epub: EpubSource, count: int = DEFAULT_COUNT) -> int:
    """Characters per location that give the location count closest to `count`.

    The rule: the whole number `chars` for which epub.js's generate(chars) yields the count nearest to
    `count` (ties: the larger `chars`). We start from total/count - 1 (a location spans chars+1
    characters, and each section adds one partial location), then binary-search, counting locations
    without building strings.
    """
    if not isinstance(count, int) or count < 1:
        raise BadInput(f"--count must be a positive whole number, not {count!r}")
    dom = open_epub(epub)
    sections = [[n.length for n in nodes if not n.blank] for _, nodes in linear_sections(dom)]
    total = sum(sum(lengths) for lengths in sections)
    if total == 0:
        return DEFAULT_CHARS
    memo: dict[int, int] = {}

    def how_many(chars: int) -> int:
        if chars not in memo:
            memo[chars] = sum(section_location_count(lengths, chars) for lengths in sections)
        return memo[chars]

    guess = max(1, round(total / count) - 1)
    low, high = max(1, (guess * 4) // 5), max(2, (guess * 5) // 4 + 1)
    while low > 1 and how_many(low) <= count:  # the count falls as chars grows: bracket the target
        low = max(1, low // 2)
    while how_many(high) > count and high < total:
        high = min(total, high * 2)
    while low < high:  # smallest chars whose count is <= target
        mid = (low + high) // 2
        if how_many(mid) <= count:
            high = mid
        else:
            low = mid + 1
    best = low
    if best > 1 and abs(how_many(best - 1) - count) < abs(how_many(best) - count):
        best -= 1
    return best


def locations_for_count(epub: EpubSource, count: int = DEFAULT_COUNT) -> tuple[int, list[str]]:
    """`--count N`: (the chars chosen by chars_for_count, the locations generate(chars) gives)."""
    dom = open_epub(epub)
    chars = chars_for_count(dom, count)
    return chars, generate_locations(dom, chars)


# --- reading CFI strings (EpubCFI.parse) ------------------------------------------------------------------


@dataclass
class Step:
    type: str  # "element" | "text"
    index: int
    id: str | None = None


@dataclass
class Component:
    steps: list[Step | None]
    offset: int | None = None
    assertion: str | None = None


@dataclass
class ParsedCfi:
    spine_pos: int
    base: Component
    path: Component
    start: Component | None = None
    end: Component | None = None

    @property
    def is_range(self) -> bool:
        return self.start is not None

    def start_steps(self) -> tuple[list, int | None]:
        if self.is_range:
            return self.path.steps + self.start.steps, self.start.offset
        return self.path.steps, self.path.offset

    def end_steps(self) -> tuple[list, int | None]:
        if self.is_range:
            return self.path.steps + self.end.steps, self.end.offset
        return self.path.steps, self.path.offset


def _parse_int(text: str) -> int | None:
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else None


def _parse_step(text: str) -> Step | None:
    m = re.search(r"\[(.*)\]", text)
    step_id = m.group(1) if m and m.group(1) else None
    num = _parse_int(text)
    if num is None:
        return None
    if num % 2 == 0:
        return Step("element", num // 2 - 1, step_id)
    return Step("text", (num - 1) // 2, step_id)


def _parse_component(text: str) -> Component:
    parts = text.split(":")
    steps = parts[0].split("/")
    if steps and steps[0] == "":
        steps = steps[1:]
    component = Component([_parse_step(s) for s in steps])
    if len(parts) > 1:
        m = re.search(r"\[(.*)\]", parts[1])
        if m and m.group(1):
            component.offset = _parse_int(parts[1].split("[")[0])
            component.assertion = m.group(1)
        else:
            component.offset = _parse_int(parts[1])
    return component


def parse_cfi(cfi: str) -> ParsedCfi:
    """EpubCFI.parse; raises BadInput for what epub.js would reject."""
    if not isinstance(cfi, str) or not (cfi.startswith("epubcfi(") and cfi.endswith(")")):
        raise BadInput(f"not an EPUB CFI (expected epubcfi(...)): {cfi!r}")
    inner = cfi[8:-1]
    pieces = inner.split("!")
    base = _parse_component(pieces[0])
    if len(base.steps) < 2 or base.steps[1] is None:
        raise BadInput(f"CFI has no spine step: {cfi}")
    path_text = pieces[1].split(",")[0] if len(pieces) > 1 and pieces[1] else ""
    path = _parse_component(path_text)
    parsed = ParsedCfi(spine_pos=base.steps[1].index, base=base, path=path)
    ranges = inner.split(",")
    if len(ranges) == 3:
        parsed.start = _parse_component(ranges[1])
        parsed.end = _parse_component(ranges[2])
    return parsed


def _segment(component: Component) -> str:
    parts = []
    for step in component.steps:
        if step is None:
            parts.append("")
            continue
        num = (step.index + 1) * 2 if step.type == "element" else 1 + 2 * step.index
        parts.append(f"{num}[{step.id}]" if step.id else str(num))
    text = "/" + "/".join(parts)
    if component.offset is not None:
        text += f":{component.offset}"
    if component.assertion is not None:
        text += f"[{component.assertion}]"
    return text


def cfi_to_string(cfi: ParsedCfi) -> str:
    text = f"epubcfi({_segment(cfi.base)}!{_segment(cfi.path)}"
    if cfi.is_range:
        text += f",{_segment(cfi.start)},{_segment(cfi.end)}"
    return text + ")"


def collapse(cfi: ParsedCfi, to_start: bool = False) -> ParsedCfi:
    """EpubCFI.collapse: a range becomes its start or end point."""
    if not cfi.is_range:
        return cfi
    part = cfi.start if to_start else cfi.end
    path = Component(cfi.path.steps + part.steps, part.offset, part.assertion)
    return ParsedCfi(cfi.spine_pos, cfi.base, path)


def _js_gt(a, b) -> bool:
    return (a or 0) > (b or 0)  # null compares as 0 in JavaScript relational operators


def compare_cfi(one: str | ParsedCfi, two: str | ParsedCfi) -> int:
    """EpubCFI.compare: -1 if `one` is earlier, 1 if later, 0 if equal."""
    a = parse_cfi(one) if isinstance(one, str) else one
    b = parse_cfi(two) if isinstance(two, str) else two
    if a.spine_pos != b.spine_pos:
        return 1 if a.spine_pos > b.spine_pos else -1
    steps_a, term_a = a.start_steps()
    steps_b, term_b = b.start_steps()
    for i, step in enumerate(steps_a):
        if step is None:
            return -1
        if i >= len(steps_b) or steps_b[i] is None:
            return 1
        if step.index != steps_b[i].index:
            return 1 if step.index > steps_b[i].index else -1
    if len(steps_a) < len(steps_b):
        return -1
    if _js_gt(term_a, term_b):
        return 1
    if _js_gt(term_b, term_a):
        return -1
    return 0


# --- percentages (Locations.percentageFromCfi / cfiFromPercentage) -----------------------------------------


def location_of(cfi: ParsedCfi, locations: list[str]) -> int:
    """core.locationOf with EpubCFI.compare: binary search, as epub.js does it (recursively)."""
    parsed = [None] * len(locations)

    def at(i: int) -> ParsedCfi:
        if parsed[i] is None:
            parsed[i] = parse_cfi(locations[i])
        return parsed[i]

    start, end = 0, len(locations)
    while True:
        pivot = int(start + (end - start) / 2)
        if end - start <= 0:
            return pivot
        compared = compare_cfi(at(pivot), cfi)
        if end - start == 1:
            return pivot if compared >= 0 else pivot + 1
        if compared == 0:
            return pivot
        if compared == -1:
            start = pivot
        else:
            end = pivot


def percentage_from_cfi(locations: list[str], cfi: str) -> float | None:
    """Locations.percentageFromCfi: None when there are no locations (epub.js returns null)."""
    if not locations:
        return None
    total = len(locations) - 1
    loc = location_of(parse_cfi(cfi), locations)
    if loc > total:
        loc = total
    if not loc or not total:
        return 0.0
    return loc / total


def cfi_from_percentage(locations: list[str], percentage: float) -> str | None:
    """Locations.cfiFromPercentage: None where epub.js returns -1 (no such location)."""
    if not locations:
        return None
    total = len(locations) - 1
    if percentage >= 1:
        return cfi_to_string(collapse(parse_cfi(locations[total])))
    loc = math.ceil(total * percentage)
    if 0 <= loc < len(locations):
        return locations[loc]
    return None


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
        num = int(re.match(r"\d+", step).group(0))
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


def resolve(epub: EpubSource, cfi: str, end: bool = False) -> DomPosition:
    """Where a CFI points (its start, or its end with end=True) in the DOM text nodes of its section."""
    dom = open_epub(epub)
    parsed = parse_cfi(cfi)
    if not 0 <= parsed.spine_pos < len(dom.sections):
        raise BadInput(f"CFI points to spine item {parsed.spine_pos}, the book has {len(dom.sections)}")
    section = dom.sections[parsed.spine_pos]
    nodes = dom.section_dom(section.index).nodes
    steps, offset = parsed.end_steps() if end else parsed.start_steps()
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


__all__ = [
    "DEFAULT_CHARS",
    "DEFAULT_COUNT",
    "DomPosition",
    "chars_for_count",
    "cfi_from_percentage",
    "compare_cfi",
    "counted_chars",
    "generate_locations",
    "locations_for_count",
    "parse_cfi",
    "percentage_from_cfi",
    "range_cfi",
    "resolve",
    "resolve_text",
    "utf16_len",
]
