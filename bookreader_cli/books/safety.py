"""Guards for untrusted book files: XML that resolves nothing external, zips read in memory within limits.

Book files come from anywhere, so every parser in `books/` goes through here:
- XML: lxml with entity resolution, DTD loading and network access off, plus a pre-check that refuses any
  document whose DTD declares entities (XXE and "billion laughs" both need a declaration).
- Zip: sizes, counts and compression ratios are checked from the central directory *before* anything is
  inflated, and members are only ever read into memory (nothing is extracted to disk, so a member named
  `../../x` or `/etc/x` can never be written anywhere; such names are also left out of what parsers see).
  The ratio and size limits hold per member *and* over the whole archive (a bomb split into many members
  that each look harmless), both for what the directory declares and for what is actually inflated.
- Text: the characters a parser extracts from one book are capped relative to the file's size and in
  absolute terms (`TextBudget`), so no trick of repetition (a spine listing one chapter 200 times) can turn
  a few KB into tens of millions of stored characters.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from dataclasses import dataclass, field

from lxml import etree

from ..errors import UnreadableBook

# Limits (bytes unless said otherwise). Real books are far below them: War and Peace EPUB is ~2 MB zipped,
# ~6 MB inflated; the biggest illustrated EPUBs run to a few hundred MB.
MAX_BOOK_FILE_BYTES = 300 * 1024 * 1024  # the file on disk
MAX_ZIP_MEMBERS = 10_000  # central-directory entries
MAX_ZIP_TOTAL_UNCOMPRESSED = 500 * 1024 * 1024  # sum of declared member sizes
MAX_ZIP_MEMBER_UNCOMPRESSED = 200 * 1024 * 1024  # any one member
MAX_ZIP_RATIO = 200  # uncompressed/compressed, checked on members larger than RATIO_CHECK_MIN_BYTES
RATIO_CHECK_MIN_BYTES = 1024 * 1024
MAX_XML_MEMBER_BYTES = 50 * 1024 * 1024  # one XML/XHTML document we are asked to parse
# Over the whole archive: honest EPUBs inflate to 1.8-3.1x their file size (the corpus); text-only deflate
# peaks near 10x. Above ARCHIVE_RATIO_MIN_BYTES, an archive may inflate to at most MAX_ARCHIVE_RATIO times
# its own size, both in declared sizes and in bytes actually read.
MAX_ARCHIVE_RATIO = 100
ARCHIVE_RATIO_MIN_BYTES = 16 * 1024 * 1024
# Extracted text per book: corpus books hold at most 2.1 characters per byte of file (Moby-Dick EPUB);
# War and Peace is 3.2 M characters. Text beyond the larger of the two relative limits, or beyond the
# absolute one, is refused.
MAX_TEXT_CHARS_PER_FILE_BYTE = 50
TEXT_CHARS_FLOOR = 1_000_000  # a tiny file may still hold this much text
MAX_BOOK_TEXT_CHARS = 50_000_000


def archive_budget(archive_bytes: int) -> int:
    """Bytes a zip of this size may inflate to in total (declared, and actually read)."""
    return min(MAX_ZIP_TOTAL_UNCOMPRESSED, max(ARCHIVE_RATIO_MIN_BYTES, MAX_ARCHIVE_RATIO * archive_bytes))


def text_budget_chars(file_bytes: int) -> int:
    """Characters of text one book file of this size may yield."""
    return min(MAX_BOOK_TEXT_CHARS, max(TEXT_CHARS_FLOOR, MAX_TEXT_CHARS_PER_FILE_BYTE * file_bytes))


@dataclass
class TextBudget:
    """Counts the characters a parser extracts from one book and refuses the book past its allowance."""

    label: str
    file_bytes: int
    used: int = 0

    @property
    def limit(self) -> int:
        return text_budget_chars(self.file_bytes)

    def add(self, chars: int) -> None:
        self.used += chars
        if self.used > self.limit:
            raise UnreadableBook(
                f"{self.label}: refused: book yields more than {self.limit:,} characters of text from a "
                f"{self.file_bytes:,}-byte file (limit: {MAX_TEXT_CHARS_PER_FILE_BYTE} per byte, at least "
                f"{TEXT_CHARS_FLOOR:,}, at most {MAX_BOOK_TEXT_CHARS:,}; possible amplification)"
            )


# An entity declaration in any encoding we might meet (UTF-8/ASCII-compatible and both UTF-16s).
_ENTITY_DECL = [b"<!ENTITY", "<!ENTITY".encode("utf-16-le"), "<!ENTITY".encode("utf-16-be")]


def safe_xml_parser(recover: bool = False) -> etree.XMLParser:
    """An lxml parser that never fetches anything and never expands declared entities."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        recover=recover,
    )


