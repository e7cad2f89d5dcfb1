"""The learned scorers: deterministic fitting on a tiny labelled fixture, saved models that load and give
the same probabilities, and the fitted files shipped in the package (real spaCy, English, no network)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bookreader_cli.nlp import scorer
from bookreader_cli.nlp.base import Sentence

pytest.importorskip("sklearn")

# A tiny labelled "library": three English books, two passages each, visual and non-visual sentences.
BOOKS = {
    "alpha": [
        [
            "The old man wore a long grey coat and a black hat.",
            "He said that he would come tomorrow.",
            "The room was dark and cold, and the candle smoked on the table.",
        ],
        [
            "I think we should go now, she said.",
            "A tall woman in a red silk dress stood by the window.",
            "They argued about money for an hour.",
        ],
    ],
    "beta": [
        [
            "The river lay grey under the low clouds, and the wind bent the reeds.",
            "He wondered what it meant.",
            "Her face was pale, with large dark eyes and thin lips.",
        ],
        [
            "We must decide, he said.",
            "A little brown dog with a white tail ran along the muddy road.",
            "Nothing was settled that evening.",
        ],
    ],
    "gamma": [
        [
            "The snow covered the roofs, and yellow lights burned in the windows.",
            "He remembered his debts.",
            "On the table stood a big copper kettle, polished bright.",
        ],
        [
            "Why did you not tell me? she asked.",
            "The stranger had a thick black beard and wore heavy boots.",
            "The plan seemed foolish to everybody.",
        ],
    ],
}
LABELS = {  # per sentence: (label, strength)
    "The old man": ("character", 3),
    "He said that": ("none", 0),
    "The room was": ("atmosphere", 2),
    "I think we": ("none", 0),
    "A tall woman": ("character", 3),
    "They argued": ("none", 0),
    "The river lay": ("location", 3),
    "He wondered": ("none", 0),
    "Her face was": ("character", 2),
    "We must": ("none", 0),
    "A little brown": ("character", 2),
    "Nothing was": ("none", 0),
    "The snow covered": ("atmosphere", 3),
    "He remembered": ("none", 0),
    "On the table": ("object", 2),
    "Why did you": ("none", 0),
    "The stranger": ("character", 3),
    "The plan seemed": ("none", 0),
}


def _write_gold(folder: Path) -> None:
    passages, gold = [], []
    for book, items in BOOKS.items():
        for n, sentences in enumerate(items):
            text, spans = "", []
            for i, s in enumerate(sentences):
                start = len(text) + (1 if text else 0)
                text = f"{text} {s}" if text else s
                spans.append({"i": i, "start": start, "end": start + len(s), "text": s})
            pid = f"{book}-{n:02d}"
            passages.append({"id": pid, "book": book, "title": book, "para_index": n, "text": text, "sentences": spans})
            for span in spans:
                label, strength = next(v for k, v in LABELS.items() if span["text"].startswith(k))
                gold.append({"id": pid, "i": span["i"], "label": label, "strength": strength})
    (folder / "en-train-passages.jsonl").write_text("\n".join(json.dumps(p) for p in passages) + "\n", encoding="utf-8")
    (folder / "en-train-gold.jsonl").write_text("\n".join(json.dumps(g) for g in gold) + "\n", encoding="utf-8")


def _fit(tmp_path: Path, name: str) -> tuple[Path, dict]:
    from bookreader_cli.training import fit_scorer

    gold = tmp_path / "gold"
    gold.mkdir(exist_ok=True)
    _write_gold(gold)
    out = tmp_path / name
    reports = fit_scorer.fit_command(gold, out, tmp_path / "cache", langs=["en"], echo=lambda *_: None)
    return out / "en.json", reports


def test_fitting_is_deterministic_and_reports_leave_one_book_out(tmp_path):
    first, reports = _fit(tmp_path, "one")
    second, _ = _fit(tmp_path, "two")
    assert first.read_bytes() == second.read_bytes()
    cv = reports["en"]
    assert set(cv["per_book"]) == {"alpha", "beta", "gamma"}
    assert {"f1", "type_accuracy", "p_at_20", "precision", "recall"} <= set(cv["pooled"])
    saved = json.loads(first.read_text(encoding="utf-8"))
    assert set(saved["processors"]) == {"spacy"} and saved["lang"] == "en"
    assert saved["trained_on"]["books"] == ["alpha", "beta", "gamma"]


def test_a_saved_model_loads_and_gives_the_fitted_probabilities(tmp_path):
    """The numpy runtime reproduces scikit-learn's own probabilities of the refitted model."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from bookreader_cli.nlp.scorer import design
    from bookreader_cli.training import fit_scorer

    path, _ = _fit(tmp_path, "m")
    model = scorer.model_for("spacy", "en", path)
    table = fit_scorer.build_table(tmp_path / "gold", "en", tmp_path / "cache")
    rows = table.rows["spacy"]
    p, types = model.predict(rows, table.para_keys)
    assert p.shape == (len(rows),) and types.shape == (len(rows), 4)
    assert np.allclose(types.sum(axis=1), 1.0)
    settings = fit_scorer.CHOSEN["en"]
    X = design(rows, table.para_keys, model.features, model.context, model.paragraph)
    y = np.array([1 if it.label == 1 else 0 for it in table.items])
    keep = np.array([it.label is not None for it in table.items])
    mean, scale = X[keep].mean(axis=0), X[keep].std(axis=0)
    scale[scale < 1e-9] = 1.0
    reference = LogisticRegression(C=settings.C, max_iter=5000, tol=1e-8).fit((X[keep] - mean) / scale, y[keep])
    z = reference.decision_function((X - mean) / scale) + model.shift
    assert np.allclose(p, 1 / (1 + np.exp(-z)), atol=1e-4)
    # the vivid sentences score above the talk
    texts = [it.text for it in table.items]
    assert (
        p[texts.index("The stranger had a thick black beard and wore heavy boots.")]
        > p[texts.index("Why did you not tell me? she asked.")]
    )


