"""The vote: per-sentence decisions from processors' calibrated probabilities, then ranked descriptions.

Each processor that ran on a sentence gives p = its calibrated probability that the sentence is part of a
visual description (nlp.scorer: a logistic model fitted on labelled books, its log-odds shifted to the
reference prior stored with the fitted file, chosen by leave-one-book-out CV so that 0.6 is a good cut).
The ensemble's **score** is the weighted mean over the processors that ran:

    score = Σ wᵢ·pᵢ / Σ wᵢ        (default weights spaCy 1.0, Natasha 1.2, Stanza 0.8; configurable)

and a sentence **passes** when score ≥ threshold (0.6 by default, configurable). A processor's own **yes**
is pᵢ ≥ threshold; union mode (`parallel`) passes a sentence any processor said yes to; `single` is one
processor's p against the threshold. Headings, epigraphs, poems, clear lines of dialogue (nlp.segment:
speech is judged per sentence) and fragments (fewer than `min_words` words) never pass; a fragment lying
between two passing sentences of its paragraph is absorbed into their description. Adjacent passing
sentences of one paragraph merge into one description of at most `max_chars`.

**Type**: Σ over the processors that ran of wᵢ·pᵢ·P(type | description)ᵢ, plus `type_context` (per
language, TYPE_CONTEXT) × that sum of the same-paragraph neighbours; the largest wins (a description
takes the type of most of its characters).

**Priority** (0–100, higher first): 100 × the length-weighted mean score of the description's sentences
(optionally blended with richness, `richness_weight`; 0 by default, chosen by LOBO P@20), so the top of a
book's ranking is the text the models are surest is drawable. Ties keep text order.

**ensemble_consensus_rate**: among all passing sentences, the share on which every processor that ran on
that sentence voted yes (0.0 when nothing passed).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from bookreader_cli.config import NlpSettings
from bookreader_cli.nlp.base import DESCRIPTION_TYPES, Sentence, Vote
from bookreader_cli.nlp.segment import word_count

DEFAULT_WEIGHTS = {"spacy": 1.0, "natasha": 1.2, "stanza": 0.8}
# Weight of the same-paragraph neighbours' type evidence per language, chosen by leave-one-book-out CV with
# the learned scorers (training/fit_scorer.py). Russian: type accuracy 0.823 at 0.1-0.2 against 0.815 at 0
# (0.808 at 0.5); English (5 books): 0 (0.15 lowered it, 0.607 → 0.589).
TYPE_CONTEXT = {"ru": 0.15, "en": 0.0}
EPSILON = 1e-9  # float slack so that 1.8/3.0 counts as reaching 0.6


@dataclass
class EnsembleConfig:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    threshold: float = 0.6
    max_chars: int = 1000
    min_words: int = 3
    union: bool = False  # parallel mode: any yes passes
    split_on_type: bool = True  # a change of type (character → atmosphere) starts a new description
    type_context: float = 0.0  # weight of the neighbouring sentences' type evidence (same paragraph)
    type_all: bool = False  # also type sentences nobody said yes to (for inspection)
    richness_weight: float = 0.0  # share of richness (lexicon hits) in the priority, the rest is the score


def config_from(nlp: NlpSettings | None = None, lang: str | None = None, **overrides) -> EnsembleConfig:
    """The vote's configuration from the NLP settings (None: the defaults) and the book's language (the
    type context chosen for it), then `overrides`."""
    cfg = EnsembleConfig()
    if lang is not None:
        cfg.type_context = TYPE_CONTEXT.get(lang, 0.0)
    if nlp is not None:
        cfg.weights = {**cfg.weights, **(nlp.weights or {})}
        cfg.threshold = float(nlp.threshold)
        cfg.max_chars = int(nlp.max_description_chars)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


@dataclass
class Decision:
    """The ensemble's verdict on one sentence."""

    index: int
    passed: bool
    share: float  # weighted share of yes among processors that ran
    type: str | None
    confidence: float
    ran: list[str]
    yes: list[str]
    unanimous: bool
    richness_hits: float = 0.0
    excluded: str = ""  # why it can never pass: heading, dialogue, fragment…


