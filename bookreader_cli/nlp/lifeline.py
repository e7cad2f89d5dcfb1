"""Tie an NLP worker's life to its parent's, so no worker outlives the `process` that started it.

A worker process (~0.8 GB with its models) orphaned by `kill -9` of its parent used to live on under
PID 1 and keep the parent's stdout open, so `bookreader process 1 --json | cat` never ended. Now each
worker, as it starts:
- asks Linux to SIGKILL it the moment its parent dies (prctl PR_SET_PDEATHSIG, through ctypes);
- runs a watchdog thread that exits when its parent pid changes (every platform; covers the pdeathsig
  caveat that it follows the parent *thread*, and a parent that died before the prctl call);
- points its stdout at /dev/null: stdout carries the parent's one JSON document, never a worker's bytes;
- ignores SIGINT: Ctrl-C reaches the whole process group, and the parent decides (it stops the workers).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5


def parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `signum` to this process when its parent dies (Linux); True if it took."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(WATCH_SECONDS):
        if os.getppid() != parent_pid:
            os._exit(1)


def bind_to_parent(parent_pid: int, use_pdeathsig: bool = True) -> None:
    """Run first thing in a worker: die with `parent_pid`, keep off its stdout, leave SIGINT to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if use_pdeathsig:
        parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the prctl took
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="parent-watchdog", daemon=True).start()
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        sys.stdout.flush()
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
