"""Fitting the per-processor scorers (nlp.scorer) on labelled books, with leave-one-book-out CV.

    bookreader models fit [--gold DIR] [--out DIR]     (or: python -m bookreader_cli.training.fit_scorer)

1. Every processor analyses every gold passage exactly as at runtime (nlp.segment, then its `analyse`,
   with the screen off so that the screen can be simulated), and the feature dicts are cached on disk
   (keyed by a hash of the code and lexicons, so a change recomputes them).
2. Each engine sentence takes the gold label of the gold sentence it overlaps most.
3. Leave-one-book-out: for each book, models fitted on the others score it; the ensemble (nlp.ensemble,
   the runtime code) turns the probabilities into descriptions; the gold metric (training.goldset) scores them.
4. The final models are fitted on all books and written as plain JSON (rounded, sorted keys).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bookreader_cli.nlp.ensemble import TYPE_CONTEXT
from bookreader_cli.training import goldset

RU_SPLITS = ("dev", "train", "train2", "train3")
EN_SPLITS = ("en-train", "en-dev")
SPLITS = {"ru": RU_SPLITS, "en": EN_SPLITS}
PROCESSORS = {"ru": ("spacy", "natasha", "stanza"), "en": ("spacy",)}
DEFAULT_GOLD = Path(__file__).resolve().parents[3] / "shared" / "gold"
# Where the processors' per-sentence features of the gold passages are cached (not part of the package).
DEFAULT_CACHE = Path(os.environ.get("BOOKREADER_FEATURE_CACHE", Path.home() / ".cache" / "bookreader" / "features"))
TYPES = ("location", "character", "atmosphere", "object")


@dataclass
class Item:
    """One engine sentence of a gold passage with its features per processor and its gold label."""

    book: str
    passage: str
    index: int
    start: int
    end: int
    paragraph: int
    kind: str
    text: str
    label: int | None  # 1 positive, 0 negative, None neutral
    type: str | None
    strength: int


def code_hash() -> str:
    """Hash of the code and word lists the features come from."""
    root = Path(__file__).resolve().parents[1] / "nlp"
    h = hashlib.sha256()
    names = ("base.py", "features.py", "lexicon.py", "scoring.py", "segment.py", "syntax.py", "tree.py")
    files = sorted([*(root / n for n in names), *root.glob("processors/*.py"), *root.glob("lexicons/*/*.txt")])
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def has_gold(gold: Path, lang: str) -> bool:
    return any((Path(gold) / f"{split}-passages.jsonl").exists() for split in SPLITS[lang])


def load_passages(gold: Path, lang: str):
    splits = RU_SPLITS if lang == "ru" else EN_SPLITS
    passages, labels = [], {}
    for split in splits:
        if (gold / f"{split}-passages.jsonl").exists():
            ps, ls = goldset.load_gold(gold, split)
            passages += ps
            labels.update(ls)
    return passages, labels


def items_of(passages, labels) -> list[Item]:
    from bookreader_cli.nlp.segment import segment

    items = []
    for p in passages:
        for s in segment(p["text"]):
            best, row = 0, None
            for g in p["sentences"]:
                overlap = min(s.end, g["end"]) - max(s.start, g["start"])
                if overlap > best:
                    best, row = overlap, labels[(p["id"], g["i"])]
            cls = goldset.gold_class(row) if row else 0
            items.append(
                Item(
                    p["book"],
                    p["id"],
                    s.index,
                    s.start,
                    s.end,
                    s.paragraph,
                    s.kind,
                    s.text,
                    cls,
                    row["label"] if row and row["label"] != "none" else None,
                    row["strength"] if row else 0,
                )
            )
    return items


def extract(name: str, lang: str, passages, cache: Path) -> list[list[dict]]:
    """Per passage, the processor's feature dict per engine sentence (cached)."""
    path = cache / f"{lang}-{name}-{code_hash()}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    from bookreader_cli.nlp.processors import create
    from bookreader_cli.nlp.segment import segment

    processor = create(name, None)
    processor.screen = False
    processor.load(lang)
    started = time.perf_counter()
    out = []
    for p in passages:
        sentences = segment(p["text"])
        out.append([features for features, _ in processor.analyse(p["text"], sentences, lang)])
    print(
        f"features: {name}/{lang} {sum(map(len, out))} sentences in {time.perf_counter() - started:.0f}s",
        file=sys.stderr,
    )
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out), encoding="utf-8")
    return out


