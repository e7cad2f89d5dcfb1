"""Plain-text books: decode (UTF-8/BOM, UTF-16/BOM, cp1251, cp1252), find paragraphs, split at chapter headings.

Rules, chosen to match how real files are laid out (Project Gutenberg, lib.ru-style Russian texts):
- Encoding: a BOM decides (UTF-8, UTF-16); else strict UTF-8; else a single-byte code page. Text whose
  letters are mostly ASCII with a few accented ones is cp1252 (Western). Text whose letters are mostly high
  bytes is Cyrillic in cp1251, KOI8-R or cp866: each is tried, and the one whose high bytes decode to
  Cyrillic letters (or the usual «»—… punctuation), mostly lower-case, with letter frequencies closest to
  Russian prose, wins. When no candidate is convincing (e.g. Greek, or random high bytes), the file is
  refused (BadInput) rather than stored garbled.
- Paragraphs: if the file has blank lines and its lines are wrapped (95% of non-blank lines at most 90
  characters, like Gutenberg's ~70), paragraphs are blank-line separated blocks with their lines joined;
  otherwise each non-blank line is a paragraph.
- Chapters start at heading paragraphs (short, and shaped like «Глава …»/«ГЛАВА IV», «Часть …», a roman
  numeral alone, "CHAPTER 1. Loomings.", "Chapter 1", "BOOK ONE"). Three or more headings in a row are a
  table of contents, not chapter starts. A heading followed directly by another heading (e.g. «Часть первая»
  then «Глава I») is kept as a heading paragraph at the top of the next chapter; the nearest one is the
  title. A short line right after a heading with no end punctuation (a chapter subtitle) joins the title.
- Text before the first heading becomes its own chapter if it has at least PREAMBLE_MIN_CHARS characters
  (a Gutenberg header, a preface); a shorter preamble (usually the title and author) is dropped from the
  chapters but gives the book title. Project Gutenberg's "*** START/END OF …" lines always start a new
  chapter, so the licence never ends up inside the last chapter of the story.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

from ..errors import BadInput, UnreadableBook
from .model import Book, Chapter

PREAMBLE_MIN_CHARS = 500
WRAPPED_LINE_MAX = 90  # a "wrapped" file keeps 95% of its lines at most this long
HEADING_MAX_CHARS = 80

_RU_NUMBER_STEMS = [
    "перв",
    "втор",
    "трет",
    "четв",
    "пят",
    "шест",
    "седьм",
    "восьм",
    "девят",
    "десят",
    "одиннадц",
    "двенадц",
    "тринадц",
    "четырнадц",
    "пятнадц",
    "шестнадц",
    "семнадц",
    "восемнадц",
    "девятнадц",
    "двадц",
    "тридц",
    "сорок",
    "пятьдес",
    "шестьдес",
    "семьдес",
    "восемьдес",
    "девяност",
    "сто",
    "сот",
    "последн",
    "заключит",
]
_EN_NUMBER_WORDS = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "last",
    "final",
]
_ROMAN = r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
_NUMBER = rf"(?:\d+|{_ROMAN}|[IVXLCDM]+)"

_HEADING_PATTERNS = [
    re.compile(rf"^(?:глава|часть|книга|том)\s+(?:{_NUMBER}|(?:{'|'.join(_RU_NUMBER_STEMS)})\w*)\b", re.IGNORECASE),
    re.compile(
        rf"^(?:chapter|book|part|volume|letter)\s+(?:{_NUMBER}|(?:{'|'.join(_EN_NUMBER_WORDS)})\b)", re.IGNORECASE
    ),
    re.compile(rf"^(?=[IVXLCDM])(?:{_ROMAN})(?:\.\s*\S.*|\.)?$"),
    re.compile(r"^(?:пролог|эпилог|prologue|epilogue|preface|предисловие|послесловие)\.?$", re.IGNORECASE),
]
_GUTENBERG_MARK = re.compile(r"^\*{3}\s*(?:START|END) OF (?:THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)
_GUTENBERG_TITLE = re.compile(r"^Title:\s*(.+)$", re.MULTILINE)


# ---------------------------------------------------------------------------------------------- decoding
CYRILLIC_CODEPAGES = ("cp1251", "koi8-r", "cp866")
DETECT_SAMPLE_BYTES = 1 << 20
# Russian letter frequencies per mille (ё counted as е), the reference a decoding is compared with.
_RUSSIAN_FREQ = dict(
    zip(
        "оеаинтсрвлкмдпуяызьбгчйхжшюцщэфъ",
        (
            109.7,
            84.9,
            80.1,
            73.5,
            67.0,
            62.6,
            54.7,
            47.3,
            45.4,
            44.0,
            34.9,
            32.1,
            29.8,
            28.1,
            26.2,
            20.1,
            19.0,
            16.5,
            17.4,
            15.9,
            17.0,
            14.4,
            12.1,
            9.7,
            9.4,
            7.3,
            6.4,
            4.8,
            3.6,
            3.2,
            2.6,
            0.4,
        ),
    )
)
_RUSSIAN_NORM = math.sqrt(sum(v * v for v in _RUSSIAN_FREQ.values()))
_CYRILLIC_PUNCTUATION = set("«»—–…№„“”‘’•\xa0")
MIN_LETTER_SHARE = 0.9  # of the high bytes, this share must decode to Cyrillic letters or that punctuation
MIN_SIMILARITY = 0.75  # cosine of letter frequencies with Russian (prose: 0.85-1.0; Ukrainian, Bulgarian pass)
MIN_MARGIN = 0.1  # over the runner-up code page (a wrong one scores 0.65 at best on Russian text)
MIN_LOWERCASE_SHARE = 0.5  # prose is mostly lower-case; Greek cp1253 read as KOI8-R is all capitals
_HIGH_BYTES = bytes(range(0x80, 0x100))
_ASCII_LETTERS = bytes(range(0x41, 0x5B)) + bytes(range(0x61, 0x7B))


def decode_text(data: bytes, label: str = "text") -> tuple[str, str]:
    """Decode book bytes; returns (text, encoding name). BadInput when no decoding is convincing."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    encoding, convincing = detect_single_byte(data)
    if not convincing:
        raise UnreadableBook(
            f"{label}: cannot tell the text's encoding (not UTF-8 or UTF-16, and neither "
            f"{', '.join(CYRILLIC_CODEPAGES)} nor cp1252 reads it as text); save it as UTF-8"
        )
    return data.decode(encoding, errors="replace"), encoding


