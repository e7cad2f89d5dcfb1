"""Learned, calibrated per-processor scorers: fitted coefficients (ru.json, en.json) evaluated with numpy.

Each processor turns a sentence into named features from its own analysis (nlp.features); this module
turns a chapter's feature dicts into, per sentence,
- `p`: the probability that the sentence is part of a visual description, calibrated to the reference
  prior stored with the model (`reference_prior`, chosen by leave-one-book-out CV so that the ensemble's
  default threshold 0.6 is a good cut: p is what a logistic model fitted on the labelled books would say if
  descriptions were that common, i.e. its log-odds shifted by logit(reference_prior) − logit(base rate));
- `types`: the probability of each description type given a description (a multinomial model).
The design matrix is the sentence's features plus its neighbours' (previous and next sentence of the same
paragraph; a short sentence that continues a description reads like its neighbours). Features are
standardised with the training mean and scale stored in the file. No pickle, no scikit-learn at runtime:
the files are written by `bookreader models fit` (training/fit_scorer.py), deterministically.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

TYPES = ("location", "character", "atmosphere", "object")
MODEL_DIR = Path(__file__).resolve().parent


class MissingModel(RuntimeError):
    """No fitted scorer for this processor and language."""


def model_path(lang: str) -> Path:
    return MODEL_DIR / f"{'ru' if lang == 'ru' else 'en'}.json"


@cache
def load_models(path: str) -> dict:
    """The fitted file (once per process), as {processor: ProcessorModel} plus its metadata."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return {
        "meta": {k: v for k, v in raw.items() if k != "processors"},
        "processors": {name: ProcessorModel(spec) for name, spec in raw.get("processors", {}).items()},
    }


def model_for(processor: str, lang: str, path: str | Path | None = None) -> ProcessorModel:
    file = Path(path) if path else model_path(lang)
    if not file.exists():
        raise MissingModel(f"no fitted scorer file {file} (run `bookreader models fit`)")
    models = load_models(str(file))["processors"]
    if processor not in models:
        raise MissingModel(f"no fitted scorer for {processor!r} in {file.name} (run `bookreader models fit`)")
    return models[processor]


class Linear:
    """Standardised linear model: z = ((x − mean) / scale) · coef + intercept (coef: d or d × classes)."""

    def __init__(self, spec: dict):
        import numpy as np

        self.mean = np.asarray(spec["mean"], dtype=np.float64)
        self.scale = np.asarray(spec["scale"], dtype=np.float64)
        self.coef = np.asarray(spec["coef"], dtype=np.float64)
        self.intercept = np.asarray(spec["intercept"], dtype=np.float64)

    def __call__(self, X):
        return ((X - self.mean) / self.scale) @ self.coef + self.intercept


class ProcessorModel:
    """One processor's description model and type model (see the module docstring)."""

    def __init__(self, spec: dict):
        self.features: list[str] = list(spec["features"])
        self.context: list[str] = list(spec.get("context", []))
        self.paragraph: list[str] = list(spec.get("paragraph", []))
        self.description = Linear(spec["description"])
        self.shift = float(spec.get("shift", 0.0))
        self.type_classes: list[str] = list(spec["type"]["classes"])
        self.type_features: list[str] = list(spec["type"]["features"])
        self.type_context: list[str] = list(spec["type"].get("context", []))
        self.type_model = Linear(spec["type"])

    def predict(self, rows: list[dict], paragraphs: list[int]):
        """(p per sentence, type probabilities per sentence as n × 4 in TYPES order)."""
        import numpy as np

        X = design(rows, paragraphs, self.features, self.context, self.paragraph)
        z = self.description(X) + self.shift
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        T = design(rows, paragraphs, self.type_features, self.type_context)
        logits = self.type_model(T)
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        full = np.zeros((len(rows), len(TYPES)))  # a type the training books never showed: probability 0
        for j, kind in enumerate(self.type_classes):
            full[:, TYPES.index(kind)] = probs[:, j]
        return p, full


def design(
    rows: list[dict], paragraphs: list[int], features: list[str], context: list[str], paragraph: list[str] | tuple = ()
):
    """Feature matrix: the named features (missing = 0), then for `context` the previous and the next
    sentence's values in the same paragraph (0 at the paragraph's edge) and two edge flags, then for
    `paragraph` the mean over the sentence's paragraph."""
    import numpy as np

    n = len(rows)
    X = np.array([[row.get(f, 0.0) for f in features] for row in rows], dtype=np.float64).reshape(n, len(features))
    if paragraph:
        Pm = np.array([[row.get(f, 0.0) for f in paragraph] for row in rows], dtype=np.float64).reshape(
            n, len(paragraph)
        )
        keys, inverse = np.unique(np.asarray(paragraphs), return_inverse=True)
        sums = np.zeros((len(keys), len(paragraph)))
        np.add.at(sums, inverse, Pm)
        counts = np.bincount(inverse, minlength=len(keys))[:, None]
        X = np.hstack([X, (sums / counts)[inverse]])
    if not context:
        return X
    C = np.array([[row.get(f, 0.0) for f in context] for row in rows], dtype=np.float64).reshape(n, len(context))
    para = np.asarray(paragraphs)
    same_prev = np.zeros(n, dtype=bool)
    same_next = np.zeros(n, dtype=bool)
    if n > 1:
        same_prev[1:] = para[1:] == para[:-1]
        same_next[:-1] = para[:-1] == para[1:]
    prev = np.zeros_like(C)
    nxt = np.zeros_like(C)
    prev[1:] = C[:-1]
    nxt[:-1] = C[1:]
    prev[~same_prev] = 0.0
    nxt[~same_next] = 0.0
    return np.hstack([X, prev, nxt, (~same_prev)[:, None].astype(float), (~same_next)[:, None].astype(float)])


def design_names(features: list[str], context: list[str], paragraph=()) -> list[str]:
    names = [*features, *(f"para_{c}" for c in paragraph)]
    if not context:
        return names
    return [*names, *(f"prev_{c}" for c in context), *(f"next_{c}" for c in context), "para_start", "para_end"]


def votes(
    processor: str,
    lang: str,
    sentences,
    analyses: list[tuple[dict, dict]],
    threshold: float = 0.6,
    path: str | Path | None = None,
):
    """One Vote per sentence from (features, evidence) pairs: score = p, yes = p ≥ threshold, type = the
    most probable type, evidence["type_scores"] = the type probabilities (the ensemble weighs them by p)."""
    from bookreader_cli.nlp.base import Vote

    model = model_for(processor, lang, path)
    rows = [a[0] for a in analyses]
    p, types = model.predict(rows, [s.paragraph for s in sentences])
    out = []
    for s, (features, evidence), prob, type_row in zip(sentences, analyses, p, types):
        scores = {t: round(float(v), 4) for t, v in zip(TYPES, type_row)}
        kind = max(TYPES, key=lambda t: scores[t])
        score = round(float(prob), 4)
        evidence = dict(evidence, type_scores=scores, features={k: round(v, 3) for k, v in features.items()})
        out.append(Vote(s.index, score, score >= threshold, kind, evidence))
    return out
