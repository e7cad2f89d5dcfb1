"""Prompts and seeds from descriptions: the book's own words inside a short type-specific frame.

The words are kept as written (Russian or English): a translation step of our own would need a network or
a model we do not ship. Image models read English best, so for words that are not English we ask the API
to enhance the prompt (`enhance=true`: its language model rewrites, and so translates, the prompt before
drawing); `images.enhance_non_english = false` turns that off, `images.enhance = true` asks for every prompt.
The frame tells the model what kind of picture to make; the cap keeps URLs short (the prompt travels in the
URL path).
"""

from __future__ import annotations

import hashlib
import re

# (before, after) the description's words, by description type
FRAMES: dict[str, tuple[str, str]] = {
    "location": ("Book illustration of a place, wide establishing shot:", "detailed environment, no text"),
    "character": ("Book illustration, character portrait:", "expressive face, period-accurate clothing, no text"),
    "atmosphere": ("Atmospheric book illustration, mood and light:", "cinematic lighting, no text"),
    "object": ("Book illustration of an object, close-up still life:", "fine detail, no text"),
}
DEFAULT_FRAME = ("Book illustration:", "no text")
DEFAULT_MAX_CHARS = 400

_DASHES_AND_QUOTES = re.compile(r"[«»„“”\"]+")
_LEADING_DIALOGUE = re.compile(r"^[\s—–-]+")


def clean_words(text: str) -> str:
    """One line of the description's words: whitespace collapsed, quotes and a leading dialogue dash dropped."""
    text = _DASHES_AND_QUOTES.sub("", text)
    text = " ".join(text.split())
    return _LEADING_DIALOGUE.sub("", text).strip()


def _cut_at_word(text: str, limit: int) -> str:
    """At most `limit` chars, cut at the last space when there is one in the second half, with an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.—–-") + "…"


def build_prompt(text: str, dtype: str | None = None, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Frame + the description's words (trimmed to fit) + style tail; never longer than max_chars."""
    before, after = FRAMES.get((dtype or "").lower(), DEFAULT_FRAME)
    words = clean_words(text)
    room = max_chars - len(before) - len(after) - 4  # two spaces and ", "
    if room < 20:  # a cap too small for the frame: the words alone, still capped
        return _cut_at_word(words, max_chars)
    return f"{before} {_cut_at_word(words, room)}, {after}"


ENGLISH_MIN_SHARE = 0.8  # of the letters, the Latin (ASCII) ones


def is_english(text: str) -> bool:
    """True when nearly all letters are ASCII Latin: English, as far as the image model is concerned.
    Text with no letters counts as English (there is nothing to translate)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return True
    return sum(1 for ch in letters if ch.isascii()) / len(letters) >= ENGLISH_MIN_SHARE


def wants_enhance(text: str, always: bool, non_english: bool) -> bool:
    """Whether to ask the API to enhance (rewrite into English) this description's prompt."""
    return always or (non_english and not is_english(text))


def description_seed(description_id, text: str) -> int:
    """A stable seed per description (sha256 of id and text), so a rerun asks for the same picture."""
    digest = hashlib.sha256(f"{description_id}\x1f{text}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF  # 0..2^31-1: every API takes a signed 32-bit int


def description_type(description: dict) -> str | None:
    """The type key under the names the store and the NLP layer use."""
    return description.get("type") or description.get("description_type") or description.get("dtype")
