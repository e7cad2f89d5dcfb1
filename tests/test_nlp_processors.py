"""The real spaCy and Natasha processors on real text (models ship with the installed wheels)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bookreader_cli.nlp.processors import loaded_processor
from bookreader_cli.nlp.runner import analyze_text
from bookreader_cli.nlp.segment import segment

VIVID = (
    "Каштанка увидела перед собой коротенького и толстенького человечка с бритым пухлым лицом, "
    "в цилиндре и в шубе нараспашку."
)
ATMOSPHERE = "В комнате было тихо, темно и очень душно."
THOUGHT = "Он думал о том, что жизнь прошла напрасно и что ничего уже нельзя исправить."
SUBSTRINGS = "Лицемерие его было так велико, что глазурь учтивости не скрывала расчёта."


def _votes(name: str, text: str, lang: str = "ru"):
    processor, _ = loaded_processor(name)
    sentences = segment(text)
    votes = processor.score(text, sentences, lang)
    assert [v.index for v in votes] == [s.index for s in sentences]
    return votes


def test_availability_is_cheap_and_imports_no_heavy_library():
    code = (
        "import sys, json; from bookreader_cli.nlp.processors import check\n"
        "rows = {n: check(n)[:2] for n in ('spacy', 'natasha')}\n"
        "heavy = [m for m in ('spacy', 'natasha', 'slovnet', 'torch', 'stanza') if m in sys.modules]\n"
        "print(json.dumps({'rows': rows, 'heavy': heavy}))"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["heavy"] == []
    assert out["rows"]["spacy"][0] is True and out["rows"]["natasha"][0] is True
    assert "spacy.blank('ru')" in out["rows"]["spacy"][1] or "pipeline:" in out["rows"]["spacy"][1]


@pytest.mark.parametrize("name", ["spacy", "natasha"])
def test_processor_votes_on_visual_and_non_visual_sentences(name):
    vivid, atmosphere, thought = _votes(name, f"{VIVID}\n{ATMOSPHERE}\n{THOUGHT}")
    assert vivid.yes and vivid.type == "character"
    assert atmosphere.yes and atmosphere.type == "atmosphere"
    assert not thought.yes
    assert vivid.score > thought.score
    assert vivid.evidence["categories"].get("clothing", 0) >= 2


@pytest.mark.parametrize("name", ["spacy", "natasha"])
def test_lexicon_matches_lemmas_never_substrings(name):
    (vote,) = _votes(name, SUBSTRINGS)
    categories = vote.evidence.get("categories", {})
    assert "body" not in categories  # "лицемерие" is not "лицо", "глазурь" is not "глаз"
    assert not vote.yes


def test_spacy_evidence_is_its_own_patterns():
    (vote,) = _votes("spacy", VIVID)
    labels = {p.split(":", 1)[0] for p in vote.evidence["patterns"]}
    assert {"WITH_FEATURE", "WEARING"} <= labels


def test_natasha_uses_syntax_and_entities():
    (vote,) = _votes("natasha", VIVID)
    assert any("лицом" in m for m in vote.evidence["modified_nouns"])
    assert ("PER", "Каштанка") in [tuple(e) for e in vote.evidence["entities"]]


def test_natasha_morph_vocab_works_through_pymorphy3():
    processor, _ = loaded_processor("natasha")
    assert processor.models["vocab"].lemmatize("шубе", "NOUN", {"Case": "Loc"}) == "шуба"
    assert sys.modules["pymorphy2"].__name__ == "pymorphy3"


def test_spacy_english_rules():
    text = "She wore a long blue silk dress and a straw hat.\nI think we should go, he said."
    dress, talk = _votes("spacy", text, "en")
    assert dress.yes and dress.type == "character"
    assert not talk.yes


def test_ensemble_of_real_processors_finds_descriptions_with_exact_offsets():
    text = "\n".join([THOUGHT, VIVID + " " + ATMOSPHERE, "— Где твой хозяин? — спросил он."])
    r = analyze_text(text, mode="ensemble", processors=["spacy", "natasha"])
    assert r.processors_used == ["spacy", "natasha"] and not r.processor_failures
    assert [d.text for d in r.descriptions] == [VIVID, ATMOSPHERE]
    for d in r.descriptions:
        assert text[d.start : d.end] == d.text
        assert d.processors == ["natasha", "spacy"]
    assert r.consensus_rate == 1.0


def test_english_book_skips_natasha_with_a_reason():
    r = analyze_text(
        "She wore a long blue silk dress and a straw hat.",
        lang="en",
        mode="sequential",
        processors=["spacy", "natasha"],
    )
    assert r.processors_used == ["spacy"]
    assert "Russian only" in r.processors_unavailable["natasha"]


@pytest.mark.parametrize("name", ["spacy", "natasha"])
def test_clothes_without_a_wearer_are_an_object(name):
    worn, left = _votes(
        name,
        "Рядом с ним шагал Федюшка в отцовском картузе и в старом тулупе.\n"
        "В сундуке лежали три пары носков, старый картуз и ветхий тулуп.",
    )
    assert worn.type == "character"
    # the guideline's rule is the processor's own type evidence (a feature of its learned type model) …
    assert max(left.evidence["rule_types"], key=left.evidence["rule_types"].get) == "object"
    # … and moves the learned type probabilities toward a thing
    assert left.evidence["type_scores"]["object"] > worn.evidence["type_scores"]["object"]


def test_spacy_screen_skips_only_sentences_that_cannot_be_visual():
    """The cheap pre-filter only skips the pipeline for sentences without a visual word (scored on their
    surface and vector features, as in the fitting's CV); analysed sentences vote as without it."""
    text = f"{VIVID}\n{ATMOSPHERE}\n{THOUGHT}\nОн согласился и ушёл домой.\n{SUBSTRINGS}"
    processor, _ = loaded_processor("spacy")
    sentences = segment(text)
    screened = processor.score(text, sentences, "ru")
    assert any(v.evidence.get("skipped") for v in screened)
    try:
        processor._screen = lambda *a: lambda _text: True
        full = processor.score(text, sentences, "ru")
    finally:
        del processor._screen  # back to the method
    assert [(v.score, v.type) for v in screened if not v.evidence.get("skipped")] == [
        (v.score, v.type) for v, s in zip(full, screened) if not s.evidence.get("skipped")
    ]
    assert all(v.yes is False for v in screened if v.evidence.get("skipped"))


def test_participles_of_listed_verbs_count_like_the_verb():
    """pymorphy3 reads "лающие" as the adjective "лающий": the lexicon lists it under "лаять"'s category, so
    a processor lemmatising with pymorphy3 (spaCy) finds what Natasha finds through the verb."""
    from bookreader_cli.nlp.lexicon import load as load_lexicon

    lexicon = load_lexicon("ru")
    assert lexicon.categories("лающий") == lexicon.categories("лаять") == {"sound"}
    assert "light" in lexicon.categories("сверкающий") and "posture" in lexicon.categories("сидевший")
    votes = _votes("spacy", "Вдали лающие псы неслись по мокрому лугу.")
    assert votes[0].evidence["categories"].get("sound") == 1


@pytest.mark.parametrize("mode", ["single", "parallel", "sequential", "ensemble", "adaptive"])
def test_every_mode_runs_the_learned_scorers(mode):
    """Every mode with the real processors and their fitted models: the vivid sentence is found, the
    thought is not, and a processor's yes is its own p against the threshold."""
    text = f"{THOUGHT}\n{VIVID}"
    processors = ["natasha"] if mode == "single" else ["spacy", "natasha"]
    r = analyze_text(text, mode=mode, processors=processors, detail=True)
    assert not r.processor_failures and r.processors_used == processors
    assert [d.text for d in r.descriptions] == [VIVID]
    assert r.descriptions[0].type == "character" and 0 < r.descriptions[0].priority <= 100
    for decision in r.decisions:
        assert decision["passed"] == (decision["index"] == 1)