# ---- data tables ---------------------------------------------------------------------------------------


def cheap_keys() -> set[str]:
    """Features a sentence gets without the processor's full analysis (what a screened-out one has)."""
    from bookreader_cli.nlp import features as F
    from bookreader_cli.nlp.base import Sentence

    return set(F.surface(Sentence(0, 0, 1, "x"), 0, 1)) | {"screen"}


def screened(rows: list[dict], cheap: set[str]) -> list[dict]:
    """The rows as the runtime screen leaves them: sentences that fail it keep cheap and vector features."""
    return [
        row if row.get("screen", 1.0) else {k: v for k, v in row.items() if k in cheap or k.startswith("vec_")}
        for row in rows
    ]


@dataclass
class Table:
    """Everything the CV needs for one language: items, per-processor rows, paragraph keys, books."""

    lang: str
    passages: list
    labels: dict
    items: list[Item]
    rows: dict[str, list[dict]]
    para_keys: list[int]
    books: list[str]


def build_table(gold: Path, lang: str, cache: Path = DEFAULT_CACHE, processors=None) -> Table:
    passages, labels = load_passages(gold, lang)
    items = items_of(passages, labels)
    cheap = cheap_keys()
    rows = {}
    for name in processors or PROCESSORS[lang]:
        per_passage = extract(name, lang, passages, cache)
        flat = [row for passage_rows in per_passage for row in passage_rows]
        assert len(flat) == len(items), (name, len(flat), len(items))
        rows[name] = screened(flat, cheap)
    keys: dict[tuple, int] = {}
    para_keys = [keys.setdefault((it.passage, it.paragraph), len(keys)) for it in items]
    books = sorted({it.book for it in items})
    return Table(lang, passages, labels, items, rows, para_keys, books)


# ---- fitting -------------------------------------------------------------------------------------------

# Neighbour features the description model reads (previous/next sentence of the paragraph).
CONTEXT = (
    "lex_visual_log",
    "lex_visual_density",
    "vec_visual_max",
    "vec_near_share",
    "speech",
    "dash_start",
    "tev_location",
    "tev_character",
    "tev_atmosphere",
    "tev_object",
    "lex_kinds",
    "len_log",
)
# Features averaged over the paragraph (a passage that describes reads like one).
PARAGRAPH = (
    "lex_visual_log",
    "lex_visual_density",
    "vec_visual_max",
    "vec_near_share",
    "speech",
    "dash_start",
    "lex_kinds",
    "tev_location",
    "tev_character",
    "tev_atmosphere",
    "tev_object",
)
NEVER = {"screen", "visual_hits"}  # bookkeeping, not model features


@dataclass
class Settings:
    """What LOBO CV chooses: regularisation, neutral sentences' weight, context, reference prior."""

    C: float = 0.05
    type_C: float = 0.05
    neutral_weight: float = 0.0  # strength-1 sentences as positives with this weight (0: left out)
    context: tuple = CONTEXT
    reference_prior: float = 0.3
    threshold: float = 0.6
    weights: tuple = (("natasha", 1.2), ("spacy", 1.0), ("stanza", 0.8))
    richness_weight: float = 0.0
    exclude: tuple = ()
    type_neutral_weight: float = 0.5  # typed strength-1 sentences in the type model, with this weight
    type_context: tuple = ()
    paragraph: tuple = PARAGRAPH  # features averaged over the paragraph
    type_only: tuple = ("lex_", "vec_", "tev_", "pos_")  # prefixes of the features the type model reads
    type_neighbours: float = 0.0  # the ensemble's weight of same-paragraph neighbours' type evidence


def feature_names(rows: list[dict], settings: Settings) -> list[str]:
    names = sorted({k for row in rows for k in row} - NEVER - set(settings.exclude))
    return names


def _standardise(X, w):
    import numpy as np

    mean = np.average(X, axis=0, weights=w)
    scale = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w))
    scale[scale < 1e-9] = 1.0
    return mean, scale


