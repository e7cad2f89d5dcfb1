"""Score the description engine against the gold set (../shared/gold), per mode.

Metric (gold README): a gold sentence is positive when labelled (not none) with strength ≥ 2, neutral at
strength 1, negative when none. It is predicted positive when the returned descriptions cover at least half
of its characters; its predicted type is that of the description covering most of it. P/R/F1 over
non-neutral sentences; type accuracy over true positives; P@K over descriptions ranked by priority
(relevant: a sentence it mostly covers is positive; irrelevant: every sentence it covers is negative;
others left out).

    python bench/eval_gold.py [--modes ensemble,single] [--processors spacy,natasha] [--split dev] [--json]

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


def load_gold(gold_dir: Path, split: str = "dev"):
    passages = [json.loads(l) for l in (gold_dir / f"{split}-passages.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    labels = {}
    for line in (gold_dir / f"{split}-gold.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            labels[(row["id"], row["i"])] = row
    return passages, labels


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
        out.append({**p, "text": text, "sentences": [{**s, "text": text[s["start"]:s["end"]]} for s in p["sentences"]]})
    return out


def gold_class(row) -> int | None:
    """1 positive, 0 negative, None neutral."""
    if row["label"] == "none":
        return 0
    return 1 if row["strength"] >= 2 else None


def covered(sentence, descriptions) -> tuple[int, str | None, list]:
    """Characters of the sentence covered by descriptions, type of the biggest cover, covering descs."""
    best, best_type, total, covering = 0, None, 0, []
    for d in descriptions:
        overlap = min(sentence["end"], d["end"]) - max(sentence["start"], d["start"])
        if overlap > 0:
            total += overlap
            covering.append(d)
            if overlap > best:
                best, best_type = overlap, d["type"]
    return total, best_type, covering


def evaluate(passages, labels, results: dict[str, list[dict]], k: int = 20) -> dict:
    tp = fp = fn = tn = 0
    type_ok = 0
    ranked = []  # (priority, relevant or None)
    for p in passages:
        descs = results[p["id"]]
        for s in p["sentences"]:
            cls = gold_class(labels[(p["id"], s["i"])])
            n, kind, _ = covered(s, descs)
            predicted = n * 2 >= (s["end"] - s["start"])
            if cls is None:
                continue
            if cls == 1 and predicted:
                tp += 1
                type_ok += kind == labels[(p["id"], s["i"])]["label"]
            elif cls == 1:
                fn += 1
            elif predicted:
                fp += 1
            else:
                tn += 1
        for d in descs:
            classes = []
            mostly = []
            for s in p["sentences"]:
                overlap = min(s["end"], d["end"]) - max(s["start"], d["start"])
                if overlap > 0:
                    c = gold_class(labels[(p["id"], s["i"])])
                    classes.append(c)
                    if overlap * 2 >= (s["end"] - s["start"]):
                        mostly.append(c)
            if any(c == 1 for c in mostly):
                ranked.append((d["priority"], True))
            elif classes and all(c == 0 for c in classes):
                ranked.append((d["priority"], False))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    ranked.sort(key=lambda x: -x[0])
    top = ranked[:k]
    return {
        "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
        "type_accuracy": round(type_ok / tp, 4) if tp else 0.0,
        f"p_at_{k}": round(sum(1 for _, r in top if r) / len(top), 4) if top else 0.0,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn, "ranked_descriptions": len(ranked),
    }


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
    meta = {"processors_used": sorted(used), "processors_unavailable": unavailable, "processor_failures": failures,
            "seconds": round(time.perf_counter() - started, 2), "sentences": sentences}
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
    ap.add_argument("--dump", type=Path, help="write per-passage descriptions and per-sentence votes (each processor's score/yes/type) "
                    "and decisions here (JSON)")
    ap.add_argument("--yo", action="store_true", help='write "ё" back into the texts first (see above)')
    args = ap.parse_args(argv)
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
                print(f"{mode:10s} P={m['precision']:.3f} R={m['recall']:.3f} F1={m['f1']:.3f} "
                      f"type={m['type_accuracy']:.3f} P@{args.k}={m[f'p_at_{args.k}']:.3f} "
                      f"ran={','.join(m['processors_used'])} {m['seconds']}s", file=sys.stderr)
                if m["processors_unavailable"] or m["processor_failures"]:
                    print(f"{'':10s} unavailable={m['processors_unavailable']} failures={m['processor_failures']}",
                          file=sys.stderr)
    if args.dump:
        args.dump.write_text(json.dumps(dump, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps({"split": args.split, "passages": len(passages), "modes": report}, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
