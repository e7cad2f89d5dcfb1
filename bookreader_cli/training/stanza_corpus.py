"""Silver training data for our small Stanza models: book text annotated by Natasha, written in the
formats Stanza's own trainers read (CoNLL-U, tokenizer text + character labels, NER JSON).

Natasha (slovnet) is the teacher because its models ship inside the wheel: no network, no treebank.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from bookreader_cli.nlp.compat import route_pymorphy2_to_pymorphy3
from bookreader_cli.nlp.tree import repair_tree

log = logging.getLogger("bookreader.training")

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


@dataclass
class Token:
    text: str
    start: int  # offsets into the paragraph text
    end: int
    lemma: str
    upos: str
    feats: dict
    head: int  # 1-based within the sentence, 0 = root
    deprel: str
    ner: str = "O"  # BIO tag


@dataclass
class AnnotatedSentence:
    tokens: list[Token]
    text: str


@dataclass
class AnnotatedParagraph:
    text: str
    sentences: list[AnnotatedSentence] = field(default_factory=list)


# ---------------------------------------------------------------- source text


def _paragraphs_of_file(path: Path) -> list[str]:
    """Paragraph texts of a .txt, .fb2 or .epub file: enough structure for training text, no more."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1251", errors="replace")
        return [line for line in text.splitlines()]
    if suffix == ".fb2":
        from lxml import etree

        tree = etree.parse(str(path), etree.XMLParser(recover=True, resolve_entities=False, no_network=True))
        return ["".join(str(t) for t in p.itertext()) for p in tree.iter("{*}p")]
    if suffix == ".epub":
        from lxml import html

        out: list[str] = []
        with zipfile.ZipFile(path) as zf:
            for name in sorted(zf.namelist()):
                if name.lower().endswith((".xhtml", ".html", ".htm")):
                    doc = html.fromstring(zf.read(name))
                    out.extend(p.text_content() for p in doc.iter("p") if isinstance(p, html.HtmlElement))
        return out
    return []


def _usable(paragraph: str) -> bool:
    """Prose paragraphs only: long enough to hold a sentence, mostly Cyrillic, not a heading."""
    if not 40 <= len(paragraph) <= 1500:
        return False
    letters = sum(ch.isalpha() for ch in paragraph)
    return letters > 0 and len(_CYRILLIC.findall(paragraph)) / letters > 0.8


def collect_paragraphs(sources: list[Path | str]) -> list[list[str]]:
    """Usable paragraphs per source file (files and directories, searched recursively, sorted)."""
    files: list[Path] = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            files.extend(p for p in sorted(src.rglob("*")) if p.suffix.lower() in (".txt", ".fb2", ".epub"))
        elif src.is_file():
            files.append(src)
    per_file: list[list[str]] = []
    seen: set[str] = set()
    for path in files:
        try:
            paras = _paragraphs_of_file(path)
        except Exception as exc:  # a broken book is not training material; skip it
            log.info("skipped %s: %s: %s", path, type(exc).__name__, exc)
            continue
        kept = []
        for para in paras:
            para = _SPACES.sub(" ", para).strip()
            if _usable(para) and para not in seen:
                seen.add(para)
                kept.append(para)
        if kept:
            per_file.append(kept)
    return per_file


def sample_paragraphs(per_file: list[list[str]], max_chars: int) -> list[str]:
    """Deterministic, evenly spread sample: take every k-th paragraph of each file, files interleaved,
    so a long novel does not crowd out the short stories."""
    if not per_file:
        return []
    budget = max_chars // len(per_file)
    picked: list[list[str]] = []
    for paras in per_file:
        total = sum(len(p) for p in paras)
        step = max(1, round(total / max(budget, 1)))
        chosen, used = [], 0
        for para in paras[::step]:
            if used >= budget:
                break
            chosen.append(para)
            used += len(para)
        picked.append(chosen)
    out: list[str] = []
    for i in range(max(len(p) for p in picked)):
        out.extend(p[i] for p in picked if i < len(p))
    return out


# ---------------------------------------------------------------- annotation


def tree_with_labels(heads: list[int], deprels: list[str]) -> tuple[list[int], list[str]]:
    """slovnet's 1-based heads (0 = root) made a tree by nlp.tree.repair_tree, labels kept consistent:
    "root" on the root only; a re-attached former root becomes "parataxis"."""
    fixed = repair_tree([h - 1 for h in heads])
    out_heads = [h + 1 for h in fixed]
    rels = []
    for i, (h, rel) in enumerate(zip(out_heads, deprels)):
        if h == 0:
            rels.append("root")
        elif rel == "root":
            rels.append("parataxis" if heads[i] == 0 else "dep")
        else:
            rels.append(rel or "dep")
    return out_heads, rels


