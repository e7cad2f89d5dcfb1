"""Worker processes for NLP: models load once per worker and serve many chapters.

Two kinds of task run in the workers:
- `score` (parallel/ensemble modes): one processor over one chapter's sentences → votes; the parent votes;
- `analyze` (single/sequential/adaptive modes): a whole chapter analysed in the worker.
Workers are spawned (not forked) with OMP/OPENBLAS/MKL_NUM_THREADS=1 set before numpy/torch load.
This module drives nlp.engine; the engine never imports it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from bookreader_cli.books.model import Chapter
from bookreader_cli.config import NlpSettings
from bookreader_cli.nlp import engine, units
from bookreader_cli.nlp.compat import single_thread_math
from bookreader_cli.nlp.processors import loaded_processor
from bookreader_cli.nlp.segment import chapter_from_text, segment

POOLED_MODES = ("parallel", "ensemble")  # each processor scores in its own worker, the vote happens here
log = logging.getLogger("bookreader.nlp")


def _init_worker(parent_pid: int | None = None, use_pdeathsig: bool = True) -> None:
    if parent_pid is not None:
        from bookreader_cli.nlp.lifeline import bind_to_parent

        bind_to_parent(parent_pid, use_pdeathsig)
    single_thread_math()


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def score_task(name: str, lang: str, text: str, sentences: list, nlp: NlpSettings) -> dict:
    """Run in a worker: one processor's votes for one chapter, plus timings and the worker's id."""
    processor, load_seconds = loaded_processor(name, nlp, lang)
    started = time.perf_counter()
    votes = processor.score(text, sentences, lang)
    return {
        "votes": votes,
        "load_seconds": load_seconds,
        "score_seconds": time.perf_counter() - started,
        "pid": os.getpid(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def analyze_task(chapter: Chapter, lang: str, mode: str, processors, nlp: NlpSettings):
    """Run in a worker: a whole chapter in-process (single, sequential or adaptive mode)."""
    result = engine.analyze_chapter(chapter, lang=lang, mode=mode, processors=processors, nlp=nlp)
    result.timings["worker_pid"] = os.getpid()
    result.timings["worker_peak_rss_mb"] = _peak_rss_mb()
    return result


class NlpPool:
    """A process pool that is restarted if a worker dies (a crash must not end the book)."""

    def __init__(self, workers: int = 2):
        self.workers = max(1, int(workers))
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            import multiprocessing
            import threading

            single_thread_math()
            # workers die with this process (nlp.lifeline); the kernel's parent-death signal follows the
            # thread that spawns them, so it is asked for only when that is the main thread
            on_main = threading.current_thread() is threading.main_thread()
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(), on_main),
            )
        return self._executor

    def submit(self, fn, *args) -> Future:
        try:
            return self._pool().submit(fn, *args)
        except BrokenProcessPool:
            self.restart()
            return self._pool().submit(fn, *args)

    def restart(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def terminate(self) -> None:
        """Stop now (Ctrl-C, SIGTERM): kill the workers instead of waiting for their chapters."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            try:
                process.kill()
            except (OSError, ValueError):
                pass
        executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):  # Ctrl-C, SIGTERM
            self.terminate()
        else:
            self.close()


class ChapterJob:
    """Score tasks for one chapter, one per processor, running in pool workers at once."""

    def __init__(self, pool: NlpPool, chapter: Chapter, lang: str, nlp: NlpSettings, plan: engine.Plan):
        self.pool, self.text, self.lang, self.nlp, self.plan = pool, chapter.text, lang, nlp, plan
        self.started = time.perf_counter()
        self.sentences = segment(chapter.text, chapter.paragraphs)
        self.futures: dict[str, Future] = {}

    @classmethod
    def start(
        cls, pool: NlpPool, chapter: Chapter, lang: str, names: list[str], nlp: NlpSettings, plan: engine.Plan
    ) -> ChapterJob:
        job = cls(pool, chapter, lang, nlp, plan)
        for name in names:
            job.futures[name] = pool.submit(score_task, name, lang, job.text, job.sentences, nlp)
        return job

    def collect(self) -> engine.AnalysisResult:
        votes: dict = {}
        failures: dict = {}
        timings: dict = {"workers": {}}
        for name, future in self.futures.items():
            for attempt in (1, 2):
                try:
                    out = future.result()
                    engine.check_votes(name, out["votes"], self.sentences)
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
                        future = self.pool.submit(score_task, name, self.lang, self.text, self.sentences, self.nlp)
                except Exception as exc:
                    failures[name] = engine.failure_text(exc)
                    break
        return engine.finish(self.text, self.sentences, votes, failures, timings, self.plan, self.lang, self.started)


