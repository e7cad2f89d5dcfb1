"""A gzip-compressed cache of EPUB files (the seed's cache_epub_file_task), on diskcache, bytes only.

Why these choices:
- diskcache unpickles values it stored as pickles, and a cache directory someone else can write to
  would then run their code (CVE-2025-69872). `BytesOnlyDisk` stores nothing but `bytes` and refuses to
  load a pickled value or key, so no code path here ever unpickles. The directory is created 0700.
- Each value carries its own header (magic, JSON with the original's sha256, size and the source file's
  size/mtime) before the gzip payload. A value that does not parse, inflate, or hash back to that sha256
  (a truncated file, a flipped byte) is never served: it is rebuilt from the source file.
- diskcache is safe across processes (SQLite transactions, values written to a new file then swapped in);
  a reader that loses a race with a refreshing writer sees a miss and rebuilds, so it still returns the
  right bytes.
- The cache is disposable: when its index (diskcache's cache.db) is damaged (SQLite says "malformed" or
  "not a database"), the directory is moved aside (`epub.damaged-…`, a warning names it), a new one is
  started and the operation runs again; `cache clear` deletes the moved-aside copies.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from diskcache import Cache, Disk
from diskcache.core import MODE_PICKLE

from bookreader_cli.errors import BadInput

DEFAULT_TTL_SECONDS = 24 * 3600
SUBDIR = "epub"
_MAGIC = b"BRC1"
_HEADER_LEN = struct.Struct(">I")
_GZIP_LEVEL = 6
DAMAGED_PREFIX = SUBDIR + ".damaged-"
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26

log = logging.getLogger("bookreader.cache")
T = TypeVar("T")


class BytesOnlyDisk(Disk):
    """A diskcache Disk that stores and loads raw bytes (and str keys) only: never pickles."""

    def put(self, key):
        if not isinstance(key, str):
            raise TypeError("cache keys must be str")
        return super().put(key)

    def get(self, key, raw):
        if not raw:
            raise ValueError("refusing to unpickle a cache key")
        return super().get(key, raw)

    def store(self, value, read, key=None):
        if read or not isinstance(value, bytes):
            raise TypeError("the EPUB cache stores bytes only")
        return super().store(value, read, key=key)

    def fetch(self, mode, filename, value, read):
        if mode == MODE_PICKLE:
            raise ValueError("refusing to unpickle a cache value")
        return super().fetch(mode, filename, value, read)


def cache_key(book_id) -> str:
    return f"epub:{book_id}"


_OPEN: dict[tuple[str, int], Cache] = {}


def _open(cache_dir: str | Path) -> Cache:
    """The Cache for this directory, opened once per process (opening costs ~40 ms of SQLite set-up)."""
    root = Path(cache_dir)
    directory = root / SUBDIR
    key = (str(directory.resolve()), os.getpid())  # never share SQLite connections across a fork
    cache = _OPEN.get(key)
    if cache is None or not directory.is_dir():
        for path in (root, directory):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)
        cache = _OPEN[key] = Cache(str(directory), disk=BytesOnlyDisk)
    return cache


# --- a damaged index -----------------------------------------------------------------------------------


def index_path(cache_dir: str | Path) -> Path:
    """diskcache's SQLite index of the EPUB cache."""
    return Path(cache_dir) / SUBDIR / "cache.db"


def _is_damage(exc: BaseException) -> bool:
    """SQLite's "database disk image is malformed" or "file is not a database"; never "locked"/"busy"."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def index_damage(cache_dir: str | Path) -> list[str]:
    """`PRAGMA quick_check` of the index: [] when sound or absent, else SQLite's findings."""
    path = index_path(cache_dir)
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(str(path), timeout=5)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)] if _is_damage(exc) else []  # busy: not damage
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


