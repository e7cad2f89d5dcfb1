#!/usr/bin/env python
"""Rebuild the Stanza models shipped in bookreader_cli/nlp/stanza_bundled/ (or train anywhere else).

    .venv/bin/python scripts/train_stanza.py                       # small models -> the bundled dir
    .venv/bin/python scripts/train_stanza.py --size smoke --out /tmp/st   # a quick check

Sources default to the repo's sample_books/ and ../shared/corpus (public-domain Russian books) when it is
present; the bundled models were built with both (see ru/bookreader-train.json for the exact list).
Training is deterministic up to torch's CPU kernels (seed 1234, same sample of paragraphs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bookreader_cli.nlp.stanza_models import BUNDLED_DIR
from bookreader_cli.training.stanza_train import SIZES, train_stanza_cli


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR, help="resources dir to write (replaced)")
    parser.add_argument("sources", nargs="*", type=Path, help="books or directories (.txt/.fb2/.epub)")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    manifest = train_stanza_cli(args.out, size=args.size, sources=args.sources or None)
    print(json.dumps(manifest, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
