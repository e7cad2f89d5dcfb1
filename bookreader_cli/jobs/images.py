"""Picture jobs: draw descriptions (by id, or a book's best undrawn ones) under the daily limit, and clean
up old images. The rules for image rows (one failure row, no duplicate picture, the per-user count) are
Store methods; the per-user lock, the API key check and the claims against duplicate requests are here."""

from __future__ import annotations

import time
from collections.abc import Callable

from bookreader_cli.errors import BadInput, NotFound
from bookreader_cli.jobs.context import Context


def _description_rows(ctx: Context, ids: list[int]) -> list[dict]:
    """The descriptions to draw, in the order asked (duplicates dropped); an unknown id is bad input."""
    try:
        ids = list(dict.fromkeys(int(i) for i in ids))
    except (TypeError, ValueError):
        raise BadInput(f"description ids must be whole numbers, got {ids!r}") from None
    if not ids:
        raise BadInput("no description ids given")
    found = ctx.store.descriptions_to_draw(ids)
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise NotFound(
            f"no description with id {missing[0]}"
            if len(missing) == 1
            else f"no descriptions with ids {', '.join(missing)}"
        )
    return [found[i] for i in ids]


def _retry_when_locked(fn):
    """A database still locked after the busy timeout is worth another try of the whole job (runs.Transient);
    a picture that fails is not: the client has retried it already and it is recorded as failed."""
    import sqlite3

    from bookreader_cli import runs

    def job():
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise runs.Transient(f"database busy: {exc}") from None
            raise

    return job


def _image_key(ctx: Context) -> str | None:
    """The API key, checked before anything is sent or recorded (BadApiKey: exit 2)."""
    from bookreader_cli.images.client import ImageOptions
    from bookreader_cli.images.generate import api_key_from

    return api_key_from(ImageOptions.from_settings(ctx.settings.images))


def _draw(
    ctx: Context,
    descriptions: list[dict],
    user: str | None,
    dry_run: bool,
    api_key: str | None = None,
    on_image: Callable[[dict], None] | None = None,
) -> dict:
    """Generate (or, with dry_run, plan) one picture per description; the seed's generate_images_task dict.

    With a daily limit the user's count and the generation run under a per-user lock, so two runs at once
    cannot both spend the last allowance. A server's Retry-After is shared with other processes through the
    store (api_pauses). on_image(row) is told each outcome once it is stored (the CLI's progress bar).
    """
    from bookreader_cli.images.generate import (
        allowed_count,
        daily_window_start,
        generate_for_descriptions,
        plan_requests,
    )
    from bookreader_cli.locks import db_lock
    from bookreader_cli.store.pauses import ApiPause

    settings, store = ctx.settings, ctx.store
    limit = settings.images.daily_limit_per_user

    def used_today() -> int:
        return store.images_completed_since(user, daily_window_start()) if limit > 0 else 0

    if dry_run:
        used = used_today()
        return {
            "user_id": user,
            "dry_run": True,
            "requested_count": len(descriptions),
            "allowed_count": allowed_count(limit, used, len(descriptions)),
            "used_today": used,
            "daily_limit_per_user": limit,
            "requests": plan_requests(descriptions, settings.images),
        }

    def save(row: dict) -> None:
        store.save_image_row(row)
        if on_image is not None:
            on_image(row)

    pause = ApiPause(store.path, settings.images.base_url)
    try:
        if limit <= 0:
            return generate_for_descriptions(
                descriptions,
                settings.images,
                settings.images_dir,
                user=user,
                on_result=save,
                api_key=api_key,
                pause_board=pause,
            )
        with db_lock(store, f"images:user:{user if user is not None else ''}", wait=True):
            return generate_for_descriptions(
                descriptions,
                settings.images,
                settings.images_dir,
                user=user,
                on_result=save,
                used_today=used_today(),
                api_key=api_key,
                pause_board=pause,
            )
    finally:
        pause.close()


def _already_drawn(ctx: Context, descriptions: list[dict], user: str | None) -> dict[int, str]:
    """{description id: image path} for those whose very request (same URL: prompt, seed, model, size)
    already gave this user a picture that is still on disk. The seed makes the same request give the same
    picture, so asking again would only spend the API and the user's daily allowance."""
    from bookreader_cli.images.generate import plan_requests

    found = {}
    for plan in plan_requests(descriptions, ctx.settings.images):
        path = ctx.store.drawn_image_path(plan["description_id"], user, plan["image_url"])
        if path and (ctx.settings.images_dir / path).is_file():
            found[plan["description_id"]] = str(ctx.settings.images_dir / path)
    return found


