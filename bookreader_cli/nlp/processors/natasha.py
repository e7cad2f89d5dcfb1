"""Natasha processor: slovnet morphology, dependency syntax and NER, weighed with its own table.

Evidence (features for its learned model, nlp.scorer): lexicon hits on Natasha's lemmas (POS-aware, via MorphVocab), visual nouns that carry modifiers
in the (repaired) dependency tree, impersonal state predicates ("было темно"), the visible look of a
person (PER entity or animal as subject of a posture verb), LOC entities, speech verbs and clauses of
speech, part-of-speech shares, the rule-based type evidence of nlp.syntax, and navec similarities of the
sentence's words to the lexicon's seed words (nlp.features.VectorSpace, the same navec the taggers use).

Speed: slovnet is the cost, so a sentence goes through it only when one of its words *could* be a visual
lemma (a cached pymorphy3 look-up over all parses); the others are scored on their surface and vector
features alone (also letting words close to a seed word in navec through cost 6 % more analysis and no
F1 in leave-one-book-out CV), with `evidence["skipped"]`. The remaining sentences go to slovnet in large batches; NER runs only on those
with a capitalised word after the first, or a first word that may be a name (where a name can be).
"""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from typing import Any

from bookreader_cli.config import NlpSettings
from bookreader_cli.nlp import features as F, scorer
from bookreader_cli.nlp.base import Sentence, Vote
from bookreader_cli.nlp.compat import route_pymorphy2_to_pymorphy3, single_thread_math
from bookreader_cli.nlp.lexicon import load as load_lexicon, without_yo
from bookreader_cli.nlp.scoring import has_look, picture_scores
from bookreader_cli.nlp.syntax import NOMINAL, Tree, is_being, typing_hits
from bookreader_cli.nlp.tree import repair_tree

BATCH_SIZE = 64

_MODIFIER_RELS = {"amod", "nmod", "acl", "appos", "conj"}
_STATE_POS = {"ADV", "ADJ"}
_SPEECH_RELS = {"ccomp", "parataxis"}