def annotate(paragraphs: list[str]) -> list[AnnotatedParagraph]:
    """Run Natasha over paragraphs: tokens, UPOS+feats, lemmas, repaired dependency trees, BIO NER."""
    route_pymorphy2_to_pymorphy3()
    from natasha import Doc, MorphVocab, NewsEmbedding, NewsMorphTagger, NewsNERTagger, NewsSyntaxParser, Segmenter

    emb = NewsEmbedding()
    segmenter, vocab = Segmenter(), MorphVocab()
    morph, syntax, ner = NewsMorphTagger(emb), NewsSyntaxParser(emb), NewsNERTagger(emb)
    out: list[AnnotatedParagraph] = []
    for text in paragraphs:
        doc = Doc(text)
        doc.segment(segmenter)
        doc.tag_morph(morph)
        doc.parse_syntax(syntax)
        doc.tag_ner(ner)
        bio: dict[int, str] = {}
        for span in doc.spans:
            for j, tok in enumerate(span.tokens):
                bio[tok.start] = ("B-" if j == 0 else "I-") + span.type
        para = AnnotatedParagraph(text)
        writable = True
        for sent in doc.sents:
            toks = list(sent.tokens)
            if not toks or any(not t.text.strip() or " " in t.text for t in toks):
                writable = False  # CoNLL-U cannot hold such tokens: drop the paragraph, keep labels true
                break
            ids = {t.id: k + 1 for k, t in enumerate(toks)}
            heads = [ids.get(t.head_id, 0) for t in toks]
            heads, rels = tree_with_labels(heads, [t.rel or "dep" for t in toks])
            tokens = []
            for t, h, r in zip(toks, heads, rels):
                t.lemmatize(vocab)
                lemma = t.lemma or t.text.lower()
                if t.pos == "PROPN" and t.text[:1].isupper():
                    lemma = lemma[:1].upper() + lemma[1:]
                tokens.append(
                    Token(
                        t.text, t.start, t.stop, lemma, t.pos or "X", dict(t.feats or {}), h, r, bio.get(t.start, "O")
                    )
                )
            para.sentences.append(AnnotatedSentence(tokens, text[tokens[0].start : tokens[-1].end]))
        if writable and para.sentences:
            out.append(para)
    return out


# ---------------------------------------------------------------- writers


def _feats(feats: dict) -> str:
    return "|".join(f"{k}={v}" for k, v in sorted(feats.items(), key=lambda kv: kv[0].lower())) or "_"


def write_conllu(paragraphs: list[AnnotatedParagraph], path: Path) -> int:
    """CoNLL-U with SpaceAfter=No where the text has no space; returns the number of sentences."""
    lines: list[str] = []
    count = 0
    for para in paragraphs:
        for sent in para.sentences:
            count += 1
            lines.append(f"# sent_id = {count}")
            lines.append(f"# text = {sent.text}")
            for k, tok in enumerate(sent.tokens):
                nxt = sent.tokens[k + 1].start if k + 1 < len(sent.tokens) else None
                misc = "SpaceAfter=No" if nxt is not None and nxt == tok.end else "_"
                lines.append(
                    "\t".join(
                        [
                            str(k + 1),
                            tok.text,
                            tok.lemma,
                            tok.upos,
                            "_",
                            _feats(tok.feats),
                            str(tok.head),
                            tok.deprel,
                            "_",
                            misc,
                        ]
                    )
                )
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return count


def write_tokenizer_files(paragraphs: list[AnnotatedParagraph], txt_path: Path, label_path: Path) -> None:
    """Raw paragraphs and per-character labels (1 = token end, 2 = sentence end), blank-line separated."""
    texts, labels = [], []
    for para in paragraphs:
        marks = ["0"] * len(para.text)
        for sent in para.sentences:
            for tok in sent.tokens:
                marks[tok.end - 1] = "1"
            marks[sent.tokens[-1].end - 1] = "2"
        texts.append(para.text)
        labels.append("".join(marks))
    txt_path.write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    label_path.write_text("\n\n".join(labels) + "\n", encoding="utf-8")


def write_ner_json(paragraphs: list[AnnotatedParagraph], path: Path) -> None:
    """Stanza's NER training format: a list of sentences, each a list of {"text", "ner"} (BIO)."""
    doc = [[{"text": t.text, "ner": t.ner} for t in s.tokens] for p in paragraphs for s in p.sentences]
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
