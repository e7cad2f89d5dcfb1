"""Bounded NLP work units: a huge chapter is cut into pieces that each fit comfortably in a worker.

A 200 MB one-line TXT is one chapter of one paragraph. Sent whole, every worker got the 200 MB string,
segmented it in one go and held millions of sentences and votes at once (over 6 GB RSS, nothing finished
in 12 minutes). Here a chapter longer than `UNIT_CHARS` is cut into units of at most that many characters:
whole paragraphs where they fit, and a paragraph longer than a unit in windows that end at a sentence end
(razdel, the shared splitter, run on the window only), else at a space. Each unit is analysed like a small
chapter; `combine` shifts its offsets back, so `chapter_text[start:end] == description.text` still holds.

A chapter of at most `UNIT_CHARS` is one unit, exactly as before: its votes and descriptions are unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bookreader_cli.books.model import Chapter, Paragraph

UNIT_CHARS = 100_000  # about 1,300 sentences of Russian prose: a few seconds of every processor
_SEARCH_BACK = 2_000  # a window's cut is looked for in its last this-many characters first


@dataclass(frozen=True)
class Unit:
    """One piece of a chapter: text[start:end], its paragraphs (offsets into the piece) and, for each of
    them, the index of the chapter paragraph it belongs to."""

    start: int
    end: int
    paragraphs: tuple[tuple[int, int, str], ...] | None  # None: the piece is the whole chapter, as given
    paragraph_of: tuple[int, ...] = ()

    def text(self, chapter_text: str) -> str:
        return chapter_text if self.paragraphs is None else chapter_text[self.start : self.end]

    def chapter(self, whole: Chapter) -> Chapter:
        """The piece as a Chapter of its own (the whole chapter itself when it is one unit)."""
        if self.paragraphs is None:
            return whole
        return Chapter(
            whole.title,
            whole.text[self.start : self.end],
            [Paragraph(s, e, k) for s, e, k in self.paragraphs],
            whole.source,
            whole.idx,
            whole.id,
        )


def _line_spans(text: str) -> list[tuple[int, int, str]]:
    """Paragraph spans of a text without paragraphs: its non-blank lines (segment.paragraphs_from_text's
    rule), the heading guess made only on lines short enough to be one."""
    from bookreader_cli.nlp.segment import guess_kind

    spans, pos = [], 0
    while pos <= len(text):
        nl = text.find("\n", pos)
        end = len(text) if nl < 0 else nl
        line = text[pos:end] if end - pos <= 1000 else None
        if line is None:  # a long line: strip without copying it
            a, b = pos, end
            while a < b and text[a].isspace():
                a += 1
            while b > a and text[b - 1].isspace():
                b -= 1
            if b > a:
                spans.append((a, b, "text"))
        elif line.strip():
            lead = len(line) - len(line.lstrip())
            stripped = line.strip()
            spans.append((pos + lead, pos + lead + len(stripped), guess_kind(stripped)))
        if nl < 0:
            break
        pos = nl + 1
    return spans


def _window_end(text: str, start: int, limit: int, stop: int) -> int:
    """Where a window of the paragraph text[start:stop] that begins at `start` should end: after the last
    sentence that ends within `limit` characters, else after the last space, else at the limit."""
    from razdel import sentenize

    hard = start + limit
    if hard >= stop:
        return stop
    back = max(start, hard - _SEARCH_BACK)
    for lo in (back, start):  # the tail first (cheap); the whole window when the tail holds no sentence end
        ends = [lo + s.stop for s in sentenize(text[lo : hard + 1])]
        cut = next((e for e in reversed(ends[:-1]) if start < e <= hard), None)  # the last piece may be cut
        if cut is not None:
            return cut
    space = text.rfind(" ", start + 1, hard)
    return space if space > start else hard


def _pieces(text: str, spans: Sequence[tuple[int, int, str]], limit: int) -> Iterable[tuple[int, int, str, int]]:
    """(start, end, kind, chapter paragraph index): paragraphs, long ones cut into windows ≤ limit."""
    for index, (p_start, p_end, kind) in enumerate(spans):
        pos = p_start
        while pos < p_end:
            end = _window_end(text, pos, limit, p_end)
            yield pos, end, kind, index
            pos = end
            while pos < p_end and text[pos].isspace():
                pos += 1


def _spans(paragraphs: Iterable) -> list[tuple[int, int, str]]:
    """(start, end, kind) of Paragraph objects or of (start, end[, kind]) tuples."""
    out = []
    for p in paragraphs:
        if isinstance(p, (tuple, list)):
            out.append((int(p[0]), int(p[1]), p[2] if len(p) > 2 else "text"))
        else:
            out.append((p.start, p.end, p.kind))
    return out


def cut(text: str, paragraphs: Iterable | None = None, limit: int | None = None) -> list[Unit]:
    """The chapter's units, in text order; one unit (the chapter as given) when it is at most `limit`
    characters (default UNIT_CHARS)."""
    limit = UNIT_CHARS if limit is None else limit
    if len(text) <= limit:
        return [Unit(0, len(text), None)]
    spans = _line_spans(text) if paragraphs is None else _spans(paragraphs)
    units: list[Unit] = []
    group: list[tuple[int, int, str, int]] = []

    def close() -> None:
        if group:
            first = group[0][0]
            units.append(
                Unit(
                    first,
                    group[-1][1],
                    tuple((s - first, e - first, k) for s, e, k, _ in group),
                    tuple(i for *_, i in group),
                )
            )
            group.clear()

    for piece in _pieces(text, spans, limit):
        if group and piece[1] - group[0][0] > limit:
            close()
        group.append(piece)
    close()
    return units


def pieces(chapter: Chapter, limit: int | None = None) -> tuple[list[Unit], Iterator[Chapter]]:
    """The chapter's units and, lazily, each of them as a Chapter (so only the pieces in flight are copied)."""
    units = cut(chapter.text, chapter.paragraphs, limit)
    return units, (unit.chapter(chapter) for unit in units)


