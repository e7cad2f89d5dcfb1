"""The Stanza processor on real Stanza models: the bundled ones (built by scripts/train_stanza.py from
Natasha-annotated books) loaded through the real stanza.Pipeline, the same files laid out as a directory
downloaded by Stanza itself, the silver-data writers, and a short real training run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bookreader_cli.config import NlpSettings
from bookreader_cli.errors import BadInput
from bookreader_cli.nlp.base import DESCRIPTION_TYPES
from bookreader_cli.nlp.processors.stanza import StanzaProcessor
from bookreader_cli.nlp.segment import segment
from bookreader_cli.nlp.stanza_models import BUNDLED_DIR, PROCESSORS, find_models

DESCRIPTIVE = (
    "Старый деревянный дом с высоким крыльцом стоял на краю деревни, окружённый тёмными елями и густыми кустами сирени."
)
DIALOGUE = "— Ты придёшь завтра? — спросил он."
THOUGHT = "Он думал о том, что жизнь прошла напрасно и что ничего уже нельзя исправить."
TEXT = f"{DESCRIPTIVE}\n{DIALOGUE}\n{THOUGHT}"


@pytest.fixture(scope="module")
def bundled() -> StanzaProcessor:
    processor = StanzaProcessor(NlpSettings(stanza_dir=str(BUNDLED_DIR)))
    ok, reason = processor.availability()
    assert ok, reason
    processor.load()
    return processor


def _check_votes(votes, sentences):
    assert [v.index for v in votes] == [s.index for s in sentences]
    for vote in votes:
        assert 0.0 <= vote.score <= 1.0
        assert vote.yes == (vote.score >= 0.6)  # the learned p against the default threshold
        assert vote.type in DESCRIPTION_TYPES
        assert set(vote.evidence["type_scores"]) == set(DESCRIPTION_TYPES)
        if "skipped" in vote.evidence:  # screened out: scored on surface and vector features only
            assert not vote.yes and "analysed" not in vote.evidence["features"]
        else:
            assert {"categories", "features", "modified_nouns", "entities", "root"} <= set(vote.evidence)
        json.dumps(vote.evidence, ensure_ascii=False)  # plain data, storable as JSON


def _unscreened(processor: StanzaProcessor, text, sentences):
    """Votes with every sentence through the pipeline (the screen off), same loaded models."""
    processor.screen = False
    try:
        return processor.score(text, sentences, "ru")
    finally:
        processor.screen = True


def test_bundled_models_vote_one_per_sentence(bundled):
    sentences = segment(TEXT)
    assert len(sentences) == 3
    votes = _unscreened(bundled, TEXT, sentences)
    _check_votes(votes, sentences)
    descriptive, dialogue, thought = votes
    assert descriptive.score > dialogue.score
    assert descriptive.score > thought.score
    assert descriptive.yes and not dialogue.yes and not thought.yes
    assert descriptive.evidence["features"]["adj_density"] > thought.evidence["features"]["adj_density"]
    assert dialogue.evidence["features"]["dash_start"] == 1.0 and dialogue.evidence["features"]["speech"] > 0.5


def test_evidence_comes_from_stanzas_own_analysis(bundled):
    doc = bundled.pipeline([["Старый", "дом", "стоял", "на", "берегу", "реки", "."]])
    words = doc.sentences[0].words
    assert sum(1 for w in words if w.head == 0) == 1  # a real parse: one root
    assert all(w.upos and w.lemma for w in words)
    assert [w.text for w in words] == ["Старый", "дом", "стоял", "на", "берегу", "реки", "."]  # our tokens


def test_empty_and_batched_input(bundled):
    text = "\n".join([DESCRIPTIVE] * 300)  # more sentences than one Pipeline batch
    sentences = segment(text)
    votes = bundled.score(text, sentences, "ru")
    _check_votes(votes, sentences)
    assert len({v.score for v in votes}) == 1  # same sentence, same vote, whichever batch it fell in
    assert bundled.score("", [], "ru") == []


def _real_chapters():
    """A chapter of the bundled sample book, and one of Karamazov when ../shared/corpus is there."""
    from bookreader_cli.books import load_book

    repo = Path(__file__).resolve().parents[1]
    chapters = [load_book(repo / "sample_books" / "ru_sample.fb2").chapters[1]]
    karamazov = repo.parent / "shared" / "corpus" / "ru_txt__d0rj_RusLit" / "dostoevsky_bratya_karamazovy.txt"
    if karamazov.is_file():
        chapters.append(load_book(karamazov).chapters[4])  # "Старцы": description and dialogue
    return chapters


def test_screen_changes_no_vote_on_real_sentences(bundled):
    """Screened-out sentences are ones the full pipeline also votes no on and finds no visual word in; the
    rest get the same vote (the screen only saves the pipeline's time)."""
    skipped = kept = 0
    for chapter in _real_chapters():
        sentences = segment(chapter.text, chapter.paragraphs)
        screened = bundled.score(chapter.text, sentences, "ru")
        full = _unscreened(bundled, chapter.text, sentences)
        _check_votes(screened, sentences)
        for fast, slow in zip(screened, full):
            if fast.evidence.get("skipped"):
                skipped += 1
                assert not slow.yes, slow
                assert not any(c != "speech" for c in slow.evidence.get("categories", {})), slow.evidence
            else:
                kept += 1
                assert (fast.score, fast.yes, fast.type, fast.evidence) == (
                    slow.score,
                    slow.yes,
                    slow.type,
                    slow.evidence,
                )
                assert fast.evidence["features"]["analysed"] == 1.0
    assert skipped > 0 and kept > 0


def test_fast_tree_decoder_matches_stanzas():
    import numpy as np
    from stanza.models.common.chuliu_edmonds import chuliu_edmonds_one_root as stanzas
    from stanza.models.depparse import model as parser_module

    from bookreader_cli.nlp import stanza_speed

    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(2, 60))
        scores = (rng.normal(size=(n, n)) * rng.uniform(0.1, 5)).astype(np.float32)
        original = scores.copy()
        assert np.array_equal(stanza_speed.chuliu_edmonds_one_root(scores), stanzas(scores.copy()))
        assert np.array_equal(scores, original)  # the caller's scores are left alone
    assert stanza_speed.install()
    assert parser_module.chuliu_edmonds_one_root is stanza_speed.chuliu_edmonds_one_root


