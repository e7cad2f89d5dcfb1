"""Map between our chapter text and the EPUB's DOM text, so CFIs and chapter offsets convert both ways.

Our importer (books/epub.py) collapses whitespace, joins paragraphs with "\\n", drops script/style and
may carry a heading page into the next chapter; epub.js addresses the raw DOM Text nodes. We do not depend
on how the importer works: both sides are reduced to their non-whitespace characters (Python's
`str.isspace`, the same rule the importer's `" ".join(text.split())` uses), and the chapters are aligned,
in order, against the book's DOM stream (all spine sections, spine order). Most chapters match as one
exact substring; otherwise paragraph by paragraph, then by difflib blocks for what was changed.

"Exactly the description's text" therefore means: the range starts at the DOM position of the
description's first non-whitespace character and ends just after its last one, so epub.js's
`range.toString()` equals the description text once whitespace runs are collapsed
(`" ".join(s.split())`), and equals it byte for byte whenever the description does not span a whitespace
run the importer collapsed (a newline inside a paragraph, a paragraph break, a `&nbsp;`).
"""

from __future__ import annotations

import bisect
import difflib
import re
from array import array
from dataclasses import dataclass

from bookreader_cli.books.model import Chapter
from bookreader_cli.epubcfi.dom import EpubDom, TextNode, index_to_utf16, utf16_to_index
from bookreader_cli.epubcfi.grammar import parse_cfi
from bookreader_cli.epubcfi.locations import EpubSource, open_epub, range_cfi
from bookreader_cli.epubcfi.resolve import resolve
from bookreader_cli.errors import BadInput

_WINDOW = 20_000  # how far past the cursor a paragraph is looked for before falling back to difflib
_MIN_BLOCK = 4  # difflib matches shorter than this are noise


_NONSPACE = re.compile(r"\S")


def _nonspace_positions(text: str) -> array:
    """Index in `text` of each non-space character (re's \\S is the complement of str.isspace)."""
    return array("l", [m.start() for m in _NONSPACE.finditer(text)])


@dataclass
class _Block:
    """chapter non-space index c_start.. maps onto DOM stream index d_start.. for `length` characters."""

    c_start: int
    d_start: int
    length: int
    chapter: int


class _DomStream:
    """All spine sections' text, non-space characters only, with a way back to (section, node, offset)."""

    def __init__(self, dom: EpubDom):
        self.dom = dom
        self.node_refs: list[tuple[int, int]] = []  # (section index, node index) per entry
        self.node_starts = array("l")  # stream index where each node's non-space characters begin
        self.section_starts: dict[int, int] = {}
        parts: list[str] = []
        total = 0
        for section in dom.sections:
            self.section_starts[section.index] = total
            for node_index, node in enumerate(dom.section_dom(section.index).nodes):
                squeezed = "".join(node.data.split())
                if not squeezed:
                    continue
                self.node_refs.append((section.index, node_index))
                self.node_starts.append(total)
                parts.append(squeezed)
                total += len(squeezed)
        self.text = "".join(parts)

    def node(self, ref: tuple[int, int]) -> TextNode:
        return self.dom.section_dom(ref[0]).nodes[ref[1]]

    def position(self, d: int, after: bool = False) -> tuple[int, TextNode, int]:
        """DOM point of stream char `d` (before it, or just after it): (section, node, UTF-16 offset)."""
        entry = bisect.bisect_right(self.node_starts, d) - 1
        ref = self.node_refs[entry]
        node = self.node(ref)
        k = d - self.node_starts[entry]
        seen = -1
        for i, ch in enumerate(node.data):
            if not ch.isspace():
                seen += 1
                if seen == k:
                    return ref[0], node, index_to_utf16(node.data, i + 1 if after else i)
        raise AssertionError("stream index outside its node")

    def index_of(self, section: int, node_index: int, offset16: int) -> int:
        """Stream index of the first non-space character at or after a DOM point."""
        nodes = self.dom.section_dom(section).nodes
        base = self.section_starts[section]
        for node in nodes[:node_index]:
            base += len("".join(node.data.split()))
        data = nodes[node_index].data if node_index < len(nodes) else ""
        head = data[: utf16_to_index(data, offset16)]
        return base + len("".join(head.split()))


