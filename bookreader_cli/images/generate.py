"""Pictures for a list of descriptions: plain dicts in, the seed's generate_images_task dict out.

Fetching runs in a small thread pool (the work is waiting on the network); every result, good or bad, is
handed to `on_result` in the calling thread, one row at a time, so the caller can write it in its own SQLite
transaction (SQLite connections belong to one thread). One failure never stops the batch, except an account
error (401, 402, a 403 naming the account): then every later request would fail alike, so the rest are
recorded "not attempted" and the result names the error. Ctrl-C cancels the requests in flight at once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from bookreader_cli.config import ImageSettings
from bookreader_cli.images.client import (
    ImageClient,
    ImageFetchError,
    ImageOptions,
    ImageRequest,
    PauseBoard,
    build_url,
)
from bookreader_cli.images.files import write_image_atomic
from bookreader_cli.images.prompts import build_prompt, description_seed, description_type, wants_enhance
from bookreader_cli.images.secret import check_api_key
from bookreader_cli.images.statuses import COMPLETED, FAILED

DAILY_WINDOW_SECONDS = 86400.0  # "today" for the per-user limit: the last 24 hours, free of time zones


def daily_window_start(now: float | None = None) -> float:
    """Epoch seconds from which a user's completed images count against the daily limit."""
    return (time.time() if now is None else now) - DAILY_WINDOW_SECONDS


def allowed_count(daily_limit: int, used_today: int, requested: int) -> int:
    """How many of `requested` images a user may still make today; daily_limit <= 0 means no limit.

    used_today: the user's completed images since daily_window_start() (a count the caller's store makes).
    """
    if daily_limit <= 0:
        return requested
    return max(0, min(requested, daily_limit - used_today))


def _description_id(description: dict):
    return description.get("id", description.get("description_id"))


def plan_requests(descriptions: list[dict], images: ImageSettings | None = None) -> list[dict]:
    """What would be sent, without sending it (for --dry-run): prompt, seed, parameters and URL per description."""
    options = ImageOptions.from_settings(images)
    plans = []
    for d in descriptions:
        request = _request_for(d, options)
        plans.append(
            {
                "description_id": _description_id(d),
                "type": description_type(d),
                "prompt": request.prompt,
                "seed": request.seed,
                "model": request.model,
                "width": request.width,
                "height": request.height,
                "image_url": build_url(options, request),
            }
        )
    return plans


def _request_for(description: dict, options: ImageOptions) -> ImageRequest:
    text = description.get("text") or ""
    return ImageRequest(
        prompt=build_prompt(text, description_type(description), options.prompt_max_chars),
        seed=description_seed(_description_id(description), text),
        model=options.model,
        width=options.width,
        height=options.height,
        nologo=options.nologo,
        enhance=wants_enhance(text, options.enhance, options.enhance_non_english),
    )


# The columns of store.py's `images` table (minus its id): the row dict handed to on_result has exactly these.


def _base_row(description: dict, request: ImageRequest, options: ImageOptions, user) -> dict:
    return {
        "description_id": _description_id(description),
        "book_id": description.get("book_id"),
        "user": None if user is None else str(user),
        "status": FAILED,
        "error": None,
        "prompt": request.prompt,
        "seed": request.seed,
        "model": request.model,
        "width": request.width,
        "height": request.height,
        "params": json.dumps(request.params(), sort_keys=True),
        "source_url": build_url(options, request),
        "path": None,  # file name inside the images dir (relative, so the home can move)
        "sha256": None,
        "size_bytes": None,
        "generation_time_seconds": None,
        "created_at": None,  # epoch seconds, like every timestamp in the store
    }


def api_key_from(options: ImageOptions, environ: dict | None = None, api_key: str | None = None) -> str | None:
    """The key to send: `api_key` or the variable settings name, checked (BadApiKey, exit 2, when unusable)."""
    env = os.environ if environ is None else environ
    raw = api_key if api_key is not None else env.get(options.api_key_env)
    return check_api_key(raw, options.api_key_env)


def _make_one(
    client: ImageClient, description: dict, options: ImageOptions, images_dir: Path, user
) -> tuple[dict, int]:
    """Fetch, validate and store one picture; always returns (row, attempts), the row completed or failed.
    (FetchCancelled passes through: a cancelled request has nothing to record.)"""
    started = time.perf_counter()
    request = _request_for(description, options)
    row = _base_row(description, request, options, user)
    attempts = 0
    try:
        if not (description.get("text") or "").strip():
            raise ImageFetchError("description has no text")
        fetched = client.fetch(request)
        path = write_image_atomic(images_dir, fetched.data, fetched.info)
        row.update(
            status=COMPLETED,
            path=path.name,
            sha256=fetched.info.sha256,
            size_bytes=fetched.info.size_bytes,
            width=fetched.info.width,  # what came back; the requested size stays in params
            height=fetched.info.height,
        )
        attempts = fetched.attempts
    except ImageFetchError as exc:
        row.update(error=client.redact(str(exc)))
        attempts = exc.attempts
    except OSError as exc:  # disk full, permissions: this image fails, the batch goes on
        row.update(error=client.redact(f"could not store image: {exc}"))
    row["generation_time_seconds"] = round(time.perf_counter() - started, 3)
    row["created_at"] = time.time()
    return row, attempts


