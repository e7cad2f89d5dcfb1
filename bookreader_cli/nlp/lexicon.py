"""Visual word lists (lemmas) per language, loaded from plain text files in nlp/lexicons/<lang>/.

Each file is one category; lines hold whitespace-separated lemmas, "#" starts a comment. The category
decides which description type a hit points to (`CATEGORY_TYPE`); "speech" is evidence against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

LEXICON_DIR = Path(__file__).with_name("lexicons")

CATEGORY_TYPE = {
    "body": "character",
    "appearance": "character",
    "clothing": "character",
    "animals": "character",
    "posture": "character",
    "light": "atmosphere",
    "weather": "atmosphere",
    "sound": "atmosphere",
    "landscape": "location",
    "architecture": "location",
    "interior": "location",
    "objects": "object",
    "materials": "object",
    "colour": None,  # a modifier: takes the type of what it colours
    "speech": None,  # evidence against
}
VISUAL_CATEGORIES = tuple(c for c in CATEGORY_TYPE if c != "speech")
# Categories whose words are mostly modifiers (adjectives, adverbs, participles).
MODIFIER_CATEGORIES = ("appearance", "colour", "materials")


def normalize(word: str) -> str:
    return word.lower().replace("ё", "е")


def without_yo(text: str) -> str:
    """Russian text as the taggers learnt it: Natasha's news models (and Stanza models trained from their
    output) saw "е" for "ё" and mistag words with it ("на нём" → a noun "нем"); the swap keeps offsets."""
    return text.replace("ё", "е").replace("Ё", "Е")


@dataclass
class Lexicon:
    lang: str
    words: dict[str, frozenset[str]] = field(default_factory=dict)  # lemma -> categories

    def categories(self, lemma: str) -> frozenset[str]:
        return self.words.get(normalize(lemma), frozenset())

    def members(self, category: str) -> list[str]:
        return sorted(w for w, cats in self.words.items() if category in cats)

    def is_visual(self, lemma: str) -> bool:
        return any(c != "speech" for c in self.categories(lemma))


def available_languages() -> list[str]:
    return sorted(p.name for p in LEXICON_DIR.iterdir() if p.is_dir())


@cache
def load(lang: str) -> Lexicon:
    """The lexicon for `lang`; languages without lists fall back to English ones."""
    folder = LEXICON_DIR / lang
    if not folder.is_dir():
        folder = LEXICON_DIR / "en"
    words: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.txt")):
        category = path.stem
        for line in path.read_text(encoding="utf-8").splitlines():
            for word in line.split("#", 1)[0].split():
                words.setdefault(normalize(word), set()).add(category)
    if folder.name == "ru":
        _add_participles(words)
    return Lexicon(folder.name, {w: frozenset(c) for w, c in words.items()})


_PARTICIPLES = ({"PRTF", "pres", "actv"}, {"PRTF", "past", "actv"}, {"PRTF", "pres", "pssv"}, {"PRTF", "past", "pssv"})


def _add_participles(words: dict[str, set[str]]) -> None:
    """Participles of the listed verbs under the verb's categories ("лающий" ← "лаять"): pymorphy3 reads
    many of them as plain adjectives ("лающие псы" → "лающий"), so a lemmatiser built on it would miss the
    verb, while Natasha's and Stanza's own lemmatisers give the verb. Skipped without pymorphy3."""
    try:
        import pymorphy3
    except ImportError:
        return
    morph = pymorphy3.MorphAnalyzer()  # once per process: load() is cached
    for word, categories in list(words.items()):
        parses = [p for p in morph.parse(word) if p.tag.POS == "INFN" and p.normal_form == word]
        for parse in parses[:1]:
            for grammemes in _PARTICIPLES:
                form = parse.inflect(grammemes | {"masc", "sing", "nomn"})
                if form is not None:
                    words.setdefault(normalize(form.word), set()).update(categories)


# How strongly one hit of a category points to its type (a face says "character" more than a candle
# says "atmosphere"; a room is often only the setting of a character's action).
TYPE_WEIGHT = {
    "body": 1.2,
    "clothing": 1.5,
    "appearance": 1.2,
    "animals": 1.0,
    "posture": 0.8,
    "light": 1.0,
    "weather": 1.0,
    "sound": 1.2,
    "landscape": 1.0,
    "architecture": 0.8,
    "interior": 0.8,
    "objects": 0.8,
    "materials": 0.6,
}
SETTING_CATEGORIES = ("landscape", "architecture", "interior")


def setting_weight(category: str, after_preposition: bool) -> float:
    """A setting noun right after a preposition ("в комнате") weighs half as type evidence: it is where the
    picture is, seldom what it shows."""
    return 0.5 if (after_preposition and category in SETTING_CATEGORIES) else 1.0


def type_totals(counts: dict[str, float]) -> dict[str, float]:
    """Weighted hits per description type."""
    totals: dict[str, float] = {}
    for category, n in counts.items():
        kind = CATEGORY_TYPE.get(category)
        if kind and n > 0:
            totals[kind] = totals.get(kind, 0.0) + n * TYPE_WEIGHT.get(category, 1.0)
    return totals


TYPE_ORDER = ("character", "location", "atmosphere", "object")  # tie-break order


def best_type(totals: dict[str, float]) -> str | None:
    if not any(v > 0 for v in totals.values()):
        return None
    return max(TYPE_ORDER, key=lambda k: (totals.get(k, 0.0), -TYPE_ORDER.index(k)))
