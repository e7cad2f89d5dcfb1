"""The Celery door: the same task functions as the CLI, as Celery tasks on Redis (`pip install 'bookreader[celery]'`).

    celery -A bookreader_cli.celery_app worker      (or: bookreader worker)

Each task is a thin wrapper that opens a Context on the worker's own settings (BOOKREADER_HOME) and calls
the task function from tasks.py by name, imported inside the task body so a job that does not exist in this
build fails as a task instead of breaking the import of this module. `bookreader.nlp_chapter` is the pure
one (chapter text in, descriptions out): it is what `process --executor celery` fans out to many machines.

Delivery: acks_late + reject_on_worker_lost, so a worker that dies mid-task leaves the message to be
delivered again; prefetch 1, so a busy worker does not sit on queued work; and a delivery counter in Redis
caps the redeliveries, so a task that kills its worker every time fails instead of looping forever.
"""

from __future__ import annotations

import logging
import os

from celery import Celery, Task
from celery.schedules import crontab
from kombu import Queue

from bookreader_cli.config import load_settings
from bookreader_cli.schedule import JOBS

log = logging.getLogger("bookreader.celery")

QUEUES = ("books", "images", "cleanup", "celery")  # "celery": Celery's default queue, for the small tasks


class Redelivered(Exception):
    """The task was delivered more times than max_redeliveries allows (its worker keeps dying)."""


def _transient_errors() -> tuple[type[BaseException], ...]:
    from bookreader_cli.runs import Transient

    return (Transient, ConnectionError, TimeoutError)


def retry_options(max_retries: int) -> dict:
    """Celery's own retry (self.retry under the hood): transient errors, exponential backoff with jitter."""
    if not max_retries:
        return {"max_retries": 0}
    return {"max_retries": max_retries, "autoretry_for": _transient_errors(), "retry_backoff": True,
            "retry_backoff_max": 600, "retry_jitter": True}


# stable name → (function in tasks.py, queue, max_retries, extra task options)
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
NLP_CHAPTER = "bookreader.nlp_chapter"


def make_app(settings=None) -> Celery:
    """A configured Celery app; settings default to the environment's (BOOKREADER_HOME, BOOKREADER_CELERY_*)."""
    settings = settings or load_settings()
    cs = settings.celery
    app = Celery("bookreader", broker=cs.broker_url, backend=cs.result_backend, task_cls=BookreaderTask)
    routes = {name: {"queue": queue} for name, (_, queue, _, _) in TASKS.items()}
    routes[NLP_CHAPTER] = {"queue": "books"}
    app.conf.update(
        task_queues=[Queue(q) for q in QUEUES],
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
        broker_transport_options={
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

    _redis: dict = {}  # broker URL → client, one per worker process

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
            raise Redelivered(f"{self.name}[{self.request.id}] delivered {deliveries} times "
                              f"(max_redeliveries={limit}): its worker keeps dying; giving up")

    @classmethod
    def _client(cls, url: str):
        if url not in cls._redis:
            import redis

            cls._redis[url] = redis.Redis.from_url(url)
        return cls._redis[url]


def call_task_function(function: str, *args, **kwargs):
    """Run tasks.<function>(ctx, *args, **kwargs) on this worker's settings and return its dict."""
    from bookreader_cli import runs, tasks
    from bookreader_cli.errors import JobFailed

    fn = getattr(tasks, function, None)
    if fn is None:
        raise JobFailed(f"this build has no tasks.{function}()")
    args, kwargs = seed_arguments(fn, args, kwargs)
    ctx = tasks.Context()
    token = runs.retried_by_caller.set(True)  # Celery's autoretry is the one retry loop here
    try:
        return fn(ctx, *args, **kwargs)
    finally:
        runs.retried_by_caller.reset(token)
        ctx.close()


def seed_arguments(fn, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Accept the seed's calling style (`process_book_task.delay(book_id=123)`, `user_id=…`, int ids) for
    task functions that take a book reference string `ref` and a `user`."""
    import inspect

    params = list(inspect.signature(fn).parameters)[1:]  # after ctx
    kwargs = dict(kwargs)
    for seed_name, ours in (("book_id", "ref"), ("user_id", "user")):
        if seed_name in kwargs and seed_name not in params and ours in params:
            kwargs[ours] = kwargs.pop(seed_name)
    args = list(args)
    for name in ("ref", "user"):
        if name in params:
            position = params.index(name)
            if position < len(args) and args[position] is not None:
                args[position] = str(args[position])
            elif kwargs.get(name) is not None:
                kwargs[name] = str(kwargs[name])
    return tuple(args), kwargs


def run_scheduled_job(job: str, **kwargs):
    """A beat job runs as under cron: under its database lock, logged to <home>/logs/JOB.jsonl."""
    from bookreader_cli import schedule, tasks

    ctx = tasks.Context()
    try:
        return schedule.run_job(ctx, job, **kwargs)["result"]
    finally:
        ctx.close()


_SCHEDULED = {job.task: job.name for job in JOBS.values()}


def _register(app: Celery, name: str, function: str, max_retries: int, options: dict):
    def run(self, *args, **kwargs):
        if name in _SCHEDULED and not args:
            result = run_scheduled_job(_SCHEDULED[name], **kwargs)
        else:
            result = call_task_function(function, *args, **kwargs)
        if name == "bookreader.health_check" and isinstance(result, dict):
            result["worker_id"] = self.request.hostname  # the Celery node name, not the local default
        return result

    run.__name__ = function
    run.__doc__ = f"tasks.{function}() on a worker."
    return app.task(run, name=name, bind=True, **retry_options(max_retries), **options)


def _register_nlp_chapter(app: Celery):
    def nlp_chapter(self, job: dict):
        """One chapter's NLP job (text, paragraphs, lang, mode, processors, settings) → its result; pure."""
        from bookreader_cli.executors import run_chapter_job

        return run_chapter_job(job)

    return app.task(nlp_chapter, name=NLP_CHAPTER, bind=True, resultrepr_maxsize=200, **retry_options(2))


app = make_app()
for _name, (_function, _queue, _retries, _options) in TASKS.items():
    _register(app, _name, _function, _retries, _options)
_register_nlp_chapter(app)
