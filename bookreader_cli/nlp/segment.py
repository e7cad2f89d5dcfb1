"""The one shared sentence splitter: every processor scores the same sentences, with offsets into the text.

razdel (Natasha's rule-based splitter) works per paragraph, so a sentence never crosses a paragraph
boundary and merging can rely on `Sentence.paragraph`.

Speech is judged per sentence, not per paragraph (`speech_mask`): in a paragraph that opens with a dash,
the remark runs up to a dash after punctuation (", — сказал он"), the author's words from there up to the
next such dash, and so on; a «…» (or "…") quote of three words or more is speech too. Each sentence carries
the share of its letters inside speech (`Sentence.speech`) and the paragraph's speech letters
(`Sentence.speech_para`) for the models to weigh. Only a clear line of dialogue is excluded outright
(kind "dialogue"): a sentence of a paragraph that opens with a dash or quote which is almost all speech or
whose narrated part is a bare attribution ("— сказал он, улыбаясь"), when that paragraph's speech is a remark
rather than a story told at length (annotators count a story told by a character as narration; the
guideline counts a line of speech whose narrated part describes a look).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bookreader_cli.books.model import Chapter, Paragraph
from bookreader_cli.nlp.base import Sentence

# Russian dialogue opens a paragraph with a dash; quoted speech with a quote mark.
DIALOGUE_OPENERS = ("—", "–", "-", "«", '"', "„", "“")
DASHES = "—–-"
# A dash that switches between remark and author's words: after punctuation ("…, — сказал он. — Иди").
_TOGGLE_DASH = re.compile(r"[,.!?…:;»\"”]\s+[—–-](?=\s)")
_QUOTE_PAIRS = {"«": "»", "„": "“", "“": "”"}
_END_PUNCT = re.compile(r"[.!?…:;»\"”)]\s*$")
_WORD = re.compile(r"\w+", re.UNICODE)
MIN_QUOTE_WORDS = 3  # a shorter quote is a name or a title («Северная пчела»), not a remark
CLEAR_SPEECH = 0.9  # a sentence this much speech, in a paragraph of dialogue, is a line of dialogue…
ATTRIBUTION = 20  # …as is one whose narrated part is this short ("— сказал он, улыбаясь")…
STORY_CHARS = 600  # …unless the paragraph's speech is this long: a story told at length


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
    """The paragraph opens like a line of dialogue (a dash or a quote mark)."""
    return paragraph_text.lstrip().startswith(DIALOGUE_OPENERS)


def speech_mask(paragraph: str) -> list[bool]:
    """Per character of the paragraph: is it inside direct speech (see the module docstring)?"""
    mask = [False] * len(paragraph)
    stripped = paragraph.lstrip()
    if stripped[:1] in DASHES:
        lead = len(paragraph) - len(stripped)
        toggles = [m.end() for m in _TOGGLE_DASH.finditer(paragraph)]
        inside, start = True, lead + 1
        for cut in toggles + [len(paragraph)]:
            if inside:
                for k in range(start, cut):
                    mask[k] = True
            inside, start = not inside, cut
    for open_at, close_at in _quotes(paragraph):
        if len(_WORD.findall(paragraph[open_at:close_at])) >= MIN_QUOTE_WORDS:
            for k in range(open_at, close_at):
                mask[k] = True
    return mask


def _quotes(paragraph: str) -> list[tuple[int, int]]:
    """Spans of top-level quotes: «…» (nesting counted), “…”, „…“, "…"; an unclosed one runs to the end."""
    spans, i, n = [], 0, len(paragraph)
    while i < n:
        ch = paragraph[i]
        if ch in _QUOTE_PAIRS or ch == '"':
            close = _QUOTE_PAIRS.get(ch, '"')
            depth, j = 1, i + 1
            while j < n and depth:
                if paragraph[j] == close:
                    depth -= 1
                elif paragraph[j] == ch and ch != close:
                    depth += 1
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


def _share(mask: list[bool], text: str, start: int, end: int) -> float:
    letters = [mask[k] for k in range(start, end) if text[k].isalpha()]
    return sum(letters) / len(letters) if letters else 0.0


def chapter_from_text(text: str, title: str = "") -> Chapter:
    """A plain text as a Chapter: its "\\n"-separated lines are the paragraphs (kinds guessed)."""
    return Chapter(title, text, [Paragraph(s, e, k) for s, e, k in paragraphs_from_text(text)])


def segment(text: str, paragraphs: Sequence[Paragraph] | None = None) -> list[Sentence]:
    """Split `text` into sentences with offsets; `paragraphs` (offsets into text) default to its lines.

    Sentences inherit their paragraph's kind; in prose, a clear line of dialogue gets kind "dialogue"; every
    sentence carries its speech share (see the module docstring).
    """
    from razdel import sentenize

    spans = paragraphs_from_text(text) if paragraphs is None else [(p.start, p.end, p.kind) for p in paragraphs]
    sentences: list[Sentence] = []
    for p_index, (p_start, p_end, kind) in enumerate(spans):
        para = text[p_start:p_end]
        mask = speech_mask(para) if kind == "text" else [False] * len(para)
        speech_letters = sum(1 for k, inside in enumerate(mask) if inside and para[k].isalpha())
        opens_dialogue = is_dialogue(para)
        for piece in sentenize(para):
            if not piece.text.strip():
                continue
            start, end = p_start + piece.start, p_start + piece.stop
            share = _share(mask, para, piece.start, piece.stop)
            narrated = sum(1 for k in range(piece.start, piece.stop) if not mask[k] and para[k].isalpha())
            own_kind = kind
            if (
                kind == "text"
                and opens_dialogue
                and speech_letters < STORY_CHARS
                and share > 0
                and (share >= CLEAR_SPEECH or narrated <= ATTRIBUTION)
            ):
                own_kind = "dialogue"
            sentences.append(
                Sentence(
                    len(sentences),
                    start,
                    end,
                    text[start:end],
                    p_index,
                    own_kind,
                    speech=round(share, 3),
                    speech_para=float(speech_letters),
                )
            )
    return sentences


def word_count(text: str) -> int:
    return len(_WORD.findall(text))
