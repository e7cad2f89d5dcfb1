"""Image bytes on disk: prove they are a real picture, then store them atomically under a content-hash name.

An image API under load answers 200 with HTML, a half body or a placeholder; saving such bytes would give
the reader a broken picture, so nothing is written until Pillow has decoded the whole image.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

TEMP_PREFIX = ".tmp-"  # partial writes; cleanup removes stale ones

# (magic test, extension, Pillow format name)
_SIGNATURES = (
    (lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"), ".png", "PNG"),
    (lambda b: b.startswith(b"\xff\xd8\xff"), ".jpg", "JPEG"),
    (lambda b: len(b) >= 12 and b[:4] == b"RIFF" and b[8:12] == b"WEBP", ".webp", "WEBP"),
)
IMAGE_EXTENSIONS = tuple(ext for _, ext, _ in _SIGNATURES)


class InvalidImage(ValueError):
    """The bytes are not an acceptable picture (wrong type, bad magic, undecodable, absurd size)."""


@dataclass(frozen=True)
class ImageInfo:
    extension: str  # ".png" | ".jpg" | ".webp", from the magic bytes, never from the server's word
    format: str
    width: int
    height: int
    size_bytes: int
    sha256: str


def sniff_extension(data: bytes) -> str | None:
    """The extension the magic bytes prove, or None."""
    for test, ext, _ in _SIGNATURES:
        if test(data[:16]):
            return ext
    return None


def validate_image(data: bytes, content_type: str | None, min_px: int = 16, max_px: int = 8192) -> ImageInfo:
    """Accept only a fully decodable PNG/JPEG/WebP with sane dimensions; raise InvalidImage otherwise."""
    from PIL import Image

    ctype = (content_type or "").split(";")[0].strip().lower()
    if not ctype.startswith("image/"):
        raise InvalidImage(f"content type {ctype or 'missing'!r} is not an image")
    if not data:
        raise InvalidImage("empty body")
    ext = sniff_extension(data)
    if ext is None:
        raise InvalidImage(f"unknown magic bytes {data[:8].hex()} (content type {ctype})")
    fmt = next(f for _, e, f in _SIGNATURES if e == ext)
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as probe:
            width, height = probe.size  # from the header: checked before any pixel is decoded
            if not (min_px <= width <= max_px and min_px <= height <= max_px):
                raise InvalidImage(f"absurd dimensions {width}x{height} (allowed {min_px}..{max_px} px)")
            probe.verify()
        with Image.open(io.BytesIO(data), formats=[fmt]) as full:
            full.load()  # verify() skips pixel data for JPEG/WebP; load() decodes every byte
    except InvalidImage:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, DecompressionBombError, ...)
        raise InvalidImage(f"{fmt} does not decode: {type(exc).__name__}: {exc}") from None
    return ImageInfo(ext, fmt, width, height, len(data), hashlib.sha256(data).hexdigest())


def write_image_atomic(images_dir: Path, data: bytes, info: ImageInfo) -> Path:
    """Store under <sha256><ext>: temp file in the same dir, fsync, rename; an identical file is reused."""
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    target = images_dir / f"{info.sha256}{info.extension}"
    if target.is_file() and not target.is_symlink() and _same_content(target, info):
        return target
    fd, tmp_name = tempfile.mkstemp(dir=images_dir, prefix=TEMP_PREFIX, suffix=info.extension)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(images_dir)
    return target


def _same_content(path: Path, info: ImageInfo) -> bool:
    try:
        if path.stat().st_size != info.size_bytes:
            return False
        return hashlib.sha256(path.read_bytes()).hexdigest() == info.sha256
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
