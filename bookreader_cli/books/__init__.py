"""Book import: `load_book(path)` sniffs the real format from the bytes and returns a Book.

The file's contents decide the parser, not its extension:
- a zip with META-INF/container.xml (or an EPUB mimetype, or an .opf) is an EPUB (2 or 3 by OPF version);
- a zip holding a .fb2 file is a zipped FB2; XML whose root is <FictionBook> is an FB2;
- anything else that decodes to mostly printable text is a TXT.
A structured book under the wrong extension (an FB2 named .txt) is imported, with a warning. Plain text,
or anything else, under an .epub/.fb2 name is refused, naming what it is ("x.epub: not an EPUB (it is a
PNG image)"). Every failure is a one-line BadInput; no other exception leaves load_book.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..errors import BadInput, NotFound, UnreadableBook
from .model import Book, Chapter, Paragraph

__all__ = ["Book", "Chapter", "Paragraph", "file_sha256", "load_book", "sniff_format"]


def file_sha256(path: Path) -> str:
    """A book's identity: the sha256 of its file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x7fELF", "an executable program"),
    (b"MZ", "a Windows executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document"),
    (b"{\\rtf", "an RTF document"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg media file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"AT&TFORM", "a DjVu document"),
]
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_CLAIMS = [
    (".fb2.zip", "FB2"),
    (".fbz", "FB2"),
    (".epub", "EPUB"),
    (".epub3", "EPUB"),
    (".kepub", "EPUB"),
    (".fb2", "FB2"),
    (".txt", "TXT"),
    (".text", "TXT"),
]
_FORMAT_NAMES = {"epub": "EPUB", "fb2": "FB2", "fb2zip": "FB2", "txt": "TXT"}


def load_book(path: str | Path) -> Book:
    """Parse the book at `path`; raises BadInput (one clear line) for anything that is not a readable book."""
    path = Path(path)
    label = path.name or str(path)
    data = _read_file(path, label)
    claimed = _claimed_format(label)
    try:
        fmt, what = sniff_format(data, label)
    except BadInput:
        raise
    except Exception as exc:  # sniffing reads a zip directory; a damaged one must still be one clear line
        raise UnreadableBook(f"{label}: cannot tell what this file is: {type(exc).__name__}: {exc}") from None
    if fmt is None:
        if claimed:
            raise UnreadableBook(f"{label}: not {_article(claimed)} (it is {what})")
        raise UnreadableBook(f"{label}: not an e-book: looks like {what}")
    if what == "a broken zip archive":
        from .safety import open_zip

        open_zip(data, label, kind={"EPUB": "EPUB", "FB2": "FB2 zip"}.get(claimed or "EPUB", "zip archive"))
    if fmt == "txt" and claimed in ("EPUB", "FB2"):
        raise UnreadableBook(f"{label}: not {_article(claimed)} (it is {what})")
    try:
        book = _parse(fmt, data, label)
    except BadInput:
        raise
    except RecursionError:
        raise UnreadableBook(f"{label}: refused: document nesting is too deep to read") from None
    except MemoryError:
        raise UnreadableBook(f"{label}: refused: book is too large to read in memory") from None
    except Exception as exc:  # a parser bug or a library tripping on odd input must still be one clear line
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnreadableBook(
            f"{label}: cannot read this {_FORMAT_NAMES[fmt]}: {type(exc).__name__}: {detail}"
        ) from None
    from .safety import TextBudget

    TextBudget(label, len(data)).add(sum(len(c.text) for c in book.chapters + book.notes))
    if claimed and claimed != _FORMAT_NAMES[fmt]:
        book.warnings.insert(0, f"file name says {claimed} but the contents are {_FORMAT_NAMES[fmt]}")
    if not book.title:
        book.title = re.sub(r"(\.fb2)?\.[A-Za-z0-9]+$", "", label) or label
        book.title_source = "file name"
    return book


