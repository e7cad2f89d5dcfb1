"""Shared fixtures: a fresh BOOKREADER_HOME per test, the real CLI in a subprocess, corpus paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_books"
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"


def corpus_or_skip() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is absent")
    return CORPUS


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def cli_env(home: Path, **extra: str) -> dict:
    """The environment of a CLI subprocess: the test's home, no colour, one math thread, no config file."""
    env = dict(
        os.environ,
        BOOKREADER_HOME=str(home),
        NO_COLOR="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    env.pop("BOOKREADER_CONFIG", None)
    env.update(extra)
    return env


@pytest.fixture
def cli(home: Path):
    """Run `bookreader ARGS…` in a subprocess against the test's own home; returns CliResult."""

    def run(*args: str, input: str | bytes | None = None, env: dict | None = None, timeout: float = 600) -> CliResult:
        full_env = cli_env(home, **(env or {}))
        proc = subprocess.run(
            [sys.executable, "-m", "bookreader_cli", *map(str, args)],
            input=input,
            check=False,
            capture_output=True,
            env=full_env,
            timeout=timeout,
            text=not isinstance(input, bytes),
        )
        out = proc.stdout if isinstance(proc.stdout, str) else proc.stdout.decode("utf-8", "replace")
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode("utf-8", "replace")
        return CliResult(proc.returncode, out, err)

    return run


def db_snapshot(home: Path) -> dict:
    """Row counts of every table (and the files under home) to prove a bad input changed nothing."""
    import sqlite3

    db = home / "bookreader.db"
    counts = {}
    if db.exists():
        conn = sqlite3.connect(db)
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            counts[name] = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        conn.close()
    files = sorted(
        str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and not p.name.startswith("bookreader.db")
    )
    return {"tables": counts, "files": files}
