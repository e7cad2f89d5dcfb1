"""The description engine: segment once, let processors vote per sentence, merge into descriptions.

Modes:
- `single`: one processor (the first requested, else the first available of natasha, spacy, stanza);
  its yes is the verdict.
- `parallel`: the selected processors each in its own worker process at once; a sentence passes when
  any processor says yes (union).
- `sequential`: the same processors one after another in this process (least memory); weighted vote.
- `ensemble` (default): parallel execution + weighted vote (see nlp.ensemble).
- `adaptive`: the cheap screener (spaCy, else the first available) scores every sentence; the others run
  only on *candidates*: prose sentences whose screener score is ≥ ADAPTIVE_FLOOR (below the screener's own
  cut-off, so the others can still rescue near misses). Non-candidates are decided by the screener alone;
  candidates by the weighted vote of all that ran.
A processor that raises is recorded in `processor_failures` and the others carry on.

Everything here runs in this process; nlp.runner runs chapters in worker processes (parallel/ensemble
modes score each processor in its own worker) and imports this module, never the other way round.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from bookreader_cli.books.model import Chapter
from bookreader_cli.config import NlpSettings, Settings, setting_error
from bookreader_cli.errors import BadInput, JobFailed
from bookreader_cli.nlp import ensemble
from bookreader_cli.nlp.base import Sentence, Vote
from bookreader_cli.nlp.processors import LOADED, check, loaded_processor, names as registered
from bookreader_cli.nlp.segment import chapter_from_text, segment

MODES = ("single", "parallel", "sequential", "ensemble", "adaptive")
SINGLE_PREFERENCE = ("natasha", "spacy", "stanza")
ADAPTIVE_FLOOR = 0.2
RUSSIAN_ONLY = {"natasha"}


@dataclass
class AnalysisResult:
    mode: str
    lang: str
    descriptions: list[ensemble.Description]
    sentences_total: int
    sentences_passed: int
    votes_summary: dict  # per processor: sentences it ran on, yes votes
    processors_used: list[str]
    processors_unavailable: dict[str, str]
    processor_failures: dict[str, str]
    consensus_rate: float
    timings: dict = field(default_factory=dict)
    decisions: list[dict] | None = None  # per-sentence detail, when asked for

    def to_dict(self) -> dict:
        d = asdict(self)
        d["descriptions"] = [x.to_dict() if hasattr(x, "to_dict") else x for x in self.descriptions]
        return d


@dataclass
class Plan:
    mode: str
    processors: list[str]  # available ones, in the order to run
    unavailable: dict[str, str]
    config: ensemble.EnsembleConfig


def check_mode(mode: str) -> str:
    """The one check of a mode name (the CLI, the jobs, Celery and the engine all call it)."""
    if mode not in MODES:
        raise BadInput(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def check_settings(settings: Settings) -> None:
    """The [nlp] names in the settings exist: a mode of MODES, registered processors (and weights for them).

    Run once per job context, so a bad config.toml or BOOKREADER_NLP_* value is one clear line up front."""
    nlp, known = settings.nlp, registered()
    if nlp.mode not in MODES:
        raise setting_error(settings, "nlp.mode", nlp.mode, f"one of {', '.join(MODES)}")
    unknown = [p for p in nlp.processors if p not in known]
    if unknown or not nlp.processors:
        raise setting_error(
            settings,
            "nlp.processors",
            nlp.processors,
            f"a non-empty list of {', '.join(known)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
        )
    unknown = [p for p in nlp.weights if p not in known]
    if unknown:
        raise setting_error(
            settings, "nlp.weights", nlp.weights, f"weights for {', '.join(known)} (unknown: {', '.join(unknown)})"
        )


def processor_names(processors: str | Sequence[str] | None, nlp: NlpSettings | None = None) -> list[str]:
    """The one check of processor names: "a,b" or a list (None: the settings' list), known, deduplicated."""
    if processors is None:
        names = list((nlp or NlpSettings()).processors)
    else:
        items = [processors] if isinstance(processors, str) else list(processors)
        names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    known = registered()
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise BadInput(
            f"unknown processor(s) {', '.join(unknown) or '(none given)'}: expected some of {', '.join(known)}"
        )
    return list(dict.fromkeys(names))


def check_request(
    mode: str, processors: str | Sequence[str] | None = None, nlp: NlpSettings | None = None
) -> list[str]:
    """The one check of a request (mode, names, and `single` with several), needing no model: plan() and
    the Celery runner (before it sends anything) both call it, so both executors refuse alike."""
    check_mode(mode)
    names = processor_names(processors, nlp)
    if mode == "single" and processors and len(names) > 1:
        raise BadInput("mode 'single' takes exactly one processor")
    return names


def plan(mode: str, processors: Sequence[str] | None = None, nlp: NlpSettings | None = None, lang: str = "ru") -> Plan:
    """Which processors will run: requested ones that are available for `lang` (cheap checks only).

    processors=None: the settings' list; in single mode then the first available of SINGLE_PREFERENCE."""
    nlp = nlp or NlpSettings()
    names = check_request(mode, processors, nlp)
    available, unavailable = [], {}
    for name in names:
        if lang != "ru" and name in RUSSIAN_ONLY:
            unavailable[name] = f"{name} handles Russian only (book language: {lang})"
            continue
        ok, reason, _ = check(name, nlp)
        if ok:
            available.append(name)
        else:
            unavailable[name] = reason
    if mode == "single":
        preferred = [n for n in SINGLE_PREFERENCE if n in available] if not processors else available
        available = preferred[:1]
    if not available:
        detail = "; ".join(f"{k}: {v}" for k, v in unavailable.items()) or "none requested"
        raise JobFailed(f"no NLP processor is available ({detail})")
    config = ensemble.config_from(nlp, lang, union=(mode == "parallel"))
    return Plan(mode, available, unavailable, config)


def _score_here(name, text, sentences, lang, nlp, votes, failures, timings) -> None:
    try:
        processor, load_seconds = loaded_processor(name, nlp, lang)
        started = time.perf_counter()
        result = processor.score(text, sentences, lang)
        timings[f"score_{name}"] = round(timings.get(f"score_{name}", 0.0) + time.perf_counter() - started, 4)
        timings[f"load_{name}"] = round(timings.get(f"load_{name}", 0.0) + load_seconds, 4)
        check_votes(name, result, sentences)
        votes[name] = {v.index: v for v in result}
    except Exception as exc:
        failures[name] = failure_text(exc)


def failure_text(exc: BaseException) -> str:
    """How a processor's crash is kept in `processor_failures` (the same words in-process and in a worker)."""
    return f"{type(exc).__name__}: {exc}"[:500]


def check_votes(name: str, result: list[Vote], sentences: list[Sentence]) -> None:
    if len(result) != len(sentences) or any(v.index != s.index for v, s in zip(result, sentences)):
        raise RuntimeError(f"{name} returned {len(result)} votes for {len(sentences)} sentences")


def analyze_chapter(
    chapter: Chapter,
    lang: str = "ru",
    mode: str = "ensemble",
    processors: Sequence[str] | None = None,
    nlp: NlpSettings | None = None,
    detail: bool = False,
) -> AnalysisResult:
    """Find descriptions in one chapter (offsets into its text), every processor in this process."""
    nlp = nlp or NlpSettings()
    plan_ = plan(mode, processors, nlp, lang)
    started = time.perf_counter()
    text = chapter.text
    sentences = segment(text, chapter.paragraphs)
    votes: dict = {}
    failures: dict = {}
    timings: dict = {}
    if mode == "adaptive":
        _adaptive(text, sentences, lang, nlp, plan_, votes, failures, timings)
    else:
        for name in plan_.processors:
            _score_here(name, text, sentences, lang, nlp, votes, failures, timings)
    timings["pid"] = os.getpid()
    result = finish(text, sentences, votes, failures, timings, plan_, lang, started)
    if not detail:
        result.decisions = None
    return result


def analyze_text(
    text: str,
    lang: str = "ru",
    mode: str = "ensemble",
    processors: Sequence[str] | None = None,
    nlp: NlpSettings | None = None,
    detail: bool = False,
) -> AnalysisResult:
    """analyze_chapter for a plain text: paragraphs are its "\\n"-separated lines."""
    return analyze_chapter(chapter_from_text(text), lang, mode, processors, nlp, detail)


def _adaptive(text, sentences, lang, nlp, plan_, votes, failures, timings) -> None:
    screeners = [n for n in ("spacy",) if n in plan_.processors] or plan_.processors[:1]
    screener = screeners[0]
    _score_here(screener, text, sentences, lang, nlp, votes, failures, timings)
    if screener in failures:  # no screener: everybody runs on everything
        candidates = sentences
    else:
        candidates = [s for s in sentences if s.kind == "text" and votes[screener][s.index].score >= ADAPTIVE_FLOOR]
    timings["adaptive_candidates"] = len(candidates)
    for name in plan_.processors:
        if name == screener or not candidates:
            continue
        part: dict = {}
        _score_here(name, text, candidates, lang, nlp, part, failures, timings)
        if name in part:
            votes[name] = part[name]


def finish(text, sentences, votes, failures, timings, plan_: Plan, lang, started) -> AnalysisResult:
    """The vote and the merge over whatever votes came in, as an AnalysisResult (decisions included)."""
    decisions = ensemble.decide(sentences, votes, plan_.config)
    descriptions = ensemble.merge(text, sentences, decisions, plan_.config)
    timings["total_seconds"] = round(time.perf_counter() - started, 4)
    summary = {
        name: {
            "ran": len(v),
            "yes": sum(1 for x in v.values() if x.yes),
            "mean_score": round(sum(x.score for x in v.values()) / len(v), 4) if v else 0.0,
        }
        for name, v in votes.items()
    }
    result = AnalysisResult(
        mode=plan_.mode,
        lang=lang,
        descriptions=descriptions,
        sentences_total=len(sentences),
        sentences_passed=sum(1 for d in decisions if d.passed),
        votes_summary=summary,
        processors_used=[p for p in plan_.processors if p in votes],
        processors_unavailable=dict(plan_.unavailable),
        processor_failures=failures,
        consensus_rate=ensemble.consensus_rate(decisions),
        timings=timings,
    )
    result.decisions = [
        asdict(d) | {"start": s.start, "end": s.end, "votes": _sentence_votes(votes, s.index)}
        for d, s in zip(decisions, sentences)
    ]
    return result


def _sentence_votes(votes, index: int) -> dict:
    """What each processor that ran on sentence `index` said: score, yes, type."""
    return {
        name: {"score": v[index].score, "yes": v[index].yes, "type": v[index].type}
        for name, v in votes.items()
        if index in v
    }


def failed_result(chapter: Chapter, lang, plan_: Plan, failures: dict) -> AnalysisResult:
    """What a chapter yields when every processor failed on it: no descriptions, failures recorded."""
    return finish(
        chapter.text, segment(chapter.text, chapter.paragraphs), {}, failures, {}, plan_, lang, time.perf_counter()
    )


def models_report(nlp: NlpSettings | None = None, load: bool = False, lang: str = "ru") -> list[dict]:
    """One row per registered processor: availability, reason or model source, load seconds if loaded."""
    nlp = nlp or NlpSettings()
    rows = []
    for name in registered():
        ok, reason, _ = check(name, nlp)
        row = {
            "name": name,
            "available": ok,
            "reason": "" if ok else reason,
            "source": reason if ok else "",
            "load_seconds": None,
        }
        if name in LOADED:
            row["load_seconds"] = getattr(LOADED[name], "load_seconds", None)
        if ok and load:
            try:
                _, seconds = loaded_processor(name, nlp, lang)
                row["load_seconds"] = round(getattr(LOADED[name], "load_seconds", None) or seconds, 3)
            except Exception as exc:
                row.update(available=False, reason=f"load failed: {type(exc).__name__}: {exc}"[:300])
        rows.append(row)
    return rows
