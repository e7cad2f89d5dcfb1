"""Score the description engine against the gold set (../shared/gold), per mode.

Metric (gold README): a gold sentence is positive when labelled (not none) with strength ≥ 2, neutral at
strength 1, negative when none. It is predicted positive when the returned descriptions cover at least half
of its characters; its predicted type is that of the description covering most of it. P/R/F1 over
non-neutral sentences; type accuracy over true positives; P@K over descriptions ranked by priority
(relevant: a sentence it mostly covers is positive; irrelevant: every sentence it covers is negative;
others left out).

    python bench/eval_gold.py [--modes ensemble,single] [--processors spacy,natasha] [--split dev] [--json]
    python bench/eval_gold.py --cv [--lang ru]     leave-one-book-out CV of the fitted scorers (all books)

The metric lives in bookreader_cli/training/goldset.py (the scorer fitting's CV uses the same code).

`--yo` writes "ё" back where pymorphy3 is sure of it (every parse of the word has it), offsets unchanged:
the gold texts come without "ё", modern editions have it, and the taggers must cope with both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOLD_DIR = Path(__file__).resolve().parents[2] / "shared" / "gold"

from bookreader_cli.training.goldset import (  # one metric, shared with the fitting
    evaluate,
    gold_class,
    load_gold,
)

__all__ = ["evaluate", "gold_class", "load_gold"]


def restore_yo(passages: list[dict]) -> list[dict]:
    """The passages with "ё" written back where every pymorphy3 parse of a word spells it so."""
    import re

    import pymorphy3

    morph = pymorphy3.MorphAnalyzer()

    def word(m):
        w = m.group(0)
        if "е" not in w.lower():
            return w
        spelt = {p.word for p in morph.parse(w.lower())}
        if len(spelt) != 1:
            return w
        target = spelt.pop()
        if len(target) != len(w) or "ё" not in target:
            return w
        return "".join(("Ё" if c.isupper() else "ё") if t == "ё" else c for c, t in zip(w, target))

    out = []
    for p in passages:
        text = re.sub(r"[А-Яа-яЁё]+", word, p["text"])
        out.append(
            {**p, "text": text, "sentences": [{**s, "text": text[s["start"] : s["end"]]} for s in p["sentences"]]}
        )
    return out


def run_mode(passages, mode: str, processors, nlp, pool) -> tuple[dict, dict]:
    from bookreader_cli.nlp.runner import analyze_text

    results, sentences, used, unavailable, failures = {}, {}, set(), {}, {}
    started = time.perf_counter()
    for p in passages:
        r = analyze_text(p["text"], lang="ru", mode=mode, processors=processors, nlp=nlp, pool=pool, detail=True)
        results[p["id"]] = [d.to_dict() for d in r.descriptions]
        sentences[p["id"]] = r.decisions
        used.update(r.processors_used)
        unavailable.update(r.processors_unavailable)
        failures.update(r.processor_failures)
    meta = {
        "processors_used": sorted(used),
        "processors_unavailable": unavailable,
        "processor_failures": failures,
        "seconds": round(time.perf_counter() - started, 2),
        "sentences": sentences,
    }
    return results, meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gold", type=Path, default=GOLD_DIR)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--modes", default="ensemble,adaptive,sequential,parallel,single")
    ap.add_argument("--processors", default="", help="comma-separated; default: all configured")
    ap.add_argument("--single", default="", help="processor for single mode (default: engine's choice)")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--dump",
        type=Path,
        help="write per-passage descriptions and per-sentence votes (each processor's score/yes/type) "
        "and decisions here (JSON)",
    )
    ap.add_argument("--yo", action="store_true", help='write "ё" back into the texts first (see above)')
    ap.add_argument("--cv", action="store_true", help="leave-one-book-out CV over every labelled book instead")
    ap.add_argument("--lang", default="ru", help="with --cv: ru or en")
    args = ap.parse_args(argv)
    if args.cv:
        from bookreader_cli.training import fit_scorer

        table = fit_scorer.build_table(args.gold, args.lang)
        cv = fit_scorer.lobo(table, fit_scorer.CHOSEN[args.lang], k=args.k)
        print(fit_scorer.format_table(cv, args.k))
        return 0
    if not (args.gold / f"{args.split}-passages.jsonl").exists():
        print(f"gold set not found in {args.gold}", file=sys.stderr)
        return 2
    from bookreader_cli.config import NlpSettings
    from bookreader_cli.nlp.runner import NlpPool

    passages, labels = load_gold(args.gold, args.split)
    if args.yo:
        passages = restore_yo(passages)
    nlp = NlpSettings() if args.threshold is None else NlpSettings(threshold=args.threshold)
    processors = [p for p in args.processors.split(",") if p] or None
    report, dump = {}, {}
    with NlpPool(3) as pool:
        for mode in [m for m in args.modes.split(",") if m]:
            procs = ([args.single] if args.single else None) if mode == "single" else processors
            results, meta = run_mode(passages, mode, procs, nlp, pool)
            sentences = meta.pop("sentences")
            report[mode] = {**evaluate(passages, labels, results, args.k), **meta}
            dump[mode] = {pid: {"descriptions": results[pid], "sentences": sentences[pid]} for pid in results}
            if not args.json:
                m = report[mode]
                print(
                    f"{mode:10s} P={m['precision']:.3f} R={m['recall']:.3f} F1={m['f1']:.3f} "
                    f"type={m['type_accuracy']:.3f} P@{args.k}={m[f'p_at_{args.k}']:.3f} "
                    f"ran={','.join(m['processors_used'])} {m['seconds']}s",
                    file=sys.stderr,
                )
                if m["processors_unavailable"] or m["processor_failures"]:
                    print(
                        f"{'':10s} unavailable={m['processors_unavailable']} failures={m['processor_failures']}",
                        file=sys.stderr,
                    )
    if args.dump:
        args.dump.write_text(json.dumps(dump, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.json:
        print(
            json.dumps({"split": args.split, "passages": len(passages), "modes": report}, ensure_ascii=False, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
