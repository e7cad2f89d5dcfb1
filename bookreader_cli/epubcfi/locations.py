"""EPUB CFIs exactly as epub.js 0.3 makes and reads them: locations, percentages, ranges.

`generate_locations(epub, chars)` returns what `book.locations.generate(chars)` followed by
`book.locations.save()` gives (the same strings, same order), so a reader can `locations.load()` ours
instead of spending seconds generating its own. The algorithm is a line-by-line port of
`Locations.parse` (including its quirks: a new location that starts inside a text node starts one
character *after* the previous end, and every section ends with a partial location), over the DOM
text nodes rebuilt in `epubcfi.dom`. Offsets are UTF-16 code units, as in JavaScript.
"""

from __future__ import annotations

import math
from pathlib import Path

from bookreader_cli.epubcfi.dom import EpubDom, TextNode
from bookreader_cli.epubcfi.grammar import ParsedCfi, cfi_to_string, collapse, compare_cfi, parse_cfi
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
                assert start is not None  # set when the location began (counter == 0)
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


# --- percentages (Locations.percentageFromCfi / cfiFromPercentage) -----------------------------------------


def location_of(cfi: ParsedCfi, locations: list[str]) -> int:
    """core.locationOf with EpubCFI.compare: binary search, as epub.js does it (recursively)."""
    parsed: list[ParsedCfi | None] = [None] * len(locations)

    def at(i: int) -> ParsedCfi:
        cfi = parsed[i]
        if cfi is None:
            cfi = parsed[i] = parse_cfi(locations[i])
        return cfi

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
    loc = min(loc, total)
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
