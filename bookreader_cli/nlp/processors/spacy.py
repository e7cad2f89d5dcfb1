"""spaCy processor: surface patterns over lemmas (Matcher), scored by its own learned model (nlp.scorer).

With a trained pipeline installed (`ru_core_news_*`, or a name/path in settings.nlp.spacy_model) its tagger,
lemmatizer and NER are used; otherwise `spacy.blank(lang)` with a pymorphy3 part-of-speech component and
spaCy's own Russian lemmatizer in pymorphy3 mode (English: spaCy's lookup lemmatizer with the official
tables of `spacy-lookups-data`, parts of speech guessed from the lexicon). The features are spaCy's:
lexicon hits on its lemmas, phrase patterns ("с бритым пухлым лицом", "в шубе", "было темно", adjective +
visual noun), part-of-speech shares, the rule-based type evidence, and (Russian) navec similarities of the
words to the lexicon's seed words (nlp.features) — not another processor's output.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections import Counter, defaultdict
from typing import Any

from bookreader_cli.config import NlpSettings
from bookreader_cli.nlp import features as F, scorer
from bookreader_cli.nlp.base import Sentence, Vote
from bookreader_cli.nlp.lexicon import CATEGORY_TYPE, load as load_lexicon, setting_weight
from bookreader_cli.nlp.scoring import Subjects, picture_scores
from bookreader_cli.nlp.syntax import is_being, look_category

TRAINED_PIPELINES = {
    "ru": ("ru_core_news_lg", "ru_core_news_md", "ru_core_news_sm"),
    "en": ("en_core_web_lg", "en_core_web_md", "en_core_web_sm"),
}

# Word lists the phrase patterns need beyond the lexicon files, per language.
_PATTERN_WORDS = {
    "ru": {
        "with": ["с", "со"],
        "in": ["в", "во"],
        "be": ["быть", "стать", "становиться", "сделаться"],
        "perceive": [
            "видеть",
            "увидеть",
            "увидать",
            "виднеться",
            "показаться",
            "слышать",
            "услышать",
            "слышный",
            "послышаться",
            "раздаться",
            "раздаваться",
            "доноситься",
            "пахнуть",
        ],
    },
    "en": {
        "with": ["with"],
        "in": ["in"],
        "be": ["be", "become", "grow"],
        "perceive": ["see", "saw", "hear", "heard", "smell", "appear", "seem", "look"],
    },
}


_WORDS = re.compile(r"\w+(?:-\w+)*")
_EN_PREPOSITIONS = {"in", "on", "at", "with", "by", "of", "from", "under", "over", "into", "through", "behind"}


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class SpacyProcessor:
    name = "spacy"

    def __init__(self, nlp: NlpSettings | None = None, screen: bool = True):
        nlp = nlp or NlpSettings()
        self.model_setting = nlp.spacy_model
        self.threshold = float(nlp.threshold)
        self.screen = screen  # False: analyse every sentence (feature extraction for fitting)
        self._nlp: dict[str, Any] = {}
        self._matchers: dict[str, object] = {}
        self._screen_cache: dict[str, dict[str, bool]] = {}
        self.sources: dict[str, str] = {}
        self.load_seconds: float | None = None

    # -- protocol -----------------------------------------------------------------------------------
    def availability(self) -> tuple[bool, str]:
        if not _installed("spacy"):
            return False, "spacy is not installed"
        return True, self._source("ru")

    def load(self, lang: str = "ru") -> float:
        if lang in self._nlp:
            return 0.0
        started = time.perf_counter()
        import spacy

        _register_components()
        source = self._source(lang)
        if source.startswith("pipeline:"):
            nlp = spacy.load(source.split(":", 1)[1])
        else:
            nlp = spacy.blank(lang)
            if lang == "ru":
                nlp.add_pipe("bookreader_pymorphy_pos")
                nlp.add_pipe("lemmatizer", config={"mode": "pymorphy3"})
                nlp.initialize()
                _memoise_lemmatizer(nlp.get_pipe("lemmatizer"))
            else:
                nlp.add_pipe("lemmatizer", config={"mode": "lookup"})  # tables from spacy-lookups-data
                nlp.add_pipe("bookreader_en_pos")
                nlp.initialize()
        self._nlp[lang] = nlp
        self._matchers[lang] = _build_matcher(nlp, lang)
        self.sources[lang] = source
        seconds = time.perf_counter() - started
        self.load_seconds = (self.load_seconds or 0.0) + seconds
        return seconds

    def score(self, text: str, sentences: list[Sentence], lang: str = "ru") -> list[Vote]:
        return scorer.votes(self.name, lang, sentences, self.analyse(text, sentences, lang), self.threshold)

    def analyse(self, text: str, sentences: list[Sentence], lang: str = "ru") -> list[tuple[dict, dict]]:
        """(features, evidence) per sentence: surface (and vector) features for all, the pipeline's for those
        that pass the screen (all, with screen=False or a trained pipeline)."""
        self.load(lang)
        nlp, matcher = self._nlp[lang], self._matchers[lang]
        lexicon = load_lexicon(lang)
        space = F.vector_space(lang)
        screen = self._screen(lang, lexicon)
        if space is not None:
            space.prepare([s.text for s in sentences])
        out: list[tuple[dict, dict]] = []
        for s, (position, size) in zip(sentences, F.sentence_layout(sentences)):
            words = F.words_of(s.text)
            cheap = F.surface(s, position, size)
            if space is not None:
                cheap.update(space.features(words))
            cheap["screen"] = float(screen(s.text))
            out.append((cheap, {}))
        todo = list(range(len(sentences)))
        if self.screen and not self.sources[lang].startswith("pipeline:"):  # no NER: a yes needs a visual word
            todo = [i for i in todo if out[i][0]["screen"]]
            for i in sorted(set(range(len(sentences))) - set(todo)):
                out[i][1]["skipped"] = "no word can be a visual lemma"
        for i, doc in zip(todo, nlp.pipe((sentences[i].text for i in todo), batch_size=256)):
            features, evidence = self._analyse_one(doc, matcher, lexicon)
            out[i][0].update(features)
            out[i][1].update(evidence)
        return out

    def _screen(self, lang: str, lexicon):
        """A cheap test whether any word of a text could lemmatise to a lexicon word (all pymorphy3 parses;
        English: the crude and the looked-up lemma), cached per word form. Without such a word the sentence
        is scored on its surface and vector features alone."""
        cache = self._screen_cache.setdefault(lang, {})
        if lang == "ru":

            def candidates(word: str):
                return [word] + [p.normal_form for p in F.parses(word)]
        else:
            table = self._nlp[lang].get_pipe("lemmatizer").lookups.get_table("lemma_lookup", {})

            def candidates(word: str):
                return [word, crude_english_lemma(word), table.get(word, word)]

        def could_be_visual(text: str) -> bool:
            for word in _WORDS.findall(text.lower()):
                known = cache.get(word)
                if known is None:
                    parts = [word] + (word.split("-") if "-" in word else [])
                    known = cache[word] = any(lexicon.is_visual(c) for part in parts for c in candidates(part))
                if known:
                    return True
            return False

        return could_be_visual

    # -- internals ----------------------------------------------------------------------------------
    def _source(self, lang: str) -> str:
        if self.model_setting:
            return f"pipeline:{self.model_setting}"
        for name in TRAINED_PIPELINES.get(lang, ()):
            if _installed(name):
                return f"pipeline:{name}"
        lemmas = "pymorphy3 lemmatizer" if lang == "ru" else "lookup lemmatizer (spacy-lookups-data)"
        return f"spacy.blank('{lang}') + {lemmas} + lexicon rules"

    def _analyse_one(self, doc, matcher, lexicon) -> tuple[dict, dict]:
        words = [t for t in doc if t.is_alpha]
        type_hits: dict[str, float] = defaultdict(float)  # setting nouns after a preposition ("в комнате") weigh half
        patterns: Counter = Counter()
        matched: list[str] = []
        for match_id, start, end in matcher(doc):
            label = doc.vocab.strings[match_id]
            if label.startswith("CAT_"):
                category = label[4:].lower()
                after_preposition = start > 0 and doc[start - 1].pos_ == "ADP"
                weight = setting_weight(category, after_preposition)
                typed = _look_of(doc, start, lexicon) if category == "appearance" else category
                if typed:
                    type_hits[typed] += weight
            else:
                patterns[label] += 1
                matched.append(f"{label}:{doc[start:end].text}")
        features, hits = F.lexicon_counts([t.lemma_ for t in words], lexicon, len(words))
        entities = Counter(ent.label_ for ent in doc.ents)  # a trained pipeline's NER, when there is one
        places = entities["LOC"] + entities["GPE"] + entities["FAC"]
        if places:
            type_hits["landscape"] += places
        boosts = {
            "character": 2.0 * (patterns["WITH_FEATURE"] + patterns["WEARING"]),
            "atmosphere": 2.0 * patterns["STATE"],
        }
        type_scores = picture_scores(type_hits, boosts, _subjects(doc, lexicon))
        features.update(F.pos_shares([t.pos_ for t in doc]))
        features.update(F.type_features(type_scores))
        features.update(
            {
                "analysed": 1.0,
                "described_noun": float(min(patterns["DESCRIBED_NOUN"], 4)),
                "with_feature": float(min(patterns["WITH_FEATURE"], 2)),
                "wearing": float(min(patterns["WEARING"], 2)),
                "state": float(min(patterns["STATE"], 2)),
                "perceive": float(min(patterns["PERCEIVE"], 2)),
                "loc_entity": float(min(places, 2)),
                "per_entity": float(min(entities["PER"] + entities["PERSON"], 2)),
                "dialogue_person": float(
                    min(
                        sum(
                            1
                            for t in doc
                            if t.morph.get("Person") and t.morph.get("Person")[0] in ("1", "2") and t.pos_ == "PRON"
                        ),
                        3,
                    )
                ),
                "past_tense": float(any(t.morph.get("Tense") == ["Past"] for t in doc)),
            }
        )
        evidence = {"categories": dict(hits), "patterns": matched[:12], "rule_types": type_scores}
        return features, evidence


def _is_being(token, lexicon) -> bool:
    """nlp.syntax.is_being on a spaCy token (an animal of the lexicon only as a noun, as pymorphy3 tags it)."""
    categories = lexicon.categories(token.lemma_) if token.pos_ in ("NOUN", "PROPN") else frozenset()
    return is_being(token.pos_, token.morph.to_dict(), categories)


def _look_of(doc, i: int, lexicon) -> str | None:
    """The surface twin of nlp.syntax's rule: a word of look types the noun it stands before ("громадная
    светлая комната" → the room's category; "старый солдат" → a person's look; an untyped thing → none).
    Without a noun after it (predicates, no morphology) it stays a person's look."""
    for token in doc[i + 1 : i + 5]:
        if token.pos_ in ("ADJ", "CCONJ", "PUNCT", "ADV"):
            continue
        if token.pos_ != "NOUN":
            break
        return look_category(_is_being(token, lexicon), lexicon.categories(token.lemma_))
    return "appearance"