def test_ner_only_when_asked(bundled):
    assert "ner" not in bundled.pipeline.processors
    with_ner = StanzaProcessor(NlpSettings(stanza_dir=str(BUNDLED_DIR), stanza_ner=True))
    with_ner.load()
    assert "ner" in with_ner.pipeline.processors
    sentences = segment(TEXT)
    votes = with_ner.score(TEXT, sentences, "ru")
    _check_votes(votes, sentences)
    assert votes[0].yes


def test_unavailable_with_a_clear_reason(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    ok, reason = StanzaProcessor(NlpSettings(stanza_dir=str(empty))).availability()
    assert not ok and "no Stanza models" in reason and "train-stanza" in reason

    partial = tmp_path / "partial"
    (partial / "ru" / "pos").mkdir(parents=True)
    shutil.copy(BUNDLED_DIR / "ru" / "pos" / "bookreader.pt", partial / "ru" / "pos" / "x.pt")
    ok, reason = StanzaProcessor(NlpSettings(stanza_dir=str(partial))).availability()
    assert not ok and "lemma" in reason and "depparse" in reason

    with pytest.raises(RuntimeError, match="no Stanza models"):
        StanzaProcessor(NlpSettings(stanza_dir=str(empty))).load()


def test_default_location_falls_back_to_bundled_models(tmp_path):
    from bookreader_cli.config import load_settings

    settings = load_settings(home=tmp_path / "home", environ={})
    ok, reason = StanzaProcessor(settings.nlp).availability()
    assert ok and "bundled" in reason


def test_availability_is_cheap(tmp_path):
    code = (
        "import sys, json; from bookreader_cli.nlp.processors import check\n"
        "from bookreader_cli.config import NlpSettings\n"
        f"row = check('stanza', NlpSettings(stanza_dir={str(BUNDLED_DIR)!r}))[:2]\n"
        "heavy = [m for m in ('torch', 'stanza', 'numpy') if m in sys.modules]\n"
        "print(json.dumps({'row': row, 'heavy': heavy}))"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["heavy"] == []
    assert out["row"][0] is True


def _downloaded_layout(root: Path) -> Path:
    """The bundled files renamed and described the way stanza.download() leaves a resources dir."""
    src = BUNDLED_DIR / "ru"
    names = {
        "tokenize": "syntagrus",
        "pos": "syntagrus_charlm",
        "lemma": "syntagrus_nocharlm",
        "depparse": "syntagrus_charlm",
        "ner": "wikiner",
    }
    for proc, package in names.items():
        (root / "ru" / proc).mkdir(parents=True)
        shutil.copy(src / proc / "bookreader.pt", root / "ru" / proc / f"{package}.pt")
    (root / "ru" / "pretrain").mkdir()
    shutil.copy(src / "pretrain" / "bookreader.pt", root / "ru" / "pretrain" / "conll17.pt")
    shutil.copy(src / "pretrain" / "bookreader.pt", root / "ru" / "pretrain" / "fasttextwiki.pt")
    # a second, non-default package beside the default one must not be picked
    shutil.copy(src / "pos" / "bookreader.pt", root / "ru" / "pos" / "aaa_other.pt")
    dep = lambda package: {"dependencies": [{"model": "pretrain", "package": package}]}
    resources = {
        "ru": {
            "lang_name": "Russian",
            "default_processors": names,
            "tokenize": {"syntagrus": {}},
            "pos": {"syntagrus_charlm": dep("conll17"), "aaa_other": dep("conll17")},
            "lemma": {"syntagrus_nocharlm": {}},
            "depparse": {"syntagrus_charlm": dep("conll17")},
            "ner": {"wikiner": dep("fasttextwiki")},
            "default_dependencies": {"pretrain": "conll17"},
        }
    }
    (root / "resources.json").write_text(json.dumps(resources), encoding="utf-8")
    return root


def test_standard_stanza_layout_loads_unchanged(tmp_path, bundled):
    root = _downloaded_layout(tmp_path / "stanza_resources")
    models, why = find_models(root, "ru")
    assert models is not None, why
    assert models.packages["pos"] == "syntagrus_charlm"
    assert models.dependencies["ner"]["pretrain"].name == "fasttextwiki.pt"
    assert set(models.models) == set(PROCESSORS)

    for given in (root, root / "ru"):  # the resources dir or its language folder
        processor = StanzaProcessor(NlpSettings(stanza_dir=str(given)))
        ok, reason = processor.availability()
        assert ok and str(root) in reason and "trained locally" not in reason
    processor.load()
    sentences = segment(TEXT)
    votes = processor.score(TEXT, sentences, "ru")
    _check_votes(votes, sentences)
    same = bundled.score(TEXT, sentences, "ru")
    assert [(v.score, v.type) for v in votes] == [(v.score, v.type) for v in same]


def test_silver_annotation_is_valid_stanza_training_data(tmp_path):
    from stanza.utils.conll import CoNLL

    from bookreader_cli.training import stanza_corpus as corpus

    paragraphs = [DESCRIPTIVE + " " + THOUGHT, "Иван Петрович приехал в Москву вечером. Было тихо и темно."]
    annotated = corpus.annotate(paragraphs)
    assert len(annotated) == 2
    n = corpus.write_conllu(annotated, tmp_path / "train.conllu")
    assert n == 4
    doc = CoNLL.conll2doc(input_file=str(tmp_path / "train.conllu"))
    assert len(doc.sentences) == 4
    for sentence in doc.sentences:
        heads = [w.head for w in sentence.words]
        assert heads.count(0) == 1 and all(0 <= h <= len(heads) for h in heads)
        assert all(w.upos and w.lemma for w in sentence.words)
    corpus.write_tokenizer_files(annotated, tmp_path / "t.txt", tmp_path / "t.labels")
    texts = (tmp_path / "t.txt").read_text(encoding="utf-8").strip().split("\n\n")
    labels = (tmp_path / "t.labels").read_text(encoding="utf-8").strip().split("\n\n")
    assert texts == paragraphs
    assert [len(x) for x in labels] == [len(x) for x in texts]
    assert [x.count("2") for x in labels] == [2, 2]
    corpus.write_ner_json(annotated, tmp_path / "ner.json")
    tags = [t["ner"] for s in json.loads((tmp_path / "ner.json").read_text(encoding="utf-8")) for t in s]
    assert "B-PER" in tags and "B-LOC" in tags
    assert all(t == "O" or t[:2] in ("B-", "I-") for t in tags)


def test_tree_repair_keeps_labels_consistent():
    from bookreader_cli.training.stanza_corpus import tree_with_labels

    heads, rels = tree_with_labels([2, 0, 2, 0, 6, 5], ["amod", "root", "obj", "root", "nmod", "nmod"])
    assert heads.count(0) == 1 and rels.count("root") == 1
    assert rels[3] == "parataxis" and heads[3] == 2  # the second root hangs from the first
    assert heads[4] == 2 or heads[5] == 2  # the 5<->6 cycle is cut at the root


def test_training_runs_stanzas_own_trainer(tmp_path):
    """A short real run (lemmatizer only, so the suite stays fast) into a standard layout."""
    from bookreader_cli.training.stanza_train import train_stanza_models

    texts = [
        DESCRIPTIVE,
        THOUGHT,
        "Иван Петрович приехал в Москву вечером. Было тихо и темно.",
        "Над рекой стоял белый туман, и мокрая трава блестела под луной.",
    ] * 3
    manifest = train_stanza_models(tmp_path / "out", texts=texts, size="smoke", processors=("lemma",))
    lemma = tmp_path / "out" / "ru" / "lemma" / "bookreader.pt"
    assert lemma.is_file() and manifest["files"]["ru/lemma/bookreader.pt"] == lemma.stat().st_size
    assert (tmp_path / "out" / "ru" / "pretrain" / "bookreader.pt").is_file()
    assert manifest["train_sentences"] > 0 and "lemma" in manifest["seconds"]
    models, why = find_models(tmp_path / "out", "ru")
    assert models is None and "pos" in why  # a partial set is reported, not half-loaded


def test_train_cli_rejects_bad_input(tmp_path):
    from bookreader_cli.training.stanza_train import train_stanza_cli

    with pytest.raises(BadInput, match="size"):
        train_stanza_cli(tmp_path, size="huge")
    with pytest.raises(BadInput, match="Russian"):
        train_stanza_cli(tmp_path, lang="en")
    with pytest.raises(BadInput, match="not found"):
        train_stanza_cli(tmp_path, sources=[tmp_path / "missing.txt"])
    with pytest.raises(BadInput, match="no training text"):
        train_stanza_cli(tmp_path / "out", sources=[tmp_path])  # a directory with no books
