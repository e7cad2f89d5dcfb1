"""Start-up time of the fast commands: `bookreader --help`, `health` and `stats` (the budget is 0.3 s).

Runs each command N times in a fresh process against a throw-away BOOKREADER_HOME (created and migrated by
one warm-up run, as on a real installation) and prints min / median / max wall-clock seconds, plus the median
CPU seconds (user + system) of the child: on a busy machine wall-clock time includes waiting for a core, CPU
time much less so. Compare both with the 0.3 s budget, and the load average printed with them.

    .venv/bin/python bench/bench_startup.py [--runs 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "--help": ["--help"],
    "config (baseline)": ["config", "--json"],  # a command that does no work: the CLI framework's own cost
    "health": ["health", "--json"],
    "stats": ["stats", "--json"],
    "stats prometheus": ["stats", "--format", "prometheus"],
}


def entry_point() -> list[str]:
    """The installed `bookreader` script beside this interpreter, else `python -m bookreader_cli`."""
    script = Path(sys.executable).with_name("bookreader")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bookreader_cli"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(cmd: list[str], env: dict, runs: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) per run."""
    seconds, cpu = [], []
    for _ in range(runs):
        cpu_before = _children_cpu()
        started = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        seconds.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - cpu_before)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bookreader-bench-"))
    env = dict(os.environ, BOOKREADER_HOME=str(home), NO_COLOR="1")
    env.pop("BOOKREADER_CONFIG", None)
    base = entry_point()
    try:
        subprocess.run(base + ["health", "--json"], env=env, stdout=subprocess.DEVNULL, check=False)  # migrate
        results = {}
        for label, cmd_args in COMMANDS.items():
            times, cpu = time_command(base + cmd_args, env, args.runs)
            results[label] = {
                "runs": args.runs,
                "min": round(min(times), 4),
                "median": round(statistics.median(times), 4),
                "max": round(max(times), 4),
                "cpu_median": round(statistics.median(cpu), 4),
            }
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {
                    "entry_point": base,
                    "python": sys.version.split()[0],
                    "load_average": os.getloadavg(),
                    "cpus": os.cpu_count(),
                    "results": results,
                },
                indent=2,
            )
        )
        return
    print(f"{'command':<18} {'runs':>4} {'min s':>8} {'median s':>9} {'max s':>8} {'cpu median s':>13}")
    for label, r in results.items():
        print(
            f"{label:<18} {r['runs']:>4} {r['min']:>8.3f} {r['median']:>9.3f} {r['max']:>8.3f} {r['cpu_median']:>13.3f}"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
