"""The one calling convention every NLP processor follows: sentences in, one vote per sentence out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

DESCRIPTION_TYPES = ("location", "character", "atmosphere", "object")


@dataclass
class Sentence:
    """A sentence of the shared segmentation: offsets into the text it was cut from."""

    index: int
    start: int
    end: int
    text: str
    paragraph: int = 0  # index of the paragraph it belongs to (merging never crosses paragraphs)
    kind: str = "text"  # heading, epigraph, poem… (never descriptions), "dialogue" (a line of speech), "text"
    speech: float = 0.0  # share of its letters inside direct speech (a dialogue line's remark, a «…» quote)
    speech_para: float = 0.0  # letters of direct speech in its paragraph (a long one is a story told: narration)


@dataclass
class Vote:
    """One processor's opinion of one sentence."""

    index: int  # Sentence.index
    score: float  # 0..1: how likely the sentence is part of a visual description
    yes: bool  # score reached the processor's own cut-off
    type: str | None = None  # one of DESCRIPTION_TYPES when yes
    evidence: dict = field(default_factory=dict)  # entities, matched patterns, features


class Processor(Protocol):
    name: str  # "spacy" | "natasha" | "stanza"

    def availability(self) -> tuple[bool, str]:
        """Cheap check (no heavy imports, no model loading): (available, reason or model source)."""

    def load(self) -> float:
        """Load models once per process; returns the seconds it took."""

    def score(self, text: str, sentences: list[Sentence], lang: str = "ru") -> list[Vote]:
        """One Vote per sentence, in order."""
