"""Vote arithmetic (weighted mean of calibrated probabilities vs the threshold), merging, exclusions,
priority and the consensus rate (no models needed)."""

from bookreader_cli.config import NlpSettings
from bookreader_cli.nlp.base import Vote
from bookreader_cli.nlp.ensemble import EnsembleConfig, config_from, consensus_rate, decide, merge
from bookreader_cli.nlp.segment import segment
from bookreader_cli.nlp.tree import is_tree, repair_tree

TEXT = (
    "Над рекой стоял густой белый туман. Берег был пуст и тих. Он ушёл.\n"
    "— Какой туман! — сказал он.\n"
    "Вдали темнел лес, и тёмные ели стояли стеной."
)


def _votes(sentences, yes_by_proc: dict[str, set[int]], kind="location"):
    return {
        p: {
            s.index: Vote(
                s.index,
                0.9 if s.index in yes else 0.1,
                s.index in yes,
                kind if s.index in yes else None,
                {"features": {"visual_hits": 2}},
            )
            for s in sentences
        }
        for p, yes in yes_by_proc.items()
    }


def _p(sentences, p_by_proc: dict[str, float], index: int = 0, kind: str = "location"):
    """Votes where each processor gives sentence `index` probability p (the others 0.0)."""
    return {
        name: {
            s.index: Vote(s.index, p if s.index == index else 0.0, p >= 0.6, kind, {"type_scores": {kind: 1.0}})
            for s in sentences
        }
        for name, p in p_by_proc.items()
    }


def test_score_is_the_weighted_mean_of_the_probabilities_against_the_threshold():
    sentences = segment(TEXT)
    cfg = EnsembleConfig()  # spacy 1.0, natasha 1.2, stanza 0.8; threshold 0.6
    d = decide(sentences, _p(sentences, {"spacy": 0.5, "natasha": 0.7, "stanza": 0.6}), cfg)[0]
    assert d.confidence == round((1.0 * 0.5 + 1.2 * 0.7 + 0.8 * 0.6) / 3.0, 4) == 0.6067
    assert d.passed
    assert d.yes == ["natasha", "stanza"]  # a processor's own yes: its p >= threshold
    assert d.share == round((1.2 + 0.8) / 3.0, 4)
    # the same probabilities fall short when the sure processor weighs less
    d = decide(
        sentences,
        _p(sentences, {"spacy": 0.5, "natasha": 0.7, "stanza": 0.6}),
        config_from(NlpSettings(weights={"natasha": 0.5})),
    )[0]
    assert d.confidence < 0.6 and not d.passed


def test_probabilities_not_yes_counts_decide():
    """One sure yes and two near misses pass (mean 0.683); counting yeses (1.0 of 3.0) would not."""
    sentences = segment(TEXT)
    d = decide(sentences, _p(sentences, {"spacy": 0.95, "natasha": 0.55, "stanza": 0.55}), EnsembleConfig())[0]
    assert d.passed and d.yes == ["spacy"] and d.confidence == 0.6833
    # and two bare yeses over a sure no do not (mean 0.5 < 0.6)
    d = decide(sentences, _p(sentences, {"spacy": 0.6, "natasha": 0.05, "stanza": 0.95}), EnsembleConfig())[0]
    assert not d.passed and d.yes == ["spacy", "stanza"]


def test_a_confident_processor_cannot_pass_alone_against_two_sure_noes():
    sentences = segment(TEXT)
    cfg = EnsembleConfig()
    for lone in ("spacy", "natasha", "stanza"):
        probs = {p: (0.99 if p == lone else 0.05) for p in ("spacy", "natasha", "stanza")}
        d = decide(sentences, _p(sentences, probs), cfg)[0]
        assert not d.passed and d.yes == [lone], lone
    # two sure yes and one unsure pass
    assert decide(sentences, _p(sentences, {"spacy": 0.9, "natasha": 0.9, "stanza": 0.2}), cfg)[0].passed


