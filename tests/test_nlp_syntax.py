"""Who is pictured, from a dependency tree: worn clothes, postures of beings, and text with "ё"."""

from __future__ import annotations

import pytest

from bookreader_cli.nlp.lexicon import load as load_lexicon, without_yo
from bookreader_cli.nlp.processors import loaded_processor
from bookreader_cli.nlp.segment import segment
from bookreader_cli.nlp.syntax import Tree, is_being, typing_hits, worn


def tree(rows, beings=()):
    """rows: (lemma, upos, head, rel) per token; categories come from the Russian lexicon."""
    lexicon = load_lexicon("ru")
    lemmas = [r[0] for r in rows]
    return Tree(
        lemmas,
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [lexicon.categories(lemma) for lemma in lemmas],
        set(beings),
    )


def test_garment_after_v_or_bez_is_worn():
    t = tree(
        [
            ("старик", "NOUN", -1, "root"),
            ("в", "ADP", 3, "case"),
            ("потертый", "ADJ", 3, "amod"),
            ("сюртук", "NOUN", 0, "nmod"),
        ],
        beings={0},
    )
    assert worn(t, 3)
    # the parser hung "в" elsewhere: the noun phrase still opens with it
    t = tree(
        [
            ("сидеть", "VERB", -1, "root"),
            ("в", "ADP", 0, "obl"),
            ("темный", "ADJ", 4, "amod"),
            (",", "PUNCT", 4, "punct"),
            ("пальто", "NOUN", 0, "obl"),
        ]
    )
    assert worn(t, 4)


def test_garment_of_a_being_or_put_on_is_worn():
    his = tree([("его", "DET", 1, "det"), ("сюртук", "NOUN", 2, "nsubj"), ("висеть", "VERB", -1, "root")], beings={0})
    assert worn(his, 1)
    took_off = tree(
        [("он", "PRON", 1, "nsubj"), ("снять", "VERB", -1, "root"), ("шапка", "NOUN", 1, "obj")], beings={0}
    )
    assert worn(took_off, 2)
    on_him = tree(
        [
            ("на", "ADP", 1, "case"),
            ("он", "PRON", 2, "obl"),
            ("быть", "AUX", -1, "root"),
            ("армяк", "NOUN", 2, "nsubj:pass"),
        ],
        beings={1},
    )
    assert worn(on_him, 3)
    assert on_him.rels[3] == "nsubj"  # subtypes are dropped


def test_garments_in_a_list_of_things_are_not_worn_even_with_a_person_about():
    # "он оставил три пары носков и старый картуз": a person is in the sentence, nobody wears the things
    t = tree(
        [
            ("он", "PRON", 1, "nsubj"),
            ("оставить", "VERB", -1, "root"),
            ("три", "NUM", 3, "nummod"),
            ("пара", "NOUN", 1, "obj"),
            ("носок", "NOUN", 3, "nmod"),
            ("и", "CCONJ", 7, "cc"),
            ("старый", "ADJ", 7, "amod"),
            ("картуз", "NOUN", 3, "conj"),
        ],
        beings={0},
    )
    assert not worn(t, 4) and not worn(t, 7)
    hits = typing_hits(t)
    assert hits["clothing"] == 0 and hits["objects"] >= 2


def test_posture_counts_only_when_somebody_holds_it():
    river = tree([("тянуться", "VERB", -1, "root"), ("серый", "ADJ", 2, "amod"), ("река", "NOUN", 0, "nsubj")])
    assert typing_hits(river)["posture"] == 0
    old_man = tree([("сидеть", "VERB", -1, "root"), ("старик", "NOUN", 0, "nsubj")], beings={1})
    assert typing_hits(old_man)["posture"] == 1
    # the subject's noun phrase holds a being ("бурая, почерневшая от поту лошадь" parsed with the
    # adjective as head): still somebody's posture
    horse = tree(
        [
            ("показаться", "VERB", -1, "root"),
            ("бурый", "NOUN", 0, "nsubj"),
            ("почернеть", "VERB", 1, "acl"),
            ("лошадь", "NOUN", 2, "obl"),
        ],
        beings={3},
    )
    assert typing_hits(horse)["posture"] == 1