class NatashaProcessor:
    name = "natasha"

    def __init__(self, nlp: NlpSettings | None = None, screen: bool = True):
        self.screen = screen  # False: analyse every sentence (feature extraction for fitting)
        self.threshold = float((nlp or NlpSettings()).threshold)
        self.models: Any = None  # the Natasha models, by role, once loaded
        self.load_seconds: float | None = None
        self._lemma_cache: dict[tuple, str] = {}
        self._maybe_cache: dict[str, bool] = {}

    def availability(self) -> tuple[bool, str]:
        for module in ("natasha", "slovnet", "navec", "pymorphy3"):
            if importlib.util.find_spec(module) is None:
                return False, f"{module} is not installed"
        return True, "natasha news models (navec + slovnet, shipped in the wheel)"

    def load(self, lang: str = "ru") -> float:
        if self.models is not None:
            return 0.0
        started = time.perf_counter()
        single_thread_math()
        route_pymorphy2_to_pymorphy3()
        from natasha import MorphVocab, NewsMorphTagger, NewsNERTagger, NewsSyntaxParser

        emb = F.navec_embedding()  # one navec per process, shared with the vector features
        self.models = {
            "vocab": MorphVocab(),
            "morph": NewsMorphTagger(emb),
            "syntax": NewsSyntaxParser(emb),
            "ner": NewsNERTagger(emb),
        }
        for key in ("morph", "syntax", "ner"):
            self.models[key].batch_size = BATCH_SIZE
        self.load_seconds = time.perf_counter() - started
        return self.load_seconds

    def score(self, text: str, sentences: list[Sentence], lang: str = "ru") -> list[Vote]:
        return scorer.votes(self.name, lang, sentences, self.analyse(text, sentences, lang), self.threshold)

    def analyse(self, text: str, sentences: list[Sentence], lang: str = "ru") -> list[tuple[dict, dict]]:
        """(features, evidence) per sentence: surface and vector features for all, Natasha's analysis for
        those that pass the screen (all, with screen=False)."""
        if lang != "ru":
            raise ValueError(f"natasha handles Russian only, not {lang!r}")
        self.load()
        from razdel import tokenize

        lexicon = load_lexicon("ru")
        space = F.vector_space("ru")
        assert space is not None  # Russian always has vectors
        tokens = [[t.text for t in tokenize(s.text)] for s in sentences]
        layout = F.sentence_layout(sentences)
        space.prepare([s.text for s in sentences])
        out: list[tuple[dict, dict]] = []
        for s, words, (position, size) in zip(sentences, tokens, layout):
            cheap = {**F.surface(s, position, size), **space.features(F.words_of(s.text))}
            cheap["screen"] = float(self._maybe_visual(words, lexicon))
            out.append((cheap, {}))
        todo = [i for i, (cheap, _) in enumerate(out) if cheap["screen"] or not self.screen]
        for i in sorted(set(range(len(out))) - set(todo)):
            out[i][1]["skipped"] = "no word can be a visual lemma"
        if todo:
            chunk = [[without_yo(w) for w in tokens[i]] for i in todo]
            morphs = list(self.models["morph"].map(chunk))
            parses = list(self.models["syntax"].map(chunk))
            # NER only where a name can be: a capitalised word after the first one
            named = [i for i in todo if any(w[:1].isupper() for w in tokens[i][1:]) or self._may_be_name(tokens[i][:1])]
            found = dict(zip(named, self.models["ner"].map([sentences[i].text for i in named])))
            ners = [found[i].spans if i in found else [] for i in todo]
            for i, morph, parse, ner in zip(todo, morphs, parses, ners):
                features, evidence = self._analyse_one(sentences[i], morph.tokens, parse.tokens, ner, lexicon)
                out[i][0].update(features)
                out[i][1].update(evidence)
        return out

    # -- internals ----------------------------------------------------------------------------------
    def _maybe_visual(self, words: list[str], lexicon) -> bool:
        vocab = self.models["vocab"]
        for word in words:
            key = word.lower()
            known = self._maybe_cache.get(key)
            if known is None:
                known = any(lexicon.is_visual(p.normal_form) for p in vocab.parse(key)) if key.isalpha() else False
                self._maybe_cache[key] = known
            if known:
                return True
        return False

    def _may_be_name(self, first: list[str]) -> bool:
        """Could the sentence's first word be a name (pymorphy3 knows it as one, or not at all)?"""
        if not first or not first[0][:1].isupper():
            return False
        key = "^" + first[0]
        known = self._maybe_cache.get(key)
        if known is None:
            parses = self.models["vocab"].parse(first[0])
            known = any(
                {"Name", "Surn", "Patr", "Geox", "Orgn"} & set(str(p.tag).replace(" ", ",").split(","))
                or p.tag.POS is None
                or "UNKN" in p.tag
                for p in parses[:3]
            )
            self._maybe_cache[key] = known
        return known

    def _lemma(self, word: str, pos: str, feats: dict) -> str:
        key = (word.lower(), pos, tuple(sorted(feats.items())))
        lemma = self._lemma_cache.get(key)
        if lemma is None:
            lemma = self.models["vocab"].lemmatize(word, pos, feats) if word.isalpha() else word
            self._lemma_cache[key] = lemma
        return lemma

    def _analyse_one(self, sentence: Sentence, morph_tokens, syntax_tokens, ner_spans, lexicon) -> tuple[dict, dict]:
        words = [t.text for t in morph_tokens]
        pos = [t.pos for t in morph_tokens]
        lemmas = [self._lemma(t.text, t.pos, t.feats) for t in morph_tokens]
        heads = repair_tree([int(t.head_id) - 1 for t in syntax_tokens])
        rels = [t.rel for t in syntax_tokens]
        cats = [lexicon.categories(lemma) for lemma in lemmas]

        hits: Counter = Counter()
        for c in cats:
            hits.update(c)
        children: dict[int, list[int]] = {}
        for i, h in enumerate(heads):
            children.setdefault(h, []).append(i)

        # visual nouns that the tree gives modifiers to ("лицо" ← "бритым", "пухлым")
        modified = []
        for i, c in enumerate(cats):
            if pos[i] == "NOUN" and c and "speech" not in c:
                mods = [
                    j for j in children.get(i, []) if rels[j] in _MODIFIER_RELS and pos[j] in ("ADJ", "VERB", "NOUN")
                ]
                if mods:
                    modified.append(" ".join(words[j] for j in sorted([i] + mods)))
        # impersonal state: root ADV/short ADJ from light/weather/sound ("было тихо, темно")
        state = sum(
            1
            for i, c in enumerate(cats)
            if pos[i] in _STATE_POS and (c & {"light", "weather", "sound"}) and (heads[i] == -1 or rels[i] == "conj")
        )
        # a person's or animal's look: subject is a PER entity or an animal, predicate a posture verb
        per_tokens = set()
        plain = without_yo(sentence.text)  # the text the tokens were tagged as
        for span in ner_spans:
            if span.type == "PER":
                per_tokens.update(_tokens_in(morph_tokens, plain, span.start, span.stop))
        beings = {
            j
            for j, t in enumerate(morph_tokens)
            if pos[j] in NOMINAL and is_being(t.pos, t.feats, cats[j], j in per_tokens, lemmas[j])
        }
        type_hits = typing_hits(Tree(lemmas, pos, heads, rels, cats, beings))
        person_look = sum(
            1
            for i, c in enumerate(cats)
            if "posture" in c
            and any(rels[j] == "nsubj" and (j in per_tokens or "animals" in cats[j]) for j in children.get(i, []))
        )
        loc_entities = sum(1 for span in ner_spans if span.type == "LOC")
        speech_clause = sum(
            1
            for i, c in enumerate(cats)
            if "speech" in c and pos[i] == "VERB" and any(rels[j] in _SPEECH_RELS for j in children.get(i, []))
        )

        n_words = sum(1 for w in words if w.isalpha())
        features, _ = F.lexicon_counts(lemmas, lexicon, n_words)
        looked_at = sum(1 for j, r in enumerate(rels) if r == "nsubj" and (j in per_tokens or "animals" in cats[j]))
        type_scores = picture_scores(
            type_hits,
            {
                "atmosphere": 2.0 * state,
                "character": 1.0 * person_look + (1.0 * looked_at if has_look(hits) else 0.0),
                "location": 1.0 * loc_entities,
            },
        )
        first_person = sum(1 for t in morph_tokens if t.pos == "PRON" and t.feats.get("Person") in ("1", "2"))
        features.update(F.pos_shares(pos))
        features.update(F.type_features(type_scores))
        features.update(
            {
                "analysed": 1.0,
                "modified_nouns": float(min(len(modified), 4)),
                "state_predicate": float(min(state, 2)),
                "person_look": float(min(person_look, 2)),
                "looked_at": float(min(looked_at, 2)),
                "loc_entity": float(min(loc_entities, 2)),
                "per_entity": float(min(sum(1 for s in ner_spans if s.type == "PER"), 2)),
                "speech_clause": float(min(speech_clause, 2)),
                "dialogue_person": float(min(first_person, 3)),
                "imperative": float(any(t.feats.get("Mood") == "Imp" for t in morph_tokens)),
                "past_tense": float(any(t.feats.get("Tense") == "Past" for t in morph_tokens)),
                "present_tense": float(
                    any(t.feats.get("Tense") == "Pres" and t.pos in ("VERB", "AUX") for t in morph_tokens)
                ),
            }
        )
        evidence = {
            "categories": dict(hits),
            "modified_nouns": modified[:8],
            "entities": [(s.type, sentence.text[s.start : s.stop]) for s in ner_spans],
            "rule_types": type_scores,
        }
        return features, evidence


def _tokens_in(tokens, text: str, start: int, stop: int) -> list[int]:
    """Indices of the tokens whose text lies inside text[start:stop] (tokens are in order)."""
    out, pos = [], 0
    for i, token in enumerate(tokens):
        at = text.find(token.text, pos)
        if at < 0:
            continue
        pos = at + len(token.text)
        if at >= start and pos <= stop:
            out.append(i)
    return out