def refuse_declared_entities(data: bytes, label: str) -> None:
    """Raise BadInput if the document's DTD declares entities (possible XXE or entity bomb)."""
    if any(marker in data for marker in _ENTITY_DECL):
        raise UnreadableBook(f"{label}: refused: XML declares entities (possible XXE or entity bomb)")


def parse_xml(data: bytes, label: str, what: str = "XML") -> etree._Element:
    """Parse untrusted XML bytes safely; any failure is a one-line BadInput naming `label`."""
    refuse_declared_entities(data, label)
    if len(data) > MAX_XML_MEMBER_BYTES:
        raise UnreadableBook(f"{label}: refused: {what} document is larger than {MAX_XML_MEMBER_BYTES // 2**20} MB")
    try:
        root = etree.fromstring(data, parser=safe_xml_parser())
    except etree.XMLSyntaxError as exc:
        raise UnreadableBook(f"{label}: {what} is not well-formed: {_first_line(exc)}") from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown declared encoding
        raise UnreadableBook(f"{label}: {what} cannot be read: {_first_line(exc)}") from None
    if root is None:
        raise UnreadableBook(f"{label}: {what} is empty")
    return root


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return re.sub(r" \(<string>, line \d+\)$", "", text.splitlines()[0])


def is_unsafe_member_name(name: str) -> bool:
    """True for names that would escape an extraction directory: absolute, drive-letter, or with `..`."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    parts = re.split(r"[\\/]", name)
    return ".." in parts


@dataclass
class SafeZip:
    """A zip opened in memory whose directory passed the limits; members are read with size bounds."""

    zf: zipfile.ZipFile
    data: bytes
    label: str
    members: dict[str, zipfile.ZipInfo] = field(default_factory=dict)  # normalised name -> entry
    ignored: list[str] = field(default_factory=list)  # unsafe names left out
    inflated: int = 0  # bytes actually inflated so far, over all members
    _cache: dict[str, bytes] = field(default_factory=dict, repr=False)  # each member is inflated once

    def names(self) -> list[str]:
        return list(self.members)

    def find(self, name: str) -> str | None:
        """The stored name for `name` (normalised; falls back to a case-insensitive match)."""
        norm = posixpath.normpath(name).lstrip("/") if name else ""
        if norm in self.members:
            return norm
        lowered = norm.lower()
        for candidate in self.members:
            if candidate.lower() == lowered:
                return candidate
        return None

    def read(self, name: str) -> bytes:
        """Read one member fully into memory; KeyError if absent, BadInput if it is corrupt."""
        stored = self.find(name)
        if stored is None:
            raise KeyError(name)
        if stored in self._cache:
            return self._cache[stored]
        info = self.members[stored]
        try:
            with self.zf.open(info) as fh:
                data = fh.read(MAX_ZIP_MEMBER_UNCOMPRESSED + 1)
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            NotImplementedError,
            RuntimeError,
            OSError,
            EOFError,
            ValueError,
        ) as exc:
            raise UnreadableBook(f"{self.label}: damaged zip member {stored!r}: {_first_line(exc)}") from None
        except Exception as exc:  # zlib.error and friends
            raise UnreadableBook(f"{self.label}: damaged zip member {stored!r}: {_first_line(exc)}") from None
        if len(data) > MAX_ZIP_MEMBER_UNCOMPRESSED:
            raise UnreadableBook(f"{self.label}: refused: zip member {stored!r} inflates beyond its declared size")
        self.inflated += len(data)
        budget = archive_budget(len(self.data))
        if self.inflated > budget:
            raise UnreadableBook(
                f"{self.label}: refused: zip members read so far inflate to more than "
                f"{budget // 2**20} MB from a {len(self.data) // 1024} KB archive (possible zip bomb)"
            )
        self._cache[stored] = data
        return data


def open_zip(data: bytes, label: str, kind: str = "zip archive") -> SafeZip:
    """Open `data` as a zip and check its directory against the limits before anything is inflated."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        reason = str(exc)
        if "not a zip file" in reason.lower():
            reason = "not a readable zip archive (no end-of-central-directory record; truncated?)"
        raise UnreadableBook(f"{label}: broken {kind}: {reason}") from None
    except Exception as exc:
        raise UnreadableBook(f"{label}: broken {kind}: {_first_line(exc)}") from None
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise UnreadableBook(f"{label}: refused: zip has {len(infos)} members (limit {MAX_ZIP_MEMBERS})")
    total = 0
    safe = SafeZip(zf=zf, data=data, label=label)
    for info in infos:
        if info.file_size > MAX_ZIP_MEMBER_UNCOMPRESSED:
            raise UnreadableBook(
                f"{label}: refused: zip member {info.filename!r} would inflate to {info.file_size} bytes "
                f"(limit {MAX_ZIP_MEMBER_UNCOMPRESSED}; possible zip bomb)"
            )
        if info.file_size > RATIO_CHECK_MIN_BYTES and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise UnreadableBook(
                f"{label}: refused: zip member {info.filename!r} compresses {info.file_size // max(info.compress_size, 1)}:1 "
                f"(limit {MAX_ZIP_RATIO}:1; possible zip bomb)"
            )
        total += info.file_size
        if total > MAX_ZIP_TOTAL_UNCOMPRESSED:
            raise UnreadableBook(
                f"{label}: refused: zip would inflate to more than {MAX_ZIP_TOTAL_UNCOMPRESSED // 2**20} MB "
                "(possible zip bomb)"
            )
        if total > archive_budget(len(data)):
            raise UnreadableBook(
                f"{label}: refused: zip members declare more than {archive_budget(len(data)) // 2**20} MB "
                f"from a {len(data) // 1024} KB archive (over {MAX_ARCHIVE_RATIO}:1 for the whole archive; "
                "possible zip bomb)"
            )
        if info.is_dir():
            continue
        if is_unsafe_member_name(info.filename):
            safe.ignored.append(info.filename)
            continue
        norm = posixpath.normpath(info.filename.replace("\\", "/"))
        safe.members.setdefault(norm, info)  # a duplicated entry: the first one wins
    return safe


_XML_PREDEFINED = {b"amp", b"lt", b"gt", b"quot", b"apos"}
_NAMED_REF = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")


def html_entities_to_numeric(data: bytes) -> tuple[bytes, int]:
    """Rewrite HTML named references (`&nbsp;`, `&laquo;`) as numeric ones XML understands.

    XHTML files lean on the XHTML DTD for these names, and we never load DTDs; a fixed table, one pass,
    no recursion, so it cannot blow up. Returns the new bytes and how many references were rewritten.
    """
    from html.entities import name2codepoint

    count = 0

    def swap(match: re.Match[bytes]) -> bytes:
        nonlocal count
        name = match.group(1)
        if name in _XML_PREDEFINED:
            return match.group(0)
        codepoint = name2codepoint.get(name.decode("ascii"))
        if codepoint is None:
            return match.group(0)
        count += 1
        return b"&#%d;" % codepoint

    if b"&" not in data:
        return data, 0
    return _NAMED_REF.sub(swap, data), count
