"""The real epub.js (tests/js/epubjs_ref.js under node + jsdom) as a reference for the CFI tests.

Starting node with jsdom and epub.js costs ~1.2 s, so tests ask their questions in batches: one node
process answers a list of requests, and a long batch is split over two processes that run side by side.
Requests carry "fast_ticks" (epub.js's one-frame wait per section, skipped: same output, ~2x faster).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


def epubjs_available() -> bool:
    return shutil.which("node") is not None and all(
        (JS_DIR / "node_modules" / name).is_dir() for name in ("epubjs", "jsdom")
    )


needs_epubjs = pytest.mark.skipif(
    not epubjs_available(), reason="node or tests/js/node_modules absent (tests/js/install.sh)"
)


def _start(requests: list[dict]) -> subprocess.Popen:
    # a file, not a pipe: nothing blocks while we read another process; closed by the caller (proc.errors)
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    proc = subprocess.Popen(
        ["node", str(JS_DIR / "epubjs_ref.js")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        cwd=JS_DIR,
    )
    proc.errors = errors
    proc.stdin.write(json.dumps([dict(r, fast_ticks=True) for r in requests]))
    proc.stdin.close()
    return proc


def _collect(proc: subprocess.Popen, timeout: float = 600) -> list[dict]:
    watchdog = threading.Timer(timeout, proc.kill)  # a hung epub.js fails the test instead of hanging it
    watchdog.start()
    try:
        out = proc.stdout.read()
        code = proc.wait(timeout=timeout)
        proc.errors.seek(0)
        err = proc.errors.read()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.errors.close()
    assert code == 0, err[-2000:]
    answers = json.loads(out)
    assert isinstance(answers, list), answers
    return answers


def _weight(request: dict) -> int:
    """About how long a request takes: its book's size (locations), or little (ranges, percentages)."""
    try:
        size = os.path.getsize(request["epub"])
    except (KeyError, OSError):
        size = 0
    return size if "chars" in request else size // 10


def run_epubjs_batch(requests: list[dict], processes: int = 2) -> list[dict]:
    """Each request's answer, in order; up to `processes` node processes share the work (by book size)."""
    if not requests:
        return []
    processes = max(1, min(processes, os.cpu_count() or 1, len(requests)))
    groups: list[list[int]] = [[] for _ in range(processes)]
    loads = [0] * processes
    for index in sorted(range(len(requests)), key=lambda i: -_weight(requests[i])):
        lightest = loads.index(min(loads))
        groups[lightest].append(index)
        loads[lightest] += _weight(requests[index]) + 1
    running = [(group, _start([requests[i] for i in group])) for group in groups if group]
    answers: list[dict | None] = [None] * len(requests)
    for group, proc in running:
        for index, answer in zip(group, _collect(proc)):
            answers[index] = answer
    return answers


def run_epubjs(request: dict) -> dict:
    """One request's answer."""
    return run_epubjs_batch([request], processes=1)[0]