class ChapterMap:
    """Chapter offsets <-> DOM positions <-> CFIs for one EPUB and the chapters we imported from it."""

    def __init__(self, epub: EpubSource, chapters: list[Chapter]):
        self.dom = open_epub(epub)
        self.chapters = chapters
        self.stream = _DomStream(self.dom)
        self._position_cache: dict[int, array] = {}
        self.blocks: list[_Block] = []
        self._chapter_blocks: list[list[_Block]] = []
        self._align()
        self._block_d_starts = [b.d_start for b in self.blocks]

    def _positions(self, chapter: int) -> array:
        if chapter not in self._position_cache:
            self._position_cache[chapter] = _nonspace_positions(self.chapters[chapter].text)
        return self._position_cache[chapter]

    # -- alignment -----------------------------------------------------------------------------------------

    def _align(self) -> None:
        stream = self.stream.text
        cursor = 0
        for index, chapter in enumerate(self.chapters):
            squeezed = "".join(chapter.text.split())
            blocks: list[_Block] = []
            found = stream.find(squeezed, cursor) if squeezed else -1
            if found >= 0:
                blocks.append(_Block(0, found, len(squeezed), index))
            else:
                blocks = self._align_paragraphs(index, chapter, cursor)
            if blocks:
                cursor = blocks[-1].d_start + blocks[-1].length
            self._chapter_blocks.append(blocks)
            self.blocks.extend(blocks)
        self.blocks.sort(key=lambda b: b.d_start)

    def _align_paragraphs(self, index: int, chapter: Chapter, cursor: int) -> list[_Block]:
        stream = self.stream.text
        blocks: list[_Block] = []
        c_offset = 0
        for text in chapter.paragraph_texts() or [chapter.text]:
            squeezed = "".join(text.split())
            if not squeezed:
                continue
            found = stream.find(squeezed, cursor, cursor + len(squeezed) + _WINDOW)
            if found >= 0:
                blocks.append(_Block(c_offset, found, len(squeezed), index))
                cursor = found + len(squeezed)
            else:
                window = stream[cursor : cursor + 2 * len(squeezed) + 200]
                matcher = difflib.SequenceMatcher(None, squeezed, window, autojunk=False)
                for a, b, size in matcher.get_matching_blocks():
                    if size >= _MIN_BLOCK:
                        blocks.append(_Block(c_offset + a, cursor + b, size, index))
                if blocks and blocks[-1].d_start >= cursor:
                    cursor = blocks[-1].d_start + blocks[-1].length
            c_offset += len(squeezed)
        return blocks

    # -- chapter offset -> DOM -----------------------------------------------------------------------------

    def _chapter_to_stream(self, chapter: int, c: int, forward: bool) -> int | None:
        """Stream index for chapter non-space index c; if c is unaligned, the nearest aligned one."""
        blocks = self._chapter_blocks[chapter]
        if not blocks:
            return None
        for block in blocks:
            if block.c_start <= c < block.c_start + block.length:
                return block.d_start + c - block.c_start
        if forward:
            later = [b for b in blocks if b.c_start > c]
            return later[0].d_start if later else None
        earlier = [b for b in blocks if b.c_start + b.length <= c]
        return earlier[-1].d_start + earlier[-1].length - 1 if earlier else None

    def range_cfi(self, chapter: int, start: int, end: int) -> str:
        """The epub.js range CFI covering chapter.text[start:end] (trimmed to non-space characters)."""
        if not 0 <= chapter < len(self.chapters):
            raise BadInput(f"no chapter {chapter} (the book has {len(self.chapters)})")
        text = self.chapters[chapter].text
        if not 0 <= start < end <= len(text):
            raise BadInput(f"bad range {start}:{end} for a chapter of {len(text)} characters")
        positions = self._positions(chapter)
        first = bisect.bisect_left(positions, start)
        last = bisect.bisect_left(positions, end) - 1
        if first > last:
            raise BadInput(f"chapter {chapter} range {start}:{end} holds no text")
        d_first = self._chapter_to_stream(chapter, first, forward=True)
        d_last = self._chapter_to_stream(chapter, last, forward=False)
        if d_first is None or d_last is None or d_last < d_first:
            raise BadInput(f"chapter {chapter} range {start}:{end} is not in the EPUB's text")
        section_a, node_a, off_a = self.stream.position(d_first)
        section_b, node_b, off_b = self.stream.position(d_last, after=True)
        if section_a != section_b:
            # epub.js ranges live inside one section: stop at the end of the start's section
            nodes = self.dom.section_dom(section_a).nodes
            node_b = next(n for n in reversed(nodes) if "".join(n.data.split()))
            off_b = node_b.length
        base = self.dom.sections[section_a].cfi_base
        return range_cfi(base, (node_a, off_a), (node_b, off_b))

    # -- DOM -> chapter offset -----------------------------------------------------------------------------

    def chapter_offset(self, cfi: str) -> tuple[int, int]:
        """(chapter index, character offset in its text) for where a CFI (or a range's start) points."""
        position = resolve(self.dom, cfi)
        d = self.stream.index_of(position.spine_index, position.node_index, position.offset)
        return self._stream_to_chapter(d)

    def _stream_to_chapter(self, d: int) -> tuple[int, int]:
        if not self.blocks:
            raise BadInput("none of the book's chapters could be matched to the EPUB's text")
        i = bisect.bisect_right(self._block_d_starts, d) - 1
        if i >= 0 and d < self.blocks[i].d_start + self.blocks[i].length:
            block = self.blocks[i]
            c = block.c_start + d - block.d_start
        elif i + 1 < len(self.blocks):  # in text we did not import: the next text we did
            block = self.blocks[i + 1]
            c = block.c_start
        else:  # past the last imported text: the end of the last chapter
            block = self.blocks[-1]
            return block.chapter, len(self.chapters[block.chapter].text)
        return block.chapter, self._positions(block.chapter)[c]


def cfi_to_chapter_offset(epub: EpubSource, chapters: list[Chapter], cfi: str) -> tuple[int, int]:
    """Where a CFI points in our chapters: (chapter index, character offset)."""
    parse_cfi(cfi)  # reject malformed input before the (slower) alignment
    return ChapterMap(epub, chapters).chapter_offset(cfi)


def chapter_range_to_cfi(epub: EpubSource, chapters: list[Chapter], chapter: int, start: int, end: int) -> str:
    """The epub.js range CFI for chapters[chapter].text[start:end]."""
    return ChapterMap(epub, chapters).range_cfi(chapter, start, end)


def describe_cfi(epub: EpubSource, chapters: list[Chapter], cfi: str, snippet_chars: int = 80) -> dict:
    """`cfi resolve`: the spine item, our chapter and offset, and a snippet of our text from there."""
    mapping = ChapterMap(epub, chapters)
    position = resolve(mapping.dom, cfi)
    chapter, offset = mapping.chapter_offset(cfi)
    text = chapters[chapter].text
    return {
        "cfi": cfi,
        "spine_index": position.spine_index,
        "href": position.href,
        "chapter_index": chapter,
        "chapter_title": chapters[chapter].title,
        "offset": offset,
        "snippet": text[offset : offset + snippet_chars],
    }