def test_beings():
    assert is_being("NOUN", {"Animacy": "Anim"}, frozenset())
    assert not is_being("NOUN", {"Animacy": "Inan"}, frozenset())
    assert is_being("NOUN", {}, frozenset({"animals"}))
    assert is_being("PRON", {"Person": "3"}, frozenset())
    assert is_being("DET", {}, frozenset(), lemma="свой") and is_being("PRON", {}, frozenset(), lemma="её")
    assert not is_being("DET", {}, frozenset(), lemma="весь")


def test_without_yo_keeps_offsets():
    text = "На нём был потёртый сюртук. Ёлка."
    plain = without_yo(text)
    assert len(plain) == len(text) and "ё" not in plain.lower() and plain.startswith("На нем")


TEXT = (
    "После него осталось немного вещей: три пары носков, старый картуз и ветхий тулуп. "
    "На нём был потёртый синий сюртук с медными пуговицами."
)


@pytest.mark.parametrize("name", ["natasha", "stanza"])
def test_parsers_tell_worn_from_left_clothes(name):
    processor, _ = loaded_processor(name)
    votes = processor.score(TEXT, segment(TEXT), "ru")
    rules = votes[0].evidence["rule_types"]  # the parser's type evidence, a feature of the learned type model
    assert rules.get("object", 0) > rules.get("character", 0)
    assert votes[1].type == "character"


@pytest.mark.parametrize("name", ["natasha", "stanza"])
def test_votes_do_not_depend_on_yo(name):
    """The taggers learnt from text without "ё": with it, the same votes (a modern edition of a book and
    an old one must get the same descriptions)."""
    processor, _ = loaded_processor(name)
    text = (
        "Она была в зелёном платье; её лицо было бледно. На нём был тёмный потёртый сюртук. "
        "Ещё светлело небо над чёрным лесом, и где-то далеко шёл поезд."
    )
    with_yo = processor.score(text, segment(text), "ru")
    plain = without_yo(text)
    without = processor.score(plain, segment(plain), "ru")
    assert [(v.yes, v.type, v.score) for v in with_yo] == [(v.yes, v.type, v.score) for v in without]


def test_size_and_colour_words_type_what_they_describe():
    room = tree(
        [
            ("она", "PRON", 1, "nsubj"),
            ("увидеть", "VERB", -1, "root"),
            ("громадный", "ADJ", 3, "amod"),
            ("комната", "NOUN", 1, "obj"),
        ],
        beings={0},
    )
    hits = typing_hits(room)
    assert hits["appearance"] == 0 and hits["interior"] == 2  # the room's size, not a person's
    old_man = tree(
        [("громадный", "ADJ", 1, "amod"), ("старик", "NOUN", 2, "nsubj"), ("сидеть", "VERB", -1, "root")], beings={1}
    )
    assert typing_hits(old_man)["appearance"] == 1
    huts = tree([("изба", "NOUN", 1, "nsubj"), ("низкий", "ADJ", -1, "root")])  # "избы низки"
    assert typing_hits(huts)["appearance"] == 0 and typing_hits(huts)["architecture"] == 2
    unknown = tree([("громадный", "ADJ", 1, "amod"), ("дело", "NOUN", -1, "root")])
    assert typing_hits(unknown)["appearance"] == 0
    alone = tree([("громадный", "ADJ", -1, "root")])
    assert typing_hits(alone)["appearance"] == 1


@pytest.mark.parametrize("name", ["spacy", "natasha", "stanza"])
def test_words_of_look_follow_their_noun_in_every_processor(name):
    processor, _ = loaded_processor(name)
    text = "Вдали показался громадный старый дом с высокими узкими окнами. Навстречу шёл громадный худой старик."
    house, man = processor.score(text, segment(text), "ru")
    assert house.type == "location" and house.evidence["type_scores"].get("character", 0) < 1
    assert man.type == "character"
