"""Stand-in processors for engine tests (mode plumbing, vote arithmetic, crash fall-back).

They are registered through BOOKREADER_EXTRA_PROCESSORS so that spawned worker processes see them too.
The real processors are tested with real models in test_nlp_processors.py.
"""

from __future__ import annotations

import os

from bookreader_cli.nlp.base import Vote


class _Keyword:
    name = "fake"
    keywords: tuple[str, ...] = ()
    kind = "location"

    def __init__(self, settings=None):
        self.loaded = False

    def availability(self):
        return True, "test stand-in"

    def load(self):
        self.loaded = True
        return 0.0

    def score(self, text, sentences, lang="ru"):
        out = []
        for s in sentences:
            hit = any(k in s.text.lower() for k in self.keywords)
            out.append(
                Vote(
                    s.index,
                    0.9 if hit else 0.1,
                    hit,
                    self.kind if hit else None,
                    {"pid": os.getpid(), "features": {"visual_hits": 3 if hit else 0}},
                )
            )
        return out


class SnowA(_Keyword):
    name = "snow_a"
    keywords = ("снег", "сугроб")


class SnowB(_Keyword):
    name = "snow_b"
    keywords = ("снег", "туман")
    kind = "atmosphere"


class Crashing(_Keyword):
    """Fine until it meets a sentence with CRASH in it; then it raises, as a buggy model might."""

    name = "crashing"
    keywords = ("снег",)

    def score(self, text, sentences, lang="ru"):
        if "CRASH" in text:
            raise RuntimeError("model blew up")
        return super().score(text, sentences, lang)


class Unavailable(_Keyword):
    name = "missing"

    def availability(self):
        return False, "model directory not found"


class Dying(_Keyword):
    """Kills its worker process outright (a segfault or the OOM killer would do the same)."""

    name = "dying"
    keywords = ("снег",)

    def score(self, text, sentences, lang="ru"):
        if "DIE" in text:
            os._exit(3)
        return super().score(text, sentences, lang)


REGISTRATION = ",".join(f"{cls.name}=nlp_fakes:{cls.__name__}" for cls in (SnowA, SnowB, Crashing, Unavailable, Dying))
