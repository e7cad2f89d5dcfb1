"""Speed and memory of the engine over whole novels: wall time, tokens/s, peak RSS per worker.

    python bench/bench_process.py [BOOK ...] [--mode ensemble] [--processors spacy,natasha,stanza]
                                  [--workers 1,2] [--baseline] [--max-chars N] [--json]

Default books: Братья Карамазовы (TXT) and Война и мир, книга 1 (FB2) from ../shared/corpus. `--baseline`
adds Natasha alone in one process (in-process, no pool). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
DEFAULT_BOOKS = [
    CORPUS / "ru_txt__d0rj_RusLit" / "dostoevsky_bratya_karamazovy.txt",
    CORPUS / "ru_fb2__de-don_searcher" / "tolstoy_voina_i_mir_kniga1.nocover.fb2",
]


def tokens_in(text: str) -> int:
    import re

    return len(re.findall(r"\w+|[^\w\s]", text))


def chapters_of(path: Path, max_chars: int | None):
    from bookreader_cli.books import load_book

    book = load_book(path)
    chapters, total = [], 0
    for ch in book.chapters:
        if max_chars and total >= max_chars:
            break
        chapters.append(ch)
        total += len(ch.text)
    return book.title, chapters


def run(chapters, mode: str, processors, workers: int, in_process: bool) -> dict:
    from bookreader_cli.nlp.engine import analyze_chapter
    from bookreader_cli.nlp.runner import run_book

    started = time.perf_counter()
    descriptions, used, failures, rss = 0, set(), {}, {}
    if in_process:
        for ch in chapters:
            r = analyze_chapter(ch, mode=mode, processors=processors)
            descriptions += len(r.descriptions)
            used.update(r.processors_used)
            failures.update(r.processor_failures)
        rss[str(os.getpid())] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    else:
        for _, r in run_book(chapters, mode=mode, processors=processors, workers=workers):
            descriptions += len(r.descriptions)
            used.update(r.processors_used)
            failures.update(r.processor_failures)
            for w in r.timings.get("workers", {}).values():
                rss[str(w["pid"])] = max(rss.get(str(w["pid"]), 0), round(w["peak_rss_mb"], 1))
            if "worker_pid" in r.timings:
                pid = str(r.timings["worker_pid"])
                rss[pid] = max(rss.get(pid, 0), round(r.timings["worker_peak_rss_mb"], 1))
    wall = time.perf_counter() - started
    return {
        "wall_seconds": round(wall, 2),
        "descriptions": descriptions,
        "processors_used": sorted(used),
        "processor_failures": failures,
        "peak_rss_mb_per_worker": rss,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("books", nargs="*", type=Path)
    ap.add_argument("--mode", default="ensemble")
    ap.add_argument("--processors", default="spacy,natasha,stanza")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--baseline", action="store_true", help="also Natasha alone in one process")
    ap.add_argument("--max-chars", type=int, default=None, help="only the first chapters up to this many chars")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    books = args.books or [b for b in DEFAULT_BOOKS if b.exists()]
    if not books:
        print("no books found (../shared/corpus absent?)", file=sys.stderr)
        return 2
    processors = [p for p in args.processors.split(",") if p]
    report = []
    for path in books:
        title, chapters = chapters_of(path, args.max_chars)
        chars = sum(len(c.text) for c in chapters)
        tokens = sum(tokens_in(c.text) for c in chapters)
        runs = [(f"{args.mode} workers={w}", args.mode, processors, int(w), False) for w in args.workers.split(",")]
        if args.baseline:
            runs.append(("natasha alone, in-process", "single", ["natasha"], 1, True))
        for label, mode, procs, workers, in_process in runs:
            row = {
                "book": path.name,
                "title": title,
                "chapters": len(chapters),
                "chars": chars,
                "tokens": tokens,
                "run": label,
                **run(chapters, mode, procs, workers, in_process),
            }
            row["tokens_per_second"] = round(tokens / row["wall_seconds"], 1) if row["wall_seconds"] else None
            report.append(row)
            if not args.json:
                print(
                    f"{path.name[:40]:40s} {label:28s} {row['wall_seconds']:8.1f}s {row['tokens_per_second']:9.0f} tok/s "
                    f"rss/worker MB={sorted(row['peak_rss_mb_per_worker'].values())} used={row['processors_used']} "
                    f"descs={row['descriptions']} fail={list(row['processor_failures'])}",
                    file=sys.stderr,
                )
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
