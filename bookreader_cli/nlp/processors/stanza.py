"""Stanza processor: its own POS, lemmas, dependency trees and NER, scored by its own learned model.

Models come from `settings.stanza_dir` (a standard Stanza resources dir: downloaded elsewhere, or
trained here by `bookreader models train-stanza`). We hand Stanza our own sentences, tokenised with
razdel, so its tokenizer never re-splits them (`tokenize_pretokenized=True`).

Features (from Stanza's analysis, for nlp.scorer): lexicon hits on Stanza's lemmas; adjectives and
participles per word; visual nouns that carry `amod`/`nmod` dependents; copular and verbless descriptions
(`cop`, an adjective/adverb root: "Ночь была тёмная", "Было тихо"); LOC entities (NER, off by default);
verbs of speech or thought heading a clause, first/second-person pronouns and imperatives (dialogue);
part-of-speech shares; the rule-based type evidence; navec similarities of the words (nlp.features).

Speed (Karamazov slice, one core: ~4.5K → ~18K chars/s): sentences without any word that could be a
visual lemma skip the pipeline (`_screen`; ~60% of a novel) and are scored on
their surface and vector features, the parser decodes with
`stanza_speed` (exact, ~3× faster than Stanza's own Chu-Liu-Edmonds), Stanza memoises seq2seq lemmas,
and NER is off unless `nlp.stanza_ner` asks for it.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bookreader_cli.config import NlpSettings
from bookreader_cli.nlp import features as F, scorer
from bookreader_cli.nlp.base import Sentence, Vote
from bookreader_cli.nlp.compat import single_thread_math
from bookreader_cli.nlp.lexicon import load as load_lexicon, without_yo
from bookreader_cli.nlp.scoring import has_look, picture_scores
from bookreader_cli.nlp.stanza_models import StanzaModels, resolve_models
from bookreader_cli.nlp.syntax import Tree, is_being, typing_hits

BATCH_SENTENCES = 256  # sentences per Pipeline call: big enough to batch, small enough for memory
SKIPPED_NOT_VISUAL = "no word can be a visual lemma"

_MODIFIER_RELS = {"amod", "nmod", "acl", "appos"}
_CLAUSE_RELS = {"ccomp", "parataxis", "xcomp"}


class StanzaProcessor:
    name = "stanza"

    def __init__(
        self,
        nlp: NlpSettings | None = None,
        models_dir: str | Path | None = None,
        lang: str = "ru",
        screen: bool = True,
        ner: bool | None = None,
    ):
        # explicit: the user named a directory (argument or config nlp.stanza_dir); otherwise
        # <home>/models/stanza is only the default, and bundled models may stand in
        nlp = nlp or NlpSettings()
        self.explicit = bool(models_dir or nlp.stanza_dir)
        directory = models_dir or nlp.stanza_path()
        self.models_dir = Path(directory).expanduser() if directory else None
        self.lang = lang
        self.pipeline: Any = None
        self.models: StanzaModels | None = None
        self.load_seconds: float | None = None
        self.screen = screen  # skip the pipeline for sentences without a visual word (see _screen)
        self.threshold = float(nlp.threshold)
        # NER off unless asked for (nlp.stanza_ner): on Karamazov (1665 sentences) and the dev gold set it
        # changed no yes/no vote (dev type accuracy 0.837 without, 0.816 with) and cost ~15% of the time
        self.ner = bool(nlp.stanza_ner) if ner is None else ner
        self._screen_fn: Callable[[list[str]], bool] | None = None

    # -- the Processor protocol ---------------------------------------------------------------------
    def availability(self) -> tuple[bool, str]:
        """Files and the package only: no torch import, no model loading."""
        if importlib.util.find_spec("stanza") is None:
            return False, "stanza is not installed (pip install 'bookreader[nlp]')"
        models, why = resolve_models(self.models_dir, self.explicit, self.lang)
        if models is None:
            return False, why
        return True, models.source

    def load(self, lang: str | None = None) -> float:
        if self.pipeline is not None:
            return 0.0
        self.lang = lang or self.lang
        started = time.perf_counter()
        models, why = resolve_models(self.models_dir, self.explicit, self.lang)
        if models is None:
            raise RuntimeError(why)
        self.pipeline = build_pipeline(models, ner=self.ner)
        self.models = models
        self.load_seconds = time.perf_counter() - started
        return self.load_seconds

    def score(self, text: str, sentences: list[Sentence], lang: str = "ru") -> list[Vote]:
        return scorer.votes(self.name, lang, sentences, self.analyse(text, sentences, lang), self.threshold)

    def analyse(self, text: str, sentences: list[Sentence], lang: str = "ru") -> list[tuple[dict, dict]]:
        """(features, evidence) per sentence: surface and vector features for all, Stanza's analysis for
        those that pass the screen (all, with screen=False)."""
        if lang != self.lang:
            raise ValueError(f"the Stanza models loaded are for {self.lang!r}, not {lang!r}")
        self.load()
        from razdel import tokenize

        lexicon = load_lexicon(lang)
        space = F.vector_space(lang)
        could_be_visual = self._screen(lexicon)
        tokens = [[t.text for t in tokenize(s.text) if t.text.strip()] for s in sentences]
        if space is not None:
            space.prepare([s.text for s in sentences])
        out: list[tuple[dict, dict]] = []
        todo = []
        for i, (s, words, (position, size)) in enumerate(zip(sentences, tokens, F.sentence_layout(sentences))):
            plain = F.words_of(s.text)
            cheap = F.surface(s, position, size)
            if space is not None:
                cheap.update(space.features(plain))
            cheap["screen"] = float(could_be_visual is None or could_be_visual(words))
            out.append((cheap, {}))
            if not words:
                out[i][1]["skipped"] = "no tokens"
            elif self.screen and not cheap["screen"]:
                out[i][1]["skipped"] = SKIPPED_NOT_VISUAL
            else:
                todo.append(i)
        import torch

        with torch.inference_mode():
            for start in range(0, len(todo), BATCH_SENTENCES):
                chunk = todo[start : start + BATCH_SENTENCES]
                doc = self.pipeline([[without_yo(w) for w in tokens[i]] if lang == "ru" else tokens[i] for i in chunk])
                for i, analysed in zip(chunk, doc.sentences):
                    features, evidence = analyse_one(sentences[i], analysed, lexicon)
                    out[i][0].update(features)
                    out[i][1].update(evidence)
        return out

    def _screen(self, lexicon):
        """A cheap, generous test whether any token could get a visual lexicon lemma from Stanza.

        A yes needs a type, and every type needs a visual lemma — except, with NER on, a LOC entity
        alone ("location"; our small NER model found none in 1665 sentences of Karamazov). Candidates
        per word form: the form itself, all pymorphy3 normal forms, and every lemma Stanza's own lemma
        dictionary gives that form (its seq2seq guesses for unseen words cannot be listed; measured: no
        sentence with a visual Stanza lemma was screened out). Cached per form. Only for Russian
        (pymorphy3); other languages are not screened.
        """
        if self.lang != "ru":
            return None
        if self._screen_fn is None:
            known = _stanza_lemma_dictionary(self.pipeline)
            cache: dict[str, bool] = {}

            def visual_form(form: str) -> bool:
                parts = [form] + (form.split("-") if "-" in form else [])
                for part in parts:
                    candidates = {part, *(p.normal_form for p in F.parses(part)), *known.get(part, ())}
                    if any(lexicon.is_visual(c) for c in candidates):
                        return True
                return False

            def could_be_visual(words: list[str]) -> bool:
                for word in words:
                    form = word.lower()
                    hit = cache.get(form)
                    if hit is None:
                        hit = cache[form] = any(ch.isalpha() for ch in form) and visual_form(form)
                    if hit:
                        return True
                return False

            self._screen_fn = could_be_visual
        return self._screen_fn


def _stanza_lemma_dictionary(pipeline) -> dict[str, set[str]]:
    """Lower-cased word form -> every lemma the loaded lemma model's dictionary holds for it (any POS)."""
    trainer = getattr(pipeline.processors.get("lemma"), "trainer", None) if pipeline is not None else None
    table = getattr(trainer, "pos_dict", None) or {}
    forms: dict[str, set[str]] = {}
    for entries in table.values():
        for word, lemma in entries.items():
            if isinstance(word, str) and isinstance(lemma, str):
                forms.setdefault(word.lower(), set()).add(lemma.lower())
    return forms