def decode_guess(data: bytes) -> str:
    """Best-effort decoding of a snippet (never fails): for sniffing, where a wrong guess costs nothing."""
    try:
        return decode_text(data)[0]
    except BadInput:
        return data.decode(guess_single_byte(data), errors="replace")


def guess_single_byte(data: bytes) -> str:
    """The most likely single-byte code page (see detect_single_byte), convincing or not."""
    return detect_single_byte(data)[0]


def detect_single_byte(data: bytes) -> tuple[str, bool]:
    """(code page, convincing?): cp1252 for Western text, else the Cyrillic code page that reads as Russian."""
    sample = data[:DETECT_SAMPLE_BYTES]
    high = len(sample) - len(sample.translate(None, _HIGH_BYTES))
    ascii_letters = len(sample) - len(sample.translate(None, _ASCII_LETTERS))
    if not high or high / (high + ascii_letters) <= 0.3:
        return "cp1252", True  # mostly ASCII letters: Western text with a few accents
    scored = sorted(
        ((_cyrillic_score(sample, encoding, high), encoding) for encoding in CYRILLIC_CODEPAGES), reverse=True
    )
    (similarity, plausible, lowercase), encoding = scored[0]
    runner_up = scored[1][0][0]
    convincing = (
        similarity >= MIN_SIMILARITY
        and plausible >= MIN_LETTER_SHARE
        and lowercase >= MIN_LOWERCASE_SHARE
        and similarity - runner_up >= MIN_MARGIN
    )
    return encoding, convincing


