"""Shim for `celery -A bookreader_cli.celery_app`: the app lives in workers.worker (nothing imports this)."""

from bookreader_cli.workers.worker import app  # noqa: F401
