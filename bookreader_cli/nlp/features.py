"""Per-sentence features every processor shares the arithmetic of (its own lemmas, tags and trees go in).

A processor's learned model (nlp.scorer) reads a dict name → number per sentence. The names here are
stable: the fitted parameters (nlp/scorer/<lang>.json) refer to them.

- `surface`: length, punctuation and the speech marks the splitter found (nlp.segment).
- `lexicon_counts`: hits per lexicon category on the processor's own lemmas (log-scaled), densities.
- `VectorSpace` (Russian): for each content word, its cosine similarity to the nearest seed word of each
  lexicon category in navec (the 250 K-word embedding shipped in the natasha wheel), so a word no list
  holds still counts by what it resembles; a sentence gets the max per category and the share of its
  words close to any visual seed. One navec per process (`navec_embedding`), shared with Natasha's taggers.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import cache, lru_cache

from bookreader_cli.nlp.lexicon import (
    CATEGORY_TYPE,
    VISUAL_CATEGORIES,
    Lexicon,
    normalize,
)

_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)
QUOTES = '«»“”„"'
DASHES = "—–"
NEAR = 0.5  # cosine to a seed word from which a word counts as "close to" a visual category
TYPES = ("location", "character", "atmosphere", "object")


def words_of(text: str) -> list[str]:
    return _WORD.findall(text)


def surface(sentence, position: int, para_size: int) -> dict[str, float]:
    """Length, punctuation, the speech marks of nlp.segment, place in the paragraph."""
    text = sentence.text
    words = words_of(text)
    n = max(len(words), 1)
    return {
        "len_log": math.log1p(len(words)),
        "short": float(len(words) < 6),
        "long": float(len(words) >= 30),
        "commas": text.count(",") / n,
        "semicolons": float(text.count(";") + text.count(":")),
        "question": float("?" in text),
        "exclaim": float("!" in text),
        "ellipsis": float("…" in text or "..." in text),
        "dash_start": float(text.lstrip()[:1] in DASHES + "-"),
        "dashes": float(sum(text.count(d) for d in DASHES)),
        "quote_marks": float(any(q in text for q in QUOTES)),
        "speech": float(getattr(sentence, "speech", 0.0)),
        "speech_para_log": math.log1p(float(getattr(sentence, "speech_para", 0.0))),
        "first_in_para": float(position == 0),
        "para_size_log": math.log1p(para_size),
        "capitals": sum(1 for w in words[1:] if w[:1].isupper()) / n,
    }


def sentence_layout(sentences) -> list[tuple[int, int]]:
    """(position in its paragraph, sentences in that paragraph) per sentence."""
    sizes = Counter(s.paragraph for s in sentences)
    seen: Counter = Counter()
    out = []
    for s in sentences:
        out.append((seen[s.paragraph], sizes[s.paragraph]))
        seen[s.paragraph] += 1
    return out


def lexicon_counts(lemmas: list[str], lexicon: Lexicon, n_words: int) -> tuple[dict[str, float], Counter]:
    """log1p(hits) per category, visual density, number of visual categories; and the raw hit counts."""
    hits: Counter = Counter()
    for lemma in lemmas:
        hits.update(lexicon.categories(lemma))
    visual = sum(n for c, n in hits.items() if c != "speech")
    out = {f"lex_{c}": math.log1p(hits.get(c, 0)) for c in (*VISUAL_CATEGORIES, "speech")}
    out["lex_visual_density"] = visual / max(n_words, 1)
    out["lex_visual_log"] = math.log1p(visual)
    out["visual_hits"] = float(min(visual, 8))  # the ensemble's richness reads this
    out["lex_kinds"] = float(sum(1 for c in VISUAL_CATEGORIES if hits.get(c)))
    for kind in TYPES:
        out[f"lex_type_{kind}"] = math.log1p(sum(n for c, n in hits.items() if CATEGORY_TYPE.get(c) == kind))
    return out, hits


def pos_shares(upos: list[str]) -> dict[str, float]:
    """Shares of adjectives, nouns, verbs, adverbs, pronouns and proper nouns among the words."""
    words = [u for u in upos if u not in ("PUNCT", "SYM", "X", "NUM")] or ["X"]
    n = len(words)
    counts = Counter(words)
    return {f"pos_{u.lower()}": counts.get(u, 0) / n for u in ("ADJ", "NOUN", "VERB", "ADV", "PRON", "PROPN", "DET")}


def type_features(type_scores: dict[str, float], prefix: str = "tev") -> dict[str, float]:
    """The processor's rule-based type evidence (nlp.scoring.picture_scores), log-scaled, as features."""
    return {f"{prefix}_{k}": math.log1p(max(type_scores.get(k, 0.0), 0.0)) for k in TYPES}


