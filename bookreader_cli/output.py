"""Where things go: data (JSON, CSV, crontab lines…) to stdout; tables, progress, logs and errors to stderr.

Colour and progress bars switch off when stderr is not a terminal or NO_COLOR is set.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_console = None


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def console():
    """The stderr rich console (created on first use so start-up stays fast)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(
            stderr=True,
            no_color=not interactive(),
            highlight=False,
            force_terminal=None if interactive() else False,
            soft_wrap=False,
        )
    return _console


def _default(obj: Any):
    from dataclasses import asdict, is_dataclass
    from pathlib import Path

    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=indent, default=_default)


def print_json(obj: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(dumps(obj) + "\n")
    sys.stdout.flush()


def print_jsonl(rows: Iterable[Any]) -> None:
    for row in rows:
        sys.stdout.write(dumps(row, indent=None) + "\n")
    sys.stdout.flush()


def print_csv(rows: Iterable[dict], columns: list[str]) -> None:
    """CSV with a header on stdout; list values joined by commas."""
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                ",".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
                for v in (row.get(c) for c in columns)
            ]
        )
    sys.stdout.flush()


def print_table(columns: list[str], rows: Iterable[Iterable[Any]], title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console().print(table)


def print_summary(data: dict, title: str | None = None, skip: Iterable[str] = ()) -> None:
    """A two-column table of a result dict's scalar fields (nested values shown as compact JSON)."""
    rows = []
    for key, value in data.items():
        if key in skip:
            continue
        if isinstance(value, float) and (key.endswith(("_at", "_mtime"))):
            value = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
        elif isinstance(value, float):
            value = f"{value:.3f}"
        elif isinstance(value, (dict, list)):
            value = dumps(value, indent=None)
            value = value if len(value) <= 200 else value[:197] + "..."
        rows.append((key, value))
    print_table(["field", "value"], rows, title=title)


def message(text: str) -> None:
    console().print(text, markup=False)


def error(text: str, json_mode: bool, exit_code: int) -> None:
    """One line on stderr: plain text, or a JSON error object with --json."""
    text = " ".join(str(text).split())
    if json_mode:
        sys.stderr.write(dumps({"error": text, "exit_code": exit_code}, indent=None) + "\n")
    else:
        sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()


@contextmanager
def progress(total: int, label: str) -> Iterator:
    """A progress bar on stderr when interactive; otherwise a plain line per step (when verbose) or nothing.

    Yields `advance(description: str = "", step: int = 1)`; step 0 only changes the description (progress
    inside a step, such as the parts of a huge chapter).
    """
    if not interactive():
        log = logging.getLogger("bookreader.progress")
        done = [0]

        def advance(description: str = "", step: int = 1) -> None:
            if not step:
                return  # the runner logs parts itself
            done[0] += step
            log.info("%s %d/%d %s", label, done[0], total, description)

        yield advance
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(description: str = "", step: int = 1) -> None:
            bar.update(task, advance=step, description=f"{label} {description}".strip())

        yield advance


class JsonLogFormatter(logging.Formatter):
    """Structured log lines: one JSON object per line, with whatever `extra=` fields the caller passed."""

    RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in self.RESERVED})
        return dumps(data, indent=None)


def setup_logging(log_format: str = "text", verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
        level = logging.INFO
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        level = logging.INFO if verbose else logging.WARNING
    root = logging.getLogger("bookreader")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class DataOut:
    """Where a command's data goes: "-" is stdout (the bytes as they are); a path is written atomically (a
    temporary file beside it, renamed over it), so nobody ever reads half a file. The target is checked
    when this is made, before the job runs, so a bad one changes nothing."""

    def __init__(self, target: str):
        from pathlib import Path

        from bookreader_cli.errors import BadInput

        self.target = target
        if target != "-":
            path = Path(target)
            if path.is_dir():
                raise BadInput(f"{target}: is a directory")
            if not path.parent.is_dir():
                raise BadInput(f"{target}: no such directory: {path.parent}")

    def __call__(self, data: str | bytes) -> str:
        from pathlib import Path

        from bookreader_cli.errors import BadInput

        data = data.encode("utf-8") if isinstance(data, str) else data
        if self.target == "-":
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return "stdout"
        path = Path(self.target)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, path)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise BadInput(f"cannot write {self.target}: {exc.strerror or exc}") from None
        return str(path)
