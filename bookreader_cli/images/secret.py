"""The API key: checked once before anything is sent, and scrubbed in every form an error text may carry.

A key pasted with a stray `\\r`, `\\n` or space, or holding a non-ASCII letter, cannot go into an HTTP
header: h11 refuses it locally and its error text repeats the key *escaped* (`…12345\\r`), which an
exact-string scrub misses. So surrounding whitespace is trimmed up front, anything else unprintable is
refused (exit 2), and redaction covers the exact key, its escaped and repr'd forms and any long prefix.
"""

from __future__ import annotations

import json
import logging

from bookreader_cli.errors import BadInput

log = logging.getLogger("bookreader.images")

MASK = "***"
PREFIX_CHARS = 8  # a run of this many leading characters of the key is treated as the key


class BadApiKey(BadInput):
    """The key in the environment cannot be sent as a header (exit 2, nothing sent or recorded)."""


def check_api_key(key: str | None, env_name: str) -> str | None:
    """The key to send (surrounding whitespace trimmed), None when unset or empty; BadApiKey when unusable.

    The message names what is wrong and where, never the key or the offending character itself.
    """
    if key is None or key == "":
        return None
    trimmed = key.strip()
    if not trimmed:
        raise BadApiKey(f"the API key in ${env_name} has only whitespace; unset it or set the real key")
    for position, char in enumerate(trimmed, start=1):
        code = ord(char)
        if code > 126:
            raise BadApiKey(
                f"the API key in ${env_name} has a non-ASCII character at position {position}; "
                "an HTTP header carries printable ASCII only"
            )
        if code <= 32 or code == 127:
            what = "a space" if char == " " else f"a control character (0x{code:02x})"
            raise BadApiKey(
                f"the API key in ${env_name} has {what} at position {position}; "
                "an HTTP header carries printable ASCII only"
            )
    if trimmed != key:
        log.warning("the API key in $%s has whitespace around it (a stray newline or \\r?); using it trimmed", env_name)
    return trimmed


def key_forms(key: str | None) -> list[str]:
    """Every spelling of the key an error text might hold, longest first: as given, trimmed, escaped, repr'd."""
    if not key:
        return []
    forms = {
        key,
        key.strip(),
        key.encode("unicode_escape").decode("ascii"),
        repr(key)[1:-1],
        json.dumps(key)[1:-1],
        ascii(key)[1:-1],
    }
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact(text: str, key: str | None) -> str:
    """`text` with each form of `key`, and any run of its first PREFIX_CHARS or more characters, masked."""
    if not text or not key:
        return text
    for form in key_forms(key):
        text = _mask_prefixes(text.replace(form, MASK), form)
    return text


def _mask_prefixes(text: str, form: str) -> str:
    """Mask where the text holds the start of `form` (at least PREFIX_CHARS of it, or all of a short key)."""
    need = min(len(form), PREFIX_CHARS)
    head = form[:need]
    out, start = [], 0
    while True:
        found = text.find(head, start)
        if found < 0:
            out.append(text[start:])
            return "".join(out)
        end = found + need
        while end < len(text) and end - found < len(form) and text[end] == form[end - found]:
            end += 1
        out.append(text[start:found] + MASK)
        start = end
