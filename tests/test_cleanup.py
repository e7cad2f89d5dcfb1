"""Cleanup with real files, real symlinks and old mtimes; the images directory is the only thing it may touch."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bookreader_cli.errors import BadInput
from bookreader_cli.images.cleanup import cleanup_images, plan_cleanup

DAY = 86400
NOW = time.time()


def make_file(path: Path, size: int = 1000, age_days: float = 0.0) -> Path:
    path.write_bytes(os.urandom(size))
    stamp = NOW - age_days * DAY
    os.utime(path, (stamp, stamp))
    return path


def age_link(path: Path, age_days: float) -> None:
    stamp = NOW - age_days * DAY
    os.utime(path, (stamp, stamp), follow_symlinks=False)


@pytest.fixture
def layout(tmp_path):
    images = tmp_path / "home" / "images"
    images.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    return images, outside


def test_expired_orphan_and_missing_are_removed(layout):
    images, _ = layout
    old = make_file(images / "old.png", 2000, age_days=40)
    fresh = make_file(images / "fresh.png", 3000, age_days=1)
    orphan = make_file(images / "orphan.jpg", 5000, age_days=2)
    rows = [
        {"id": 1, "path": old.name, "created_at": NOW - 40 * DAY},
        {"id": 2, "path": fresh.name, "created_at": NOW - 1 * DAY},
        {"id": 3, "path": "gone.png", "created_at": NOW - 1 * DAY},
        {"id": 4, "path": None, "created_at": NOW - 45 * DAY},  # an old failed attempt: row only
    ]
    deleted_ids: list = []
    plan, result = cleanup_images(images, rows, days=30, now=NOW, delete_rows=deleted_ids.extend)
    assert not old.exists() and not orphan.exists() and fresh.exists()
    assert sorted(deleted_ids) == [1, 3, 4] and sorted(result["deleted_row_ids"]) == [1, 3, 4]
    assert result["deleted_files"] == 2 and result["deleted_rows"] == 3
    assert result["freed_space_bytes"] == 7000
    assert result["freed_space_mb"] == round(7000 / 1048576, 3)
    assert result["errors"] == [] and result["dry_run"] is False
    assert result["deletion_time_seconds"] >= 0
    file_reasons = {a["path"]: a["reason"] for a in plan if a["action"] == "delete_file"}
    row_reasons = {a["row_id"]: a["reason"] for a in plan if a["action"] == "delete_row"}
    assert file_reasons == {"old.png": "expired", "orphan.jpg": "orphan_file"}
    assert row_reasons == {1: "expired", 3: "missing_file", 4: "expired"}


def test_dry_run_touches_nothing(layout):
    images, _ = layout
    old = make_file(images / "old.png", 2048, age_days=40)
    rows = [{"id": 1, "path": old.name, "created_at": NOW - 40 * DAY}]
    called = []
    plan, result = cleanup_images(images, rows, days=30, dry_run=True, now=NOW, delete_rows=called.append)
    assert old.exists() and called == []
    assert result["dry_run"] is True and result["deleted_files"] == 1 and result["deleted_rows"] == 1
    assert result["freed_space_bytes"] == 2048
    assert [a["action"] for a in plan] == ["delete_file", "delete_row"]


def test_symlink_pointing_outside_keeps_its_target(layout):
    images, outside = layout
    precious = make_file(outside / "precious.png", 4000, age_days=100)
    orphan_link = images / "link-orphan.png"
    orphan_link.symlink_to(precious)
    age_link(orphan_link, 10)
    row_link = images / "link-row.png"
    row_link.symlink_to(precious)
    rows = [{"id": 9, "path": row_link.name, "created_at": NOW - 40 * DAY}]
    _, result = cleanup_images(images, rows, days=30, now=NOW)
    assert precious.exists() and precious.stat().st_size == 4000
    assert not os.path.lexists(orphan_link) and not os.path.lexists(row_link)
    assert result["deleted_files"] == 2 and result["deleted_row_ids"] == [9]
    assert result["freed_space_bytes"] < 4000 * 2  # links, not their target


def test_symlinked_directory_inside_is_never_entered(layout):
    images, outside = layout
    victim = make_file(outside / "victim.png", 100, age_days=100)
    (images / "sub").symlink_to(outside, target_is_directory=True)
    rows = [{"id": 1, "path": "sub/victim.png", "created_at": NOW - 100 * DAY}]
    _, result = cleanup_images(images, rows, days=30, now=NOW)
    assert victim.exists() and (images / "sub").is_symlink()
    assert result["deleted_files"] == 0
    assert any("outside the images directory" in e for e in result["errors"])
    assert result["deleted_row_ids"] == [1]  # the expired row goes; the file it named is not ours


@pytest.mark.parametrize("bad_path", ["../outside/victim.png", "{outside}/victim.png", "../../etc/passwd"])
def test_row_paths_outside_are_left_alone(layout, bad_path):
    images, outside = layout
    victim = make_file(outside / "victim.png", 100, age_days=100)
    rows = [{"id": 5, "path": bad_path.format(outside=outside), "created_at": NOW - 100 * DAY}]
    _, result = cleanup_images(images, rows, days=30, now=NOW)
    assert victim.exists() and result["deleted_files"] == 0 and result["errors"]


def test_absolute_row_path_inside_works(layout):
    images, _ = layout
    old = make_file(images / "old.webp", 10, age_days=40)
    _, result = cleanup_images(images, [{"id": 1, "path": str(old), "created_at": NOW - 40 * DAY}], days=30, now=NOW)
    assert not old.exists() and result["deleted_files"] == 1


def test_shared_file_stays_while_a_live_row_uses_it(layout):
    images, _ = layout
    shared = make_file(images / "same.png", 10, age_days=40)
    rows = [
        {"id": 1, "path": shared.name, "created_at": NOW - 40 * DAY},
        {"id": 2, "path": shared.name, "created_at": NOW - 1 * DAY},
    ]
    _, result = cleanup_images(images, rows, days=30, now=NOW)
    assert shared.exists() and result["deleted_files"] == 0 and result["deleted_row_ids"] == [1]


def test_fresh_orphans_and_temps_get_a_grace_period(layout):
    images, _ = layout
    young = make_file(images / "young.png", 10, age_days=0)
    young_tmp = make_file(images / ".tmp-abc.png", 10, age_days=0)
    stale_tmp = make_file(images / ".tmp-old.png", 10, age_days=1)
    foreign = make_file(images / "notes.txt", 10, age_days=100)
    (images / "subdir").mkdir()
    plan, _result = cleanup_images(images, [], days=30, now=NOW)
    assert young.exists() and young_tmp.exists() and foreign.exists() and (images / "subdir").is_dir()
    assert not stale_tmp.exists()
    assert [(a["path"], a["reason"]) for a in plan] == [(".tmp-old.png", "stale_temp")]


def test_dangling_link_counts_as_a_missing_file(layout):
    images, outside = layout
    link = images / "dangling.png"
    link.symlink_to(outside / "nothing.png")
    _, result = cleanup_images(images, [{"id": 3, "path": link.name, "created_at": NOW}], days=30, now=NOW)
    assert not os.path.lexists(link) and result["deleted_row_ids"] == [3]


def test_iso_created_at_and_mtime_fallback(layout):
    images, _ = layout
    a = make_file(images / "a.png", 10, age_days=40)
    b = make_file(images / "b.png", 10, age_days=40)
    rows = [{"id": 1, "path": a.name, "created_at": "2000-01-01T00:00:00Z"}, {"id": 2, "path": b.name}]
    _, result = cleanup_images(images, rows, days=30, now=NOW)
    assert not a.exists() and not b.exists() and sorted(result["deleted_row_ids"]) == [1, 2]


def test_failed_file_delete_keeps_the_row(layout):
    images, _ = layout
    old = make_file(images / "old.png", 10, age_days=40)
    if os.geteuid() == 0:
        pytest.skip("root can delete from a read-only directory")
    os.chmod(images, 0o555)
    try:
        _, result = cleanup_images(
            images, [{"id": 1, "path": old.name, "created_at": NOW - 40 * DAY}], days=30, now=NOW
        )
    finally:
        os.chmod(images, 0o755)
    assert old.exists() and result["deleted_files"] == 0 and result["deleted_row_ids"] == [] and result["errors"]


def test_failing_row_delete_is_reported(layout):
    images, _ = layout
    make_file(images / "old.png", 10, age_days=40)

    def broken(ids):
        raise RuntimeError("database is locked")

    _, result = cleanup_images(
        images, [{"id": 1, "path": "old.png", "created_at": NOW - 40 * DAY}], days=30, now=NOW, delete_rows=broken
    )
    assert result["deleted_files"] == 1 and result["deleted_rows"] == 0
    assert "database is locked" in result["errors"][0]


def test_missing_images_dir_and_bad_days(tmp_path):
    _plan, result = cleanup_images(tmp_path / "nope", [{"id": 1, "path": "x.png", "created_at": NOW}], days=30, now=NOW)
    assert result["deleted_row_ids"] == [1] and result["deleted_files"] == 0
    with pytest.raises(BadInput):
        plan_cleanup(tmp_path, [], days=-1)


def test_rerun_converges(layout):
    images, _ = layout
    make_file(images / "old.png", 10, age_days=40)
    make_file(images / "orphan.png", 10, age_days=5)
    rows = [{"id": 1, "path": "old.png", "created_at": NOW - 40 * DAY}]
    cleanup_images(images, rows, days=30, now=NOW)
    plan, result = cleanup_images(images, [], days=30, now=NOW)
    assert plan == [] and result["deleted_files"] == 0
