"""Image bytes on disk: prove they are a real picture, then store them atomically under a content-hash name.

An image API under load answers 200 with HTML, a half body or a placeholder; saving such bytes would give
the reader a broken picture, so nothing is written until Pillow has decoded the whole image, the image's own
structure shows it complete (a body cut short without a Content-Length decodes no better than a corrupt one,
but it is worth another try), and it is not a placeholder (far smaller than asked, or a known one).
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


class TruncatedImage(InvalidImage):
    """The start of a real picture whose end never arrived (the connection closed early)."""


# MD5 of the rate-limit picture pollinations.ai sends with HTTP 200 instead of a 429 (~1.3 MB; reported in
# github.com/pollinations/pollinations/issues/7207)
KNOWN_PLACEHOLDER_MD5 = frozenset({"2090a5dc21c32952cbf8496339752bd1"})
PLACEHOLDER_SHRINK = 4  # a picture at most 1/4 of the width AND height asked is a stand-in, not the picture


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


def truncation(data: bytes, ext: str) -> str | None:
    """Why the bytes end before the image does (its end marker or declared length missing), or None."""
    if ext == ".png":
        return None if data.rstrip(b"\0").endswith(b"IEND\xaeB`\x82") else "PNG without its IEND end chunk"
    if ext == ".jpg":
        return None if b"\xff\xd9" in data[-64:] else "JPEG without its end-of-image marker"
    if ext == ".webp":
        declared = int.from_bytes(data[4:8], "little") + 8
        return None if len(data) >= declared else f"WebP of {len(data)} bytes, its header says {declared}"
    return None


def placeholder_reason(data: bytes, info: ImageInfo, width: int, height: int) -> str | None:
    """Why a decodable picture is a placeholder rather than the width x height one asked for, or None."""
    if hashlib.md5(data).hexdigest() in KNOWN_PLACEHOLDER_MD5:
        return "the API's known placeholder picture"
    if info.width * PLACEHOLDER_SHRINK <= width and info.height * PLACEHOLDER_SHRINK <= height:
        return f"{info.width}x{info.height} for {width}x{height} asked"
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
    cut = truncation(data, ext)
    if cut:
        raise TruncatedImage(f"{cut} ({len(data)} bytes): the body was cut short")
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