def test_shipped_models_exist_for_every_processor_and_load():
    for lang, names in (("ru", ("spacy", "natasha", "stanza")), ("en", ("spacy",))):
        for name in names:
            model = scorer.model_for(name, lang)
            row = {f: 0.0 for f in model.features}
            p, types = model.predict([row, row], [0, 0])
            assert 0.0 <= p[0] <= 1.0 and math.isclose(float(types[0].sum()), 1.0, rel_tol=1e-6)


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(scorer.MissingModel):
        scorer.model_for("spacy", "en", tmp_path / "nothing.json")


def test_votes_carry_probability_type_probabilities_and_threshold():
    model = scorer.model_for("spacy", "en")
    sentences = [Sentence(0, 0, 5, "x"), Sentence(1, 6, 10, "y")]
    rows = [({f: 1.0 for f in model.features}, {}), ({}, {"skipped": "no word"})]
    votes = scorer.votes("spacy", "en", sentences, rows, threshold=0.6)
    for v in votes:
        assert v.yes == (v.score >= 0.6)
        assert set(v.evidence["type_scores"]) == set(scorer.TYPES)
        assert v.type == max(v.evidence["type_scores"], key=v.evidence["type_scores"].get)
    assert votes[1].evidence["skipped"] == "no word"


def test_models_fit_command_writes_the_files_and_prints_the_cv(cli, tmp_path):
    gold = tmp_path / "gold"
    gold.mkdir()
    _write_gold(gold)
    out = tmp_path / "out"
    r = cli(
        "models",
        "fit",
        "--gold",
        gold,
        "--out",
        out,
        "--lang",
        "en",
        "--json",
        env={"BOOKREADER_FEATURE_CACHE": str(tmp_path / "cache")},
    )
    assert r.code == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["written"] == [str(out / "en.json")] and (out / "en.json").exists()
    assert set(result["lobo"]["en"]["per_book"]) == {"alpha", "beta", "gamma"}
    assert "leave-one-book-out" in r.stderr and "ALL (pooled)" in r.stderr


def test_models_fit_without_labelled_books_is_bad_input(cli, tmp_path):
    r = cli("models", "fit", "--gold", tmp_path, "--lang", "en", "--out", tmp_path / "out")
    assert r.code == 2 and "no labelled books" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    r = cli("models", "fit", "--lang", "fr")
    assert r.code == 2 and "--lang" in r.stderr
