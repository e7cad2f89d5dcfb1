"""Builders for the hostile books of issue 13 (items 12, 13, 17, 18), written into a test's tmp dir.

Each function writes one file and returns its path; all are small on disk (the largest, the split zip
bomb, is ~0.3 MB) however much they would inflate to. Random bytes come from a seeded generator, so
every run builds the same files.
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

CONTAINER = """<?xml version="1.0"?>
<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0"><rootfiles>
<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"""
XHTML_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head>'
    "<title>t</title></head><body>"
)
XHTML_TAIL = "</body></html>"
SENTENCE = "Тёмный лес стоял у самой реки, и ветер гнал по воде мелкую рябь. "
ADEPT_ALGORITHM = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
IDPF_OBFUSCATION = "http://www.idpf.org/2008/embedding"
ADOBE_OBFUSCATION = "http://ns.adobe.com/pdf/enc#RC"

# «Каштанка» (Chekhov), opening lines: prose for the code-page tests. KOI8-R has no «» or em dash, so the
# text sticks to what all three Cyrillic code pages can encode.
RUSSIAN_PROSE = """Глава первая. Дурное поведение

Молодая рыжая собака, помесь таксы с дворняжкой, очень похожая мордой на лисицу, бегала взад и вперед
по тротуару и беспокойно оглядывалась по сторонам. Изредка она останавливалась и, плача, приподнимая
то одну озябшую лапу, то другую, старалась дать себе отчет: как это могло случиться, что она заблудилась?

Она отлично помнила, как она провела день и как в конце концов попала на этот незнакомый тротуар.
День начался с того, что ее хозяин, столяр Лука Александрыч, надел шапку, взял под мышку какую-то
деревянную штуку, завернутую в красный платок, и крикнул: "Каштанка, пойдем!"
"""


def chapter_xhtml(text: str, paragraphs: int = 1) -> str:
    return XHTML_HEAD + "<h1>Глава</h1>" + f"<p>{text}</p>" * paragraphs + XHTML_TAIL


def opf(items: list[tuple[str, str, str]], spine: list[str], extra_manifest: str = "") -> str:
    """An EPUB 3 package: items are (id, href, media type); spine lists idrefs (repeats allowed)."""
    manifest = "".join(f'<item id="{i}" href="{h}" media-type="{m}"/>' for i, h, m in items)
    itemrefs = "".join(f'<itemref idref="{i}"/>' for i in spine)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
 <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Книга</dc:title>
  <dc:identifier id="id">urn:uuid:0f5e8f7c-1d2b-4c3a-9e8d-7a6b5c4d3e2f</dc:identifier><dc:language>ru</dc:language>
 </metadata>
 <manifest>{manifest}{extra_manifest}</manifest>
 <spine>{itemrefs}</spine></package>"""


