"""The Celery worker's tasks: every job as a task (a thin wrapper that opens a Context on the worker's own
settings and calls the job from bookreader_cli.jobs), plus `bookreader.nlp_chapter`, the pure one (chapter
text in, descriptions out) that `process --executor celery` fans out to many machines.

    celery -A bookreader_cli.workers.worker worker      (or: bookreader worker)

Importing this module builds the app from the environment (BOOKREADER_HOME, BOOKREADER_CELERY_*).
"""

from __future__ import annotations

import inspect

from celery import Celery

from bookreader_cli import jobs, runners, runs
from bookreader_cli.errors import JobFailed
from bookreader_cli.jobs.cron import JOBS, run_job
from bookreader_cli.workers.app import NLP_CHAPTER, TASKS, BookreaderTask, make_app, retry_options
from bookreader_cli.workers.remote import run_chapter_job


def call_task_function(function: str, *args, **kwargs):
    """Run jobs.<function>(ctx, *args, **kwargs) on this worker's settings and return its dict."""
    fn = getattr(jobs, function, None)
    if fn is None:
        raise JobFailed(f"this build has no jobs.{function}()")
    args, kwargs = seed_arguments(fn, args, kwargs)
    ctx = jobs.Context()
    if function == "process_book":  # the runner its executor names (a job never imports the workers)
        bound = inspect.signature(fn).bind_partial(ctx, *args, **kwargs).arguments
        kwargs["runner"] = runners.book_runner(bound.get("executor", "local"), ctx.settings)
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
    values = list(args)
    for name in ("ref", "user"):
        if name in params:
            position = params.index(name)
            if position < len(values) and values[position] is not None:
                values[position] = str(values[position])
            elif kwargs.get(name) is not None:
                kwargs[name] = str(kwargs[name])
    return tuple(values), kwargs


def run_scheduled_job(job: str, **kwargs):
    """A beat job runs as under cron: under its database lock, logged to <home>/logs/JOB.jsonl."""
    ctx = jobs.Context()
    try:
        return run_job(ctx, job, **kwargs)["result"]
    finally:
        ctx.close()


_SCHEDULED = {job.task: job.name for job in JOBS.values()}


def _register(app: Celery[BookreaderTask], name: str, function: str, max_retries: int, options: dict):
    def run(self, *args, **kwargs):
        if name in _SCHEDULED and not args:
            result = run_scheduled_job(_SCHEDULED[name], **kwargs)
        else:
            result = call_task_function(function, *args, **kwargs)
        if name == "bookreader.health_check" and isinstance(result, dict):
            result["worker_id"] = self.request.hostname  # the Celery node name, not the local default
        return result

    run.__name__ = function
    run.__doc__ = f"jobs.{function}() on a worker."
    return app.task(name=name, bind=True, **retry_options(max_retries), **options)(run)


def _register_nlp_chapter(app: Celery[BookreaderTask]):
    def nlp_chapter(self, job: dict):
        """One chapter's NLP job (text, paragraphs, lang, mode, processors, settings) → its result; pure."""
        return run_chapter_job(job)

    return app.task(name=NLP_CHAPTER, bind=True, resultrepr_maxsize=200, **retry_options(2))(nlp_chapter)


app = make_app()
for _name, (_function, _queue, _retries, _options) in TASKS.items():
    _register(app, _name, _function, _retries, _options)
_register_nlp_chapter(app)