def analyze_chapter(
    chapter: Chapter,
    lang: str = "ru",
    mode: str = "ensemble",
    processors: Sequence[str] | None = None,
    nlp: NlpSettings | None = None,
    pool: NlpPool | None = None,
    detail: bool = False,
) -> engine.AnalysisResult:
    """engine.analyze_chapter, except that parallel/ensemble score each processor in a worker process
    (`pool`, else a short-lived one)."""
    nlp = nlp or NlpSettings()
    if mode not in POOLED_MODES:
        return engine.analyze_chapter(chapter, lang, mode, processors, nlp, detail)
    plan = engine.plan(mode, processors, nlp, lang)
    own = pool is None
    pool = pool or NlpPool(len(plan.processors))
    try:
        result = ChapterJob.start(pool, chapter, lang, plan.processors, nlp, plan).collect()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the workers (which leave SIGINT to us) stop now
        pool.terminate()
        raise
    finally:
        if own:
            pool.close()
    if not detail:
        result.decisions = None
    return result


def analyze_text(
    text: str,
    lang: str = "ru",
    mode: str = "ensemble",
    processors: Sequence[str] | None = None,
    nlp: NlpSettings | None = None,
    pool: NlpPool | None = None,
    detail: bool = False,
) -> engine.AnalysisResult:
    """analyze_chapter for a plain text: paragraphs are its "\\n"-separated lines."""
    return analyze_chapter(chapter_from_text(text), lang, mode, processors, nlp, pool, detail)


def run_book(
    chapters: Iterable[Chapter],
    lang: str = "ru",
    mode: str = "ensemble",
    processors: Sequence[str] | None = None,
    workers: int = 2,
    on_chapter: Callable | None = None,
    nlp: NlpSettings | None = None,
    pool: NlpPool | None = None,
    on_part: Callable | None = None,
) -> Iterator[tuple[int, engine.AnalysisResult]]:
    """Analyse chapters in worker processes; yield (chapter_index, AnalysisResult) as each finishes.

    Work goes to the workers in units (nlp.units): a chapter is one unit unless it is huge, then it is cut
    into bounded ones and their results combined, so memory stays bounded and progress shows within it
    (logged, and `on_part(chapter_index, parts_done, parts)` after each part of a multi-part chapter).
    Results come in submission order, a few units in flight at once. A processor that fails on a unit
    is not started on later units (units already in flight keep its votes) and its failure is carried
    in every later result's `processor_failures`; the others go on.
    """
    nlp = nlp or NlpSettings()
    plan = engine.plan(mode, processors, nlp, lang)
    own_pool = pool is None
    pool = pool or NlpPool(workers)
    failures: dict[str, str] = {}
    window = max(2, pool.workers * 2)  # units in flight: bounds memory on long books and huge chapters
    pending: deque = deque()

    def unit_work() -> Iterator[tuple[int, int, list[units.Unit], Chapter]]:
        for index, chapter in enumerate(chapters):
            cut, pieces = units.pieces(chapter)
            if len(cut) > 1:
                log.info("chapter %d: %d characters, analysed in %d parts", index, len(chapter.text), len(cut))
            for number, piece in enumerate(pieces):
                yield index, number, cut, piece

    source = unit_work()

    def start(index: int, number: int, cut: list[units.Unit], chapter: Chapter) -> None:
        names = [p for p in plan.processors if p not in failures]
        job: ChapterJob | Future
        if mode in POOLED_MODES:
            job = ChapterJob.start(pool, chapter, lang, names, nlp, plan)
        else:
            job = pool.submit(analyze_task, chapter, lang, mode, names, nlp)
        pending.append((index, number, cut, job, chapter, names))

    def finish(job, chapter, names) -> engine.AnalysisResult:
        if isinstance(job, Future):
            try:
                try:
                    result = job.result()
                except BrokenProcessPool:  # a worker died (maybe another chapter's): retry once
                    pool.restart()
                    result = pool.submit(analyze_task, chapter, lang, mode, names, nlp).result()
            except BrokenProcessPool as exc:
                pool.restart()
                result = engine.failed_result(chapter, lang, plan, {n: f"worker died: {exc}" for n in names})
            except Exception as exc:
                result = engine.failed_result(chapter, lang, plan, {n: f"{type(exc).__name__}: {exc}" for n in names})
        else:
            result = job.collect()
        result.processor_failures = {**failures, **result.processor_failures}
        failures.update(result.processor_failures)
        return result

    parts: list[engine.AnalysisResult] = []
    try:
        for _ in range(window):
            item = next(source, None)
            if item is None:
                break
            start(*item)
        while pending:
            index, number, cut, job, chapter, names = pending.popleft()
            parts.append(finish(job, chapter, names))
            item = next(source, None)
            if item is not None:
                start(*item)
            if len(cut) > 1:
                log.info("chapter %d: part %d/%d done", index, number + 1, len(cut))
                if on_part is not None:
                    on_part(index, number + 1, len(cut))
            if number + 1 < len(cut):
                continue
            result = units.combine(parts, cut)
            result.processor_failures = {**failures, **result.processor_failures}
            parts = []
            if on_chapter is not None:
                on_chapter(index, result)
            yield index, result
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (errors.Terminated): the workers go now, not after their chapter
        pool.terminate()
        raise
    except GeneratorExit:  # the caller stopped early (its own error or interrupt): nobody wants the rest
        if own_pool:
            pool.terminate()
        raise
    finally:
        if own_pool:
            pool.close()
