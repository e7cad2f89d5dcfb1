"""Huge chapters cut into bounded NLP units (issue 13, item 20), offsets kept (see nlp/units.py)."""

from __future__ import annotations

import random

import nlp_fakes
import pytest
from big_books import SENTENCES, one_line_book

from bookreader_cli.nlp import units
from bookreader_cli.nlp.engine import analyze_chapter
from bookreader_cli.nlp.segment import chapter_from_text


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    monkeypatch.setenv("BOOKREADER_EXTRA_PROCESSORS", nlp_fakes.REGISTRATION)


def test_a_few_mb_one_line_chapter_is_cut_at_sentence_ends_into_bounded_units():
    text = one_line_book(3)
    cut = units.cut(text)
    assert len(cut) > 10
    assert all(0 < u.end - u.start <= units.UNIT_CHARS for u in cut)
    position = 0
    for u in cut:
        assert text[position : u.start].strip() == ""  # nothing but the space between sentences is left out
        assert u.start >= position
        assert text[u.end - 1] in ".!?…", text[u.end - 20 : u.end + 5]  # every unit ends a sentence
        piece = u.text(text)
        for start, end, _ in u.paragraphs:
            assert piece[start:end] == text[u.start + start : u.start + end]
        position = u.end
    assert position == len(text)
    assert all(i == 0 for u in cut for i in u.paragraph_of)  # one paragraph, many windows


def test_a_normal_chapter_is_one_unit_as_given():
    text = " ".join(SENTENCES * 20)
    assert units.cut(text) == [units.Unit(0, len(text), None)]
    assert units.cut(text, [(0, len(text), "text")])[0].paragraphs is None


def test_a_long_chapter_of_normal_paragraphs_is_cut_between_paragraphs():
    paragraphs = [" ".join(random.Random(n).choice(SENTENCES) for _ in range(40)) for n in range(200)]
    text = "\n".join(paragraphs)
    spans, pos = [], 0
    for p in paragraphs:
        spans.append((pos, pos + len(p), "text"))
        pos += len(p) + 1
    cut = units.cut(text, spans, limit=20_000)
    assert len(cut) > 5
    seen = [(u.start + s, u.start + e) for u in cut for s, e, _ in u.paragraphs]
    assert seen == [(s, e) for s, e, _ in spans]  # every paragraph whole, once, in order
    assert [i for u in cut for i in u.paragraph_of] == list(range(len(spans)))


def test_combined_units_give_what_the_whole_chapter_gives():
    """Paragraph-aligned units of sentence-local processors: the same descriptions, offsets and numbers."""
    paragraphs = [" ".join(random.Random(n).choice(SENTENCES) for _ in range(30)) for n in range(60)]
    text = "\n".join(paragraphs)
    chapter = chapter_from_text(text)
    whole = analyze_chapter(chapter, mode="sequential", processors=["snow_a", "snow_b"])
    cut = units.cut(text, chapter.paragraphs, limit=10_000)
    assert len(cut) > 3
    parts = [analyze_chapter(u.chapter(chapter), mode="sequential", processors=["snow_a", "snow_b"]) for u in cut]
    combined = units.combine(parts, cut)
    assert [d.to_dict() for d in combined.descriptions] == [d.to_dict() for d in whole.descriptions]
    assert combined.sentences_total == whole.sentences_total
    assert combined.sentences_passed == whole.sentences_passed
    assert combined.consensus_rate == whole.consensus_rate
    assert combined.votes_summary == whole.votes_summary
    assert combined.timings["units"] == len(cut)


def test_offsets_hold_in_a_combined_one_line_chapter():
    text = one_line_book(0.6)
    chapter = chapter_from_text(text)
    cut = units.cut(text, chapter.paragraphs, limit=30_000)
    parts = [analyze_chapter(u.chapter(chapter), mode="sequential", processors=["snow_a", "snow_b"]) for u in cut]
    combined = units.combine(parts, cut)
    assert combined.descriptions
    for d in combined.descriptions:
        assert text[d.start : d.end] == d.text
        assert "снег" in d.text


def test_run_book_sends_a_huge_chapter_in_units_and_keeps_its_offsets(monkeypatch):
    """Through real worker processes: the chapter is combined back, offsets into the whole chapter."""
    from bookreader_cli.nlp.runner import NlpPool, run_book

    monkeypatch.setattr(units, "UNIT_CHARS", 50_000)  # the cut is the same at any size; this keeps it quick
    text = one_line_book(1.0)
    small = "Кругом лежал глубокий снег.\nОн долго думал."
    seen = []
    with NlpPool(2) as pool:
        results = dict(
            run_book(
                [chapter_from_text(small), chapter_from_text(text)],
                mode="ensemble",
                processors=["snow_a", "snow_b"],
                pool=pool,
                on_chapter=lambda i, r: seen.append(i),
            )
        )
    assert seen == [0, 1]
    big = results[1]
    assert big.timings["units"] == len(units.cut(text, limit=50_000)) > 5
    assert "units" not in results[0].timings  # a normal chapter: one unit, as before
    assert big.descriptions and all(text[d.start : d.end] == d.text for d in big.descriptions)
    assert big.sentences_total > 1000
    assert sorted(d.start for d in big.descriptions) == [d.start for d in big.descriptions]


def test_run_book_reports_progress_inside_a_huge_chapter(monkeypatch):
    from bookreader_cli.nlp.runner import NlpPool, run_book

    monkeypatch.setattr(units, "UNIT_CHARS", 40_000)
    text = one_line_book(0.4)
    seen = []
    with NlpPool(1) as pool:
        list(
            run_book(
                [chapter_from_text(text)],
                mode="single",
                processors=["snow_a"],
                pool=pool,
                on_part=lambda i, k, n: seen.append((i, k, n)),
            )
        )
    n = len(units.cut(text, limit=40_000))
    assert n > 3 and seen == [(0, k, n) for k in range(1, n + 1)]