def build_pipeline(models: StanzaModels, ner: bool = True):
    """The real stanza.Pipeline over explicit model files, offline, on our own tokens (NER only if asked)."""
    single_thread_math()
    import stanza

    from bookreader_cli.nlp import stanza_speed

    stanza_speed.install()
    import torch

    torch.set_num_threads(1)  # our parallelism is worker processes

    kwargs = models.pipeline_kwargs()
    processors = kwargs.pop("processors")
    if not ner:
        processors.pop("ner", None)
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ner_")}
    processors.setdefault("tokenize", processors.get("tokenize", "default"))
    extra = {}
    if models.resources_json is None:
        # a bare directory of .pt files: give Stanza a minimal resources file of our own, never
        # writing into the user's directory
        minimal = Path(tempfile.gettempdir()) / f"bookreader-stanza-resources-{models.lang}.json"
        minimal.write_text(json.dumps({models.lang: {"lang_name": models.lang}}), encoding="utf-8")
        extra["resources_filepath"] = str(minimal)
    return stanza.Pipeline(
        models.lang,
        dir=str(models.root),
        processors=processors,
        package=None,  # every processor's package is named in `processors`
        download_method=None,
        tokenize_pretokenized=True,
        use_gpu=False,
        logging_level="WARN",
        lemma_batch_size=500,  # measured: ~20% faster lemmatising than the default 50
        lemma_store_results=True,  # Stanza's own memo of seq2seq lemmas per (word, POS): context-free, exact
        **extra,
        **kwargs,
    )


