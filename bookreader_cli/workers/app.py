"""The Celery app's configuration: queues, routes, delivery guarantees, the beat schedule, task names.

Task names are strings mapped to job function names, so this module imports no job; workers.worker
registers the tasks, and `celery -A bookreader_cli.celery_app` (a shim) or `bookreader worker` runs them.

Delivery: acks_late + reject_on_worker_lost, so a worker that dies mid-task leaves the message to be
delivered again; prefetch 1, so a busy worker does not sit on queued work; and a delivery counter in Redis
caps the redeliveries, so a task that kills its worker every time fails instead of looping forever.
"""

from __future__ import annotations

import logging
import os
from typing import ClassVar

from celery import Celery, Task
from celery.schedules import crontab
from kombu import Queue

from bookreader_cli.broker import timeout_options
from bookreader_cli.config import Settings, load_settings
from bookreader_cli.jobs.cron import JOBS
from bookreader_cli.runs import NLP_QUEUE, QUEUES

log = logging.getLogger("bookreader.celery")


class Redelivered(Exception):
    """The task was delivered more times than max_redeliveries allows (its worker keeps dying)."""


def _transient_errors() -> tuple[type[BaseException], ...]:
    from bookreader_cli.runs import Transient

    return (Transient, ConnectionError, TimeoutError)


def retry_options(max_retries: int) -> dict:
    """Celery's own retry (self.retry under the hood): transient errors, exponential backoff with jitter."""
    if not max_retries:
        return {"max_retries": 0}
    return {
        "max_retries": max_retries,
        "autoretry_for": _transient_errors(),
        "retry_backoff": True,
        "retry_backoff_max": 600,
        "retry_jitter": True,
    }


# stable name → (job function in bookreader_cli.jobs, queue, max_retries, extra task options)
TASKS: dict[str, tuple[str, str, int, dict]] = {
    "bookreader.process_book": ("process_book", "books", 3, {}),
    "bookreader.generate_cfi_locations": ("generate_cfi_locations", "books", 2, {}),
    "bookreader.cache_epub_file": ("cache_epub_file", "books", 0, {}),
    "bookreader.generate_images": ("generate_images", "images", 2, {}),
    "bookreader.batch_generate_for_book": ("batch_generate_for_book", "images", 2, {}),
    "bookreader.cleanup_old_images": ("cleanup_old_images", "cleanup", 0, {}),
    "bookreader.system_stats": ("system_stats", "cleanup", 0, {"soft_time_limit": 60, "time_limit": 90}),
    "bookreader.health_check": ("health_check", "celery", 0, {"soft_time_limit": 20, "time_limit": 30}),
}


NLP_CHAPTER = "bookreader.nlp_chapter"  # one chapter's NLP (workers.remote sends it, workers.worker runs it)


def make_app(settings: Settings | None = None) -> Celery[BookreaderTask]:
    """A configured Celery app; settings default to the environment's (BOOKREADER_HOME, BOOKREADER_CELERY_*)."""
    settings = settings or load_settings()
    cs = settings.celery
    app = Celery("bookreader", broker=cs.broker_url, backend=cs.result_backend, task_cls=BookreaderTask)
    routes = {name: {"queue": queue} for name, (_, queue, _, _) in TASKS.items()}
    routes[NLP_CHAPTER] = {"queue": NLP_QUEUE}  # its own queue: NLP machines need no database
    bounded = timeout_options(cs.socket_timeout)
    app.conf.update(
        # each queue bound by its own name (a bare Queue(q) is bound to the `celery` routing key)
        task_queues=[Queue(q, routing_key=q) for q in QUEUES],
        task_default_queue="celery",
        task_routes=routes,
        beat_schedule={
            job.beat_name: {"task": job.task, "schedule": crontab(minute=job.minute, hour=job.hour)}
            for job in JOBS.values()
        },
        timezone=local_timezone(),  # beat fires at the machine's local 03:00, as cron does
        enable_utc=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=cs.soft_time_limit,
        task_time_limit=cs.time_limit,
        task_track_started=True,
        result_expires=24 * 3600,
        result_extended=True,
        broker_connection_retry_on_startup=True,
        **{k: v for k, v in bounded.items() if k != "broker_transport_options"},
        broker_transport_options={
            **bounded["broker_transport_options"],
            "visibility_timeout": cs.visibility_timeout,
            # sweep for abandoned (unacked) messages often enough to matter for the visibility timeout
            "unacked_restore_interval": max(1, min(60, cs.visibility_timeout // 4)),
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
        bookreader_max_redeliveries=cs.max_redeliveries,
    )
    return app


def local_timezone() -> str:
    """The IANA name of this machine's time zone (TZ, else the /etc/localtime link), else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = os.path.realpath("/etc/localtime")
            name = target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else ""
        except OSError:
            name = ""
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(name)
        return name
    except Exception:
        return "UTC"


class BookreaderTask(Task):
    """Counts deliveries of each (task id, retry) in Redis and fails a task redelivered too often."""

    _redis: ClassVar[dict] = {}  # broker URL → client, one per worker process

    def __call__(self, *args, **kwargs):
        if self.request.id and not self.request.is_eager:
            self._check_deliveries()
        return super().__call__(*args, **kwargs)

    def _check_deliveries(self) -> None:
        limit = self.app.conf.get("bookreader_max_redeliveries")
        broker = self.app.conf.broker_url or ""
        if limit is None or not broker.startswith(("redis://", "rediss://", "unix://")):
            return  # other brokers have their own delivery limits (e.g. RabbitMQ quorum queues)
        key = f"bookreader:deliveries:{self.request.id}:{self.request.retries}"
        client = self._client(broker)
        deliveries = client.incr(key)
        client.expire(key, max(86400, self.app.conf.broker_transport_options.get("visibility_timeout", 0) * 4))
        if deliveries > 1:
            log.warning("task %s[%s] delivery %d", self.name, self.request.id, deliveries)
        if deliveries > 1 + limit:
            raise Redelivered(
                f"{self.name}[{self.request.id}] delivered {deliveries} times "
                f"(max_redeliveries={limit}): its worker keeps dying; giving up"
            )

    @classmethod
    def _client(cls, url: str):
        if url not in cls._redis:
            import redis

            cls._redis[url] = redis.Redis.from_url(url)
        return cls._redis[url]
