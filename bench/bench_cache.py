"""EPUB cache throughput: cache_put / cache_get (hit) in MB/s against a plain file copy of the same file.

Run: .venv/bin/python bench/bench_cache.py [EPUB ...]   (default: the EPUBs in ../shared/corpus, else
sample_books). Each figure is the best of 5 runs in one process (the Cache is opened once per process, as the
CLI does per command); MB = 10^6 bytes of the original file. put = read + sha256 + gzip + write;
get (hit) = stat + read + gunzip + sha256 check.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bookreader_cli.cache import cache_clear, cache_fetch, cache_put

CORPUS = REPO.parent / "shared" / "corpus"


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str]) -> None:
    books = (
        [Path(a) for a in argv]
        or sorted(
            p
            for p in CORPUS.glob("*/*.epub")
            if not p.parent.name.startswith("malformed") and p.stat().st_size > 100_000
        )
        or sorted((REPO / "sample_books").glob("*.epub"))
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp) / "cache"
        for i, path in enumerate(books):
            size = path.stat().st_size
            mb = size / 1e6
            copy_s = best(lambda path=path: shutil.copyfile(path, Path(tmp) / "copy.epub"))

            ids = iter(range(1000 * (i + 1), 1000 * (i + 2)))
            # a new key each time: a cold put
            put_s = best(lambda ids=ids, path=path: cache_put(cache_dir, f"{next(ids)}", path))
            cache_clear(cache_dir)
            info = cache_put(cache_dir, i, path)
            get_s = best(lambda i=i, path=path: cache_fetch(cache_dir, i, path))
            data, status = cache_fetch(cache_dir, i, path)
            assert data == path.read_bytes() and status["status"] == "hit"
            rows.append(
                {
                    "book": path.name,
                    "size_bytes": size,
                    "compression_ratio": info["compression_ratio"],
                    "copy_MBps": round(mb / copy_s, 1),
                    "put_MBps": round(mb / put_s, 1),
                    "get_hit_MBps": round(mb / get_s, 1),
                }
            )
    print(json.dumps({"books": rows}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
