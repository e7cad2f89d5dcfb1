"""Several real `bookreader` processes against one home, released at the same instant.

Each child imports the package first, then waits for a "go" file, so the race is between processes that
are all ready (a plain burst of Popen calls would let Python's start-up time serialise them).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import cli_env

# The child: ready → wait for go → run the CLI's __main__ with the given arguments.
LAUNCHER = (
    "import runpy, sys, time\n"
    "from pathlib import Path\n"
    "import bookreader_cli, sqlite3, typer\n"
    "go = Path(sys.argv[1]); Path(sys.argv[2]).touch()\n"
    "while not go.exists():\n"
    "    time.sleep(0.005)\n"
    "sys.argv = ['bookreader'] + sys.argv[3:]\n"
    "runpy.run_module('bookreader_cli', run_name='__main__')\n"
)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def run_at_once(home: Path, work: Path, argv_list: list[list[str]], timeout: float = 180) -> list[Outcome]:
    """Start one process per argv, release them together, return their outcomes in order."""
    work.mkdir(parents=True, exist_ok=True)
    go = work / "go"
    go.unlink(missing_ok=True)
    procs, ready = [], []
    for n, argv in enumerate(argv_list):
        flag = work / f"ready-{n}"
        flag.unlink(missing_ok=True)
        ready.append(flag)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(go), str(flag), *map(str, argv)],
                env=cli_env(home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 60
    while not all(f.exists() for f in ready):
        if time.monotonic() > deadline:
            for p in procs:
                p.kill()
            raise AssertionError("the child processes never got ready")
        time.sleep(0.01)
    go.touch()
    outcomes = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        outcomes.append(Outcome(p.returncode, out, err))
    return outcomes
