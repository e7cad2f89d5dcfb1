"""Turning a processor's own evidence (feature counts) into a score and a type.

Each processor extracts different evidence with its own tools (spaCy: surface patterns over lemmas;
Natasha: morphology, dependency syntax and NER) and weighs it with its own table; this module only holds
the arithmetic they share, so the formula is written once.
"""

from __future__ import annotations

import math
from collections import Counter

from bookreader_cli.nlp.lexicon import CATEGORY_TYPE, Lexicon, type_from_counts

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


def visual_type(hits: Counter, boosts: dict[str, float] | None = None) -> str | None:
    """Type from category hits, plus extra weight per type from the processor's own patterns."""
    counts = {c: float(n) for c, n in hits.items() if CATEGORY_TYPE.get(c)}
    for kind, extra in (boosts or {}).items():
        if extra <= 0:
            continue
        # spread a type boost over a representative category of that type
        category = next(c for c, t in CATEGORY_TYPE.items() if t == kind)
        counts[category] = counts.get(category, 0.0) + extra
    return type_from_counts(counts)


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