def _subjects(doc, lexicon) -> Subjects:
    """Is anybody in the sentence (animate noun, personal pronoun, animal) to wear the clothes it names?
    Without morphology (English blank pipeline) nobody can tell: assume somebody is."""
    if not doc.has_annotation("MORPH"):
        return Subjects()
    return Subjects(person_present=any(_is_being(token, lexicon) for token in doc))


def _memoise_lemmatizer(lemmatizer) -> None:
    """spaCy caches lemmas only in rule mode; pymorphy3 mode re-analyses every token. Cache by form+tags."""
    original = lemmatizer.lemmatize
    cache: dict = {}

    def lemmatize(token):
        key = (token.orth, token.pos, token.morph.key)
        lemmas = cache.get(key)
        if lemmas is None:
            lemmas = cache[key] = original(token)
        return lemmas

    lemmatizer.lemmatize = lemmatize


def _build_matcher(nlp, lang: str):
    """Matcher with one single-lemma pattern per lexicon category and the phrase patterns."""
    from spacy.matcher import Matcher

    lexicon = load_lexicon(lang)
    words = _PATTERN_WORDS.get(lang, _PATTERN_WORDS["en"])
    matcher = Matcher(nlp.vocab)
    for category in CATEGORY_TYPE:
        members = lexicon.members(category)
        if members:
            matcher.add(f"CAT_{category.upper()}", [[{"LEMMA": {"IN": members}}]])
    nouns = sorted(
        {
            w
            for c in (
                "body",
                "clothing",
                "landscape",
                "architecture",
                "interior",
                "objects",
                "animals",
                "light",
                "weather",
                "sound",
            )
            for w in lexicon.members(c)
        }
    )
    person_parts = sorted(set(lexicon.members("body")) | set(lexicon.members("clothing")))
    clothes = lexicon.members("clothing")
    ambient = sorted({w for c in ("light", "weather", "sound") for w in lexicon.members(c)})
    adj = {"POS": {"IN": ["ADJ"]}}
    adj_or_part = {"POS": {"IN": ["ADJ", "VERB", "CCONJ", "PUNCT"]}, "OP": "*"}
    modifiers = sorted({w for c in ("appearance", "colour", "materials") for w in lexicon.members(c)})
    matcher.add(
        "DESCRIBED_NOUN",
        [
            [adj, {"POS": "ADJ", "OP": "*"}, {"LEMMA": {"IN": nouns}}],
            [{"LEMMA": {"IN": modifiers}}, {"OP": "?"}, {"LEMMA": {"IN": nouns}}],
        ],
        greedy="LONGEST",
    )
    matcher.add(
        "WITH_FEATURE",
        [[{"LOWER": {"IN": words["with"]}}, adj_or_part, {"LEMMA": {"IN": person_parts}}]],
        greedy="LONGEST",
    )
    matcher.add(
        "WEARING",
        [[{"LOWER": {"IN": words["in"]}}, {"POS": "ADJ", "OP": "*"}, {"LEMMA": {"IN": clothes}}]],
        greedy="LONGEST",
    )
    matcher.add("STATE", [[{"LEMMA": {"IN": words["be"]}}, {"OP": "?"}, {"LEMMA": {"IN": ambient}}]])
    matcher.add("PERCEIVE", [[{"LEMMA": {"IN": words["perceive"]}}]])
    return matcher


