"""CFI locations: our generate_locations vs epub.js's own locations.generate (node + jsdom), same EPUBs.

Run: .venv/bin/python bench/bench_cfi.py [EPUB ...]   (needs tests/js/install.sh for the epub.js side)
Default books: Moby-Dick (futurepress EPUB 3 and Gutenberg EPUB 2), War and Peace (Gutenberg EPUB 3),
and the largest Russian EPUB in ../shared/corpus. Prints one JSON document with the figures.

epub.js is timed twice: with its default pause (100 ms between sections, what a reader in a browser
pays) and with pause 0 (pure work; the honest comparison). Ours is timed cold: zip, parse, walk, strings.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bookreader_cli.epubcfi.dom import EpubDom
from bookreader_cli.epubcfi.locations import generate_locations, locations_for_count

CORPUS = REPO.parent / "shared" / "corpus"
JS = REPO / "tests" / "js" / "epubjs_ref.js"


def default_books() -> list[Path]:
    picks = [
        CORPUS / "en_epub3__futurepress_epub.js" / "moby-dick.epub",
        CORPUS / "en_epub2__olekavr_ZF_task" / "pg2701.epub",
        CORPUS / "en_epub3__thuleanh543_data_epub" / "pg2600-images-3.epub",
    ]
    russian = [p for p in CORPUS.glob("*/*.epub") if p.parent.name.startswith("ru_")]
    if russian:
        picks.append(
            max(
                russian,
                key=lambda p: sum(
                    len(n.data) for s in EpubDom(p).sections for n in EpubDom(p).section_dom(s.index).nodes
                ),
            )
        )
    return [p for p in picks if p.exists()]


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def epubjs(path: Path, chars: int, pause: int | None) -> tuple[float, float, list[str]]:
    """(wall seconds incl. node start-up, generate() seconds as epub.js measured it, locations)."""
    request = {"epub": str(path), "chars": chars}
    if pause is not None:
        request["pause"] = pause
    start = time.perf_counter()
    done = subprocess.run(
        ["node", str(JS)], input=json.dumps(request), capture_output=True, text=True, cwd=JS.parent, check=False
    )
    wall = time.perf_counter() - start
    out = json.loads(done.stdout)
    if "error" in out:
        raise RuntimeError(out["error"][:300])
    return wall, out["seconds"], out["locations"]


def bench_book(path: Path) -> dict:
    ours_150, locations = best_of(lambda: generate_locations(path, 150))
    ours_count, (chars, counted) = best_of(lambda: locations_for_count(path, 2000))
    _, js_150, js_locations = epubjs(path, 150, 0)
    _, js_150_default, _ = epubjs(path, 150, None)
    _, js_count, js_count_locations = epubjs(path, chars, 0)
    return {
        "book": path.name,
        "sections": len(EpubDom(path).sections),
        "chars_150": {
            "locations": len(locations),
            "identical": locations == js_locations,
            "ours_s": round(ours_150, 4),
            "epubjs_s_pause0": round(js_150, 3),
            "epubjs_s_default_pause": round(js_150_default, 3),
            "speedup_vs_pause0": round(js_150 / ours_150, 1),
            "speedup_vs_default": round(js_150_default / ours_150, 1),
        },
        "count_2000": {
            "chars": chars,
            "locations": len(counted),
            "identical": counted == js_count_locations,
            "ours_s_incl_choosing_chars": round(ours_count, 4),
            "epubjs_s_pause0": round(js_count, 3),
            "speedup_vs_pause0": round(js_count / ours_count, 1),
        },
    }


def main(argv: list[str]) -> None:
    books = [Path(a) for a in argv] or default_books()
    results = [bench_book(p) for p in books]
    speedups = [r["chars_150"]["speedup_vs_pause0"] for r in results]
    print(
        json.dumps(
            {"books": results, "median_speedup_chars150_vs_pause0": statistics.median(speedups)},
            indent=2,
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
