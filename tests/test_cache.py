"""The EPUB cache: byte-identical round trips, refresh on change, damaged entries rebuilt, no pickles."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import pickle
import random
import sqlite3
import stat
import time
import zipfile
from pathlib import Path

import pytest
from diskcache import Cache

from bookreader_cli.cache import (
    BytesOnlyDisk,
    cache_clear,
    cache_fetch,
    cache_get,
    cache_put,
    cache_stats,
)
from bookreader_cli.errors import BadInput

SAMPLES = Path(__file__).resolve().parents[1] / "sample_books"


def _write_epub_like(path: Path, text_kb: int = 120, image_kb: int = 80) -> Path:
    """A zip shaped like an EPUB: stored mimetype, deflated XHTML, an incompressible 'image'."""
    rng = random.Random(7)
    words = ["sea", "whale", "ship", "море", "кит", "wind", "storm", "deck"]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        prose = " ".join(rng.choice(words) for _ in range(text_kb * 200))
        zf.writestr("OEBPS/ch1.xhtml", f"<html><body><p>{prose}</p></body></html>", zipfile.ZIP_DEFLATED)
        zf.writestr("OEBPS/cover.jpg", rng.randbytes(image_kb * 1024), zipfile.ZIP_STORED)
    return path


@pytest.fixture
def book(tmp_path: Path) -> Path:
    """Big enough that diskcache keeps the value in its own file (> 32 KB)."""
    return _write_epub_like(tmp_path / "book.epub")


def test_put_then_get_is_byte_identical(tmp_path: Path, book: Path):
    cache_dir = tmp_path / "cache"
    result = cache_put(cache_dir, 7, book, ttl=3600)
    original = book.read_bytes()
    assert result["status"] == "cached"
    assert result["book_id"] == 7 and result["cache_key"] == "epub:7"
    assert result["file_size_bytes"] == len(original)
    assert result["ttl_seconds"] == 3600
    assert 0 < result["compressed_size_bytes"]
    assert result["compression_ratio"] == round(result["compressed_size_bytes"] / len(original), 4)
    data, info = cache_fetch(cache_dir, 7, book)
    assert data == original and info["status"] == "hit"
    assert cache_get(cache_dir, 7, book) == original
    assert cache_put(cache_dir, 7, book, ttl=3600)["status"] == "fresh"


def test_directory_is_private(tmp_path: Path, book: Path):
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book)
    for path in (cache_dir, cache_dir / "epub"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_changed_source_is_refreshed(tmp_path: Path, book: Path):
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book)
    book.write_bytes(book.read_bytes() + b"appended")
    data, info = cache_fetch(cache_dir, 1, book)
    assert data == book.read_bytes() and info["status"] == "refreshed"
    assert cache_fetch(cache_dir, 1, book)[1]["status"] == "hit"


def test_same_size_change_is_caught_by_mtime_and_hash(tmp_path: Path, book: Path):
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book)
    data = bytearray(book.read_bytes())
    data[100] ^= 0xFF
    book.write_bytes(bytes(data))
    os.utime(book, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    assert cache_get(cache_dir, 1, book) == bytes(data)


def test_touched_but_unchanged_file_is_still_a_hit(tmp_path: Path, book: Path):
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book)
    os.utime(book, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    assert cache_fetch(cache_dir, 1, book)[1]["status"] == "hit"


def _value_files(cache_dir: Path) -> list[Path]:
    return [p for p in (cache_dir / "epub").rglob("*.val")]


def test_truncated_entry_is_rebuilt_not_served(tmp_path: Path, book: Path):
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book)
    files = _value_files(cache_dir)
    assert files, "a book-sized value is stored in its own file"
    files[0].write_bytes(files[0].read_bytes()[: len(files[0].read_bytes()) // 2])
    data, info = cache_fetch(cache_dir, 1, book)
    assert data == book.read_bytes() and info["status"] == "rebuilt"


def test_flipped_byte_is_rebuilt_not_served(tmp_path: Path, book: Path):
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book)
    path = _value_files(cache_dir)[0]
    blob = bytearray(path.read_bytes())
    blob[-20] ^= 0x01  # inside the gzip payload: CRC or our sha256 must notice
    path.write_bytes(bytes(blob))
    data, info = cache_fetch(cache_dir, 1, book)
    assert data == book.read_bytes() and info["status"] == "rebuilt"


def test_damaged_small_entry_in_the_database_is_rebuilt(tmp_path: Path):
    """Small books live inside diskcache's SQLite file rather than in a file of their own."""
    small = SAMPLES / "en_sample.epub"
    book = tmp_path / "small.epub"
    book.write_bytes(small.read_bytes() if small.exists() else _write_epub_like(tmp_path / "s.zip", 2, 2).read_bytes())
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book)
    assert not _value_files(cache_dir)
    db = sqlite3.connect(cache_dir / "epub" / "cache.db")
    (blob,) = db.execute("SELECT value FROM Cache WHERE key = 'epub:1'").fetchone()
    db.execute("UPDATE Cache SET value = ? WHERE key = 'epub:1'", (bytes(blob)[: len(blob) - 10],))
    db.commit()
    db.close()
    data, info = cache_fetch(cache_dir, 1, book)
    assert data == book.read_bytes() and info["status"] == "rebuilt"


