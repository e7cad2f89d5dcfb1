"""A damaged database or cache index (issue 13, item 19): health finds it without writing; the cache heals."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from conftest import SAMPLES

EPUB = SAMPLES / "ru_sample.epub"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _garble_pages(db: Path, first: int, last: int) -> None:
    """Write garbage over pages first..last (1-based, as SQLite numbers them)."""
    header = db.read_bytes()[:100]
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    assert db.stat().st_size >= last * page_size, "the test database is too small to damage those pages"
    with open(db, "r+b") as fh:
        fh.seek((first - 1) * page_size)
        fh.write(bytes((i * 37 + 11) % 251 for i in range((last - first + 1) * page_size)))


def _filled_home(cli, home: Path) -> Path:
    for name in ("ru_sample.fb2", "ru_sample.txt", "ru_sample.epub", "en_sample.txt", "en_sample.epub"):
        assert cli("books", "import", SAMPLES / name).code == 0
    db = home / "bookreader.db"
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0  # all in the main file
    return db


def test_health_finds_damaged_pages_and_leaves_the_file_alone(cli, home):
    db = _filled_home(cli, home)
    assert cli("health").code in (0, 1)  # whatever the processors say, the database is fine
    _garble_pages(db, 5, 7)
    before = _sha(db)
    res = cli("health", "--json")
    assert res.code == 1, res.stdout + res.stderr
    report = res.json()
    assert report["status"] == "unhealthy"
    assert report["checks"]["database"]["status"] == "unhealthy"
    assert "quick_check" in report["checks"]["database"]["detail"]
    assert any(p.startswith("database:") for p in report["problems"])
    assert _sha(db) == before  # health wrote nothing into the damaged file
    assert "Traceback" not in res.stderr
    human = cli("health")
    assert human.code == 1 and "database" in human.stderr and "Traceback" not in human.stderr
    assert _sha(db) == before


def _damage_cache_index(home: Path) -> Path:
    index = home / "cache" / "epub" / "cache.db"
    assert index.is_file()
    for extra in (Path(f"{index}-wal"), Path(f"{index}-shm")):
        extra.unlink(missing_ok=True)
    index.write_bytes(b"this is not an SQLite database at all " * 200)
    return index


def test_a_damaged_cache_index_is_moved_aside_and_rebuilt(cli, home):
    book_id = cli("books", "import", EPUB, "--json").json()["imported"][0]["book_id"]
    assert cli("cache", "put", str(book_id)).code == 0
    _damage_cache_index(home)

    health = cli("health", "--json")
    assert health.code == 1
    assert health.json()["checks"]["cache_index"]["status"] == "unhealthy"

    put = cli("cache", "put", str(book_id), "--json")
    assert put.code == 0, put.stderr
    assert put.json()["status"] == "cached"  # rebuilt from the file
    assert "cache" in put.stderr.lower() and "moved" in put.stderr  # a warning says what happened
    aside = [p for p in (home / "cache").iterdir() if p.name.startswith("epub.damaged")]
    assert len(aside) == 1
    assert cli("health", "--json").json()["checks"]["cache_index"]["status"] == "healthy"
    got = cli("cache", "get", str(book_id), "-o", str(home / "copy.epub"))
    assert got.code == 0 and (home / "copy.epub").read_bytes() == EPUB.read_bytes()


def test_cache_clear_and_process_work_over_a_damaged_cache_index(cli, home):
    book_id = cli("books", "import", EPUB, "--json").json()["imported"][0]["book_id"]
    assert cli("cache", "put", str(book_id)).code == 0
    _damage_cache_index(home)
    cleared = cli("cache", "clear", "--json")
    assert cleared.code == 0, cleared.stderr
    assert cleared.json()["remaining"] == 0
    assert not [p for p in (home / "cache").iterdir() if p.name.startswith("epub.damaged")]  # clear removes it

    assert cli("cache", "put", str(book_id)).code == 0
    _damage_cache_index(home)
    res = cli("process", str(book_id), "--processors", "spacy", "--mode", "single", "--json")
    assert res.code == 0, res.stderr
    assert res.json()["cache_status"] == "cached"
    conn = sqlite3.connect(home / "cache" / "epub" / "cache.db")
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert json.loads(cli("cache", "stats", "--json").stdout)["entries"] == 1