def combine(results: Sequence[Any], units: Sequence[Unit]) -> Any:
    """One chapter's AnalysisResult from its units' results: offsets, sentence and paragraph numbers
    shifted back to the chapter; counts summed; rates and mean scores weighted as the whole would weigh
    them. A single whole-chapter unit's result is returned as it is."""
    if len(results) == 1 and units[0].paragraphs is None:
        return results[0]
    descriptions: list = []
    decisions: list[dict] | None = []
    summary: dict[str, dict] = {}
    used: list[str] = []
    unavailable: dict[str, str] = {}
    failures: dict[str, str] = {}
    timings: dict[str, Any] = {"units": len(units)}
    sentences = passed = unanimous = 0.0
    for result, unit in zip(results, units):
        shift, offset = unit.start, int(sentences)
        for d in result.descriptions:
            descriptions.append(
                dataclasses.replace(
                    d,
                    start=d.start + shift,
                    end=d.end + shift,
                    sentences=[i + offset for i in d.sentences],
                    paragraph=unit.paragraph_of[d.paragraph] if d.paragraph < len(unit.paragraph_of) else d.paragraph,
                )
            )
        if decisions is not None and result.decisions is not None:
            decisions.extend(
                dict(x, index=x.get("index", 0) + offset, start=x["start"] + shift, end=x["end"] + shift)
                for x in result.decisions
            )
        else:
            decisions = None
        for name, v in result.votes_summary.items():
            total = summary.setdefault(name, {"ran": 0, "yes": 0, "score_sum": 0.0})
            total["ran"] += v["ran"]
            total["yes"] += v["yes"]
            total["score_sum"] += v["mean_score"] * v["ran"]
        used.extend(p for p in result.processors_used if p not in used)
        unavailable.update(result.processors_unavailable)
        failures.update(result.processor_failures)
        for key, value in result.timings.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("pid", "worker_pid"):
                timings[key] = round(timings.get(key, 0.0) + value, 4)
        sentences += result.sentences_total
        passed += result.sentences_passed
        unanimous += result.consensus_rate * result.sentences_passed
    votes_summary = {
        name: {"ran": v["ran"], "yes": v["yes"], "mean_score": round(v["score_sum"] / v["ran"], 4) if v["ran"] else 0.0}
        for name, v in summary.items()
    }
    return dataclasses.replace(
        results[0],
        descriptions=descriptions,
        sentences_total=int(sentences),
        sentences_passed=int(passed),
        votes_summary=votes_summary,
        processors_used=used,
        processors_unavailable=unavailable,
        processor_failures=failures,
        consensus_rate=round(unanimous / passed, 4) if passed else 0.0,
        timings=timings,
        decisions=decisions,
    )