# ---- word vectors --------------------------------------------------------------------------------------


@cache
def navec_embedding():
    """natasha's NewsEmbedding (navec), loaded once per process and shared by every user."""
    from bookreader_cli.nlp.compat import (
        route_pymorphy2_to_pymorphy3,
        single_thread_math,
    )

    single_thread_math()
    route_pymorphy2_to_pymorphy3()  # importing natasha imports pymorphy2 (see compat)
    from natasha import NewsEmbedding

    return NewsEmbedding()


@cache
def _morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


@lru_cache(maxsize=400_000)
def parses(form: str) -> tuple:
    """pymorphy3's parses of a lower-cased word form, once per process for every user (the vector look-up,
    spaCy's tagger and the screens all need them; parsing is the costly part)."""
    return tuple(_morph().parse(form))


class VectorSpace:
    """Similarity of words to the lexicon's seed words per category, from navec (Russian only)."""

    def __init__(self, lexicon: Lexicon):
        import numpy as np

        self.np = np
        self.emb = navec_embedding()
        self.ids = self.emb.vocab.word_ids
        self.categories = [c for c in (*VISUAL_CATEGORIES, "speech")]
        seeds, owner = [], []
        for c_index, category in enumerate(self.categories):
            for word in lexicon.members(category):
                wid = self.ids.get(word)
                if wid is not None:
                    seeds.append(wid)
                    owner.append(c_index)
        self.seed_owner = np.array(owner)
        self.seeds = self._unit(np.array(seeds))  # k × dim
        self.visual = np.array([c != "speech" for c in self.categories])
        self._cache: dict = {}  # word form → per-category max cosine (a numpy row), or None

    def _unit(self, ids):
        np = self.np
        pq = self.emb.pq
        vectors = pq.codes[pq.qdims, pq.indexes[ids]].reshape(len(ids), pq.dim).astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)

    def _lookup(self, form: str) -> int | None:
        """navec id of the word: its dictionary form (pymorphy3's first parse) if known, else the form."""
        if len(form) < 3:
            return None
        lemma = parses(form)[0].normal_form.replace("ё", "е")
        return self.ids.get(lemma, self.ids.get(form))

    def _fill(self, forms: list[str]) -> None:
        np = self.np
        todo = [f for f in dict.fromkeys(forms) if f not in self._cache]
        if not todo:
            return
        ids = [(f, self._lookup(f)) for f in todo]
        known = [(f, i) for f, i in ids if i is not None]
        for f, i in ids:
            if i is None:
                self._cache[f] = None
        if not known:
            return
        sims = self._unit(np.array([i for _, i in known])) @ self.seeds.T  # n × k
        per_category = np.full((len(known), len(self.categories)), -1.0, dtype=np.float32)
        for c in range(len(self.categories)):
            cols = self.seed_owner == c
            if cols.any():
                per_category[:, c] = sims[:, cols].max(axis=1)
        for (f, _), row in zip(known, per_category):
            self._cache[f] = row

    def prepare(self, texts: list[str]) -> None:
        """Look up every new word of a chapter at once (one matrix product instead of one per word)."""
        self._fill([normalize(w) for text in texts for w in words_of(text)])

    def features(self, words: list[str]) -> dict[str, float]:
        """Max similarity per category over the sentence's words (0 when none is known), the share of its
        words close (≥ NEAR) to some visual seed, and the best visual similarity."""
        np = self.np
        forms = [normalize(w) for w in words]
        self._fill(forms)
        rows = [self._cache[f] for f in forms if self._cache.get(f) is not None]
        out = {}
        if rows:
            m = np.vstack(rows)
            best = m.max(axis=0)
            visual_best = m[:, self.visual].max(axis=1)
            near = float((visual_best >= NEAR).sum())
            out["vec_near_share"] = near / max(len(words), 1)
            out["vec_near_log"] = math.log1p(near)
            out["vec_visual_max"] = float(visual_best.max())
            out["vec_visual_mean"] = float(visual_best.mean())
        else:
            best = np.zeros(len(self.categories))
            out.update(vec_near_share=0.0, vec_near_log=0.0, vec_visual_max=0.0, vec_visual_mean=0.0)
        for c, value in zip(self.categories, best):
            out[f"vec_{c}"] = max(float(value), 0.0)
        return out


@cache
def vector_space(lang: str) -> VectorSpace | None:
    """The shared VectorSpace for `lang` (None where no vectors exist: English)."""
    if lang != "ru":
        return None
    from bookreader_cli.nlp.lexicon import load

    return VectorSpace(load(lang))