def _r(values, digits: int = 6):
    """Rounded plain floats (deterministic JSON)."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    return np.round(arr, digits).tolist()


def fit_processor(rows: list[dict], items: list[Item], para_keys: list[int], settings: Settings) -> dict:
    """One processor's spec for nlp.scorer.ProcessorModel: description model + type model."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from bookreader_cli.nlp.scorer import design

    names = feature_names(rows, settings)
    context = [c for c in settings.context if c in names]
    paragraph = [c for c in settings.paragraph if c in names]
    X = design(rows, para_keys, names, context, paragraph)
    y = np.array([1 if it.label == 1 or (it.label is None and it.type) else 0 for it in items])
    w = np.array([(settings.neutral_weight if it.label is None else 1.0) for it in items], dtype=float)
    keep = w > 0
    X, y, w = X[keep], y[keep], w[keep]
    mean, scale = _standardise(X, w)
    model = LogisticRegression(C=settings.C, max_iter=5000, tol=1e-8)
    model.fit((X - mean) / scale, y, sample_weight=w)
    base = float(np.average(y, weights=w))
    shift = _logit(settings.reference_prior) - _logit(base)

    T_names = [n for n in names if not settings.type_only or n.startswith(settings.type_only)]
    type_context = [c for c in settings.type_context if c in names]
    T = design(rows, para_keys, T_names, type_context)
    typed = [
        i for i, it in enumerate(items) if it.type in TYPES and (it.label == 1 or settings.type_neutral_weight > 0)
    ]
    tw = np.array([1.0 if items[i].label == 1 else settings.type_neutral_weight for i in typed])
    T = T[typed]
    t = np.array([TYPES.index(items[i].type) for i in typed])
    t_mean, t_scale = _standardise(T, tw)
    present = sorted(set(t.tolist()))
    if len(present) < 2:  # one type only (a tiny training set): a constant model
        classes = [TYPES[c] for c in present] or [TYPES[1]]
        t_coef, t_intercept = np.zeros((T.shape[1], 1)), np.zeros(1)
    else:
        type_model = LogisticRegression(C=settings.type_C, max_iter=5000, tol=1e-8)
        type_model.fit((T - t_mean) / t_scale, t, sample_weight=tw)
        classes = [TYPES[c] for c in type_model.classes_]
        t_coef, t_intercept = type_model.coef_.T, type_model.intercept_
        if len(classes) == 2:  # scikit-learn's binary form: one logit for the second class
            t_coef = np.hstack([np.zeros_like(t_coef), t_coef])
            t_intercept = np.concatenate([[0.0], t_intercept])
    return {
        "features": names,
        "context": context,
        "paragraph": paragraph,
        "description": {
            "mean": _r(mean),
            "scale": _r(scale),
            "coef": _r(model.coef_[0]),
            "intercept": _r(model.intercept_[0]),
        },
        "shift": round(shift, 6),
        "base_rate": round(base, 6),
        "type": {
            "classes": classes,
            "features": T_names,
            "context": type_context,
            "mean": _r(t_mean),
            "scale": _r(t_scale),
            "coef": _r(t_coef),
            "intercept": _r(t_intercept),
        },
    }


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# ---- leave-one-book-out --------------------------------------------------------------------------------


def descriptions_for(table: Table, idx: list[int], probs: dict, config) -> dict[str, list[dict]]:
    """Run the runtime ensemble over the passages of `idx` from per-processor (p, types) arrays."""
    from bookreader_cli.nlp import ensemble
    from bookreader_cli.nlp.base import Sentence, Vote

    by_passage: dict[str, list[int]] = {}
    for i in idx:
        by_passage.setdefault(table.items[i].passage, []).append(i)
    texts = {p["id"]: p["text"] for p in table.passages}
    results = {}
    for passage, members in by_passage.items():
        sentences = [
            Sentence(
                table.items[i].index,
                table.items[i].start,
                table.items[i].end,
                table.items[i].text,
                table.items[i].paragraph,
                table.items[i].kind,
            )
            for i in members
        ]
        votes: dict[str, dict[int, Vote]] = {}
        for name, (p, types) in probs.items():
            votes[name] = {}
            for i, s in zip(members, sentences):
                scores = dict(zip(TYPES, (float(v) for v in types[i])))
                hits = table.rows[name][i].get("visual_hits", 0.0)
                votes[name][s.index] = Vote(
                    s.index,
                    float(p[i]),
                    float(p[i]) >= config.threshold,
                    max(TYPES, key=lambda t: scores[t]),
                    {"type_scores": scores, "features": {"visual_hits": hits}},
                )
        decisions = ensemble.decide(sentences, votes, config)
        results[passage] = [d.to_dict() for d in ensemble.merge(texts[passage], sentences, decisions, config)]
    return results