def _parse(fmt: str, data: bytes, label: str) -> Book:
    if fmt == "epub":
        from .epub import parse_epub

        return parse_epub(data, label)
    if fmt == "fb2zip":
        from .fb2 import parse_fb2_zip

        return parse_fb2_zip(data, label)
    if fmt == "fb2":
        from .fb2 import parse_fb2

        return parse_fb2(data, label)
    from .txt import parse_txt

    return parse_txt(data, label)


def _read_file(path: Path, label: str) -> bytes:
    from .safety import MAX_BOOK_FILE_BYTES

    try:
        if path.is_dir():
            raise UnreadableBook(f"{path}: is a directory, not a book file")
        if not path.exists():
            raise NotFound(f"{path}: no such file")
        size = path.stat().st_size
        if size > MAX_BOOK_FILE_BYTES:
            raise UnreadableBook(
                f"{label}: refused: file is {size // 2**20} MB (limit {MAX_BOOK_FILE_BYTES // 2**20} MB)"
            )
        with path.open("rb") as fh:
            data = fh.read(MAX_BOOK_FILE_BYTES + 1)
    except BadInput:
        raise
    except OSError as exc:
        raise UnreadableBook(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise UnreadableBook(f"{label}: cannot read: {exc}") from None
    if not data:
        raise UnreadableBook(f"{label}: empty file (0 bytes)")
    if len(data) > MAX_BOOK_FILE_BYTES:
        raise UnreadableBook(f"{label}: refused: file is larger than {MAX_BOOK_FILE_BYTES // 2**20} MB")
    return data


def _claimed_format(name: str) -> str | None:
    lowered = name.lower()
    for suffix, fmt in _CLAIMS:
        if lowered.endswith(suffix):
            return fmt
    return None


def _article(fmt: str) -> str:
    return f"an {fmt}" if fmt[0] in "AEFIOU" else f"a {fmt}"


def sniff_format(data: bytes, label: str = "book") -> tuple[str | None, str]:
    """(format, description): format is "epub", "fb2zip", "fb2", "txt", or None with what the bytes are."""
    if data.startswith(_ZIP_MAGIC):
        return _sniff_zip(data, label)
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return None, what
    if data[60:68] in (b"BOOKMOBI", b"TEXtREAd"):
        return None, "a MOBI/AZW e-book (not supported)"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return None, "a WebP image"
    from .txt import decode_guess, looks_like_text

    if not looks_like_text(data):
        return None, "binary data"
    head = decode_guess(data[:8192]).lstrip("\ufeff \t\r\n")
    if head.startswith("<"):
        if re.search(r"<(?:\w+:)?FictionBook[\s>]", head):
            return "fb2", "an FB2 book"
        if re.match(r"<(?:!DOCTYPE\s+html|html[\s>])", head, re.IGNORECASE) or re.search(
            r"<html[\s>]", head[:2000], re.IGNORECASE
        ):
            return None, "an HTML document"
        if head.startswith("<?xml") or re.match(r"<[A-Za-z_]", head):
            root = re.search(r"<([A-Za-z_][\w:.-]*)[\s>/]", re.sub(r"<[?!][^>]*>", "", head))
            return None, f"an XML document (root <{root.group(1)}>)" if root else "an XML document"
    return "txt", "plain text"


def _sniff_zip(data: bytes, label: str) -> tuple[str | None, str]:
    import io
    import zipfile

    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except Exception:
        # Broken zips are reported by the EPUB reader ("broken EPUB: …"), the usual case.
        return "epub", "a broken zip archive"
    lowered = [n.lower() for n in names]
    if "meta-inf/container.xml" in lowered or any(n.endswith(".opf") for n in lowered):
        return "epub", "an EPUB"
    if "mimetype" in names:
        from .safety import open_zip

        archive = open_zip(data, label)
        if archive.read("mimetype").strip() == b"application/epub+zip":
            return "epub", "an EPUB"
    if any(n.endswith(".fb2") for n in lowered):
        return "fb2zip", "a zipped FB2"
    if "[content_types].xml" in lowered:
        return None, "an Office Open XML document (a zip with [Content_Types].xml, no EPUB container)"
    if "meta-inf/manifest.xml" in lowered:
        return None, "an OpenDocument file"
    return None, "a zip archive with no e-book inside"
