"""Parse-only import time of the largest corpus books (`load_book`: read, sniff, parse; no database).

Each book is parsed N times in this one process (after one warm-up parse that also loads lxml/ebooklib)
and min / median / max wall-clock seconds are printed with the book's size, chapters and characters.
Books missing from ../shared/corpus are skipped. Extra paths may be given on the command line.
`cli_s` is the whole `bookreader books import FILE` in a fresh process and a fresh home (interpreter
start, sha256, parse, SQLite write), once per book.

    .venv/bin/python bench/bench_import.py [--runs 5] [--json] [extra book paths...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CORPUS = REPO.parent / "shared" / "corpus"

BOOKS = [
    "ru_fb2__de-don_searcher/tolstoy_voina_i_mir_kniga1.nocover.fb2",  # Война и мир, книга 1: 2.7 MB FB2
    "en_epub2__olekavr_ZF_task/pg2701.epub",  # Moby-Dick, PG EPUB 2
    "en_epub3__futurepress_epub.js/moby-dick.epub",  # Moby-Dick, IDPF EPUB 3, 144 spine items
    "en_epub3__thuleanh543_data_epub/pg2600-images-3.epub",  # War and Peace (English), 368 spine items
    "ru_txt__d0rj_RusLit/dostoevsky_bratya_karamazovy.txt",  # Братья Карамазовы, 3.3 MB TXT
]


def main() -> None:
    from bookreader_cli.books import load_book

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()
    paths = [CORPUS / rel for rel in BOOKS if (CORPUS / rel).exists()] + args.paths
    if not paths:
        raise SystemExit(f"no books found (looked in {CORPUS})")
    results = {}
    for path in paths:
        book = load_book(path)  # warm-up
        seconds = []
        for _ in range(args.runs):
            started = time.perf_counter()
            load_book(path)
            seconds.append(time.perf_counter() - started)
        results[path.name] = {
            "bytes": path.stat().st_size,
            "format": book.format,
            "chapters": len(book.chapters),
            "characters": sum(len(c.text) for c in book.chapters),
            "min_s": round(min(seconds), 3),
            "median_s": round(statistics.median(seconds), 3),
            "max_s": round(max(seconds), 3),
            "cli_s": _cli_import_seconds(path),
        }
    if args.json:
        print(json.dumps({"runs": args.runs, "books": results}, ensure_ascii=False, indent=2))
        return
    print(
        f"{'book':45} {'format':6} {'MB':>5} {'chapters':>8} {'chars':>9} {'min s':>6} {'median':>6} {'max':>6} {'cli s':>6}"
    )
    for name, r in results.items():
        print(
            f"{name[:45]:45} {r['format']:6} {r['bytes'] / 2**20:5.1f} {r['chapters']:8} {r['characters']:9} "
            f"{r['min_s']:6.3f} {r['median_s']:6.3f} {r['max_s']:6.3f} {r['cli_s']:6.3f}"
        )


def _cli_import_seconds(path: Path) -> float:
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bookreader_cli", "--home", home, "books", "import", str(path), "--json"],
            check=True,
            capture_output=True,
        )
        return round(time.perf_counter() - started, 3)


if __name__ == "__main__":
    main()