def lobo(table: Table, settings: Settings, processors=None, mode: str = "ensemble", k: int = 20) -> dict:
    """Leave-one-book-out CV of the whole chain; returns pooled and per-book metrics."""
    import numpy as np

    from bookreader_cli.nlp import ensemble
    from bookreader_cli.nlp.scorer import ProcessorModel

    names = list(processors or table.rows)
    n = len(table.items)
    probs = {name: (np.zeros(n), np.zeros((n, 4))) for name in names}
    for book in table.books:
        test = [i for i, it in enumerate(table.items) if it.book == book]
        train = [i for i, it in enumerate(table.items) if it.book != book]
        for name in names:
            rows = table.rows[name]
            spec = fit_processor(
                [rows[i] for i in train], [table.items[i] for i in train], [table.para_keys[i] for i in train], settings
            )
            p, types = ProcessorModel(spec).predict([rows[i] for i in test], [table.para_keys[i] for i in test])
            probs[name][0][test] = p
            probs[name][1][test] = types
    config = ensemble.EnsembleConfig(
        weights=dict(settings.weights),
        threshold=settings.threshold,
        union=(mode == "parallel"),
        richness_weight=settings.richness_weight,
        type_context=settings.type_neighbours,
    )
    per_book: dict[str, dict] = {}
    total: dict = {}
    for book in table.books:
        idx = [i for i, it in enumerate(table.items) if it.book == book]
        results = descriptions_for(table, idx, probs, config)
        passages = [p for p in table.passages if p["book"] == book]
        counts = goldset.tally(passages, table.labels, results)
        per_book[book] = goldset.summarise(counts, k)
        total = goldset.add(total, counts) if total else counts
    f1s = [m["f1"] for m in per_book.values() if m["tp"] + m["fn"]]
    return {
        "pooled": goldset.summarise(total, k),
        "per_book": per_book,
        "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else 0.0,
        "probs": probs,
    }


# ---- the command ---------------------------------------------------------------------------------------

# Chosen by leave-one-book-out CV over the 32 Russian books (see README, "How the scorers were fitted").
# English (5 books, spaCy alone): reference prior 0.4 (F1 0.687 vs 0.662 at 0.3), type C 0.01.
# The type model's C (0.05: type accuracy with the type context 0.826 as at 0.1, 0.823 at 0.03, 0.805 at
# 0.3) and the ensemble's type context (nlp.ensemble.TYPE_CONTEXT) likewise.
CHOSEN = {
    "ru": Settings(type_neighbours=TYPE_CONTEXT["ru"]),
    "en": Settings(weights=(("spacy", 1.0),), reference_prior=0.4, type_C=0.01, type_neighbours=TYPE_CONTEXT["en"]),
}


def fit_all(table: Table, settings: Settings, cv: dict | None = None) -> dict:
    """The data file's content: every processor's model fitted on all books, plus how it was chosen."""
    processors = {}
    for name, rows in table.rows.items():
        processors[name] = fit_processor(rows, table.items, table.para_keys, settings)
    meta = {
        "format": 1,
        "lang": table.lang,
        "reference_prior": settings.reference_prior,
        "threshold": settings.threshold,
        "weights": dict(settings.weights),
        "settings": {
            "C": settings.C,
            "type_C": settings.type_C,
            "neutral_weight": settings.neutral_weight,
            "type_neutral_weight": settings.type_neutral_weight,
            "richness_weight": settings.richness_weight,
            "type_neighbours": settings.type_neighbours,
        },
        "trained_on": {
            "books": table.books,
            "sentences": len(table.items),
            "positives": sum(1 for it in table.items if it.label == 1),
        },
    }
    if cv is not None:
        meta["lobo"] = {"pooled": cv["pooled"], "macro_f1": cv["macro_f1"]}
    return {**meta, "processors": processors}