def _cyrillic_score(sample: bytes, encoding: str, high: int) -> tuple[float, float, float]:
    """`sample` decoded as `encoding`: (cosine of its Cyrillic letter frequencies with Russian's, share of
    its high bytes that became Cyrillic letters or Russian typographic punctuation, lower-case share)."""
    text = sample.decode(encoding, errors="replace")
    counts = Counter(ch for ch in text if ord(ch) >= 0x80)
    cyrillic = {ch: n for ch, n in counts.items() if "\u0400" <= ch <= "\u04ff"}
    letters = sum(cyrillic.values())
    if not letters:
        return 0.0, 0.0, 0.0
    plausible = letters + sum(n for ch, n in counts.items() if ch in _CYRILLIC_PUNCTUATION)
    folded: Counter[str] = Counter()
    for ch, n in cyrillic.items():
        folded[ch.lower().replace("ё", "е")] += n
    dot = sum(n * _RUSSIAN_FREQ.get(ch, 0.0) for ch, n in folded.items())
    similarity = dot / (math.sqrt(sum(n * n for n in folded.values())) * _RUSSIAN_NORM)
    lowercase = sum(n for ch, n in cyrillic.items() if ch.islower())
    return similarity, plausible / high, lowercase / letters


_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\f\v") + b"\x7f"


def binary_reason(data: bytes) -> str:
    """Why a document's bytes are not text ("" when they may be): NUL bytes, or over 1% control bytes.

    For a chapter inside a book (an encrypted or corrupted member): UTF-16 (by BOM or by a UTF-16 `<`
    at the start) is text; in every ASCII-compatible encoding, bytes under 0x20 are control characters.
    """
    sample = data[: 64 * 1024]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<")):
        return ""
    if b"\x00" in sample:
        return "binary data: NUL bytes"
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if controls > len(sample) / 100:
        return f"binary data: {100 * controls / len(sample):.0f}% control bytes"
    return ""


def looks_like_text(data: bytes) -> bool:
    """True if the start of `data` decodes to mostly printable text (no NULs, under 1% control chars)."""
    sample = data[: 64 * 1024]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in sample:
        return False
    # Cutting the sample may split a UTF-8 character: decode leniently at the tail.
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3:
            text = sample[: exc.start].decode("utf-8", errors="replace")
        else:
            text = sample.decode(guess_single_byte(sample), errors="replace")
    if not text.strip():
        return False
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    return controls <= len(text) / 100