def generate_for_descriptions(
    descriptions: list[dict],
    images: ImageSettings | None = None,
    images_dir: str | Path = "images",
    user=None,
    on_result: Callable[[dict], None] | None = None,
    used_today: int = 0,
    api_key: str | None = None,
    environ: dict | None = None,
    transport=None,
    sleep=None,
    pause_board: PauseBoard | None = None,
) -> dict:
    """Make a picture per description (dicts with id, text, type); return the seed's generate_images_task dict.

    The API key comes from `api_key` or the environment variable named by images.api_key_env, checked
    before anything is sent. Rows for failures are handed to on_result too (status "failed", error set); a
    raising on_result fails that image only. pause_board shares a server's Retry-After with other processes.
    """
    started = time.perf_counter()
    options = ImageOptions.from_settings(images)
    images_dir = Path(images_dir)
    key = api_key_from(options, environ, api_key)

    allowed = allowed_count(options.daily_limit_per_user, used_today, len(descriptions))
    to_make, over_limit = descriptions[:allowed], descriptions[allowed:]
    rows_by_index: dict[int, dict] = {}
    attempts_by_index: dict[int, int] = {}

    with ImageClient(options, api_key=key, transport=transport, sleep=sleep, pause_board=pause_board) as client:
        for index, d in enumerate(over_limit, start=allowed):
            row = _base_row(d, _request_for(d, options), options, user)
            row.update(
                error=f"daily limit of {options.daily_limit_per_user} images reached for user {user}",
                generation_time_seconds=0.0,
                created_at=time.time(),
            )
            rows_by_index[index] = row
        if to_make:
            workers = max(1, min(options.concurrency, len(to_make)))
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="images")
            try:
                futures = {
                    pool.submit(_make_one, client, d, options, images_dir, user): i for i, d in enumerate(to_make)
                }
                for future in as_completed(futures):
                    row, attempts = future.result()
                    rows_by_index[futures[future]] = _record(row, on_result, client)
                    attempts_by_index[futures[future]] = attempts
            except BaseException:  # Ctrl-C, a killed task: end the requests in flight; stored rows stay stored
                client.cancel()  # wakes every blocked read and wait, so the workers end within moments
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
        # limit rows are recorded after the real ones so the caller sees its real work first
        for index in range(allowed, len(descriptions)):
            rows_by_index[index] = _record(rows_by_index[index], on_result, client)

    rows = [rows_by_index[i] for i in range(len(descriptions))]
    generated = [
        _public_image(r, images_dir, attempts_by_index.get(i, 0))
        for i, r in enumerate(rows)
        if r["status"] == COMPLETED
    ]
    failed = [{"description_id": r["description_id"], "error": r["error"]} for r in rows if r["status"] != COMPLETED]
    not_attempted = [r for r in rows if r["status"] != COMPLETED and (r["error"] or "").startswith("not attempted")]
    return {
        "user_id": user,
        "requested_count": len(descriptions),
        "generated_count": len(generated),
        "failed_count": len(failed),
        "limited_count": len(over_limit),
        "not_attempted_count": len(not_attempted),
        "account_error": client.stop_reason,  # set when an account error stopped the batch (exit 1)
        "total_time_seconds": round(time.perf_counter() - started, 3),
        "generated_images": generated,
        "failed": failed,
    }


def _record(row: dict, on_result, client: ImageClient) -> dict:
    """Hand the row to the caller (its DB write); if that fails, the image counts as failed."""
    if on_result is None:
        return row
    try:
        on_result(row)
    except Exception as exc:  # the caller's storage failing must not stop the batch
        row = dict(row, status=FAILED, error=client.redact(f"could not record result: {type(exc).__name__}: {exc}"))
    return row


def _public_image(row: dict, images_dir: Path, attempts: int) -> dict:
    return {
        "description_id": row["description_id"],
        "status": row["status"],
        "image_path": str(images_dir / row["path"]),
        "image_url": row["source_url"],
        "prompt": row["prompt"],
        "seed": row["seed"],
        "model": row["model"],
        "width": row["width"],
        "height": row["height"],
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
        "attempts": attempts,
        "generation_time_seconds": row["generation_time_seconds"],
    }