def dumps(model: dict) -> str:
    """Deterministic JSON: sorted keys, rounded floats, one trailing newline."""
    return json.dumps(model, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def format_table(cv: dict, k: int = 20) -> str:
    lines = [f"{'book':12s} {'sent':>5s} {'pos':>4s} {'P':>6s} {'R':>6s} {'F1':>6s} {'type':>6s} {'P@' + str(k):>6s}"]
    for book, m in cv["per_book"].items():
        lines.append(
            f"{book:12s} {m['tp'] + m['fp'] + m['fn'] + m['tn']:5d} {m['tp'] + m['fn']:4d} {m['precision']:6.3f} "
            f"{m['recall']:6.3f} {m['f1']:6.3f} {m['type_accuracy']:6.3f} {m[f'p_at_{k}']:6.3f}"
        )
    m = cv["pooled"]
    lines.append(
        f"{'ALL (pooled)':12s} {m['tp'] + m['fp'] + m['fn'] + m['tn']:5d} {m['tp'] + m['fn']:4d} {m['precision']:6.3f} "
        f"{m['recall']:6.3f} {m['f1']:6.3f} {m['type_accuracy']:6.3f} {m[f'p_at_{k}']:6.3f}   macro F1 {cv['macro_f1']:.3f}"
    )
    return "\n".join(lines)


def format_markdown(cv: dict, k: int = 20) -> str:
    """The per-book table as Markdown (for the README)."""
    lines = [
        "| book | non-neutral sentences | positives | P | R | F1 | type acc. | P@20 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = list(cv["per_book"].items()) + [("**all (pooled)**", cv["pooled"])]
    for book, m in rows:
        lines.append(
            f"| {book} | {m['tp'] + m['fp'] + m['fn'] + m['tn']} | {m['tp'] + m['fn']} | {m['precision']:.3f} | "
            f"{m['recall']:.3f} | {m['f1']:.3f} | {m['type_accuracy']:.3f} | {m[f'p_at_{k}']:.3f} |"
        )
    return "\n".join(lines)


def fit_command(
    gold: Path = DEFAULT_GOLD,
    out: Path | None = None,
    cache: Path = DEFAULT_CACHE,
    langs=("ru", "en"),
    cv: bool = True,
    echo=print,
) -> dict:
    """Fit, cross-validate and write nlp/scorer/<lang>.json (or into `out`); returns the CV reports."""
    from bookreader_cli.nlp.scorer import MODEL_DIR

    reports: dict = {"_written": []}
    for lang in langs:
        table = build_table(gold, lang, cache)
        if not table.items:
            continue
        settings = CHOSEN[lang]
        report = lobo(table, settings) if cv and len(table.books) > 1 else None
        if report is not None:
            echo(
                f"leave-one-book-out CV, {lang}, {len(table.books)} books, mode ensemble "
                f"({', '.join(table.rows)}), threshold {settings.threshold}:"
            )
            echo(format_table(report))
            reports[lang] = {k: v for k, v in report.items() if k != "probs"}
        target = (Path(out) if out else MODEL_DIR) / f"{lang}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dumps(fit_all(table, settings, report)), encoding="utf-8")
        reports["_written"].append(str(target))
        echo(f"wrote {target}")
    return reports


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Fit the description scorers on labelled books (LOBO CV).")
    ap.add_argument("--gold", type=Path, default=DEFAULT_GOLD)
    ap.add_argument("--out", type=Path, default=None, help="directory for ru.json/en.json (default: the package)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--lang", default="ru,en")
    ap.add_argument("--no-cv", action="store_true")
    args = ap.parse_args(argv)
    fit_command(
        args.gold,
        args.out,
        args.cache,
        [x for x in args.lang.split(",") if x],
        not args.no_cv,
        echo=lambda line: print(line, file=sys.stderr),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
