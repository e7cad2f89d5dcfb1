"""Plain data for a parsed book: chapters hold their text once, paragraphs point into it by offsets."""

from __future__ import annotations

from dataclasses import dataclass, field

# Paragraph kinds: "text" is prose; the others are kept in the text but are never descriptions.
PARAGRAPH_KINDS = ("text", "heading", "epigraph", "poem", "subtitle")


@dataclass
class Paragraph:
    start: int
    end: int
    kind: str = "text"


@dataclass
class Chapter:
    """One chapter: `text` is its paragraphs joined by "\\n"; `paragraphs[i]` gives each one's offsets."""

    title: str
    text: str
    paragraphs: list[Paragraph]
    source: str = ""  # where it came from: EPUB href (with #anchor if split), FB2 section path, TXT line
    idx: int = 0  # its position in the stored book (store.chapters() fills idx and id)
    id: int | None = None  # its row id in the store

    @classmethod
    def from_paragraphs(cls, title: str, paras: list[tuple[str, str]], source: str = "") -> Chapter:
        """Build from (text, kind) pairs; blank paragraphs are dropped, inner newlines become spaces."""
        parts: list[str] = []
        out: list[Paragraph] = []
        pos = 0
        for text, kind in paras:
            text = " ".join(text.split())
            if not text:
                continue
            if parts:
                pos += 1  # the "\n" between paragraphs
            out.append(Paragraph(pos, pos + len(text), kind))
            parts.append(text)
            pos += len(text)
        return cls(title=title, text="\n".join(parts), paragraphs=out, source=source)

    def paragraph_texts(self) -> list[str]:
        return [self.text[p.start : p.end] for p in self.paragraphs]


@dataclass
class Book:
    format: str  # "epub2" | "epub3" | "fb2" | "txt"
    title: str
    chapters: list[Chapter]
    authors: list[str] = field(default_factory=list)
    language: str = ""
    identifiers: list[str] = field(default_factory=list)
    publisher: str = ""
    date: str = ""
    cover: bytes | None = None
    cover_media_type: str = ""
    notes: list[Chapter] = field(default_factory=list)  # FB2 notes body; never processed as chapters
    warnings: list[str] = field(default_factory=list)  # what the reader recovered from (missing mimetype, …)
    # where `title` came from: "metadata" (EPUB/FB2), "gutenberg header", "first lines" or "file name" (TXT)
    title_source: str = "metadata"