def test_foreign_entry_is_rebuilt(tmp_path: Path, book: Path):
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book)
    with Cache(str(cache_dir / "epub"), disk=BytesOnlyDisk) as cache:
        cache.set("epub:1", gzip.compress(book.read_bytes()))  # no header: not ours
    data, info = cache_fetch(cache_dir, 1, book)
    assert data == book.read_bytes() and info["status"] == "rebuilt"


def test_pickled_values_are_never_loaded(tmp_path: Path, book: Path):
    """A pickle planted under our key (by anyone who can write the directory) must not be unpickled."""
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book)

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with Cache(str(cache_dir / "epub")) as plain:  # the default Disk pickles non-bytes values
        plain.set("epub:1", Boom())
    assert cache_stats(cache_dir)["damaged_entries"] == 1
    data, info = cache_fetch(cache_dir, 1, book)
    assert data == book.read_bytes() and info["status"] == "rebuilt"
    assert not (tmp_path / "pwned").exists()
    with Cache(str(cache_dir / "epub"), disk=BytesOnlyDisk) as cache, pytest.raises(TypeError):
        cache.set("x", {"not": "bytes"})
    assert pickle  # (imported for clarity of intent: nothing here calls pickle.load)


def test_stats_and_clear(tmp_path: Path, book: Path):
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book)
    cache_put(cache_dir, 2, book, ttl=1)
    stats = cache_stats(cache_dir)
    assert stats["entries"] == 2 and stats["damaged_entries"] == 0
    assert stats["original_bytes"] == 2 * book.stat().st_size
    assert sorted(stats["book_ids"]) == ["1", "2"]
    assert stats["disk_bytes"] > 0
    time.sleep(1.1)
    cleared = cache_clear(cache_dir, expired_only=True)
    assert cleared["removed"] == 1 and cleared["remaining"] == 1
    assert cache_clear(cache_dir)["removed"] == 1
    assert cache_stats(cache_dir)["entries"] == 0


def test_expired_entry_is_rebuilt_on_get(tmp_path: Path, book: Path):
    cache_dir = tmp_path / "cache"
    cache_put(cache_dir, 1, book, ttl=1)
    time.sleep(1.1)
    data, info = cache_fetch(cache_dir, 1, book)
    assert data == book.read_bytes() and info["status"] == "cached"


def test_bad_input(tmp_path: Path, book: Path):
    with pytest.raises(BadInput):
        cache_put(tmp_path / "cache", 1, tmp_path / "missing.epub")
    with pytest.raises(BadInput):
        cache_put(tmp_path / "cache", 1, book, ttl=0)


def _reader(cache_dir: str, path: str, rounds: int, queue) -> None:
    bad = 0
    for _ in range(rounds):
        data = cache_get(cache_dir, 1, path)
        if data not in (Path(path + ".a").read_bytes(), Path(path + ".b").read_bytes()):
            bad += 1
    queue.put(bad)


def _writer(cache_dir: str, path: str, rounds: int) -> None:
    for i in range(rounds):
        version = Path(path + (".a" if i % 2 else ".b")).read_bytes()
        tmp = path + ".tmp"
        Path(tmp).write_bytes(version)
        os.replace(tmp, path)  # the source changes atomically, as a re-import would
        cache_put(cache_dir, 1, path)


def test_two_readers_while_a_writer_refreshes(tmp_path: Path, book: Path):
    """Every byte string a reader gets is one of the two real versions of the file, never a mix."""
    cache_dir = str(tmp_path / "cache")
    a = book.read_bytes()
    b = a + os.urandom(40_000)
    Path(str(book) + ".a").write_bytes(a)
    Path(str(book) + ".b").write_bytes(b)
    cache_put(cache_dir, 1, book)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    readers = [ctx.Process(target=_reader, args=(cache_dir, str(book), 40, queue)) for _ in range(2)]
    writer = ctx.Process(target=_writer, args=(cache_dir, str(book), 30))
    for p in readers + [writer]:
        p.start()
    for p in readers + [writer]:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert [queue.get(timeout=5) for _ in readers] == [0, 0]