def _register_components() -> None:
    """Register our two small spaCy components (idempotent; spaCy is imported here, lazily)."""
    from spacy.language import Language

    if Language.has_factory("bookreader_pymorphy_pos"):
        return

    @Language.factory("bookreader_pymorphy_pos")
    def make_pymorphy_pos(nlp, name):
        return PymorphyPos()

    @Language.component("bookreader_en_pos")
    def en_pos(doc):
        """English without a trained pipeline: POS only where the lexicon or a closed class tells."""
        lexicon = load_lexicon("en")
        for token in doc:
            cats = lexicon.categories(token.lemma_) or lexicon.categories(token.lower_)
            if token.is_punct:
                token.pos_ = "PUNCT"
            elif token.lower_ in _EN_PREPOSITIONS:
                token.pos_ = "ADP"
            elif token.lower_ in ("and", "or"):
                token.pos_ = "CCONJ"
            elif token.lower_ in _EN_PRONOUNS:
                token.pos_ = "PRON"
                if token.lower_ in ("i", "me", "my", "we", "us", "our", "you", "your"):
                    token.set_morph("Person=1" if token.lower_ in ("i", "me", "my", "we", "us", "our") else "Person=2")
            elif cats & {"appearance", "colour", "materials"}:
                token.pos_ = "ADJ"
            elif cats:
                token.pos_ = "NOUN"
            else:
                token.pos_ = "X"
        return doc