@dataclass
class Description:
    start: int
    end: int
    text: str
    type: str
    priority: float
    confidence: float
    processors: list[str]
    consensus: float
    unanimous: bool
    sentences: list[int]
    paragraph: int

    def to_dict(self) -> dict:
        return asdict(self)


def decide(sentences: list[Sentence], votes: dict[str, dict[int, Vote]], cfg: EnsembleConfig) -> list[Decision]:
    """One Decision per sentence; `votes[processor][sentence_index]` holds what each processor said."""
    out = []
    for s in sentences:
        ran = [p for p in votes if s.index in votes[p]]
        yes = [p for p in ran if votes[p][s.index].score + EPSILON >= cfg.threshold]
        total = sum(cfg.weights.get(p, 1.0) for p in ran)
        share = sum(cfg.weights.get(p, 1.0) for p in yes) / total if total else 0.0
        confidence = (sum(cfg.weights.get(p, 1.0) * votes[p][s.index].score for p in ran) / total) if total else 0.0
        excluded = ""
        if s.kind != "text":
            excluded = s.kind
        elif word_count(s.text) < cfg.min_words:
            excluded = "fragment"
        passed = bool(ran) and (bool(yes) if cfg.union else confidence + EPSILON >= cfg.threshold)
        hits = [votes[p][s.index].evidence.get("features", {}).get("visual_hits") for p in ran]
        hits = [h for h in hits if isinstance(h, (int, float))]
        out.append(
            Decision(
                index=s.index,
                passed=passed and not excluded,
                share=round(share, 4),
                type=None,
                confidence=round(confidence, 4),
                ran=ran,
                yes=yes,
                unanimous=bool(ran) and len(yes) == len(ran),
                richness_hits=sum(hits) / len(hits) if hits else 0.0,
                excluded=excluded,
            )
        )
    _assign_types(sentences, votes, out, cfg)
    return out


def _type_evidence(votes, index: int, voters: list[str], cfg: EnsembleConfig) -> dict[str, float]:
    """Σ over voters of weight × p × their type probabilities (a processor without type_scores: its type)."""
    tally: dict[str, float] = {}
    for p in voters:
        vote = votes[p][index]
        scores = vote.evidence.get("type_scores") if isinstance(vote.evidence, dict) else None
        if not scores and vote.type in DESCRIPTION_TYPES:
            scores = {vote.type: 1.0}
        total = sum(v for k, v in (scores or {}).items() if k in DESCRIPTION_TYPES)
        if not total or not scores:
            continue
        strength = cfg.weights.get(p, 1.0) * max(vote.score, 0.05)
        for kind, value in scores.items():
            if kind in DESCRIPTION_TYPES and value > 0:
                tally[kind] = tally.get(kind, 0.0) + strength * value / total
    return tally


def _assign_types(sentences: list[Sentence], votes, decisions: list[Decision], cfg: EnsembleConfig) -> None:
    """Type of each sentence: the processors' type evidence weighted by their weight and score, plus
    `cfg.type_context` × the evidence of the neighbouring sentences of the same paragraph (a sentence is
    read in its passage: the one after "she saw a huge room" still shows that room)."""
    own = []
    for s, d in zip(sentences, decisions):
        voters = d.ran
        own.append(_type_evidence(votes, s.index, voters, cfg) if d.ran else {})
    for i, (s, d) in enumerate(zip(sentences, decisions)):
        if not d.passed and not d.yes and not cfg.type_all:
            d.type = None
            continue
        tally = dict(own[i])
        if tally and cfg.type_context:
            for j in (i - 1, i + 1):
                if 0 <= j < len(sentences) and sentences[j].paragraph == s.paragraph:
                    for kind, value in own[j].items():
                        tally[kind] = tally.get(kind, 0.0) + cfg.type_context * value
        d.type = (
            max(DESCRIPTION_TYPES, key=lambda k: (tally.get(k, 0.0), -DESCRIPTION_TYPES.index(k))) if tally else None
        )


