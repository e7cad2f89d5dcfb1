"""An offline reader view of one processed book: index.html + descriptions.json + images/, no network.

The page is the book's chapters as text with every stored description highlighted exactly over
`chapter_text[start:end]` (a description that crosses a paragraph break or overlaps another is drawn as
several <mark> parts carrying the same data-d id), coloured by type, its figures on hover or keyboard focus,
and a side list of the best passages by priority, filterable by type, each linking to its place.

Everything from the book is untrusted: every piece of text goes through `html.escape`, no book data is ever
put inside the <script>, and a Content-Security-Policy allows only this page's own inline script and style
(by hash) and local images, so neither an injected script nor a request to the network can happen.
Big books (Война и мир, book 1: 1.43 M characters) stay quick: chapters use `content-visibility: auto`, so the
browser lays out only the chapters on screen.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import html
import itertools
import json
import os
import re
import shutil
import time
from pathlib import Path

from bookreader_cli.books.model import Chapter, Paragraph

TYPE_COLOURS = {  # background of a highlight, and of its type's chip in the side list
    "location": "#cfe6ff",
    "character": "#ffd6cc",
    "atmosphere": "#e5dbff",
    "object": "#d3f2c8",
}
OTHER_COLOUR = "#eeeeaa"
BEST_PER_TYPE = 150  # the side list keeps this many of each type (the text keeps them all)
SNIPPET_CHARS = 160

_CSS = """
:root{font-family:Georgia,'Times New Roman',serif;line-height:1.55;color:#222;background:#fdfcf8}
body{margin:0;display:grid;grid-template-columns:minmax(0,1fr) 24rem;gap:0 1.5rem}
header{grid-column:1/-1;padding:1rem 2rem;border-bottom:1px solid #ddd;font-family:system-ui,sans-serif}
header h1{margin:.2rem 0;font-size:1.6rem}header p{margin:.2rem 0;color:#555;font-size:.9rem}
main{padding:0 2rem 40vh;max-width:46rem}
section.ch{content-visibility:auto;contain-intrinsic-size:auto 3000px}
h2{margin-top:2.5rem;font-size:1.3rem}h3.ph{font-size:1.05rem;margin:1.2rem 0 .4rem}
p{margin:.5rem 0}p.k-epigraph,p.k-poem{margin-left:2rem;font-style:italic}p.k-subtitle{text-align:center}
mark.d{border-radius:2px;color:inherit;position:relative;cursor:help}
mark.d:focus{outline:2px solid #333}mark.d:target{outline:3px solid #e08a00}
mark.d:hover::after,mark.d:focus::after{content:attr(title);position:absolute;left:0;top:100%;z-index:5;
white-space:pre;font:12px/1.4 system-ui,sans-serif;background:#222;color:#fff;padding:.3rem .5rem;
border-radius:4px;pointer-events:none}
figure.pic{float:right;clear:right;width:14rem;margin:.3rem 0 .6rem 1rem}
figure.pic img{width:100%;height:auto;border-radius:4px}
figure.pic figcaption{font:11px/1.3 system-ui,sans-serif;color:#666}
aside{position:sticky;top:0;height:100vh;overflow:auto;padding:.5rem 1rem;border-left:1px solid #ddd;
font:13px/1.4 system-ui,sans-serif;box-sizing:border-box}
aside h2{font-size:1rem;margin:.5rem 0}#filters label{display:inline-block;margin:0 .6rem .3rem 0}
#best{padding-left:1.4rem}#best li{margin:.35rem 0}#best a{color:#223;text-decoration:none}
#best a:hover{text-decoration:underline}.prio{float:right;color:#777;margin-left:.3rem}
.chip{display:inline-block;padding:0 .3rem;border-radius:3px;font-size:11px}
details.toc{font:14px system-ui,sans-serif;margin:1rem 0}
@media (max-width:60rem){body{display:block}aside{position:static;height:auto;border:0}}
"""

# Toggles a class on <body> per type; the stylesheet hides that type's list items and highlights.
_JS = """(function(){var b=document.body;var boxes=document.querySelectorAll('#filters input');
for(var i=0;i<boxes.length;i++){boxes[i].addEventListener('change',function(e){
var t=e.target.getAttribute('data-type');b.classList.toggle('hide-'+t,!e.target.checked);});}})();"""


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _type_key(dtype) -> str:
    """A description type as a CSS class name: only a-z (types come from our NLP, but nothing is trusted)."""
    key = re.sub(r"[^a-z]", "", str(dtype or "").lower())
    return key or "other"


def _tip(d: dict) -> str:
    processors = d.get("processors") or []
    return (
        f"{d.get('type') or 'description'} · priority {float(d.get('priority') or 0):.2f}\n"
        f"processors: {', '.join(map(str, processors)) or '-'}\n"
        f"consensus {float(d.get('consensus') or 0):.2f} · confidence {float(d.get('confidence') or 0):.2f}"
    )


def _open_mark(d: dict, first: bool, offset: int) -> str:
    """A <mark> for one part of a description; data-o is where the part starts in the chapter text."""
    attrs = f' class="d t-{_type_key(d.get("type"))}" data-d="{int(d["id"])}" data-o="{offset}" title="{_esc(_tip(d))}"'
    if first:
        attrs = f' id="d{int(d["id"])}" tabindex="0"' + attrs
        if d.get("cfi"):
            attrs += f' data-cfi="{_esc(d["cfi"])}"'
    return f"<mark{attrs}>"


def render_paragraph(text: str, start: int, end: int, descriptions: list[dict], started: set[int]) -> str:
    """text[start:end], escaped, with <mark> parts for every description overlapping it (well nested:
    where spans cross, the inner one is closed and reopened as another part). A description's first part
    (not yet in `started`) carries its id, the target of the links to it."""
    inside = [d for d in descriptions if d["start"] < end and d["end"] > start and d["end"] > d["start"]]
    cuts = {start, end}
    for d in inside:
        cuts.update(x for x in (d["start"], d["end"]) if start < x < end)
    points = sorted(cuts)
    out: list[str] = []
    stack: list[int] = []
    by_id = {int(d["id"]): d for d in inside}
    for a, b in itertools.pairwise(points):
        active = sorted(
            (d for d in inside if d["start"] <= a and d["end"] >= b),
            key=lambda d: (d["start"], -d["end"], int(d["id"])),
        )
        wanted = [int(d["id"]) for d in active]
        keep = 0
        while keep < len(stack) and keep < len(wanted) and stack[keep] == wanted[keep]:
            keep += 1
        out.append("</mark>" * (len(stack) - keep))
        for ident in wanted[keep:]:
            out.append(_open_mark(by_id[ident], ident not in started, a))
            started.add(ident)
        stack = wanted
        out.append(_esc(text[a:b]))
    out.append("</mark>" * len(stack))
    return "".join(out)


def _figure(pic: dict) -> str:
    return (
        f'<figure class="pic" data-for="{int(pic["description_id"])}"><img src="images/{_esc(pic["file"])}" '
        f'alt="{_esc(pic["prompt"] or "")}" loading="lazy"><figcaption>{_esc(pic["caption"])}</figcaption></figure>'
    )


def render_chapter(chapter: Chapter, descriptions: list[dict], pictures: dict[int, dict]) -> str:
    """One <section>: the title, then each paragraph with its highlights; a description's picture goes
    just before the paragraph where the description starts, floated beside it."""
    text = chapter.text
    out = [f'<section class="ch" id="ch{int(chapter.idx)}"><h2>{_esc(chapter.title or "")}</h2>']
    paragraphs = chapter.paragraphs or [Paragraph(0, len(text))]
    # each description goes to the paragraphs it may touch (by bisection), so a chapter of thousands of
    # paragraphs and descriptions costs their sum, not their product
    starts = [p.start for p in paragraphs]
    touching: list[list[dict]] = [[] for _ in paragraphs]
    for d in descriptions:
        first = max(0, bisect.bisect_right(starts, d["start"]) - 1)
        for i in range(first, max(first, bisect.bisect_left(starts, d["end"]) - 1) + 1):
            touching[i].append(d)
    started: set[int] = set()
    for paragraph, near in zip(paragraphs, touching):
        start, end, kind = paragraph.start, paragraph.end, _type_key(paragraph.kind)
        starting = [d for d in near if start <= d["start"] <= end and int(d["id"]) in pictures]
        out.extend(_figure(pictures[int(d["id"])]) for d in starting)
        body = render_paragraph(text, start, end, near, started)
        out.append(f'<h3 class="ph">{body}</h3>' if kind == "heading" else f'<p class="k-{kind}">{body}</p>')
    out.append("</section>")
    return "".join(out)


def _best_list(descriptions: list[dict]) -> str:
    by_type: dict[str, list[dict]] = {}
    for d in sorted(descriptions, key=lambda d: (-float(d.get("priority") or 0), int(d["id"]))):
        kept = by_type.setdefault(_type_key(d.get("type")), [])
        if len(kept) < BEST_PER_TYPE:
            kept.append(d)
    best = sorted(
        (d for kept in by_type.values() for d in kept), key=lambda d: (-float(d.get("priority") or 0), int(d["id"]))
    )
    items = []
    for d in best:
        words = " ".join(str(d["text"]).split())
        snippet = words[:SNIPPET_CHARS] + ("…" if len(words) > SNIPPET_CHARS else "")
        key = _type_key(d.get("type"))
        items.append(
            f'<li class="t-{key}" data-type="{key}"><a href="#d{int(d["id"])}">'
            f'<span class="prio">{float(d.get("priority") or 0):.2f}</span>'
            f'<span class="chip t-{key}">{_esc(d.get("type") or key)}</span> {_esc(snippet)}</a></li>'
        )
    return "".join(items)


def _type_css(types: list[str]) -> str:
    rules = []
    for key in types:
        colour = TYPE_COLOURS.get(key, OTHER_COLOUR)
        rules.append(
            f"mark.t-{key},.chip.t-{key}{{background:{colour}}}"
            f".hide-{key} #best li.t-{key}{{display:none}}.hide-{key} mark.t-{key}{{background:none}}"
        )
    return "".join(rules)


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode() + "'"


def render_page(
    book: dict,
    chapters: list[Chapter],
    descriptions: list[dict],
    pictures: dict[int, dict],
    generator: str = "bookreader",
) -> str:
    """The whole index.html as a string (descriptions as the store gives them, with chapter_idx)."""
    by_chapter: dict[int, list[dict]] = {}
    for d in descriptions:
        by_chapter.setdefault(int(d["chapter_idx"]), []).append(d)
    present = sorted({_type_key(d.get("type")) for d in descriptions})
    types = list(TYPE_COLOURS) + [t for t in present if t not in TYPE_COLOURS]
    css = _CSS + _type_css(types)
    counts = {t: sum(1 for d in descriptions if _type_key(d.get("type")) == t) for t in types}
    csp = (
        f"default-src 'none'; img-src 'self' file: data:; style-src {_csp_hash(css)}; "
        f"script-src {_csp_hash(_JS)}; base-uri 'none'; form-action 'none'"
    )
    authors = ", ".join(book.get("authors") or [])
    meta = " · ".join(
        x
        for x in (
            authors,
            str(book.get("format") or ""),
            str(book.get("language") or ""),
            f"{len(chapters)} chapters",
            f"{len(descriptions)} descriptions",
            f"{len(pictures)} pictures",
        )
        if x
    )
    filters = "".join(
        f'<label><input type="checkbox" data-type="{t}" checked> <span class="chip t-{t}">{t}</span> '
        f"{counts[t]}</label>"
        for t in types
        if counts[t] or t in TYPE_COLOURS
    )
    toc = "".join(f'<li><a href="#ch{int(c.idx)}">{_esc(c.title or c.idx)}</a></li>' for c in chapters)
    lang = re.sub(r"[^A-Za-z-]", "", str(book.get("language") or ""))
    parts = [
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="referrer" content="no-referrer"><meta name="viewport" content="width=device-width,initial-scale=1">',
        f'<meta name="generator" content="{_esc(generator)}">',
        f"<title>{_esc(book.get('title') or '')}</title><style>{css}</style></head><body>",
        f"<header><h1>{_esc(book.get('title') or '')}</h1><p>{_esc(meta)}</p></header>",
        f'<main><details class="toc"><summary>Chapters ({len(chapters)})</summary><ol>{toc}</ol></details>',
    ]
    parts.extend(render_chapter(c, by_chapter.get(int(c.idx), []), pictures) for c in chapters)
    parts.append(
        f'</main><aside><h2>Best passages</h2><div id="filters">{filters}</div>'
        f'<ol id="best">{_best_list(descriptions)}</ol></aside>'
    )
    parts.append(f"<script>{_JS}</script></body></html>")
    return "".join(parts)


def description_records(descriptions: list[dict], pictures: dict[int, dict]) -> list[dict]:
    """descriptions.json's rows: the stored fields, plus the picture (relative path, prompt) when there is one."""
    keys = (
        "id",
        "chapter_idx",
        "chapter_title",
        "start",
        "end",
        "type",
        "priority",
        "confidence",
        "consensus",
        "processors",
        "cfi",
        "text",
    )
    rows = []
    for d in descriptions:
        row = {k: d.get(k) for k in keys}
        pic = pictures.get(int(d["id"]))
        row["image"] = f"images/{pic['file']}" if pic else None
        row["prompt"] = pic["prompt"] if pic else None
        rows.append(row)
    return rows


def _write_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_site(
    out_dir: Path,
    book: dict,
    chapters: list[Chapter],
    descriptions: list[dict],
    images: list[dict],
    images_dir: Path,
    generator: str = "bookreader",
) -> dict:
    """Write index.html, descriptions.json and images/ into out_dir (created if missing); returns what was
    written. `images` are completed image rows (description_id, path relative to images_dir, prompt); a
    row whose file is gone is counted under images_missing and left out."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures: dict[int, dict] = {}
    missing = 0
    for row in images:
        source = images_dir / str(row["path"])
        ident = int(row["description_id"])
        if ident in pictures:
            continue
        if not source.is_file():
            missing += 1
            continue
        target = out_dir / "images" / source.name
        target.parent.mkdir(exist_ok=True)
        if not (target.is_file() and target.stat().st_size == source.stat().st_size):
            shutil.copyfile(source, target)
        pictures[ident] = {
            "description_id": ident,
            "file": source.name,
            "prompt": row.get("prompt") or "",
            "caption": f"picture for description {ident}",
        }
    page = render_page(book, chapters, descriptions, pictures, generator).encode("utf-8")
    _write_atomic(out_dir / "index.html", page)
    document = {
        "book": {k: book.get(k) for k in ("id", "title", "authors", "language", "format", "sha256")},
        "descriptions": description_records(descriptions, pictures),
    }
    data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
    _write_atomic(out_dir / "descriptions.json", data)
    image_bytes = sum((out_dir / "images" / p["file"]).stat().st_size for p in pictures.values())
    return {
        "output_dir": str(out_dir),
        "index_html": str(out_dir / "index.html"),
        "descriptions_json": str(out_dir / "descriptions.json"),
        "chapters": len(chapters),
        "descriptions_exported": len(descriptions),
        "images_copied": len(pictures),
        "images_missing": missing,
        "page_bytes": len(page),
        "json_bytes": len(data),
        "image_bytes": image_bytes,
        "export_time_seconds": round(time.perf_counter() - started, 3),
    }
