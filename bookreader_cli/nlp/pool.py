"""Worker processes for NLP: models load once per worker and serve many chapters.

Two kinds of task run in the workers:
- `score` (parallel/ensemble modes): one processor over one chapter's sentences → votes; the parent votes;
- `analyze` (single/sequential/adaptive modes): a whole chapter analysed in the worker.
Workers are spawned (not forked) with OMP/OPENBLAS/MKL_NUM_THREADS=1 set before numpy/torch load.
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator

from bookreader_cli.nlp.compat import single_thread_math


def _init_worker() -> None:
    single_thread_math()


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def score_task(name: str, lang: str, text: str, sentences: list, settings=None) -> dict:
    """Run in a worker: one processor's votes for one chapter, plus timings and the worker's id."""
    from bookreader_cli.nlp.engine import loaded_processor

    processor, load_seconds = loaded_processor(name, settings, lang)
    started = time.perf_counter()
    votes = processor.score(text, sentences, lang)
    return {"votes": votes, "load_seconds": load_seconds, "score_seconds": time.perf_counter() - started,
            "pid": os.getpid(), "peak_rss_mb": _peak_rss_mb()}


def analyze_task(text: str, paragraphs, lang: str, mode: str, processors, settings=None):
    """Run in a worker: a whole chapter in-process (single, sequential or adaptive mode)."""
    from bookreader_cli.nlp.engine import analyze_text

    result = analyze_text(text, paragraphs, lang=lang, mode=mode, processors=processors, settings=settings,
                          in_process=True)
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

            single_thread_math()
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker)
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _chapter_input(chapter) -> tuple[str, object]:
    """Accept books.model.Chapter, (text, paragraphs) pairs, dicts, or bare strings."""
    if isinstance(chapter, str):
        return chapter, None
    if isinstance(chapter, dict):
        return chapter["text"], chapter.get("paragraphs")
    if isinstance(chapter, (tuple, list)):
        return chapter[0], (chapter[1] if len(chapter) > 1 else None)
    return chapter.text, getattr(chapter, "paragraphs", None)


def run_book(chapters: Iterable, lang: str = "ru", mode: str = "ensemble", processors: list[str] | None = None,
             workers: int = 2, on_chapter: Callable | None = None, settings=None,
             pool: NlpPool | None = None) -> Iterator[tuple[int, object]]:
    """Analyse chapters in worker processes; yield (chapter_index, AnalysisResult) as each finishes.

    Results come in submission order, a few chapters in flight at once. A processor that fails on a chapter
    is not started on later chapters (chapters already in flight keep its votes) and its failure is carried
    in every later result's `processor_failures`; the others go on.
    """
    from bookreader_cli.nlp import engine

    plan = engine.plan(mode, processors, settings, lang)
    own_pool = pool is None
    pool = pool or NlpPool(workers)
    failures: dict[str, str] = {}
    window = max(2, pool.workers * 2)  # chapters in flight: bounds memory on long books
    pending: deque = deque()
    source = iter(enumerate(chapters))

    def start(index: int, chapter) -> None:
        text, paragraphs = _chapter_input(chapter)
        names = [p for p in plan.processors if p not in failures]
        if mode in ("parallel", "ensemble"):
            job = engine.ChapterJob.start(pool, text, paragraphs, lang, mode, names, settings, plan)
        else:
            job = pool.submit(analyze_task, text, paragraphs, lang, mode, names, settings)
        pending.append((index, job, text, paragraphs, names))

    def finish(index, job, text, paragraphs, names):
        if isinstance(job, Future):
            try:
                try:
                    result = job.result()
                except BrokenProcessPool:  # a worker died (maybe another chapter's): retry once
                    pool.restart()
                    result = pool.submit(analyze_task, text, paragraphs, lang, mode, names, settings).result()
            except BrokenProcessPool as exc:
                pool.restart()
                result = engine.failed_result(text, paragraphs, lang, mode, plan, {n: f"worker died: {exc}" for n in names})
            except Exception as exc:
                result = engine.failed_result(text, paragraphs, lang, mode, plan, {n: f"{type(exc).__name__}: {exc}" for n in names})
        else:
            result = job.collect()
        result.processor_failures = {**failures, **result.processor_failures}
        failures.update(result.processor_failures)
        return result

    try:
        for _ in range(window):
            item = next(source, None)
            if item is None:
                break
            start(*item)
        while pending:
            index, job, text, paragraphs, names = pending.popleft()
            result = finish(index, job, text, paragraphs, names)
            item = next(source, None)
            if item is not None:
                start(*item)
            if on_chapter is not None:
                on_chapter(index, result)
            yield index, result
    finally:
        if own_pool:
            pool.close()