def test_threshold_reached_exactly_passes():
    sentences = segment(TEXT)
    d = decide(sentences, _p(sentences, {"spacy": 0.6, "natasha": 0.6}), EnsembleConfig())[0]
    assert d.passed and d.confidence == 0.6


def test_weights_and_threshold_come_from_settings():
    cfg = config_from(NlpSettings(weights={"spacy": 3.0}, threshold=0.5))
    assert cfg.weights == {"spacy": 3.0, "natasha": 1.2, "stanza": 0.8} and cfg.threshold == 0.5
    sentences = segment(TEXT)
    # (3.0·0.7 + 1.2·0.2 + 0.8·0.2) / 5.0 = 0.5
    assert decide(sentences, _p(sentences, {"spacy": 0.7, "natasha": 0.2, "stanza": 0.2}), cfg)[0].passed


def test_processor_that_did_not_run_does_not_count():
    sentences = segment(TEXT)
    votes = _votes(sentences, {"spacy": {0}, "natasha": {0}})
    votes["stanza"] = {}  # ran on nothing (e.g. adaptive mode skipped the sentence)
    d = decide(sentences, votes, EnsembleConfig())[0]
    assert d.passed and d.share == 1.0 and d.ran == ["spacy", "natasha"]


def test_union_mode_passes_any_yes():
    sentences = segment(TEXT)
    yes = {"spacy": {0}, "natasha": set(), "stanza": set()}
    assert decide(sentences, _votes(sentences, yes), EnsembleConfig(union=True))[0].passed


def test_merge_adjacent_sentences_of_a_paragraph_with_exact_offsets():
    sentences = segment(TEXT)
    everything = {s.index for s in sentences}
    votes = _votes(sentences, {"spacy": everything, "natasha": everything})
    cfg = EnsembleConfig()
    decisions = decide(sentences, votes, cfg)
    descriptions = merge(TEXT, sentences, decisions, cfg)
    for d in descriptions:
        assert TEXT[d.start : d.end] == d.text
        assert len(d.text) <= cfg.max_chars
        assert d.processors == ["natasha", "spacy"] and d.consensus == 1.0 and d.unanimous
        assert 0 <= d.priority <= 100
    texts = [d.text for d in descriptions]
    # first paragraph: two sentences merge; "Он ушёл." is a fragment at the edge and stays out
    assert texts[0] == "Над рекой стоял густой белый туман. Берег был пуст и тих."
    # the dialogue paragraph never yields a description; the last paragraph is its own description
    assert texts[1] == "Вдали темнел лес, и тёмные ели стояли стеной."
    assert len(descriptions) == 2
    assert not any("сказал" in t for t in texts)


def test_merge_respects_the_length_bound_and_cuts_overlong_sentences():
    long_text = "Туман лежал над рекою, " * 80 + "и всё было серо."
    sentences = segment(long_text)
    votes = _votes(sentences, {"spacy": {0}, "natasha": {0}})
    cfg = EnsembleConfig(max_chars=300)
    descriptions = merge(long_text, sentences, decide(sentences, votes, cfg), cfg)
    assert len(descriptions) == 1
    d = descriptions[0]
    assert len(d.text) <= 300 and long_text[d.start : d.end] == d.text


def test_consensus_rate_is_share_of_passing_sentences_with_all_yes():
    sentences = segment(TEXT)
    cfg = EnsembleConfig()
    votes = _votes(sentences, {"spacy": {0, 1}, "natasha": {0, 1}, "stanza": {0}})
    decisions = decide(sentences, votes, cfg)
    assert [d.passed for d in decisions[:2]] == [True, True]
    assert consensus_rate(decisions) == 0.5  # sentence 0 unanimous, sentence 1 not
    assert consensus_rate(decide(sentences, _votes(sentences, {"spacy": set()}), cfg)) == 0.0


