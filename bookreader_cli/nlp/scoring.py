"""Turning a processor's own evidence (feature counts) into a score and a type.

Each processor extracts different evidence with its own tools (spaCy: surface patterns over lemmas;
Natasha: morphology, dependency syntax and NER) and weighs it with its own table; this module only holds
the arithmetic they share, so the formula is written once.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from bookreader_cli.nlp.base import Vote
from bookreader_cli.nlp.lexicon import CATEGORY_TYPE, Lexicon, best_type, type_totals

# Dialogue-ish punctuation inside a sentence: quoted speech, a colon before speech.
SPEECH_MARKS = ("«", "»", "“", "”", '"')


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def linear_score(features: dict[str, float], weights: dict[str, float], bias: float) -> float:
    """score = logistic(bias + Σ weight·feature): a probability-like number in 0..1."""
    return logistic(bias + sum(weights.get(k, 0.0) * v for k, v in features.items()))


def category_hits(lemmas: list[str], lexicon: Lexicon) -> Counter:
    """How many tokens of each lexicon category the sentence holds."""
    hits: Counter = Counter()
    for lemma in lemmas:
        for category in lexicon.categories(lemma):
            hits[category] += 1
    return hits


def base_features(hits: Counter, n_words: int, text: str) -> dict[str, float]:
    """Features every processor computes the same way from its own lemmas."""
    visual = sum(n for c, n in hits.items() if CATEGORY_TYPE.get(c) or c == "colour")
    kinds = {c for c, n in hits.items() if n and c not in ("speech",)}
    return {
        "visual_hits": float(min(visual, 8)),
        "visual_density": visual / max(n_words, 1),
        "categories": float(len(kinds)),
        "speech": float(hits.get("speech", 0)),
        "quoted": float(any(m in text for m in SPEECH_MARKS)),
        "long": float(n_words >= 30),
        "short": float(n_words < 6),
    }


# ---- type evidence --------------------------------------------------------------------------------
# Tried on dev and left out (dev has 48 typed hits, so ±2 is noise; leave-one-book-out showed no gain):
# a bonus for the grammatical subject's category, damping light/sound words beside a concrete subject, a
# bonus for the most-modified noun, TYPE_WEIGHT fitted on dev (accuracy search or regularised
# log-likelihood), light sources (lamp, candle) as things, all prepositional phrases at half weight,
# sounds made by a being as character evidence (the guideline's "far away dogs barked" is atmosphere).
# What stays is the guideline's own rule: clothes are a character's only when worn, and a posture needs
# somebody to hold it. Processors with a parser decide both per word (nlp.syntax); spaCy without one by
# whether anybody is in the sentence at all (`Subjects`).


@dataclass
class Subjects:
    """Who or what the sentence is about, as far as a processor's grammar tells."""

    person_present: bool = True  # a person or animal is mentioned (a possible wearer of the clothes named)


def picture_type(type_hits: Mapping[str, float], boosts: dict[str, float] | None = None,
                 subjects: Subjects | None = None) -> str | None:
    """The description type of a sentence (see picture_scores)."""
    return best_type(picture_scores(type_hits, boosts, subjects))


def picture_scores(type_hits: Mapping[str, float], boosts: dict[str, float] | None = None,
                   subjects: Subjects | None = None) -> dict[str, float]:
    """Weighted evidence per description type: lexicon hits × TYPE_WEIGHT plus the processor's pattern
    boosts (spread over a representative category of each type); with nobody in the sentence (no person
    or animal) clothes count as things (`object`) and posture verbs not at all. The ensemble sums these
    over processors, weighted by weight × score."""
    counts: dict[str, float] = defaultdict(float, {c: float(n) for c, n in type_hits.items()})
    if subjects is not None and not subjects.person_present:
        counts["objects"] += counts.pop("clothing", 0.0)
        counts.pop("posture", None)  # "стоял самовар": where a thing is, nobody's posture
    for kind, amount in (boosts or {}).items():
        if amount > 0:
            counts[next(c for c, t in CATEGORY_TYPE.items() if t == kind)] += amount
    return {k: round(v, 3) for k, v in type_totals(counts).items() if v > 0}


def has_look(hits: Counter) -> bool:
    """The sentence names something of a being's look: body, clothing or appearance words."""
    return hits["body"] + hits["clothing"] + hits["appearance"] > 0


def verdict(index: int, score: float, cutoff: float, type_scores: dict[str, float], evidence: dict,
            features: dict[str, float]) -> Vote:
    """The rule every processor votes by: yes when its score reaches its own cut-off and the sentence has a
    type (the best of `type_scores`); the evidence carries the type scores and the rounded features."""
    kind = best_type(type_scores)
    evidence = dict(evidence, type_scores=type_scores, features={k: round(v, 3) for k, v in features.items()})
    return Vote(index, round(score, 4), score >= cutoff and kind is not None, kind, evidence)
