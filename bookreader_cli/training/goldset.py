"""The labelled gold sets (../shared/gold format) and the one metric they are scored by.

Metric (gold README): a gold sentence is positive when labelled (not none) with strength ≥ 2, neutral at
strength 1, negative when none. It is predicted positive when the returned descriptions cover at least half
of its characters; its predicted type is that of the description covering most of it. P/R/F1 over
non-neutral sentences; type accuracy over true positives; P@K over descriptions ranked by priority
(relevant: a sentence it mostly covers is positive; irrelevant: every sentence it covers is negative;
others left out). Used by bench/eval_gold.py and by the scorer fitting's cross-validation.
"""

from __future__ import annotations

import json
from pathlib import Path


def load_gold(gold_dir: Path, split: str = "dev") -> tuple[list[dict], dict]:
    """(passages, labels by (passage id, sentence index)) of one split, e.g. "dev", "train2", "en-train"."""
    gold_dir = Path(gold_dir)
    passages = [
        json.loads(line)
        for line in (gold_dir / f"{split}-passages.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    labels = {}
    for line in (gold_dir / f"{split}-gold.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            labels[(row["id"], row["i"])] = row
    return passages, labels


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


def tally(passages, labels, results: dict[str, list[dict]]) -> dict:
    """Raw counts of the metric (summable over books): tp/fp/fn/tn, type hits, ranked (priority, relevant)."""
    tp = fp = fn = tn = type_ok = 0
    ranked = []
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
            classes, mostly = [], []
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
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "type_ok": type_ok, "ranked": ranked}


def summarise(counts: dict, k: int = 20) -> dict:
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    top = sorted(counts["ranked"], key=lambda x: -x[0])[:k]
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "type_accuracy": round(counts["type_ok"] / tp, 4) if tp else 0.0,
        f"p_at_{k}": round(sum(1 for _, r in top if r) / len(top), 4) if top else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": counts["tn"],
        "ranked_descriptions": len(counts["ranked"]),
    }


def add(a: dict, b: dict) -> dict:
    return {k: a[k] + b[k] for k in a}


def evaluate(passages, labels, results: dict[str, list[dict]], k: int = 20) -> dict:
    return summarise(tally(passages, labels, results), k)