def test_higher_agreement_and_confidence_rank_higher():
    sentences = segment(TEXT)
    cfg = EnsembleConfig()
    last = sentences[-1].index
    votes = _votes(sentences, {"spacy": {0, last}, "natasha": {0, last}, "stanza": {last}})
    descriptions = merge(TEXT, sentences, decide(sentences, votes, cfg), cfg)
    by_start = sorted(descriptions, key=lambda d: d.start)
    assert by_start[1].priority > by_start[0].priority


def test_repair_tree_makes_trees():
    for heads in ([1, 2, 0], [-1, -1, 1], [1, 0, 5, -1], [2, 2, -1], [0, 0, 0], [7, -1, 1]):
        fixed = repair_tree(heads)
        assert is_tree(fixed), (heads, fixed)
    assert repair_tree([1, -1, 1]) == [1, -1, 1]  # a valid tree stays as it was


def test_type_vote_weighs_each_processors_type_evidence_by_weight_and_score():
    sentences = segment("Над рекой стоял густой белый туман, и в тумане светились огни.")
    votes = {
        # natasha leans to atmosphere, but only just and with a low score
        "natasha": {0: Vote(0, 0.55, True, "atmosphere", {"type_scores": {"atmosphere": 2.1, "location": 2.0}})},
        # spacy is sure it is a place
        "spacy": {0: Vote(0, 0.95, True, "location", {"type_scores": {"location": 3.0}})},
    }
    assert decide(sentences, votes, EnsembleConfig())[0].type == "location"
    # a processor without type_scores (e.g. stanza) still counts with its bare type
    bare = {"stanza": {0: Vote(0, 0.9, True, "object", {})}}
    assert decide(sentences, bare, EnsembleConfig())[0].type == "object"


def test_type_context_lets_neighbours_of_a_paragraph_break_a_tie():
    sentences = segment("Он увидел громадную светлую комнату. Всюду были лица и лица.")

    def vote(i, scores):
        return Vote(i, 0.9, True, max(scores, key=scores.get), {"type_scores": scores})

    votes = {"spacy": {0: vote(0, {"location": 3.0}), 1: vote(1, {"character": 1.2, "location": 1.0})}}
    assert decide(sentences, votes, EnsembleConfig(type_context=0.0))[1].type == "character"
    assert decide(sentences, votes, EnsembleConfig(type_context=0.3))[1].type == "location"


def test_clothes_nobody_wears_are_objects():
    from collections import Counter

    from bookreader_cli.nlp.scoring import Subjects, picture_type

    hits = Counter({"clothing": 3, "objects": 1})
    assert picture_type(hits, None, Subjects(person_present=True)) == "character"
    assert picture_type(hits, None, Subjects(person_present=False)) == "object"
    assert picture_type(hits) == "character"  # no grammar to tell: clothes are taken as worn


def test_a_narrative_sentence_in_a_paragraph_with_a_remark_can_pass_the_dialogue_line_cannot():
    text = (
        "«Пойдём же скорее домой», — сказал он. Это был высокий худой старик в потёртом синем сюртуке, "
        "с клочковатой седой бородой.\n— Где ты была в этом синем платье? — спросил он."
    )
    sentences = segment(text)
    everything = {s.index for s in sentences}
    votes = _votes(sentences, {"spacy": everything, "natasha": everything, "stanza": everything})
    decisions = decide(sentences, votes, EnsembleConfig())
    assert [d.passed for d in decisions] == [False, True, False]
    assert [d.excluded for d in decisions] == ["dialogue", "", "dialogue"]
    (description,) = merge(text, sentences, decisions, EnsembleConfig())
    assert description.text.startswith("Это был высокий худой старик")


def test_the_type_context_is_the_one_the_scorers_were_cross_validated_with():
    from bookreader_cli.nlp.ensemble import TYPE_CONTEXT
    from bookreader_cli.training.fit_scorer import CHOSEN

    for lang in ("ru", "en"):
        assert config_from(None, lang).type_context == TYPE_CONTEXT[lang] == CHOSEN[lang].type_neighbours
    assert config_from().type_context == 0.0
