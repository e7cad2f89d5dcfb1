"""Train small Stanza models (tokenize, pos, lemma, depparse, ner) here, with no network.

Book text is annotated by Natasha (stanza_corpus.py) and fed to Stanza's own trainers. The result is a
standard Stanza resources directory, so the processor loads it exactly like models downloaded elsewhere:

    OUT/resources.json                 (minimal: no packages, nothing to download)
    OUT/<lang>/tokenize/bookreader.pt  pos/…  lemma/…  depparse/…  ner/…  pretrain/bookreader.pt
    OUT/<lang>/bookreader-train.json   what was trained from, with which settings, how long it took
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bookreader_cli.nlp.compat import single_thread_math

PACKAGE = "bookreader"  # file stem of every model we train
PROCESSORS = ("tokenize", "pos", "lemma", "depparse", "ner")
MANIFEST = "bookreader-train.json"


@dataclass(frozen=True)
class TrainSize:
    """How much text and how many optimisation steps: 'smoke' proves the pipeline, 'small' is usable."""

    name: str
    train_chars: int  # characters of source text annotated for training
    dev_chars: int
    pretrain_words: int  # vocabulary cap: the training text's words and navec's most frequent ones
    pretrain_dim: int  # navec's 300 dims reduced by PCA to keep the files small
    tokenize_steps: int
    tagger_steps: int
    parser_steps: int
    lemma_epochs: int
    ner_steps: int
    hidden: int  # LSTM width of pos/depparse/ner


SIZES = {
    "smoke": TrainSize("smoke", 40_000, 6_000, 4_000, 32, 100, 150, 150, 1, 100, 64),
    "small": TrainSize("small", 300_000, 20_000, 12_000, 32, 400, 800, 1_500, 3, 600, 64),
}


def default_sources(repo_root: Path | None = None) -> list[Path]:
    """Sample books of the repo, plus the shared public-domain corpus when it sits beside the checkout."""
    root = repo_root or Path(__file__).resolve().parents[2]
    candidates = [root / "sample_books", root.parent / "shared" / "corpus"]
    return [p for p in candidates if p.exists()]


# ---------------------------------------------------------------- pretrain (word vectors)


def build_pretrain(words: set[str], path: Path, top_n: int, dim: int) -> int:
    """A Stanza Pretrain file from Natasha's navec vectors: the training text's own words and navec's
    most frequent ones, at most top_n in all (frequent first), PCA-reduced to `dim`. Returns the
    vocabulary size."""
    import numpy as np
    from natasha import NewsEmbedding
    from stanza.models.common.pretrain import Pretrain

    navec = NewsEmbedding()
    counts = np.asarray(navec.vocab.counts)
    ids = set(np.argsort(-counts)[:top_n].tolist())
    ids |= {navec.vocab.word_ids[w] for w in {w.lower() for w in words} if w in navec.vocab.word_ids}
    ids_sorted = sorted(ids, key=lambda i: -counts[i])[:top_n]
    vocab = [navec.vocab.words[i] for i in ids_sorted]
    matrix = np.stack([navec[w] for w in vocab]).astype("float32")
    matrix -= matrix.mean(axis=0)
    _, _, vt = np.linalg.svd(matrix, full_matrices=False)
    reduced = matrix @ vt[:dim].T
    reduced /= reduced.std() + 1e-8
    with tempfile.TemporaryDirectory() as tmp:
        vec = Path(tmp) / "vectors.txt"
        with vec.open("w", encoding="utf-8") as out:
            out.write(f"{len(vocab)} {dim}\n")
            for word, row in zip(vocab, reduced):
                out.write(word + " " + " ".join(f"{x:.4f}" for x in row) + "\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        Pretrain(str(path), str(vec), max_vocab=-1).load()  # reads the text file, saves the .pt
    return len(vocab)


# ---------------------------------------------------------------- Stanza's trainers


def _run(main, argv: list[str]) -> float:
    start = time.perf_counter()
    main(argv)
    return round(time.perf_counter() - start, 1)


def _train_all(work: Path, lang_dir: Path, lang: str, size: TrainSize, only: tuple[str, ...]) -> dict:
    from stanza.models import lemmatizer, ner_tagger, parser, tagger, tokenizer

    short = f"{lang}_{PACKAGE}"
    pretrain = str(lang_dir / "pretrain" / f"{PACKAGE}.pt")
    train, dev = str(work / "train.conllu"), str(work / "dev.conllu")
    h = size.hidden
    seconds: dict[str, float] = {}
    common = ["--lang", lang, "--shorthand", short, "--cpu", "--seed", "1234"]

    def out(proc: str) -> list[str]:
        (lang_dir / proc).mkdir(parents=True, exist_ok=True)
        return ["--save_dir", str(lang_dir / proc), "--save_name", f"{PACKAGE}.pt"]

    if "tokenize" in only:
        (work / "mwt.json").write_text("[]", encoding="utf-8")  # Russian has no multi-word tokens
        seconds["tokenize"] = _run(
            tokenizer.main,
            common
            + out("tokenize")
            + [
                "--txt_file",
                str(work / "train.txt"),
                "--label_file",
                str(work / "train.labels"),
                "--dev_txt_file",
                str(work / "dev.txt"),
                "--dev_label_file",
                str(work / "dev.labels"),
                "--dev_conll_gold",
                dev,
                "--conll_file",
                str(work / "dev.tokenized.conllu"),
                "--mwt_json_file",
                str(work / "mwt.json"),
                "--no_use_mwt",
                "--steps",
                str(size.tokenize_steps),
                "--eval_steps",
                str(max(size.tokenize_steps // 2, 50)),
                "--max_seqlen",
                "100",
                "--batch_size",
                "32",
            ],
        )
    if "pos" in only:
        seconds["pos"] = _run(
            tagger.main,
            common
            + out("pos")
            + [
                "--train_file",
                train,
                "--eval_file",
                dev,
                "--output_file",
                str(work / "dev.pos.conllu"),
                "--wordvec_pretrain_file",
                pretrain,
                "--max_steps",
                str(size.tagger_steps),
                "--eval_interval",
                str(max(size.tagger_steps // 4, 50)),
                "--fix_eval_interval",
                "--hidden_dim",
                str(h),
                "--char_hidden_dim",
                str(h),
                "--deep_biaff_hidden_dim",
                str(h),
                "--composite_deep_biaff_hidden_dim",
                str(h // 2),
                "--word_emb_dim",
                "32",
                "--char_emb_dim",
                "32",
                "--tag_emb_dim",
                "16",
                "--transformed_dim",
                "64",
                "--batch_size",
                "32",
                "--no_second_optim",
                "--lr",
                "0.01",
                "--dropout",
                "0.1",
                "--word_dropout",
                "0.05",
            ],
        )
    if "lemma" in only:
        seconds["lemma"] = _run(
            lemmatizer.main,
            ["--shorthand", short, "--cpu", "--seed", "1234"]
            + out("lemma")
            + [
                "--train_file",
                train,
                "--eval_file",
                dev,
                "--output_file",
                str(work / "dev.lemma.conllu"),
                "--num_epoch",
                str(size.lemma_epochs),
                "--hidden_dim",
                str(h),
                "--emb_dim",
                "32",
                "--pos_dim",
                "32",
                "--batch_size",
                "100",
            ],
        )
    if "depparse" in only:
        seconds["depparse"] = _run(
            parser.main,
            common
            + out("depparse")
            + [
                "--train_file",
                train,
                "--eval_file",
                dev,
                "--output_file",
                str(work / "dev.depparse.conllu"),
                "--wordvec_pretrain_file",
                pretrain,
                "--max_steps",
                str(size.parser_steps),
                "--eval_interval",
                str(max(size.parser_steps // 4, 50)),
                "--no_checkpoint",
                "--hidden_dim",
                str(h),
                "--char_hidden_dim",
                str(h),
                "--deep_biaff_hidden_dim",
                str(h),
                "--deep_biaff_output_dim",
                str(h // 2),
                "--word_emb_dim",
                "32",
                "--char_emb_dim",
                "32",
                "--tag_emb_dim",
                "16",
                "--transformed_dim",
                "64",
                "--num_layers",
                "2",
                "--batch_size",
                "600",
                "--no_second_optim",
                "--optim",
                "adam",
                "--lr",
                "0.005",
                "--dropout",
                "0.2",
                "--word_dropout",
                "0.1",
            ],
        )
    if "ner" in only:
        seconds["ner"] = _run(
            ner_tagger.main,
            ["--shorthand", short, "--cpu", "--seed", "1234"]
            + out("ner")
            + [
                "--train_file",
                str(work / "train.ner.json"),
                "--eval_file",
                str(work / "dev.ner.json"),
                "--wordvec_pretrain_file",
                pretrain,
                "--max_steps",
                str(size.ner_steps),
                "--eval_interval",
                str(max(size.ner_steps // 4, 50)),
                "--hidden_dim",
                str(h),
                "--char_hidden_dim",
                str(h // 2),
                "--word_emb_dim",
                "32",
                "--char_emb_dim",
                "32",
                "--batch_size",
                "32",
            ],
        )
    return seconds


def compact_checkpoint(path: Path) -> int:
    """Store a trained model's weights as float16 and drop training-only state: half the bytes.

    Every Stanza loader copies the weights into float32 parameters with load_state_dict, so the model
    computes in float32 as before; only the stored precision changes. Returns the new size."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("optimizer", "scheduler"):
        checkpoint.pop(key, None)
    model = checkpoint.get("model")
    if isinstance(model, dict):
        checkpoint["model"] = {
            k: (v.half() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in model.items()
        }
    torch.save(checkpoint, path)
    return path.stat().st_size


# ---------------------------------------------------------------- public API


def train_stanza_models(
    out_dir: Path | str,
    lang: str = "ru",
    texts: list[str] | None = None,
    size: str = "smoke",
    sources: list[Path | str] | None = None,
    processors: tuple[str, ...] = PROCESSORS,
    keep_work: bool = False,
) -> dict:
    """Train Stanza models into a standard resources directory `out_dir` and return the manifest.

    `texts` are paragraphs to learn from; without them, paragraphs are sampled from `sources`
    (files or directories of .txt/.fb2/.epub; default: the repo's sample books and ../shared/corpus)."""
    single_thread_math()
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    if lang != "ru":
        raise ValueError("only Russian can be trained here: the teacher (Natasha) is Russian-only")
    spec = SIZES[size]
    from bookreader_cli.training import stanza_corpus as corpus

    started = time.perf_counter()
    used_sources = [str(s) for s in (sources if sources is not None else default_sources())]
    if texts is None:
        per_file = corpus.collect_paragraphs([Path(s) for s in used_sources])
        texts = corpus.sample_paragraphs(per_file, spec.train_chars + spec.dev_chars)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("no training text: give texts or sources with Russian prose")
    dev_every = max(2, round((spec.train_chars + spec.dev_chars) / max(spec.dev_chars, 1)))
    dev_texts = texts[::dev_every]
    train_texts = [t for i, t in enumerate(texts) if i % dev_every]

    out_dir = Path(out_dir)
    # train into a staging dir beside the target and swap it in at the end: an interrupted run never
    # leaves a half-written model set where the processor would find it
    stage = out_dir.parent / f".{out_dir.name}.training"
    shutil.rmtree(stage, ignore_errors=True)
    lang_dir = stage / lang
    work = Path(tempfile.mkdtemp(prefix="stanza-train-"))
    logging.getLogger("stanza").setLevel(logging.WARNING)
    try:
        t0 = time.perf_counter()
        train_paras, dev_paras = corpus.annotate(train_texts), corpus.annotate(dev_texts)
        annotate_seconds = round(time.perf_counter() - t0, 1)
        n_train = corpus.write_conllu(train_paras, work / "train.conllu")
        n_dev = corpus.write_conllu(dev_paras, work / "dev.conllu")
        corpus.write_tokenizer_files(train_paras, work / "train.txt", work / "train.labels")
        corpus.write_tokenizer_files(dev_paras, work / "dev.txt", work / "dev.labels")
        corpus.write_ner_json(train_paras, work / "train.ner.json")
        corpus.write_ner_json(dev_paras, work / "dev.ner.json")
        words = {t.text for p in train_paras + dev_paras for s in p.sentences for t in s.tokens}
        t0 = time.perf_counter()
        vocab_size = build_pretrain(
            words, lang_dir / "pretrain" / f"{PACKAGE}.pt", spec.pretrain_words, spec.pretrain_dim
        )
        seconds = {"annotate": annotate_seconds, "pretrain": round(time.perf_counter() - t0, 1)}
        with contextlib.redirect_stdout(sys.stderr):  # Stanza's trainers print; stdout is for results
            seconds.update(_train_all(work, lang_dir, lang, spec, processors))
        for proc in processors:
            compact_checkpoint(lang_dir / proc / f"{PACKAGE}.pt")
        import stanza

        manifest = {
            "package": PACKAGE,
            "lang": lang,
            "size": size,
            "settings": asdict(spec),
            "sources": [_display_path(s) for s in used_sources],
            "paragraphs": len(texts),
            "train_sentences": n_train,
            "dev_sentences": n_dev,
            "train_tokens": sum(len(s.tokens) for p in train_paras for s in p.sentences),
            "pretrain_vocab": vocab_size,
            "seconds": seconds,
            "total_seconds": round(time.perf_counter() - started, 1),
            "files": {str(p.relative_to(stage)): p.stat().st_size for p in sorted(lang_dir.rglob("*.pt"))},
            "stanza_version": stanza.__version__,
            "python": platform.python_version(),
        }
        (lang_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out_dir / lang, ignore_errors=True)
        shutil.move(str(lang_dir), str(out_dir / lang))
        resources = out_dir / "resources.json"
        if not resources.exists():  # never overwrite a real Stanza resources.json
            resources.write_text(json.dumps({lang: {"lang_name": "Russian"}}), encoding="utf-8")
        return manifest
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if keep_work:  # the CoNLL-U/NER/tokenizer files, for inspecting what the models learnt from
            print(f"training files kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _display_path(path: str) -> str:
    """Source paths relative to the repo when inside it (the manifest is committed with the models)."""
    repo = Path(__file__).resolve().parents[2]
    resolved = Path(path).resolve()
    for base, prefix in ((repo, ""), (repo.parent, "../")):
        try:
            return prefix + str(resolved.relative_to(base))
        except ValueError:
            continue
    return str(path)


def train_stanza_cli(
    out_dir: Path | str, size: str = "smoke", sources: list[Path | str] | None = None, lang: str = "ru"
) -> dict:
    """Entry point for `bookreader models train-stanza`: bad options become BadInput (exit 2)."""
    from bookreader_cli.errors import BadInput

    if size not in SIZES:
        raise BadInput(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    if lang != "ru":
        raise BadInput(f"cannot train Stanza for {lang!r}: the Natasha teacher knows only Russian")
    for src in sources or []:
        if not Path(src).exists():
            raise BadInput(f"training source not found: {src}")
    try:
        return train_stanza_models(out_dir, lang=lang, size=size, sources=sources)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


if __name__ == "__main__":  # python -m bookreader_cli.training.stanza_train OUT [smoke|small] [SOURCE...]
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: python -m bookreader_cli.training.stanza_train OUT_DIR [smoke|small] [SOURCE ...]")
    result = train_stanza_cli(args[0], args[1] if len(args) > 1 else "smoke", [Path(a) for a in args[2:]] or None)
    print(json.dumps(result, ensure_ascii=False, indent=1))
