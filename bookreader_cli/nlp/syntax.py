"""What a dependency tree tells about what is pictured, for the processors that parse (Natasha, Stanza).

The guideline's rule "clothes being worn belong to character; a piece of clothing not being worn is an
object" needs to know whether a garment is on somebody. The tree says so when the garment is
- introduced by "в"/"без" ("старик в сюртуке", "без шапки"),
- tied to a being through nouns: a being among its dependents ("его сюртук", "сюртук старика") or up its
  chain of nominal heads ("пола сюртука Ивана"),
- the object of a verb of putting on or taking off ("надел шинель", "снял шапку"),
- tied to a predicate that has "на"/"у" + a being ("на нём был фрак", "вицмундир у него был рыжий").
A garment in a list of things, on a peg or in a trunk is none of these, so it counts as a thing.

Likewise a verb of posture is a character's only when somebody holds the posture: "тянулась река",
"стоял самовар" place a thing, and the thing's own word types the sentence.
And a word of look (size, age, shape) types what it describes: "громадная комната" is a room's look,
"громадный старик" a person's.
Checked on random sentences of Капитанская дочка and Карамазовы (not the gold set): the garment rule
was right on about four in five; the misses are mostly parser errors.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from bookreader_cli.nlp.lexicon import CATEGORY_TYPE, normalize, setting_weight

WORN_PREPOSITIONS = {"ru": {"в", "во", "без"}, "en": {"in", "without"}}
HAVING_PREPOSITIONS = {"ru": {"на", "у"}, "en": {"on"}}
WEARING_VERBS = {
    "ru": {
        "надеть",
        "надевать",
        "одеть",
        "одевать",
        "одетый",
        "надетый",
        "носить",
        "обуть",
        "обутый",
        "нарядить",
        "нарядиться",
        "застегнуть",
        "застегнутый",
        "запахнуть",
        "подпоясать",
        "подпоясанный",
        "закутаться",
        "кутаться",
        "облечь",
        "облаченный",
        "снять",
        "снимать",
        "скинуть",
        "скидывать",
        "сбросить",
        "накинуть",
        "накидывать",
        "накинутый",
        "надвинуть",
        "надвинутый",
        "нахлобучить",
    },
    "en": {"wear", "put", "dress", "dressed", "don", "button", "buttoned", "wrap", "wrapped", "clad"},
}
NOMINAL = {"NOUN", "PROPN", "PRON", "DET"}
# Possessives of persons ("его сюртук", "в своём платье"); taggers mark them inconsistently (DET or PRON,
# with or without Poss=Yes), so the lemma decides.
POSSESSIVES = {
    "ru": {"его", "ее", "их", "мой", "твой", "свой", "наш", "ваш"},
    "en": {"his", "her", "their", "my", "your", "our"},
}


@dataclass
class Tree:
    """One parsed sentence: per token its lemma, UPOS, head (-1 = root), relation (no subtype), lexicon
    categories, and whether it names a being (person or animal)."""

    lemmas: list[str]
    upos: list[str]
    heads: list[int]
    rels: list[str]
    cats: list[frozenset]
    beings: set[int]
    lang: str = "ru"
    children: dict[int, list[int]] = field(init=False)

    def __post_init__(self):
        self.rels = [r.split(":")[0] for r in self.rels]  # "nsubj:pass" → "nsubj"
        self.children = {}
        for i, h in enumerate(self.heads):
            self.children.setdefault(h, []).append(i)

    def kids(self, i: int) -> list[int]:
        return self.children.get(i, [])

    def subtree(self, i: int, depth: int) -> list[int]:
        """Token i and its dependents down to `depth` levels."""
        out, level = [i], [i]
        for _ in range(depth):
            level = [j for k in level for j in self.kids(k)]
            out += level
        return out

    def has_case(self, i: int, words: set[str]) -> bool:
        return any(self.rels[j] == "case" and self.lemmas[j] in words for j in self.kids(i))


def worn(tree: Tree, i: int) -> bool:
    """Is the garment at token i on somebody (see the module docstring)?"""
    lang = tree.lang if tree.lang in WORN_PREPOSITIONS else "en"
    if tree.has_case(i, WORN_PREPOSITIONS[lang]) or _after_preposition(tree, i, WORN_PREPOSITIONS[lang]):
        return True
    if any(j in tree.beings for j in tree.kids(i) if tree.upos[j] in NOMINAL):
        return True
    node, steps = i, 0
    while steps < 2 and tree.heads[node] >= 0 and tree.rels[node] in ("nmod", "conj", "appos", "obl"):
        node = tree.heads[node]
        steps += 1
        if node in tree.beings:
            return True
        if tree.upos[node] not in NOMINAL:
            break
    head = tree.heads[node]
    if head >= 0 and tree.lemmas[head] in WEARING_VERBS[lang]:
        return True
    # "на нём был армяк": "на"/"у" + a being near the garment in its clause (parsers hang it on the verb,
    # on the garment's adjective, or make it the root): look in the subtree two levels above the garment
    top = i
    for _ in range(2):
        if tree.heads[top] >= 0:
            top = tree.heads[top]
    return any(j in tree.beings and tree.has_case(j, HAVING_PREPOSITIONS[lang]) for j in tree.subtree(top, 3))


_NOUN_PHRASE_INSIDE = {"ADJ", "DET", "ADV", "PUNCT", "CCONJ", "NUM", "PART"}


def _after_preposition(tree: Tree, i: int, words: set[str]) -> bool:
    """The noun phrase of token i opens with one of `words` ("в тёмное, весьма плохое пальто"): a check on
    the surface, for when the parser attached the preposition elsewhere."""
    j = i - 1
    while j >= 0 and i - j <= 6 and tree.upos[j] in _NOUN_PHRASE_INSIDE:
        j -= 1
    return j >= 0 and tree.upos[j] == "ADP" and tree.lemmas[j] in words


def _thing_placed(tree: Tree, i: int) -> bool:
    """A verb of posture whose subject is a thing ("тянулась река", "стоял самовар"): where a thing is,
    not how somebody looks, so it is no evidence of a character (the thing's own word types it)."""
    subjects = [j for j in tree.kids(i) if tree.rels[j] == "nsubj"]
    return bool(subjects) and not any(k in tree.beings for j in subjects for k in tree.subtree(j, 2))


_LOOK_CATEGORIES = {"body", "clothing", "animals", "appearance"}


def _described(tree: Tree, i: int) -> int | None:
    """The noun a modifier describes: its head for "громадную комнату", the subject for "избы низки"."""
    if tree.rels[i] in ("amod", "acl") and tree.heads[i] >= 0:
        return tree.heads[i]
    subjects = [j for j in tree.kids(i) if tree.rels[j] == "nsubj"]
    return subjects[0] if subjects else None


def _look_of(tree: Tree, i: int) -> str | None:
    """A word of look (size, age, shape) types what it describes: "громадный старик" is a person's look
    (`appearance`), "громадная комната" a room's (the room's category), "громадное дело" nothing. Without
    a described noun it stays a person's look."""
    noun = _described(tree, i)
    return "appearance" if noun is None else look_category(noun in tree.beings, tree.cats[noun])


def look_category(being: bool, categories) -> str | None:
    """The category a word of look counts for, given the noun it describes: a being's or a body part's
    look is `appearance`; a thing's look is the thing's own category; an untyped noun's, none."""
    if being or categories & _LOOK_CATEGORIES:
        return "appearance"
    typed = sorted(c for c in categories if CATEGORY_TYPE.get(c))
    return typed[0] if typed else None


def typing_hits(tree: Tree) -> dict[str, float]:
    """Lexicon hits as type evidence: setting nouns after a preposition weigh half (lexicon.setting_weight),
    clothes that nobody wears count as things, a posture held by a thing counts not at all."""
    hits: dict[str, float] = defaultdict(float)
    for i, categories in enumerate(tree.cats):
        after_preposition = i > 0 and tree.upos[i - 1] == "ADP"
        for category in categories:
            weight = setting_weight(category, after_preposition)
            if category == "clothing" and not worn(tree, i):
                category = "objects"
            if category == "posture" and _thing_placed(tree, i):
                continue
            if category == "appearance":
                category = _look_of(tree, i)
                if category is None:
                    continue
            hits[category] += weight
    return hits


def is_being(upos: str, feats: dict, categories, named_person: bool = False, lemma: str = "", lang: str = "ru") -> bool:
    """A person or an animal: a PER entity, an animate noun, a personal or possessive pronoun, an animal
    of the lexicon."""
    if named_person or "animals" in categories:
        return True
    if upos in ("NOUN", "PROPN"):
        return feats.get("Animacy") == "Anim"
    if upos in ("DET", "PRON") and normalize(lemma) in POSSESSIVES.get(lang, POSSESSIVES["en"]):
        return True
    return upos == "PRON" and "Person" in feats