def _same_type(decisions: list[Decision], group: list[int], i: int) -> bool:
    """A typed sentence joins a group only if the group's last typed sentence has its type."""
    kind = decisions[i].type
    previous = next((decisions[j].type for j in reversed(group) if decisions[j].type), None)
    return kind is None or previous is None or kind == previous


def merge(text: str, sentences: list[Sentence], decisions: list[Decision], cfg: EnsembleConfig) -> list[Description]:
    """Group adjacent passing sentences of one paragraph into descriptions (≤ cfg.max_chars each)."""
    passing = [d.passed for d in decisions]
    # absorb a fragment sandwiched between two passing sentences of the same paragraph
    for i in range(1, len(sentences) - 1):
        if (
            decisions[i].excluded == "fragment"
            and passing[i - 1]
            and passing[i + 1]
            and sentences[i - 1].paragraph == sentences[i].paragraph == sentences[i + 1].paragraph
        ):
            passing[i] = True
    groups: list[list[int]] = []
    for i, s in enumerate(sentences):
        if not passing[i]:
            continue
        if (
            groups
            and groups[-1][-1] == i - 1
            and sentences[i - 1].paragraph == s.paragraph
            and s.end - sentences[groups[-1][0]].start <= cfg.max_chars
            and (not cfg.split_on_type or _same_type(decisions, groups[-1], i))
        ):
            groups[-1].append(i)
        else:
            groups.append([i])
    return [_describe(text, [sentences[i] for i in g], [decisions[i] for i in g], cfg) for g in groups]


_CLAUSE_END = re.compile(r"[,;:—–)]\s")


def _describe(text: str, sents: list[Sentence], decs: list[Decision], cfg: EnsembleConfig) -> Description:
    start, end = sents[0].start, sents[-1].end
    if end - start > cfg.max_chars:  # one over-long sentence: cut at the last clause boundary that fits
        window = text[start : start + cfg.max_chars]
        cuts = [m.start() + 1 for m in _CLAUSE_END.finditer(window)]
        end = start + (cuts[-1] if cuts else cfg.max_chars)
        while end > start and text[end - 1].isspace():
            end -= 1
    lengths = [max(s.end - s.start, 1) for s in sents]
    total = sum(lengths)
    tally: dict[str, float] = {}
    for d, n in zip(decs, lengths):
        if d.type:
            tally[d.type] = tally.get(d.type, 0.0) + n
    kind = max(DESCRIPTION_TYPES, key=lambda k: (tally.get(k, 0.0), -DESCRIPTION_TYPES.index(k)))
    confidence = sum(d.confidence * n for d, n in zip(decs, lengths)) / total
    voted = [d for d in decs if d.yes]
    consensus = sum(d.share for d in voted) / len(voted) if voted else 0.0
    richness = min(1.0, sum(d.richness_hits for d in decs) / 8.0)
    priority = 100.0 * ((1.0 - cfg.richness_weight) * confidence + cfg.richness_weight * richness)
    processors = sorted({p for d in decs for p in (d.yes or d.ran)})
    return Description(
        start=start,
        end=end,
        text=text[start:end],
        type=kind,
        priority=round(priority, 2),
        confidence=round(confidence, 4),
        processors=processors,
        consensus=round(consensus, 4),
        unanimous=all(d.unanimous for d in voted) if voted else False,
        sentences=[s.index for s in sents],
        paragraph=sents[0].paragraph,
    )


def consensus_rate(decisions: list[Decision]) -> float:
    """Share of passing sentences on which every processor that ran voted yes (0.0 if none passed)."""
    passed = [d for d in decisions if d.passed]
    return round(sum(1 for d in passed if d.unanimous) / len(passed), 4) if passed else 0.0
