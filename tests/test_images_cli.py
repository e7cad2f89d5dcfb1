"""`bookreader generate-images` and `bookreader cleanup` end to end: the real CLI in a subprocess, a real SQLite
file in the test's home, and the fake image API (tests/fake_image_api.py) on 127.0.0.1. The descriptions are
real sentences of the sample book stored directly (the NLP engine is slow and tested elsewhere)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import SAMPLES, db_snapshot
from fake_image_api import FakeImageAPI

SECRET = "sk_cli_S3CRET_value_987"
DAY = 86400

# (chapter idx, the sentence's first words, type, priority): description ids 1..5 in this order
PICKS = [
    (0, "Село Устье раскинулось", "location", 0.92),
    (1, "Под потолком висела", "atmosphere", 0.81),
    (1, "Кузьма сидел у печи", "character", 0.77),
    (2, "Лёд на Вельге был неровный", "location", 0.66),
    (3, "Дом лесника стоял", "location", 0.58),
]
LAMP = "керосиновая"  # a word only in description 2's text


class ScriptedAPI(FakeImageAPI):
    """The fake API, answering by words of the prompt: `script = {"word": "402"}` fails those prompts."""

    script: ClassVar[dict[str, str]] = {}

    def _choose(self, prompt: str, query: dict) -> str:
        for word, spec in self.script.items():
            if word in prompt:
                return super()._choose(prompt, {"fake": [spec]})
        return super()._choose(prompt, query)


@pytest.fixture(scope="module")
def server():
    with ScriptedAPI() as api:
        yield api


@pytest.fixture
def api(server):
    server.reset()
    server.set_default("png")
    server.script = {}
    yield server


@pytest.fixture
def book(home):
    """The Russian sample imported, with five descriptions (ids 1..5) whose offsets hold."""
    from bookreader_cli.config import load_settings
    from bookreader_cli.jobs import Context, import_book

    ctx = Context(load_settings(home, environ={}))
    try:
        book_id = import_book(ctx, SAMPLES / "ru_sample.fb2")["book_id"]
        by_chapter: dict[int, list] = {}
        for idx, words, dtype, priority in PICKS:
            by_chapter.setdefault(idx, []).append((words, dtype, priority))
        for idx, picks in sorted(by_chapter.items()):
            chapter = ctx.store.chapter(book_id, idx)
            text = chapter.text
            rows = []
            for words, dtype, priority in picks:
                start = text.index(words)
                end = text.index(".", start) + 1
                rows.append(
                    {
                        "start": start,
                        "end": end,
                        "text": text[start:end],
                        "type": dtype,
                        "priority": priority,
                        "confidence": priority,
                        "consensus": 1.0,
                        "processors": ["test"],
                    }
                )
            ctx.store.store_chapter_descriptions(book_id, chapter, rows, "test")
        ids = [r[0] for r in ctx.store.conn.execute("SELECT id FROM descriptions ORDER BY priority DESC")]
        assert ids == [1, 2, 3, 4, 5]
    finally:
        ctx.close()
    return book_id


@pytest.fixture
def br(cli, api):
    """Run the CLI pointed at the fake API: no rate limit, tiny backoff, no API key unless a test gives one."""

    def run(*args, env: dict | None = None):
        full = {
            "BOOKREADER_IMAGES_BASE_URL": api.base_url,
            "BOOKREADER_IMAGES_BACKOFF_BASE": "0.01",
            "BOOKREADER_IMAGES_RATE_PER_SECOND": "0",
            "POLLINATIONS_API_KEY": "",
        }
        full.update(env or {})
        return cli(*args, env=full, timeout=120)

    return run


def rows(home: Path, sql: str, params=()) -> list[dict]:
    conn = sqlite3.connect(home / "bookreader.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def image_rows(home: Path) -> list[dict]:
    return rows(home, "SELECT * FROM images ORDER BY description_id, id")


def runs_of(home: Path, task: str) -> list[dict]:
    return rows(home, "SELECT * FROM task_runs WHERE task = ? ORDER BY created_at", [task])


# ---- generate by ids ------------------------------------------------------------------------------
def test_by_ids_writes_rows_and_hash_named_files(home, book, br, api):
    started = time.time()
    res = br("generate-images", "1", "3", "--user", "anna", "--json")
    assert res.code == 0, res.stderr
    out = res.json()
    assert {
        "user_id",
        "requested_count",
        "generated_count",
        "failed_count",
        "total_time_seconds",
        "generated_images",
        "failed",
        "task_id",
    } <= set(out)
    assert (out["user_id"], out["requested_count"], out["generated_count"], out["failed_count"]) == ("anna", 2, 2, 0)
    assert out["total_time_seconds"] >= 0 and out["failed"] == []
    assert len(api.requests) == 2

    images_dir = home / "images"
    by_desc = {g["description_id"]: g for g in out["generated_images"]}
    assert sorted(by_desc) == [1, 3]
    for row in image_rows(home):
        file = images_dir / row["path"]
        data = file.read_bytes()
        assert file.name == hashlib.sha256(data).hexdigest() + ".png" == f"{row['sha256']}.png"
        assert row["size_bytes"] == len(data) and (row["width"], row["height"]) == (1024, 768)
        assert row["status"] == "completed" and row["error"] is None and row["user"] == "anna"
        assert row["book_id"] == book and row["model"] == "flux"
        params = json.loads(row["params"])
        assert params["seed"] == row["seed"] and (params["width"], params["height"]) == (1024, 768)
        assert row["source_url"].startswith(api.base_url + "/prompt/") and f"seed={row['seed']}" in row["source_url"]
        assert started - 1 <= row["created_at"] <= time.time() and row["generation_time_seconds"] >= 0
        public = by_desc[row["description_id"]]
        assert Path(public["image_path"]) == file and public["prompt"] == row["prompt"]
    prompts = {r["description_id"]: r["prompt"] for r in image_rows(home)}
    assert prompts[1].startswith("Book illustration of a place") and "Село Устье" in prompts[1]
    assert prompts[3].startswith("Book illustration, character portrait") and "Кузьма" in prompts[3]

    [run] = runs_of(home, "generate_images")
    assert (run["queue"], run["state"], run["attempts"], run["id"]) == ("images", "SUCCESS", 1, out["task_id"])
    assert json.loads(run["args"]) == {"description_ids": [1, 3], "user": "anna"}

    # run again: the very same requests already gave anna these pictures, so nothing is asked (exit 0)
    res = br("generate-images", "1", "3", "--user", "anna", "--json")
    assert res.code == 0, res.stderr
    again = res.json()
    assert (again["requested_count"], again["generated_count"], again["existing_count"]) == (2, 0, 2)
    assert {e["image_path"] for e in again["existing_images"]} == {g["image_path"] for g in out["generated_images"]}
    assert len(api.requests) == 2
    # a picture whose file is gone is asked again: same seed, same picture, same name; still one row each
    lost = Path(by_desc[3]["image_path"])
    lost.unlink()
    again = br("generate-images", "1", "3", "--user", "anna", "--json").json()
    assert (again["generated_count"], again["existing_count"]) == (1, 1)
    assert again["generated_images"][0]["image_path"] == str(lost) and lost.exists()
    assert [r.query["seed"] for r in api.requests[2:]] == [[str(by_desc[3]["seed"])]]
    assert len(image_rows(home)) == 2 and len(list(images_dir.iterdir())) == 2
    # another user gets their own picture row (the same file)
    assert br("generate-images", "1", "--user", "bob").code == 0 and len(image_rows(home)) == 3


def test_a_failure_is_recorded_and_the_rest_go_on(home, book, br, api):
    api.script = {LAMP: "400"}  # a bad request is this prompt's failure (an account error would stop the batch)
    res = br("generate-images", "1", "2", "3", "--json")
    assert res.code == 0, res.stderr  # partial failure: the job succeeded
    out = res.json()
    assert (out["requested_count"], out["generated_count"], out["failed_count"]) == (3, 2, 1)
    assert out["failed"][0]["description_id"] == 2 and "400" in out["failed"][0]["error"]
    assert len(api.requests_for(LAMP)) == 1  # 400 is not retried
    failed = [r for r in image_rows(home) if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["description_id"] == 2 and failed[0]["path"] is None
    assert "400" in failed[0]["error"] and failed[0]["user"] is None

    # every image failing is a failed job (exit 1) with the failure listed; still one failure row per pair
    res = br("generate-images", "2")
    assert res.code == 1 and "400" in res.stderr
    assert len([r for r in image_rows(home) if r["status"] == "failed"]) == 1
    # the API recovers: the success replaces the failure row
    api.script = {}
    assert br("generate-images", "2").code == 0
    assert [r["status"] for r in image_rows(home) if r["description_id"] == 2] == ["completed"]
    # mixed: already there + a failure is not a failed job
    api.script = {"Дом лесника": "400"}
    res = br("generate-images", "1", "5", "--json")
    assert res.code == 0 and (res.json()["existing_count"], res.json()["failed_count"]) == (1, 1)


# ---- batch by book --------------------------------------------------------------------------------
def test_batch_by_book_with_limit_and_type(home, book, br, api):
    res = br("generate-images", "--book", str(book), "--limit", "2", "--user", "anna", "--json")
    assert res.code == 0, res.stderr
    out = res.json()
    assert {
        "book_id",
        "user_id",
        "limit",
        "selected_descriptions",
        "generated_count",
        "processing_time_seconds",
    } <= set(out)
    assert (out["book_id"], out["limit"], out["selected_descriptions"], out["generated_count"]) == (book, 2, 2, 2)
    assert out["description_ids"] == [1, 2]  # the top two by priority
    assert out["processing_time_seconds"] >= 0

    # only locations, only those still without a completed image: 4 and 5 (1 has one)
    out = br("generate-images", "--book", str(book), "--type", "location", "--limit", "5", "--json").json()
    assert out["description_ids"] == [4, 5] and out["generated_count"] == 2
    assert len(api.requests) == 4 and all("of a place" in r.prompt for r in api.requests[2:])

    # a failed description is picked again by the next batch; a finished book selects nothing (exit 0)
    api.script = {"Кузьма": "402"}
    assert br("generate-images", "--book", str(book)).code == 1  # the one left failed
    api.script = {}
    out = br("generate-images", "--book", str(book), "--json").json()
    assert out["description_ids"] == [3] and out["generated_count"] == 1
    res = br("generate-images", "--book", str(book), "--json")
    assert res.code == 0 and res.json()["selected_descriptions"] == 0
    assert [r["queue"] for r in runs_of(home, "batch_generate_for_book")] == ["images"] * 5
    assert {r["state"] for r in runs_of(home, "batch_generate_for_book")} == {"SUCCESS"}


def test_dry_run_sends_writes_and_records_nothing(home, book, br, api):
    before = db_snapshot(home)
    res = br("generate-images", "1", "2", "--dry-run", "--json")
    assert res.code == 0, res.stderr
    out = res.json()
    assert out["dry_run"] is True and [r["description_id"] for r in out["requests"]] == [1, 2]
    first = out["requests"][0]
    assert first["prompt"].startswith("Book illustration of a place") and "Село Устье" in first["prompt"]
    assert first["image_url"].startswith(api.base_url) and f"seed={first['seed']}" in first["image_url"]

    res = br("generate-images", "--book", str(book), "--limit", "3", "--dry-run")
    assert res.code == 0 and "dry run" in res.stderr and "Село Устье" in res.stderr
    assert api.requests == []
    assert db_snapshot(home) == before  # no image rows, no files, no task runs

    # the dry run plans what the real run then sends
    real = br("generate-images", "1", "2", "--json").json()
    assert [g["prompt"] for g in real["generated_images"]] == [r["prompt"] for r in out["requests"]]
    assert [g["seed"] for g in real["generated_images"]] == [r["seed"] for r in out["requests"]]


# ---- secrets, limits, bad input -------------------------------------------------------------------
def test_api_key_goes_in_the_header_only(home, book, br, api):
    api.script = {LAMP: "echo"}  # this fake 400 echoes the Authorization header back in its body
    res = br("-v", "generate-images", "1", "2", "--json", env={"POLLINATIONS_API_KEY": SECRET})
    assert res.code == 0, res.stderr
    assert {r.authorization for r in api.requests} == {f"Bearer {SECRET}"}
    assert "400" in res.json()["failed"][0]["error"]
    assert "bookreader.images" in res.stderr  # the verbose log lines are there, without the key
    conn = sqlite3.connect(home / "bookreader.db")
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert SECRET not in res.stdout and SECRET not in res.stderr and SECRET not in dump
    assert all(SECRET not in r.path for r in api.requests)


def test_daily_limit_per_user(home, book, br, api):
    limit = {"BOOKREADER_IMAGES_DAILY_LIMIT_PER_USER": "1"}
    res = br("generate-images", "1", "2", "--user", "anna", "--json", env=limit)
    assert res.code == 0, res.stderr
    out = res.json()
    assert (out["generated_count"], out["limited_count"]) == (1, 1)
    assert "daily limit" in out["failed"][0]["error"] and len(api.requests) == 1

    plan = br("generate-images", "3", "--user", "anna", "--dry-run", "--json", env=limit).json()
    assert (plan["used_today"], plan["allowed_count"]) == (1, 0)
    res = br("generate-images", "3", "--user", "anna", env=limit)
    assert res.code == 1 and "daily limit" in res.stderr and len(api.requests) == 1
    assert br("generate-images", "3", "--user", "bob", env=limit).code == 0  # another user has their own day
    # without the limit (the default) anna goes on
    assert br("generate-images", "3", "--user", "anna").code == 0


@pytest.mark.parametrize(
    "args",
    [
        ("generate-images", "1", "999"),
        ("generate-images", "--book", "42"),
        ("generate-images", "--book", "1", "--type", "weather"),
        ("generate-images", "--book", "1", "--limit", "0"),
        ("generate-images", "1", "--book", "1"),
        ("generate-images",),
        ("generate-images", "x1"),
        ("cleanup", "--days", "-1"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(home, book, br, api, args):
    before = db_snapshot(home)
    res = br(*args)
    assert res.code == 2, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert db_snapshot(home) == before and api.requests == []
    if args == ("generate-images", "1", "999"):
        res = br("--json", *args)
        assert json.loads(res.stderr.strip().splitlines()[-1]) == {
            "error": "no description with id 999",
            "exit_code": 2,
        }


# ---- cleanup --------------------------------------------------------------------------------------
def test_cleanup_dry_run_then_for_real(home, book, br, api, tmp_path):
    assert br("generate-images", "1", "3", "4").code == 0
    images = home / "images"
    by_desc = {r["description_id"]: r for r in image_rows(home)}
    old_file = images / by_desc[1]["path"]
    fresh_file = images / by_desc[3]["path"]
    gone_file = images / by_desc[4]["path"]
    old_stamp = time.time() - 40 * DAY
    conn = sqlite3.connect(home / "bookreader.db")
    conn.execute("UPDATE images SET created_at = ? WHERE description_id = 1", [old_stamp])
    conn.commit()
    conn.close()
    os.utime(old_file, (old_stamp, old_stamp))
    gone_file.unlink()  # a row whose file is gone
    orphan = images / ("ab" * 32 + ".jpg")
    orphan.write_bytes(b"\xff\xd8\xff" + b"x" * 997)  # a file no row refers to
    os.utime(orphan, (old_stamp, old_stamp))
    outside = tmp_path / "keep-me.png"
    outside.write_bytes(b"not ours")
    link = images / "link.png"
    link.symlink_to(outside)
    os.utime(link, (old_stamp, old_stamp), follow_symlinks=False)
    sizes = old_file.stat().st_size + orphan.stat().st_size + link.lstat().st_size

    before = db_snapshot(home)
    res = br("cleanup", "--dry-run", "--json")
    assert res.code == 0, res.stderr
    plan = res.json()
    assert {"deleted_files", "freed_space_mb", "deletion_time_seconds", "errors"} <= set(plan)
    assert (plan["dry_run"], plan["days_old"], plan["deleted_files"], plan["deleted_rows"]) == (True, 30, 3, 2)
    assert plan["freed_space_bytes"] == sizes
    reasons = sorted((a["action"], a["reason"]) for a in plan["actions"])
    assert reasons == [
        ("delete_file", "expired"),
        ("delete_file", "orphan_file"),
        ("delete_file", "orphan_file"),
        ("delete_row", "expired"),
        ("delete_row", "missing_file"),
    ]
    assert db_snapshot(home) == before and old_file.exists() and orphan.exists() and link.is_symlink()

    res = br("cleanup", "--json")  # default days: settings.cleanup_days (30)
    assert res.code == 0, res.stderr
    done = res.json()
    assert (done["deleted_files"], done["deleted_rows"], done["errors"]) == (3, 2, [])
    assert done["freed_space_bytes"] == sizes and done["freed_space_mb"] == round(sizes / 1048576, 3)
    assert not old_file.exists() and not orphan.exists() and not link.is_symlink()
    assert outside.read_bytes() == b"not ours" and fresh_file.exists()
    assert [r["description_id"] for r in image_rows(home)] == [3]
    [run] = runs_of(home, "cleanup_old_images")
    assert (run["queue"], run["state"], json.loads(run["args"])) == ("cleanup", "SUCCESS", {"days_old": 30})

    again = br("cleanup", "--json").json()  # converged: nothing left to do
    assert (again["deleted_files"], again["deleted_rows"]) == (0, 0)
    res = br("cleanup", "--days", "0")  # everything is older than 0 days
    assert res.code == 0 and not fresh_file.exists() and image_rows(home) == []
    listed = json.loads(br("runs", "list", "--queue", "cleanup", "--json").stdout)
    assert [r["task"] for r in listed["runs"]] == ["cleanup_old_images"] * 3


def test_only_a_locked_database_makes_the_whole_job_transient():
    import sqlite3

    from bookreader_cli import runs
    from bookreader_cli.jobs import images as tasks

    def locked():
        raise sqlite3.OperationalError("database is locked")

    def broken():
        raise sqlite3.OperationalError("no such table: images")

    with pytest.raises(runs.Transient):
        tasks._retry_when_locked(locked)()
    with pytest.raises(sqlite3.OperationalError):
        tasks._retry_when_locked(broken)()
    assert tasks._retry_when_locked(lambda: {"ok": 1})() == {"ok": 1}
