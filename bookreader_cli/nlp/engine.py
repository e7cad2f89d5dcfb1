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
"""

from __future__ import annotations

import os
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field

from bookreader_cli.errors import BadInput, JobFailed
from bookreader_cli.nlp import ensemble
from bookreader_cli.nlp.base import Sentence, Vote
from bookreader_cli.nlp.segment import segment

MODES = ("single", "parallel", "sequential", "ensemble", "adaptive")
SINGLE_PREFERENCE = ("natasha", "spacy", "stanza")
ADAPTIVE_FLOOR = 0.2
RUSSIAN_ONLY = {"natasha"}

_LOADED: dict[str, object] = {}  # processors loaded in this process (workers keep theirs for the book)


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


def _requested(processors, settings) -> list[str]:
    from bookreader_cli.nlp.processors import DEFAULT_ORDER

    if processors:
        names = [processors] if isinstance(processors, str) else list(processors)
        names = [n.strip() for name in names for n in name.split(",") if n.strip()]
    else:
        src = getattr(settings, "nlp", settings)
        names = (src.get("processors") if isinstance(src, dict) else getattr(src, "processors", None)) or list(DEFAULT_ORDER)
    return list(dict.fromkeys(names))


def plan(mode: str, processors=None, settings=None, lang: str = "ru") -> Plan:
    """Which processors will run: requested ones that are available for `lang` (cheap checks only)."""
    from bookreader_cli.nlp.processors import check, names as registered

    REGISTRY = registered()
    if mode not in MODES:
        raise BadInput(f"unknown mode {mode!r} (choose from: {', '.join(MODES)})")
    names = _requested(processors, settings)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise BadInput(f"unknown processor(s): {', '.join(unknown)} (known: {', '.join(REGISTRY)})")
    if mode == "single" and processors and len(names) > 1:
        raise BadInput("mode 'single' takes exactly one processor")
    available, unavailable = [], {}
    for name in names:
        if lang != "ru" and name in RUSSIAN_ONLY:
            unavailable[name] = f"{name} handles Russian only (book language: {lang})"
            continue
        ok, reason, _ = check(name, settings)
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
    config = ensemble.config_from(settings, union=(mode == "parallel"))
    return Plan(mode, available, unavailable, config)


def loaded_processor(name: str, settings=None, lang: str = "ru"):
    """(processor, load seconds) — created and loaded once per process."""
    from bookreader_cli.nlp.processors import create

    processor = _LOADED.get(name)
    if processor is None:
        processor = create(name, settings)
        _LOADED[name] = processor
    import inspect

    takes_lang = len(inspect.signature(processor.load).parameters) > 0
    seconds = processor.load(lang) if takes_lang else processor.load()
    return processor, float(seconds or 0.0)


def _score_here(name, text, sentences, lang, settings, votes, failures, timings) -> None:
    try:
        processor, load_seconds = loaded_processor(name, settings, lang)
        started = time.perf_counter()
        result = processor.score(text, sentences, lang)
        timings[f"score_{name}"] = round(timings.get(f"score_{name}", 0.0) + time.perf_counter() - started, 4)
        timings[f"load_{name}"] = round(timings.get(f"load_{name}", 0.0) + load_seconds, 4)
        _check_votes(name, result, sentences)
        votes[name] = {v.index: v for v in result}
    except Exception as exc:
        failures[name] = f"{type(exc).__name__}: {exc}"[:500]


def _check_votes(name: str, result: list[Vote], sentences: list[Sentence]) -> None:
    if len(result) != len(sentences) or any(v.index != s.index for v, s in zip(result, sentences)):
        raise RuntimeError(f"{name} returned {len(result)} votes for {len(sentences)} sentences")


class ChapterJob:
    """Score tasks for one chapter, one per processor, running in pool workers at once."""

    def __init__(self, pool, text, paragraphs, lang, mode, names, settings, plan_):
        self.pool, self.text, self.lang, self.mode, self.settings, self.plan = pool, text, lang, mode, settings, plan_
        self.started = time.perf_counter()
        self.sentences = segment(text, paragraphs)
        self.futures = {}

    @classmethod
    def start(cls, pool, text, paragraphs, lang, mode, names, settings, plan_) -> "ChapterJob":
        from bookreader_cli.nlp.pool import score_task

        job = cls(pool, text, paragraphs, lang, mode, names, settings, plan_)
        for name in names:
            job.futures[name] = pool.submit(score_task, name, lang, text, job.sentences, settings)
        return job

    def collect(self) -> AnalysisResult:
        from bookreader_cli.nlp.pool import score_task

        votes, failures, timings = {}, {}, {"workers": {}}
        for name, future in self.futures.items():
            for attempt in (1, 2):
                try:
                    out = future.result()
                    _check_votes(name, out["votes"], self.sentences)
                    votes[name] = {v.index: v for v in out["votes"]}
                    timings[f"load_{name}"] = round(out["load_seconds"], 4)
                    timings[f"score_{name}"] = round(out["score_seconds"], 4)
                    timings["workers"][name] = {"pid": out["pid"], "peak_rss_mb": round(out["peak_rss_mb"], 1)}
                    break
                except BrokenProcessPool as exc:  # a worker died: retry once in a fresh pool
                    if attempt == 2:
                        failures[name] = f"worker process died: {exc}"[:500]
                    else:
                        self.pool.restart()
                        future = self.pool.submit(score_task, name, self.lang, self.text, self.sentences, self.settings)
                except Exception as exc:
                    failures[name] = f"{type(exc).__name__}: {exc}"[:500]
                    break
        return _finish(self.text, self.sentences, votes, failures, timings, self.plan, self.lang, self.started)


def analyze_text(text: str, paragraphs=None, lang: str = "ru", mode: str = "ensemble", processors=None,
                 settings=None, pool=None, in_process: bool = False, detail: bool = False) -> AnalysisResult:
    """Find descriptions in `text` (offsets into it). `paragraphs` default to its "\\n"-separated lines.

    parallel/ensemble run each processor in a worker process (`pool`, else a short-lived one) unless
    `in_process`; the other modes run here.
    """
    plan_ = plan(mode, processors, settings, lang)
    if mode in ("parallel", "ensemble") and not in_process:
        from bookreader_cli.nlp.pool import NlpPool

        own = pool is None
        pool = pool or NlpPool(len(plan_.processors))
        try:
            result = ChapterJob.start(pool, text, paragraphs, lang, mode, plan_.processors, settings, plan_).collect()
        finally:
            if own:
                pool.close()
    else:
        started = time.perf_counter()
        sentences = segment(text, paragraphs)
        votes, failures, timings = {}, {}, {}
        if mode == "adaptive":
            _adaptive(text, sentences, lang, settings, plan_, votes, failures, timings)
        else:
            for name in plan_.processors:
                _score_here(name, text, sentences, lang, settings, votes, failures, timings)
        timings["pid"] = os.getpid()
        result = _finish(text, sentences, votes, failures, timings, plan_, lang, started)
    if detail:
        result.decisions = result.decisions or []
    else:
        result.decisions = None
    return result


def _adaptive(text, sentences, lang, settings, plan_, votes, failures, timings) -> None:
    screeners = [n for n in ("spacy",) if n in plan_.processors] or plan_.processors[:1]
    screener = screeners[0]
    _score_here(screener, text, sentences, lang, settings, votes, failures, timings)
    if screener in failures:  # no screener: everybody runs on everything
        candidates = sentences
    else:
        candidates = [s for s in sentences if s.kind == "text" and votes[screener][s.index].score >= ADAPTIVE_FLOOR]
    timings["adaptive_candidates"] = len(candidates)
    for name in plan_.processors:
        if name == screener or not candidates:
            continue
        part: dict = {}
        _score_here(name, text, candidates, lang, settings, part, failures, timings)
        if name in part:
            votes[name] = part[name]


def _finish(text, sentences, votes, failures, timings, plan_: Plan, lang, started) -> AnalysisResult:
    decisions = ensemble.decide(sentences, votes, plan_.config)
    descriptions = ensemble.merge(text, sentences, decisions, plan_.config)
    timings["total_seconds"] = round(time.perf_counter() - started, 4)
    summary = {name: {"ran": len(v), "yes": sum(1 for x in v.values() if x.yes),
                      "mean_score": round(sum(x.score for x in v.values()) / len(v), 4) if v else 0.0}
               for name, v in votes.items()}
    result = AnalysisResult(
        mode=plan_.mode, lang=lang, descriptions=descriptions, sentences_total=len(sentences),
        sentences_passed=sum(1 for d in decisions if d.passed), votes_summary=summary,
        processors_used=[p for p in plan_.processors if p in votes], processors_unavailable=dict(plan_.unavailable),
        processor_failures=failures, consensus_rate=ensemble.consensus_rate(decisions), timings=timings,
    )
    result.decisions = [asdict(d) | {"start": s.start, "end": s.end} for d, s in zip(decisions, sentences)]
    return result


def failed_result(text, paragraphs, lang, mode, plan_: Plan, failures: dict) -> AnalysisResult:
    """What a chapter yields when every processor failed on it: no descriptions, failures recorded."""
    return _finish(text, segment(text, paragraphs), {}, failures, {}, plan_, lang, time.perf_counter())


def models_report(settings=None, load: bool = False, lang: str = "ru") -> list[dict]:
    """One row per registered processor: availability, reason or model source, load seconds if loaded."""
    from bookreader_cli.nlp.processors import check, names

    rows = []
    for name in names():
        ok, reason, _ = check(name, settings)
        row = {"name": name, "available": ok, "reason": "" if ok else reason, "source": reason if ok else "",
               "load_seconds": None}
        if name in _LOADED:
            row["load_seconds"] = getattr(_LOADED[name], "load_seconds", None)
        if ok and load:
            try:
                _, seconds = loaded_processor(name, settings, lang)
                row["load_seconds"] = round(getattr(_LOADED[name], "load_seconds", None) or seconds, 3)
            except Exception as exc:
                row.update(available=False, reason=f"load failed: {type(exc).__name__}: {exc}"[:300])
        rows.append(row)
    return rows