def write_zip(path: Path, members: dict[str, bytes | str], level: int = 9) -> Path:
    """A zip with `mimetype` stored first, the rest deflated, in the given order."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            if name == "mimetype":
                zf.writestr(name, data, compress_type=zipfile.ZIP_STORED)
            else:
                zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    return path


def epub(
    path: Path,
    chapters: dict[str, bytes | str],
    spine: list[str] | None = None,
    extra: dict[str, bytes | str] | None = None,
    extra_manifest: str = "",
) -> Path:
    """An EPUB whose chapters are {file name under OEBPS/: content}; spine defaults to each chapter once."""
    ids = {name: f"c{n}" for n, name in enumerate(chapters, 1)}
    items = [(ids[name], name, "application/xhtml+xml") for name in chapters]
    members: dict[str, bytes | str] = {"mimetype": "application/epub+zip", "META-INF/container.xml": CONTAINER}
    members.update(extra or {})
    members["OEBPS/content.opf"] = opf(items, spine or list(ids.values()), extra_manifest)
    members.update({f"OEBPS/{name}": content for name, content in chapters.items()})
    return write_zip(path, members)


# ---------------------------------------------------------------------------------------- item 12
def spine_repeat_epub(path: Path, repeats: int = 200) -> Path:
    """~4.6 KB: one chapter of ~268 K characters, listed `repeats` times in the spine."""
    text = SENTENCE * 4200  # 268,800 characters, deflates ~500:1 in one member
    return epub(path, {"c1.xhtml": chapter_xhtml(text)}, spine=["c1"] * repeats)


# ---------------------------------------------------------------------------------------- item 13
def split_bomb_members(count: int, size: int = 1024 * 1024) -> dict[str, str]:
    """`count` chapters of exactly `size` bytes of XHTML each (at or under the per-member ratio check)."""
    filler = SENTENCE.encode("utf-8")
    room = size - len(chapter_xhtml("").encode("utf-8"))
    paragraph = (filler * (room // len(filler) + 1))[:room].decode("utf-8", errors="ignore")
    paragraph += " " * (room - len(paragraph.encode("utf-8")))
    text = XHTML_HEAD + "<h1>Глава</h1>" + f"<p>{paragraph}</p>" + XHTML_TAIL
    assert len(text.encode("utf-8")) == size
    return {f"c{n:03d}.xhtml": text for n in range(1, count + 1)}


def split_bomb_epub(path: Path, count: int = 200) -> Path:
    """200 spine chapters of 1 MiB each, every one passing the per-member check, in ~0.3 MB."""
    return epub(path, split_bomb_members(count))


def split_bomb_fb2zip(path: Path, count: int = 200) -> Path:
    """A real .fb2 plus `count` 1 MiB members beside it, in one small zip."""
    fb2 = (
        '<?xml version="1.0" encoding="utf-8"?>\n<FictionBook xmlns="http://www.gribuser.ru/xml/fictionbook/2.0">'
        "<description><title-info><book-title>Книга</book-title><lang>ru</lang></title-info></description>"
        f"<body><section><title><p>Глава</p></title><p>{SENTENCE}</p></section></body></FictionBook>"
    )
    members: dict[str, bytes | str] = {"book.fb2": fb2}
    members.update({f"pad/{name}": data for name, data in split_bomb_members(count).items()})
    return write_zip(path, members)


# ---------------------------------------------------------------------------------------- item 17
def _ciphertext(plain: str, seed: int) -> bytes:
    """What an AES-CBC encrypted member looks like: a 16-byte IV and blocks of random bytes."""
    rng = random.Random(seed)
    size = 16 + (len(plain.encode("utf-8")) // 16 + 1) * 16
    return bytes(rng.randrange(256) for _ in range(size))


def encryption_xml(entries: list[tuple[str, str]]) -> str:
    """META-INF/encryption.xml listing (archive path, algorithm URI) pairs."""
    datas = "".join(
        f'<enc:EncryptedData><enc:EncryptionMethod Algorithm="{algorithm}"/>'
        '<KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><resource xmlns="http://ns.adobe.com/adept">'
        "urn:uuid:5e1c0b7a-0000-4000-8000-000000000000</resource></KeyInfo>"
        f'<enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData>'
        for uri, algorithm in entries
    )
    return (
        '<?xml version="1.0"?>\n<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        f'xmlns:enc="http://www.w3.org/2001/04/xmlenc#">{datas}</encryption>'
    )


RIGHTS_XML = (
    '<?xml version="1.0"?>\n<adept:rights xmlns:adept="http://ns.adobe.com/adept"><adept:licenseToken>'
    "<adept:user>urn:uuid:00000000-0000-4000-8000-000000000001</adept:user></adept:licenseToken></adept:rights>"
)


def adept_epub(path: Path, encrypted: int = 3, chapters: int = 3) -> Path:
    """Adobe ADEPT style: the first `encrypted` of `chapters` chapters are AES ciphertext."""
    plain = {f"c{n}.xhtml": chapter_xhtml(f"Глава {n}. {SENTENCE}", 20) for n in range(1, chapters + 1)}
    content: dict[str, bytes | str] = {}
    for n, (name, text) in enumerate(plain.items()):
        content[name] = _ciphertext(text, n) if n < encrypted else text
    entries = [(f"OEBPS/{name}", ADEPT_ALGORITHM) for name in list(plain)[:encrypted]]
    return epub(
        path, content, extra={"META-INF/encryption.xml": encryption_xml(entries), "META-INF/rights.xml": RIGHTS_XML}
    )


def obfuscated_fonts_epub(path: Path) -> Path:
    """Readable chapters plus two fonts obfuscated by the IDPF and Adobe algorithms (not DRM)."""
    fonts = {"OEBPS/fonts/a.otf": _ciphertext("x" * 4000, 7), "OEBPS/fonts/b.ttf": _ciphertext("x" * 4000, 8)}
    manifest = (
        '<item id="fa" href="fonts/a.otf" media-type="font/otf"/>'
        '<item id="fb" href="fonts/b.ttf" media-type="font/ttf"/>'
    )
    extra: dict[str, bytes | str] = {
        "META-INF/encryption.xml": encryption_xml(
            [("OEBPS/fonts/a.otf", IDPF_OBFUSCATION), ("OEBPS/fonts/b.ttf", ADOBE_OBFUSCATION)]
        )
    }
    extra.update(fonts)
    return epub(
        path,
        {"c1.xhtml": chapter_xhtml(SENTENCE, 5), "c2.xhtml": chapter_xhtml(SENTENCE, 3)},
        extra=extra,
        extra_manifest=manifest,
    )


def binary_chapter_epub(path: Path, readable: bool = True) -> Path:
    """A chapter of random bytes (no encryption.xml) between two readable ones, or alone."""
    garbage = _ciphertext(SENTENCE * 30, 11)
    if not readable:
        return epub(path, {"c1.xhtml": garbage})
    return epub(
        path,
        {
            "c1.xhtml": chapter_xhtml("Первая глава. " + SENTENCE, 3),
            "c2.xhtml": garbage,
            "c3.xhtml": chapter_xhtml("Третья глава. " + SENTENCE, 3),
        },
    )


# ---------------------------------------------------------------------------------------- item 18
def russian_txt(path: Path, encoding: str) -> Path:
    path.write_bytes(RUSSIAN_PROSE.encode(encoding))
    return path


def greek_cp1253_txt(path: Path) -> Path:
    """Greek in cp1253: read as KOI8-R it becomes plausible-looking capital Cyrillic; nothing fits."""
    path.write_bytes(GREEK.encode("cp1253"))
    return path


def high_byte_noise_txt(path: Path) -> Path:
    """Printable but meaningless: random high bytes among ASCII spaces and letters (passes the text sniff)."""
    rng = random.Random(5)
    path.write_bytes(
        bytes(rng.randrange(0x80, 0x100) if rng.random() < 0.6 else rng.choice(b"ab \n") for _ in range(6000))
    )
    return path


def fb2_declared_utf8(path: Path, encoding: str, text: str = RUSSIAN_PROSE) -> Path:
    """An FB2 that declares UTF-8 but is written in `encoding` (as old converters did)."""
    paragraphs = "".join(f"<p>{line}</p>" for line in text.splitlines() if line.strip())
    fb2 = (
        '<?xml version="1.0" encoding="utf-8"?>\n<FictionBook xmlns="http://www.gribuser.ru/xml/fictionbook/2.0">'
        "<description><title-info><book-title>Kashtanka</book-title><lang>ru</lang></title-info></description>"
        f"<body><section><title><p>I</p></title>{paragraphs}</section></body></FictionBook>"
    )
    path.write_bytes(fb2.encode(encoding))
    return path


GREEK = (
    "Η ελληνική γλώσσα είναι μία από τις ινδοευρωπαϊκές γλώσσες. Αποτελεί το μοναδικό μέλος ενός "
    "ανεξάρτητου κλάδου της ινδοευρωπαϊκής οικογένειας γλωσσών.\n"
) * 20