# -------------------------------------------------------------------------------------------- paragraphs
def split_paragraphs(text: str) -> list[str]:
    """Paragraphs by the rule in the module docstring: blank-line blocks if wrapped, else one per line."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    nonblank = [line for line in lines if line.strip()]
    if not nonblank:
        return []
    first = next(i for i, line in enumerate(lines) if line.strip())
    last = max(i for i, line in enumerate(lines) if line.strip())
    has_blank = len(nonblank) < last - first + 1  # blank lines between text, not just at the ends
    long_lines = sum(1 for line in nonblank if len(line.strip()) > WRAPPED_LINE_MAX)
    wrapped = has_blank and long_lines <= 0.05 * len(nonblank)
    if not wrapped:
        return [" ".join(line.split()) for line in nonblank]
    paragraphs: list[str] = []
    block: list[str] = []
    for line in lines + [""]:
        if line.strip():
            block.append(line.strip())
        elif block:
            paragraphs.append(" ".join(" ".join(block).split()))
            block = []
    return paragraphs


def is_heading(paragraph: str) -> bool:
    if len(paragraph) > HEADING_MAX_CHARS:
        return False
    return any(pattern.match(paragraph) for pattern in _HEADING_PATTERNS)


def _is_subtitle(paragraph: str) -> bool:
    """A short line with no closing punctuation (or an exclamation: «Талант! Талант!»), not dialogue."""
    return (
        0 < len(paragraph) <= 60
        and not is_heading(paragraph)
        and paragraph[0] not in "—–-«\"“'„("
        and paragraph[-1] not in '.…:;,»"”—-'
    )


# -------------------------------------------------------------------------------------------- chapters
def _unmark_tables_of_contents(paragraphs: list[str], marks: list[bool]) -> None:
    """A run of 3+ headings with nothing between them is a table of contents: not chapter starts.

    If the run repeats its first entry (the contents list ran straight into "CHAPTER 1"), the repeat
    and what follows are real headings again.
    """
    i = 0
    while i < len(marks):
        if not marks[i] or _GUTENBERG_MARK.match(paragraphs[i]):
            i += 1
            continue
        j = i
        while j < len(marks) and marks[j] and not _GUTENBERG_MARK.match(paragraphs[j]):
            j += 1
        if j - i >= 3:
            head = paragraphs[i].casefold()
            repeat = next((k for k in range(i + 1, j) if paragraphs[k].casefold() == head), j)
            for k in range(i, repeat):
                marks[k] = False
        i = j


def build_chapters(paragraphs: list[str]) -> tuple[list[Chapter], str]:
    """Group paragraphs into chapters; returns (chapters, preamble text used for the book title)."""
    marks = [is_heading(p) or bool(_GUTENBERG_MARK.match(p)) for p in paragraphs]
    _unmark_tables_of_contents(paragraphs, marks)

    chapters: list[Chapter] = []
    preamble: list[tuple[str, str]] = []
    pending: list[str] = []  # headings waiting for text
    title = ""
    body: list[tuple[str, str]] = []
    source_line = 0
    started = False

    def flush() -> None:
        if body:
            chapters.append(Chapter.from_paragraphs(title, body, source=f"paragraph {source_line}"))

    index = 0
    while index < len(paragraphs):
        para = paragraphs[index]
        if marks[index]:
            if body or not started:
                if not started:
                    preamble = list(body)
                    body.clear()
                    started = True
                flush()
                body = []
                pending = []
                source_line = index + 1
            pending.append(para)
            title = para
            # A chapter subtitle («Дурное поведение») on the next line joins the title.
            nxt = index + 1
            if (
                nxt < len(paragraphs)
                and not marks[nxt]
                and _is_subtitle(paragraphs[nxt])
                and (nxt + 1 < len(paragraphs) and not marks[nxt + 1])
            ):
                title = f"{para.rstrip('.')}. {paragraphs[nxt]}"
                pending.append(paragraphs[nxt])
                index += 1
            index += 1
            continue
        if pending:
            body.extend((h, "heading") for h in pending)
            pending = []
        body.append((para, "text"))
        index += 1

    if not started:
        return [], ""
    if pending:
        body.extend((h, "heading") for h in pending)
    flush()

    preamble_text = "\n".join(p for p, _ in preamble)
    if len(preamble_text) >= PREAMBLE_MIN_CHARS:
        first_line = preamble[0][0]
        chapters.insert(0, Chapter.from_paragraphs(first_line[:HEADING_MAX_CHARS], preamble, source="paragraph 1"))
    return chapters, preamble_text


def parse_txt(data: bytes, label: str, name: str = "") -> Book:
    """Build a Book from plain-text bytes (`name` is the file name, used as a fallback title)."""
    text, encoding = decode_text(data, label)
    paragraphs = split_paragraphs(text)
    title, source = guess_title(text, name or label)
    chapters, _preamble = build_chapters(paragraphs)
    if not chapters:
        chapters = [Chapter.from_paragraphs(title, [(p, "text") for p in paragraphs], source="paragraph 1")]
    book = Book(format="txt", title=title, chapters=[c for c in chapters if c.text], title_source=source)
    if encoding not in ("utf-8", "utf-8-sig"):
        book.warnings.append(f"decoded as {encoding}")
    return book


# ------------------------------------------------------------------------------------------------ title
_PERSON_NAME = re.compile(r"^[A-ZА-ЯЁ][a-zа-яё.’'-]+(?: [A-ZА-ЯЁ][a-zа-яё.’'-]+){1,2}$")
_CAPS_PERSON_NAME = re.compile(r"^[A-ZА-ЯЁ][A-ZА-ЯЁ.’'-]+(?: [A-ZА-ЯЁ][A-ZА-ЯЁ.’'-]+){1,2}$")
# «Александр Сергеевич Пушкин. Дубровский», "Л. Н. Толстой. Метель": an author, a full stop, the title
_AUTHOR_THEN_TITLE = re.compile(r"^((?:[A-ZА-ЯЁ][a-zа-яё’'-]*\.? ?){2,3})\. (\S.*)$")
# The front matter that opens many files but never names the book: a dedication, an epigraph, a preface.
_NOT_A_TITLE = re.compile(
    r"^(?:посвящ|эпиграф|от автора|от издател|предислови|вместо предислови|введение|оглавление|содержание|"
    r"dedicat|to my |to the memory|in memory|epigraph|preface|foreword|introduction|contents\b)",
    re.IGNORECASE,
)
TITLE_MAX_WORDS = 12


def guess_title(text: str, file_name: str) -> tuple[str, str]:
    """(title, where it came from): a Gutenberg "Title:" line, else the first lines when they look like a
    title (skipping an author line), else the file name (a dedication or an epigraph opens many files)."""
    gutenberg = _GUTENBERG_TITLE.search(text[:5000])
    if gutenberg:
        return gutenberg.group(1).strip(), "gutenberg header"
    first_lines = [" ".join(line.split()) for line in text.splitlines()[:200] if line.strip()][:2]
    title = _first_short(first_lines)
    if title and likely_title(title):
        return title, "first lines"
    return title_from_file_name(file_name), "file name"


def title_from_file_name(file_name: str) -> str:
    """«dostoevsky_bratya_karamazovy.txt» → «dostoevsky bratya karamazovy» (every extension dropped)."""
    stem = Path(file_name).name.split(".")[0]
    return " ".join(stem.replace("_", " ").split()) or stem


def likely_title(line: str) -> bool:
    """False for what opens a file but is not its title: front matter, a chapter heading, a sentence."""
    if not line or len(line) > HEADING_MAX_CHARS or len(line.split()) > TITLE_MAX_WORDS:
        return False
    if is_heading(line) or _NOT_A_TITLE.match(line):
        return False
    if line[0] in "—–-«\"“'„([…." or line[-1] in ",:;—–-":
        return False
    return any(ch.isalpha() for ch in line)


def _first_short(lines: list[str]) -> str:
    """The first line if short enough to be a title; skips an author line («Александр Пушкин», «МАКСИМ
    ГОРЬКИЙ» over «Детство») and an author before a full stop («Михаил Лермонтов. Герой нашего времени»)."""
    short = [line for line in lines[:2] if len(line) <= HEADING_MAX_CHARS]
    if (
        len(short) == 2
        and not is_heading(short[1])
        and (
            (_PERSON_NAME.match(short[0]) and not _PERSON_NAME.match(short[1]))
            or (
                _CAPS_PERSON_NAME.match(short[0])
                and short[1][0].isupper()
                and not short[1].isupper()
                and likely_title(short[1])
            )
        )
    ):
        return _tidy(short[1])
    if lines and len(lines[0]) <= HEADING_MAX_CHARS:
        split = _AUTHOR_THEN_TITLE.match(lines[0])
        return _tidy(split.group(2) if split else lines[0])
    return ""


def _tidy(title: str) -> str:
    """«МЕТЕЛЬ.» → «МЕТЕЛЬ»: one closing full stop is typography, not part of the title."""
    return title[:-1].rstrip() if title.endswith(".") and not title.endswith("..") else title