def generate_images(
    ctx: Context,
    description_ids: list[int],
    user: str | None = None,
    dry_run: bool = False,
    on_plan: Callable[[int], None] | None = None,
    on_image: Callable[[dict], None] | None = None,
) -> dict:
    """A picture per description id (the seed's generate_images_task). One image failing never stops the
    others: it is recorded (a row with status "failed") and listed under `failed`; an account error stops
    the rest (`account_error`; their rows say "not attempted"). A description this user already has the very
    same picture of is not asked again: it is listed under `existing_images`, so a killed run, run again,
    finishes the work without duplicates; one another run is drawing right now is listed under
    `claimed_elsewhere`. on_plan(n) is told how many pictures will be asked for, on_image(row) each outcome."""
    from bookreader_cli import runs
    from bookreader_cli.jobs.claims import Claims

    user = None if user is None else str(user)
    descriptions = _description_rows(ctx, description_ids)

    def listed(existing: dict[int, str]) -> dict:
        return {
            "requested_count": len(descriptions),
            "existing_count": len(existing),
            "existing_images": [
                {"description_id": i, "status": "existing", "image_path": p} for i, p in existing.items()
            ],
        }

    if dry_run:  # sends nothing and records nothing
        existing = _already_drawn(ctx, descriptions, user)
        result = _draw(ctx, [d for d in descriptions if d["id"] not in existing], user, True)
        result.update(listed(existing))
        return result
    key = _image_key(ctx)

    def job() -> dict:
        claims = Claims(ctx.store)
        try:
            mine = [d for d in descriptions if claims.take(d["id"])]
            # looked up once claimed: a run that finished one of these stored its row before letting go
            existing = _already_drawn(ctx, mine, user)
            todo = [d for d in mine if d["id"] not in existing]
            if on_plan is not None:
                on_plan(len(todo))
            result = _draw(ctx, todo, user, False, key, on_image)
        finally:
            claims.release_all()
        result.update(listed(existing))
        taken = {d["id"] for d in mine}
        result["claimed_elsewhere"] = [d["id"] for d in descriptions if d["id"] not in taken]
        return result

    args = {"description_ids": [d["id"] for d in descriptions], "user": user}
    return runs.record(ctx.store, "generate_images", "images", args, _retry_when_locked(job), retries=2)


def batch_generate_for_book(
    ctx: Context,
    book_id,
    user: str | None = None,
    limit: int | None = None,
    type: str | None = None,
    dry_run: bool = False,
    on_plan: Callable[[int], None] | None = None,
    on_image: Callable[[dict], None] | None = None,
) -> dict:
    """Pictures for a book's top descriptions by priority that have no completed image yet (the seed's
    batch_generate_for_book_task); run again, it picks up where failures and limits left off. Two batches
    at once take different descriptions: each is claimed before its request is sent."""
    from bookreader_cli import runs
    from bookreader_cli.jobs.claims import Claims
    from bookreader_cli.nlp.base import DESCRIPTION_TYPES

    limit = 10 if limit is None else limit
    if limit < 1:
        raise BadInput("--limit must be at least 1")
    if type and type not in DESCRIPTION_TYPES:
        raise BadInput(f"unknown type {type!r}: expected one of {', '.join(DESCRIPTION_TYPES)}")
    user = None if user is None else str(user)
    book = ctx.store.resolve_book(str(book_id))

    def claim(claims: Claims) -> list[dict]:
        """The top `limit` no other run is drawing, claimed one by one in priority order; each is checked
        again once claimed (a run that finished it stored its row before letting go)."""
        chosen: list[dict] = []
        for d in ctx.store.undrawn_descriptions(book["id"], type, None):
            if len(chosen) == limit:
                break
            if claims.take(d["id"]):
                if ctx.store.has_completed_image(d["id"]):
                    claims.drop(d["id"])
                else:
                    chosen.append(d)
        return chosen

    def job(dry: bool) -> dict:
        started = time.perf_counter()
        if dry:
            chosen = ctx.store.undrawn_descriptions(book["id"], type, limit)
            drawn = _draw(ctx, chosen, user, True)
        else:
            claims = Claims(ctx.store)
            try:
                chosen = claim(claims)
                if on_plan is not None:
                    on_plan(len(chosen))
                drawn = _draw(ctx, chosen, user, False, key, on_image)
            finally:
                claims.release_all()
        result = {"book_id": book["id"], "user_id": user, "limit": limit, "selected_descriptions": len(chosen)}
        if not dry:
            result["generated_count"] = drawn["generated_count"]
        result["processing_time_seconds"] = round(time.perf_counter() - started, 3)
        result.update({"type": type, "title": book["title"], "description_ids": [d["id"] for d in chosen]})
        result.update({k: v for k, v in drawn.items() if k not in result and k != "total_time_seconds"})
        return result

    if dry_run:
        return job(True)
    key = _image_key(ctx)
    args = {"book_id": book["id"], "user": user, "limit": limit, "type": type}
    return runs.record(
        ctx.store, "batch_generate_for_book", "images", args, _retry_when_locked(lambda: job(False)), retries=2
    )


def cleanup_old_images(ctx: Context, days_old: int | None = None, dry_run: bool = False) -> dict:
    """Delete images older than `days_old` (default settings.cleanup_days), image files with no row and
    rows whose file is gone, inside the images directory only (the seed's cleanup_old_images_task); and
    finished task runs older than settings.runs_keep_days.
    A dry run works out the same plan, returns it as `actions`, and changes nothing (not even task_runs)."""
    from bookreader_cli import runs
    from bookreader_cli.images.cleanup import cleanup_images

    days = ctx.settings.cleanup_days if days_old is None else days_old
    if days < 0:
        raise BadInput(f"--days must be 0 or more, got {days}")
    store = ctx.store
    keep = ctx.settings.runs_keep_days * 86400.0

    def job() -> dict:
        plan, result = cleanup_images(
            ctx.settings.images_dir, store.image_files(), days, dry_run, delete_rows=store.delete_images
        )
        result["images_dir"] = str(ctx.settings.images_dir)
        if dry_run:
            result["actions"] = plan
            result["task_runs_to_prune"] = runs.prunable(store, keep)
        else:
            result["task_runs_pruned"] = runs.prune(store, keep)
        return result

    if dry_run:
        return job()
    return runs.record(store, "cleanup_old_images", "cleanup", {"days_old": days}, job)