def _move_aside(cache_dir: str | Path, cause: BaseException) -> Path | None:
    """Close our handle and rename the damaged directory out of the way (unless another process has
    already replaced it with a sound one); returns where it went."""
    directory = Path(cache_dir) / SUBDIR
    for key in [k for k in _OPEN if k[1] == os.getpid() and k[0] == str(directory.resolve())]:
        try:
            _OPEN.pop(key).close()
        except Exception as exc:  # closing a damaged database may fail as well
            log.debug("closing the damaged cache failed: %s", exc)
    if not index_damage(cache_dir) and index_path(cache_dir).is_file():
        return None  # someone else moved it aside and started afresh meanwhile
    aside = directory.with_name(f"{DAMAGED_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        directory.rename(aside)
    except FileNotFoundError:
        return None
    log.warning(
        "the EPUB cache index %s was damaged (%s): moved the cache aside to %s and started a new "
        "one (`bookreader cache clear` deletes the old copy)",
        index_path(cache_dir),
        cause,
        aside,
    )
    return aside


def _healing(cache_dir: str | Path, operation: Callable[[Cache], T]) -> T:
    """operation(cache); when the index turns out damaged, move it aside and run it once more on a new one."""
    try:
        return operation(_open(cache_dir))
    except sqlite3.DatabaseError as exc:
        if not _is_damage(exc):
            raise
        _move_aside(cache_dir, exc)
    return operation(_open(cache_dir))


def _remove_damaged_copies(cache_dir: str | Path) -> int:
    """Delete directories moved aside by _move_aside; returns the bytes freed."""
    freed = 0
    root = Path(cache_dir)
    if not root.is_dir():
        return 0
    for path in root.glob(DAMAGED_PREFIX + "*"):
        if path.is_dir() and not path.is_symlink():
            freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(path, ignore_errors=True)
    return freed


# --- entry format ------------------------------------------------------------------------------------------


def _source_state(path: Path) -> dict:
    try:
        st = path.stat()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    return {"source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}


def _read_source(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None


def _encode(data: bytes, path: Path, state: dict, ttl: int) -> tuple[bytes, dict]:
    payload = gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
    header = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "compressed_size": len(payload),
        "source_path": str(path.resolve()),
        **state,
        "stored_at": time.time(),
        "ttl_seconds": ttl,
    }
    head = json.dumps(header, sort_keys=True).encode()
    return _MAGIC + _HEADER_LEN.pack(len(head)) + head + payload, header


def _decode_header(blob: bytes) -> tuple[dict, int] | None:
    if not isinstance(blob, bytes) or len(blob) < 8 or blob[:4] != _MAGIC:
        return None
    (length,) = _HEADER_LEN.unpack(blob[4:8])
    if 8 + length > len(blob):
        return None
    try:
        header = json.loads(blob[8 : 8 + length])
    except ValueError:
        return None
    if not isinstance(header, dict) or not isinstance(header.get("sha256"), str):
        return None
    return header, 8 + length


def _decode(blob: bytes) -> tuple[dict, bytes] | None:
    """(header, original bytes) if the entry is intact, else None."""
    parsed = _decode_header(blob)
    if parsed is None:
        return None
    header, start = parsed
    try:
        data = gzip.decompress(blob[start:])
    except (OSError, EOFError, zlib.error):
        return None
    if len(data) != header.get("size") or hashlib.sha256(data).hexdigest() != header["sha256"]:
        return None
    return header, data


# --- the four operations -----------------------------------------------------------------------------------


def _result(book_id, header: dict, ttl: int, status: str, **extra) -> dict:
    size = header["size"]
    compressed = header["compressed_size"]
    return {
        "book_id": book_id,
        "cache_key": cache_key(book_id),
        "file_size_bytes": size,
        "compressed_size_bytes": compressed,
        "compression_ratio": round(compressed / size, 4) if size else 1.0,
        "ttl_seconds": ttl,
        "status": status,
        "sha256": header["sha256"],
        **extra,
    }


def _store(cache: Cache, book_id, path: Path, ttl: int) -> tuple[dict, bytes]:
    state = _source_state(path)
    data = _read_source(path)
    blob, header = _encode(data, path, state, ttl)
    cache.set(cache_key(book_id), blob, expire=ttl)
    return header, data


def _lookup(cache: Cache, book_id, path: Path) -> tuple[str, dict | None, bytes | None]:
    """What the cache holds for this book: ("hit"|"missing"|"corrupt"|"stale", header, data)."""
    try:
        blob = cache.get(cache_key(book_id), default=None)
    except ValueError:  # a pickled value planted under our key: refused by BytesOnlyDisk, replaced
        return "corrupt", None, None
    if blob is None:
        return "missing", None, None
    decoded = _decode(blob)
    if decoded is None:
        return "corrupt", None, None
    header, data = decoded
    state = _source_state(path)
    if header.get("source_path") != str(path.resolve()):
        return "stale", header, None
    if all(header.get(k) == v for k, v in state.items()):
        return "hit", header, data
    # size or mtime moved: the content decides (a touched but unchanged file is still a hit)
    if state["source_size"] == header["size"] and hashlib.sha256(_read_source(path)).hexdigest() == header["sha256"]:
        return "hit", header, data
    return "stale", header, None


_STATUS_AFTER = {"missing": "cached", "corrupt": "rebuilt", "stale": "refreshed"}


def cache_put(cache_dir: str | Path, book_id, path: str | Path, ttl: int = DEFAULT_TTL_SECONDS) -> dict:
    """Cache a book's EPUB; the seed's cache_epub_file_task dict. An intact, current entry is kept
    (status "fresh", its TTL restarted); otherwise it is (re)written: "cached", "refreshed" or "rebuilt"."""
    path = Path(path)
    if ttl <= 0:
        raise BadInput(f"the cache TTL must be positive, not {ttl}")
    started = time.perf_counter()

    def put(cache: Cache) -> tuple[dict, str]:
        found, header, _ = _lookup(cache, book_id, path)
        if found == "hit" and header is not None:
            cache.touch(cache_key(book_id), expire=ttl)  # same bytes: only the TTL restarts
            return header, "fresh"
        return _store(cache, book_id, path, ttl)[0], _STATUS_AFTER[found]

    header, status = _healing(cache_dir, put)
    return _result(book_id, header, ttl, status, seconds=round(time.perf_counter() - started, 4))


def cache_fetch(cache_dir: str | Path, book_id, path: str | Path, ttl: int = DEFAULT_TTL_SECONDS) -> tuple[bytes, dict]:
    """The original EPUB bytes, from the cache when the entry is intact and current, else rebuilt
    from the source first; and the result dict (status "hit", "cached", "refreshed" or "rebuilt")."""
    path = Path(path)

    def fetch(cache: Cache) -> tuple[bytes, dict]:
        found, header, data = _lookup(cache, book_id, path)
        if found == "hit" and header is not None and data is not None:
            return data, _result(book_id, header, header.get("ttl_seconds", ttl), "hit")
        header, data = _store(cache, book_id, path, ttl)
        return data, _result(book_id, header, ttl, _STATUS_AFTER[found])

    return _healing(cache_dir, fetch)


def cache_get(cache_dir: str | Path, book_id, path: str | Path, ttl: int = DEFAULT_TTL_SECONDS) -> bytes:
    """Byte-identical original EPUB (refreshing the entry if it is stale, missing or damaged)."""
    return cache_fetch(cache_dir, book_id, path, ttl)[0]


def cache_peek(cache_dir: str | Path, book_id) -> tuple[bytes, dict] | None:
    """An intact, unexpired entry's original bytes and result dict (status "hit"), whatever the source file
    is now, or None. For a source that vanished: the caller decides whether these bytes are still the book
    (compare the sha256). Never creates the cache directory."""
    if not (Path(cache_dir) / SUBDIR).is_dir():
        return None
    try:
        blob = _healing(cache_dir, lambda cache: cache.get(cache_key(book_id), default=None))
    except ValueError:
        return None
    decoded = _decode(blob) if blob is not None else None
    if decoded is None:
        return None
    header, data = decoded
    return data, _result(book_id, header, header.get("ttl_seconds", DEFAULT_TTL_SECONDS), "hit")


def cache_stats(cache_dir: str | Path) -> dict:
    """Entries, their original and compressed sizes, and the space the cache uses on disk."""
    return _healing(cache_dir, _stats)


def _stats(cache: Cache) -> dict:
    entries = damaged = original = compressed = 0
    books = []
    for key in list(cache.iterkeys()):
        try:
            blob = cache.get(key, default=None)
        except ValueError:  # not bytes (a pickle): never loaded
            entries += 1
            damaged += 1
            continue
        if blob is None:
            continue  # expired or removed meanwhile
        entries += 1
        parsed = _decode_header(blob)
        if parsed is None:
            damaged += 1
            continue
        header = parsed[0]
        original += header.get("size", 0)
        compressed += header.get("compressed_size", 0)
        books.append(key.partition(":")[2])
    volume = cache.volume()
    directory = cache.directory
    return {
        "directory": directory,
        "entries": entries,
        "damaged_entries": damaged,
        "original_bytes": original,
        "compressed_bytes": compressed,
        "compression_ratio": round(compressed / original, 4) if original else None,
        "disk_bytes": volume,
        "book_ids": books,
    }


def cache_clear(cache_dir: str | Path, expired_only: bool = False) -> dict:
    """Remove every entry, or only the expired ones; says how many went and how much space came back.
    Copies of a damaged cache moved aside earlier go too (they are never read)."""

    def clear(cache: Cache) -> dict:
        before = cache.volume()
        removed = cache.expire() if expired_only else cache.clear()
        return {
            "removed": removed,
            "remaining": len(cache),
            "expired_only": expired_only,
            "freed_bytes": max(0, before - cache.volume()),
        }

    result = _healing(cache_dir, clear)
    result["freed_bytes"] += _remove_damaged_copies(cache_dir)
    return result
