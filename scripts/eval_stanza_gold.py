#!/usr/bin/env python
"""The Stanza processor alone against the gold sentences (../shared/gold): P/R/F1 of its yes votes,
type accuracy on hits, and (--fit) a logistic regression of its own features, to refit WEIGHTS/BIAS.

    .venv/bin/python scripts/eval_stanza_gold.py [--stanza-dir DIR] [--split dev] [--fit]

Gold sentences are scored exactly as the gold file cuts them; strength >= 2 is positive, 1 neutral.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
GOLD = REPO.parent / "shared" / "gold"


def main() -> int:
    from bookreader_cli.config import NlpSettings
    from bookreader_cli.nlp.base import Sentence
    from bookreader_cli.nlp.processors import stanza as module
    from bookreader_cli.nlp.stanza_models import BUNDLED_DIR

    ap = argparse.ArgumentParser()
    ap.add_argument("--stanza-dir", default=str(BUNDLED_DIR))
    ap.add_argument("--split", default="dev")
    ap.add_argument("--fit", action="store_true", help="fit weights on the split (L2, gradient descent)")
    args = ap.parse_args()
    if not (GOLD / f"{args.split}-gold.jsonl").exists():
        print(f"no gold set at {GOLD}", file=sys.stderr)
        return 2
    passages = [
        json.loads(x)
        for x in (GOLD / f"{args.split}-passages.jsonl").read_text(encoding="utf-8").splitlines()
        if x.strip()
    ]
    labels = {
        (r["id"], r["i"]): r
        for r in map(json.loads, (GOLD / f"{args.split}-gold.jsonl").read_text(encoding="utf-8").splitlines())
        if r
    }
    processor = module.StanzaProcessor(NlpSettings(stanza_dir=args.stanza_dir))
    print("models:", processor.availability()[1], "load", round(processor.load(), 2), "s", file=sys.stderr)

    rows = []  # (features, gold class, gold type, vote)
    for p in passages:
        sentences = [Sentence(s["i"], s["start"], s["end"], s["text"]) for s in p["sentences"]]
        for s, vote in zip(sentences, processor.score(p["text"], sentences, "ru")):
            row = labels[(p["id"], s.index)]
            cls = 0 if row["label"] == "none" else (1 if row["strength"] >= 2 else None)
            rows.append((vote.evidence.get("features", {}), cls, row["label"], vote))

    def report(name: str, predict) -> None:
        tp = fp = fn = typed = 0
        for feats, cls, label, vote in rows:
            if cls is None:
                continue
            yes = predict(feats, vote)
            tp += yes and cls == 1
            fp += yes and cls == 0
            fn += (not yes) and cls == 1
            typed += yes and cls == 1 and vote.type == label
        p = tp / max(tp + fp, 1)
        r = tp / max(tp + fn, 1)
        f1 = 2 * p * r / max(p + r, 1e-9)
        print(f"{name:10s} P={p:.3f} R={r:.3f} F1={f1:.3f} type_acc={typed / max(tp, 1):.3f} (tp={tp} fp={fp} fn={fn})")

    report("current", lambda feats, vote: vote.yes)
    if args.fit:
        names = sorted(module.WEIGHTS)
        data = [([f.get(n, 0.0) for n in names], cls) for f, cls, _, v in rows if cls is not None and f]
        w, b = [0.0] * len(names), 0.0
        for _ in range(3000):  # plain batch gradient descent on the log-loss, L2 = 0.01
            gw, gb = [0.01 * x for x in w], 0.0
            for x, y in data:
                p = 1 / (1 + math.exp(-(b + sum(a * c for a, c in zip(w, x)))))
                gb += (p - y) / len(data)
                for k, xv in enumerate(x):
                    gw[k] += (p - y) * xv / len(data)
            w = [a - 0.5 * g for a, g in zip(w, gw)]
            b -= 0.5 * gb
        fitted = {n: round(a, 2) for n, a in zip(names, w)}
        print("fitted WEIGHTS =", json.dumps(fitted), "BIAS =", round(b, 2))

        def predict(feats, vote):
            return (
                1 / (1 + math.exp(-(b + sum(fitted[n] * feats.get(n, 0.0) for n in names)))) >= module.CUTOFF
                and vote.type is not None
            )

        report("fitted", predict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
