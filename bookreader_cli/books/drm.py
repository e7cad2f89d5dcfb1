"""DRM in EPUBs: which files META-INF/encryption.xml says are encrypted, and when that means "refuse".

An EPUB's `META-INF/encryption.xml` lists every encrypted resource (`<EncryptedData>` with an
`<EncryptionMethod Algorithm=…>` and a `<CipherReference URI=…>`, the URI relative to the archive root).
Two algorithms are not DRM but font obfuscation, which any reader undoes with the book's identifier:
IDPF's (http://www.idpf.org/2008/embedding) and Adobe's (http://ns.adobe.com/pdf/enc#RC). Anything else
(Adobe ADEPT's xmlenc#aes128-cbc, Apple FairPlay, Barnes & Noble, Readium LCP) is real encryption: if it
covers a spine document, the text cannot be read without the vendor's key, so the book is refused rather
than stored as junk. Encrypted images or fonts alone leave the text readable (a warning).
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote

from ..errors import BadInput
from .safety import SafeZip, parse_xml

ENCRYPTION_XML = "META-INF/encryption.xml"
FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}


def encrypted_paths(archive: SafeZip, warnings: list[str]) -> dict[str, str]:
    """Archive path -> algorithm URI, for every resource encryption.xml marks as encrypted (not obfuscated).

    Obfuscated fonts are left out. An encryption.xml that cannot be read is reported in `warnings` and
    treated as empty (a chapter that really is encrypted is then caught as binary by the chapter reader).
    """
    stored = archive.find(ENCRYPTION_XML)
    if stored is None:
        return {}
    try:
        root = parse_xml(archive.read(stored), f"{archive.label}: {ENCRYPTION_XML}")
    except BadInput as exc:
        warnings.append(f"{exc} (ignored)")
        return {}
    out: dict[str, str] = {}
    for data in root.iter("{*}EncryptedData"):
        method = next(data.iter("{*}EncryptionMethod"), None)
        algorithm = (method.get("Algorithm") or "").strip() if method is not None else ""
        for ref in data.iter("{*}CipherReference"):
            uri = unquote((ref.get("URI") or "").strip())
            if not uri or algorithm in FONT_OBFUSCATION:
                continue
            out[posixpath.normpath(uri.lstrip("/"))] = algorithm or "unknown algorithm"
    return out


def drm_refusal(label: str, spine_paths: list[str], encrypted: dict[str, str]) -> str:
    """The refusal message when any spine document is encrypted, else ""."""
    lowered = {path.lower(): algorithm for path, algorithm in encrypted.items()}
    hit = [path for path in spine_paths if path.lower() in lowered]
    if not hit:
        return ""
    algorithm = lowered[hit[0].lower()]
    share = "all" if len(hit) == len(spine_paths) else f"{len(hit)} of {len(spine_paths)}"
    return (
        f"{label}: this EPUB is DRM-protected ({share} content documents encrypted with {algorithm}); "
        "import a DRM-free copy of the book"
    )
