"""The one shared sentence splitter: every processor scores the same sentences, with offsets into the text.

razdel (Natasha's rule-based splitter) works per paragraph, so a sentence never crosses a paragraph
boundary and merging can rely on `Sentence.paragraph`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bookreader_cli.books.model import Chapter, Paragraph
from bookreader_cli.nlp.base import Sentence

# Russian dialogue opens a paragraph with a dash; quoted speech with a quote mark.
DIALOGUE_OPENERS = ("—", "–", "-", "«", '"', "„", "“")
_END_PUNCT = re.compile(r"[.!?…:;»\"”)]\s*$")
_WORD = re.compile(r"\w+", re.UNICODE)


def paragraphs_from_text(text: str) -> list[tuple[int, int, str]]:
    """Paragraph spans of a plain text: lines split on "\\n"; short unpunctuated lines look like headings."""
    spans: list[tuple[int, int, str]] = []
    pos = 0
    for line in text.split("\n"):
        start, end = pos, pos + len(line)
        pos = end + 1
        stripped = line.strip()
        if not stripped:
            continue
        lead = len(line) - len(line.lstrip())
        spans.append((start + lead, start + lead + len(stripped), guess_kind(stripped)))
    return spans


def guess_kind(paragraph: str) -> str:
    """A heading is a short line without sentence-final punctuation ("Глава седьмая", "XI", "1887")."""
    words = _WORD.findall(paragraph)
    if len(words) <= 8 and not _END_PUNCT.search(paragraph):
        return "heading"
    return "text"


def is_dialogue(paragraph_text: str) -> bool:
    return paragraph_text.lstrip().startswith(DIALOGUE_OPENERS)


def chapter_from_text(text: str, title: str = "") -> Chapter:
    """A plain text as a Chapter: its "\\n"-separated lines are the paragraphs (kinds guessed)."""
    return Chapter(title, text, [Paragraph(s, e, k) for s, e, k in paragraphs_from_text(text)])


def segment(text: str, paragraphs: Sequence[Paragraph] | None = None) -> list[Sentence]:
    """Split `text` into sentences with offsets; `paragraphs` (offsets into text) default to its lines.

    A sentence of a dialogue paragraph gets kind "dialogue"; others inherit their paragraph's kind.
    """
    from razdel import sentenize

    spans = paragraphs_from_text(text) if paragraphs is None else [(p.start, p.end, p.kind) for p in paragraphs]
    sentences: list[Sentence] = []
    for p_index, (p_start, p_end, kind) in enumerate(spans):
        para = text[p_start:p_end]
        if kind == "text" and is_dialogue(para):
            kind = "dialogue"
        for piece in sentenize(para):
            if not piece.text.strip():
                continue
            start, end = p_start + piece.start, p_start + piece.stop
            sentences.append(Sentence(len(sentences), start, end, text[start:end], p_index, kind))
    return sentences


def word_count(text: str) -> int:
    return len(_WORD.findall(text))
