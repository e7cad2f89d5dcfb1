"""Delete old images, image files nobody refers to, and rows whose file is gone, inside the images dir only.

Plan first, then act: `cleanup_images` works out every deletion (the plan) from the directory listing and
the rows it is given, and with dry_run stops there. It never follows a symlink: a link inside the images
directory is an entry like any other and only the link is removed; a row whose path leads outside the
directory leaves that path alone. Files are deleted before rows: a run killed half-way leaves rows without
files or files without rows, and the next run removes those, so repeated runs converge.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from bookreader_cli.errors import BadInput
from bookreader_cli.images.files import IMAGE_EXTENSIONS, TEMP_PREFIX

DAY = 86400.0
DEFAULT_ORPHAN_GRACE_SECONDS = 3600.0  # a file written a moment ago may not have its row yet


def _epoch(value) -> float | None:
    """created_at as epoch seconds: the store keeps floats; ISO text is accepted too (naive = UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _entry_name(root: Path, root_real: Path, path) -> tuple[str | None, str | None]:
    """(name of the entry inside the images dir, None) or (None, why not); never resolves the entry itself."""
    if not path:
        return None, "no path"
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    if candidate.name in ("", ".", ".."):
        return None, f"path {str(path)!r} names no file"
    try:
        parent = candidate.parent.resolve()
    except (OSError, RuntimeError) as exc:
        return None, f"path {str(path)!r}: {exc}"
    if parent != root_real:
        return None, f"path {str(path)!r} is outside the images directory"
    return candidate.name, None


def _scan(root_real: Path) -> dict[str, os.stat_result]:
    """Top-level non-directory entries (files and symlinks of any kind), by name, with lstat results."""
    entries: dict[str, os.stat_result] = {}
    try:
        with os.scandir(root_real) as it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    entries[entry.name] = st
    except FileNotFoundError:
        pass
    return entries


def _looks_like_ours(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) or name.lower().endswith(IMAGE_EXTENSIONS)


def plan_cleanup(
    images_dir: str | Path,
    rows: Iterable[dict],
    days: float,
    now: float | None = None,
    orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_SECONDS,
) -> tuple[list[dict], list[str]]:
    """The deletions a cleanup would make, as a list of actions, and the problems found (rows left alone)."""
    if days is None or days < 0:
        raise BadInput(f"--days must be 0 or more, got {days}")
    now = time.time() if now is None else now
    cutoff = now - days * DAY
    root = Path(images_dir)
    root_real = root.resolve()
    entries = _scan(root_real)
    problems: list[str] = []

    # rows: expired? which entry? (several rows may share a file: names are content hashes)
    by_name: dict[str, list[dict]] = {}
    row_actions: list[dict] = []
    for row in rows:
        row_id = row.get("id")
        name, why = _entry_name(root, root_real, row.get("path"))
        st = entries.get(name) if name else None
        created = _epoch(row.get("created_at"))
        if created is None and st is not None:
            created = st.st_mtime
        expired = created is not None and created < cutoff
        if name is None:
            if row.get("path"):
                problems.append(f"image row {row_id}: {why}; file left alone")
            if expired:
                row_actions.append({"action": "delete_row", "row_id": row_id, "reason": "expired"})
            continue
        gone = st is None or (stat.S_ISLNK(st.st_mode) and not os.path.exists(root_real / name))
        info = {"row": row, "row_id": row_id, "expired": expired, "gone": gone}
        by_name.setdefault(name, []).append(info)

    file_actions: list[dict] = []
    for name, infos in by_name.items():
        st = entries.get(name)
        everyone_leaves = all(i["expired"] or i["gone"] for i in infos)
        for i in infos:
            if i["gone"] or i["expired"]:
                reason = "missing_file" if i["gone"] else "expired"
                row_actions.append({"action": "delete_row", "row_id": i["row_id"], "reason": reason, "path": name})
        if st is not None and everyone_leaves:
            reason = "missing_file" if all(i["gone"] for i in infos) else "expired"  # dangling link: remove it
            file_actions.append({"action": "delete_file", "path": name, "reason": reason, "size_bytes": st.st_size})

    for name, st in sorted(entries.items()):
        if name in by_name or not _looks_like_ours(name):
            continue
        if now - st.st_mtime < orphan_grace_seconds:
            continue  # maybe a generation in progress: its row is about to be written
        reason = "stale_temp" if name.startswith(TEMP_PREFIX) else "orphan_file"
        file_actions.append({"action": "delete_file", "path": name, "reason": reason, "size_bytes": st.st_size})
    return file_actions + row_actions, problems


def cleanup_images(
    images_dir: str | Path,
    rows: Iterable[dict],
    days: float = 30,
    dry_run: bool = False,
    now: float | None = None,
    delete_rows: Callable[[list], None] | None = None,
    orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_SECONDS,
) -> tuple[list[dict], dict]:
    """Plan and (unless dry_run) carry out a cleanup; return (plan, the seed's cleanup_old_images_task dict).

    rows: the images table's rows (id, path, created_at). Rows to drop are passed to `delete_rows(ids)` (the
    caller's transaction) after the files are gone; without it the caller deletes `deleted_row_ids` itself.
    With dry_run the figures say what would be deleted and nothing is touched.
    """
    started = time.perf_counter()
    root_real = Path(images_dir).resolve()
    plan, errors = plan_cleanup(images_dir, rows, days, now, orphan_grace_seconds)
    file_actions = [a for a in plan if a["action"] == "delete_file"]
    row_ids = [a["row_id"] for a in plan if a["action"] == "delete_row"]

    deleted_files, freed = 0, 0
    if dry_run:
        deleted_files = len(file_actions)
        freed = sum(a["size_bytes"] for a in file_actions)
    else:
        failed_names: set[str] = set()
        for action in file_actions:
            name = action["path"]
            target = root_real / name
            try:
                st = os.lstat(target)
                if stat.S_ISDIR(st.st_mode) or target.parent != root_real:
                    raise IsADirectoryError(f"{name} is not a file in the images directory")
                os.unlink(target)  # a symlink: the link goes, its target stays
            except FileNotFoundError:
                continue  # someone else removed it: the goal is reached
            except OSError as exc:
                errors.append(f"could not delete {name}: {exc.strerror or exc}")
                failed_names.add(name)
                continue
            deleted_files += 1
            freed += st.st_size
        # a row whose file could not be deleted stays, so the next run tries again
        row_ids = [a["row_id"] for a in plan if a["action"] == "delete_row" and a.get("path") not in failed_names]
        if delete_rows is not None and row_ids:
            try:
                delete_rows(row_ids)
            except Exception as exc:  # the files are gone; the next run removes these rows
                errors.append(f"could not delete {len(row_ids)} image rows: {type(exc).__name__}: {exc}")
                row_ids = []
    return plan, {
        "deleted_files": deleted_files,
        "freed_space_mb": round(freed / (1024 * 1024), 3),
        "freed_space_bytes": freed,
        "deletion_time_seconds": round(time.perf_counter() - started, 3),
        "errors": errors,
        "deleted_rows": len(row_ids),
        "deleted_row_ids": row_ids,
        "days_old": days,
        "dry_run": dry_run,
    }