def analyse_one(sentence: Sentence, analysed, lexicon) -> tuple[dict, dict]:
    """(features, evidence) of one Stanza-analysed sentence (words with upos, feats, lemma, head, deprel; ents)."""
    words = analysed.words
    texts = [w.text for w in words]
    upos = [w.upos or "X" for w in words]
    lemmas = [(w.lemma or w.text).lower() for w in words]
    feats = [_feats(w.feats) for w in words]
    heads = [(w.head or 0) - 1 for w in words]  # -1 = root
    rels = [(w.deprel or "dep").split(":")[0] for w in words]
    cats = [lexicon.categories(lemma) for lemma in lemmas]
    children: dict[int, list[int]] = {}
    for i, h in enumerate(heads):
        children.setdefault(h, []).append(i)

    hits: Counter = Counter()
    for c in cats:
        hits.update(c)

    n_words = sum(1 for t in texts if t.isalpha()) or 1
    modifiers = sum(1 for u, f in zip(upos, feats) if u == "ADJ" or (u == "VERB" and f.get("VerbForm") == "Part"))
    modified = []
    for i, c in enumerate(cats):
        if upos[i] in ("NOUN", "PROPN") and "speech" not in c:
            mods = [j for j in children.get(i, []) if rels[j] in _MODIFIER_RELS and upos[j] in ("ADJ", "VERB", "NOUN")]
            if mods and (c or any(upos[j] == "ADJ" for j in mods)):
                modified.append(" ".join(texts[j] for j in sorted([i] + mods)))
    root = heads.index(-1) if -1 in heads else 0
    copular = int(any(r == "cop" for r in rels)) + int(upos[root] in ("ADJ", "ADV") and n_words > 1)
    states = sum(
        1
        for i, c in enumerate(cats)
        if upos[i] in ("ADJ", "ADV") and c & {"light", "weather", "sound"} and (i == root or rels[i] == "conj")
    )
    speech_clause = sum(
        1
        for i, c in enumerate(cats)
        if "speech" in c
        and upos[i] == "VERB"
        and (i == root or any(rels[j] in _CLAUSE_RELS for j in children.get(i, [])))
    )
    dialogue_person = sum(
        1 for u, f in zip(upos, feats) if (u == "PRON" and f.get("Person") in ("1", "2")) or f.get("Mood") == "Imp"
    )
    entities = [(e.type, e.text) for e in getattr(analysed, "ents", [])]
    loc_entities = sum(1 for kind, _ in entities if kind == "LOC")

    persons = sum(1 for kind, _ in entities if kind == "PER")
    beings = {
        j
        for j, (u, f, c, lemma) in enumerate(zip(upos, feats, cats, lemmas))
        if is_being(u, f, c, lemma=lemma, lang=lexicon.lang)
    }
    type_hits = typing_hits(Tree(lemmas, upos, heads, rels, cats, beings, lang=lexicon.lang))
    type_scores = picture_scores(
        type_hits,
        {
            "atmosphere": 1.5 * states,
            "location": 1.0 * loc_entities,
            "character": 1.0 * persons if has_look(hits) else 0.0,
        },
    )
    features, _ = F.lexicon_counts(lemmas, lexicon, n_words)
    features.update(F.pos_shares(upos))
    features.update(F.type_features(type_scores))
    features.update(
        {
            "analysed": 1.0,
            "adj_density": modifiers / n_words,
            "modified_nouns": float(min(len(modified), 4)),
            "copular": float(min(copular + states, 2)),
            "state_predicate": float(min(states, 2)),
            "loc_entity": float(min(loc_entities, 2)),
            "speech_clause": float(min(speech_clause, 2)),
            "dialogue_person": float(min(dialogue_person, 2)),
            "visual_subjects": float(
                min(sum(1 for j, c in enumerate(cats) if rels[j] == "nsubj" and c - {"speech"}), 2)
            ),
            "visual_objects": float(
                min(sum(1 for j, c in enumerate(cats) if rels[j] in ("obj", "obl") and c - {"speech"}), 3)
            ),
            "past_tense": float(any(f.get("Tense") == "Past" for f in feats)),
        }
    )
    evidence = {
        "categories": dict(hits),
        "modified_nouns": modified[:8],
        "entities": entities[:8],
        "root": f"{texts[root]}/{upos[root]}",
        "rule_types": type_scores,
    }
    return features, evidence


def _feats(value: str | None) -> dict[str, str]:
    if not value:
        return {}
    return dict(part.split("=", 1) for part in value.split("|") if "=" in part)
