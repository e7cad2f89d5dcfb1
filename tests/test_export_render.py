"""The reader view's markup without a browser: every description's <mark> parts, read back with an HTML
parser, give exactly chapter_text[start:end], however the spans overlap or cross paragraph breaks."""

from __future__ import annotations

import random
from html.parser import HTMLParser

from bookreader_cli.books.model import Chapter, Paragraph
from bookreader_cli.export.html import render_chapter, render_page


class Marks(HTMLParser):
    """{description id: [[offset, text], …]} and the text of each paragraph, from rendered markup."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[list] = []
        self.parts: dict[int, list[list]] = {}
        self.tags: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "mark":
            part = [int(attrs["data-o"]), ""]
            self.parts.setdefault(int(attrs["data-d"]), []).append(part)
            self.open.append(part)

    def handle_endtag(self, tag):
        if tag == "mark":
            self.open.pop()

    def handle_data(self, data):
        for part in self.open:
            part[1] += data


def rebuild(parts: list[list], text: str) -> str:
    out, end = "", None
    for offset, part in sorted(parts):
        if end is not None and offset != end:
            assert text[end:offset] == "\n"
            out += "\n"
        out += part
        end = offset + len(part)
    return out


def chapter(paragraphs: list[str]) -> Chapter:
    """A chapter of these paragraphs exactly as written (from_paragraphs would squeeze their spaces)."""
    spans, pos = [], 0
    for p in paragraphs:
        spans.append(Paragraph(pos, pos + len(p)))
        pos += len(p) + 1
    return Chapter(title="Глава <1>", text="\n".join(paragraphs), paragraphs=spans)


def test_random_overlapping_spans_come_back_exactly():
    rng = random.Random(14)
    for _ in range(200):
        paragraphs = [
            "".join(rng.choice("ab <&>\"'ё") for _ in range(rng.randint(1, 30))) for _ in range(rng.randint(1, 4))
        ]
        ch = chapter(paragraphs)
        text = ch.text
        descriptions = []
        for ident in range(rng.randint(0, 6)):
            start = rng.randrange(len(text))
            end = rng.randint(start + 1, len(text))
            descriptions.append(
                {
                    "id": ident + 1,
                    "chapter_idx": 0,
                    "start": start,
                    "end": end,
                    "text": text[start:end],
                    "type": rng.choice(["location", "object"]),
                    "priority": 50.0,
                    "processors": ["spacy"],
                    "consensus": 1.0,
                    "confidence": 1.0,
                }
            )
        parser = Marks()
        parser.feed(render_chapter(ch, descriptions, {}))
        assert "script" not in parser.tags and "b" not in parser.tags
        for d in descriptions:
            drawn = d["text"].strip("\n")  # a paragraph break at either end has nothing to draw
            if not drawn:
                continue
            assert rebuild(parser.parts[d["id"]], text) == drawn
            assert parser.ids.count(f"d{d['id']}") == 1  # one link target each


def test_page_without_descriptions_and_markup_everywhere():
    ch = chapter(["<script>alert(1)</script>", "x"])
    page = render_page(
        {"title": "</title><script>alert(2)</script>", "authors": ["<i>A</i>"], "language": 'ru" onload="x'},
        [ch],
        [],
        {},
    )
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page
    assert page.count("<script>") == 1 and 'lang="ruonloadx"' in page