_EN_PRONOUNS = {
    "i",
    "me",
    "my",
    "we",
    "us",
    "our",
    "you",
    "your",
    "he",
    "him",
    "his",
    "she",
    "her",
    "it",
    "its",
    "they",
    "them",
    "their",
}


class PymorphyPos:
    """Sets POS and morphology from pymorphy3's most likely parse, so the lemmatizer can choose well."""

    def __init__(self):
        from spacy.lang.ru.lemmatizer import oc2ud

        self.oc2ud = oc2ud  # the parses come from nlp.features.parses (one cache per process)
        self.cache: dict[str, tuple[str, dict]] = {}

    def __call__(self, doc):
        for token in doc:
            key = token.lower_
            tagged = self.cache.get(key)
            if tagged is None:
                if not token.is_alpha:
                    tagged = ("PUNCT" if token.is_punct else "X", {})
                else:
                    tagged = self.oc2ud(str(F.parses(key)[0].tag))
                self.cache[key] = tagged
            token.pos_ = tagged[0]
            if tagged[1]:
                token.set_morph(tagged[1])
        return doc


def crude_english_lemma(word: str) -> str:
    """Good enough for lexicon look-ups: strip common inflections (shoes→shoe, lit→lit, glowed→glow)."""
    irregular = {
        "feet": "foot",
        "teeth": "tooth",
        "men": "man",
        "women": "woman",
        "children": "child",
        "mice": "mouse",
        "geese": "goose",
        "wore": "wear",
        "worn": "wear",
        "stood": "stand",
        "sat": "sit",
        "lay": "lie",
        "was": "be",
        "were": "be",
        "is": "be",
        "are": "be",
        "been": "be",
        "said": "say",
        "thought": "think",
        "knew": "know",
        "felt": "feel",
        "saw": "see",
        "heard": "hear",
    }
    if word in irregular:
        return irregular[word]
    for suffix, repl in (
        ("ies", "y"),
        ("ves", "f"),
        ("sses", "ss"),
        ("shes", "sh"),
        ("ches", "ch"),
        ("ing", ""),
        ("ied", "y"),
        ("ed", ""),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + repl
    return word
