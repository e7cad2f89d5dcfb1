"""Bounded talk with the Celery broker and result backend: every call answers or fails within seconds.

Celery and kombu retry a lost broker forever by default (a `revoke` after Redis died never returned), and
redis-py without a socket timeout waits forever on a Redis that accepts connections but never answers
(SIGSTOP, a hung host). Here: socket timeouts on both sides (`celery.socket_timeout`), a connection that
tries once for the coordinator's best-effort calls, and one error line for all of it:
"cannot reach the Celery broker at URL: …", exit 1.
"""

from __future__ import annotations

import functools
import math
import socket
from typing import Any

from bookreader_cli.errors import JobFailed
from bookreader_cli.runs import QUEUES

CONNECT_TIMEOUT = 5.0  # seconds for a TCP connect to the broker (a refused one fails at once)


def timeout_options(socket_timeout: float) -> dict:
    """Celery settings that bound every socket operation on the broker and the result backend.

    Workers get them too: a frozen broker makes a worker reconnect instead of hanging on a dead socket.
    The socket timeout stays above kombu's 1 s BRPOP poll, so an idle worker never trips it.
    """
    connect = min(CONNECT_TIMEOUT, socket_timeout)
    return {
        "broker_connection_timeout": connect,
        "broker_transport_options": {"socket_timeout": socket_timeout, "socket_connect_timeout": connect},
        "redis_socket_timeout": socket_timeout,
        "redis_socket_connect_timeout": connect,
        # the result backend retries a lost Redis 20 times by default; two tries say enough
        "result_backend_transport_options": {
            "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
        },
        # sending a task: a few quick tries, not Celery's default of three with growing pauses
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
    }


def safe_url(url: str) -> str:
    """A broker URL without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url or "")
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def unreachable(app, exc: BaseException | str) -> JobFailed:
    """The one-line failure for any broker or backend connection error."""
    detail = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    return JobFailed(f"cannot reach the Celery broker at {safe_url(app.conf.broker_url)}: {detail}")


def connection_errors() -> tuple[type[BaseException], ...]:
    """What a lost, refused or frozen broker or Redis result backend raises (through kombu, redis-py, sockets)."""
    errors: list[type[BaseException]] = [OSError, socket.timeout, ConnectionError, TimeoutError]
    try:
        from kombu.exceptions import OperationalError

        errors.append(OperationalError)
    except ImportError:
        pass
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

        errors += [RedisConnectionError, RedisTimeoutError]
    except ImportError:
        pass
    return tuple(errors)


def connection_failure(exc: BaseException) -> BaseException | None:
    """The connection error behind `exc`, or None: `exc` itself, or what it was raised from (Celery's result
    consumer wraps a lost Redis in RuntimeError("Retry limit exceeded while trying to reconnect …"))."""
    lost = connection_errors()
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, lost) and not isinstance(seen, JobFailed):
            return seen
        seen = seen.__cause__
    return None


def one_try_connection(app, socket_timeout: float | None = None):
    """A broker connection on which connecting and publishing are tried once: the first error is raised.

    kombu's `Producer.publish(retry=True)` (what every control command uses) goes through
    `connection.ensure()` with no retry limit; this connection's `ensure` carries `max_retries=0`.
    """
    options = dict(app.conf.broker_transport_options or {}, max_retries=0)
    if socket_timeout is not None:
        options.update(socket_timeout=socket_timeout, socket_connect_timeout=min(socket_timeout, CONNECT_TIMEOUT))
    conn = app.connection_for_write(transport_options=options)
    conn.ensure = functools.partial(conn.ensure, max_retries=0)
    return conn


def check_broker(app, timeout: float = 5.0) -> None:
    """Fail fast with one line when the broker cannot be reached or does not answer within about `timeout` s
    (Celery itself would keep retrying, and a frozen Redis accepts the connection but never replies)."""
    try:
        with one_try_connection(app, socket_timeout=bounded_wait(timeout)) as conn:
            conn.ensure_connection(max_retries=0, timeout=math.ceil(timeout))
            _ = conn.default_channel  # opening a channel asks the server (Redis: PING)
    except Exception as exc:
        raise unreachable(app, exc) from None


def bounded_wait(seconds: float) -> float:
    """A socket timeout for a command's own `--timeout`: never under 2 s, so kombu's 1 s BRPOP poll fits."""
    return max(2.0, float(seconds))


def revoke_once(app, task_ids: list[str]) -> bool:
    """Best effort, one try: ask the workers to drop these tasks; False when the broker did not take it."""
    try:
        with one_try_connection(app) as conn:
            app.control.revoke(list(task_ids), connection=conn)
        return True
    except Exception:  # the tasks are pure: a leftover one only wastes a worker's time
        return False


def workers_on(app, queue: str, timeout: float = 1.0) -> set[str]:
    """The workers that consume `queue` and answer within `timeout` (a `--pool solo` worker busy on a task
    does not answer). A broker that is gone or frozen raises one of connection_errors(), so this doubles as
    a check that the broker lives."""
    with one_try_connection(app) as conn:
        replies = app.control.inspect(timeout=timeout, connection=conn).active_queues() or {}
    return {name for name, queues in replies.items() if any(q.get("name") == queue for q in queues or [])}


def queue_lengths(broker_url: str, queues=None, timeout: float = 1.0) -> dict[str, int] | None:
    """Messages waiting in each queue, asked from the broker (kombu only: `stats` stays light); None when
    the broker does not answer within about `timeout` s or kombu is not installed."""
    try:
        from kombu import Connection
        from kombu.exceptions import ChannelError
    except ImportError:
        return None
    options = {"max_retries": 0, "socket_timeout": timeout, "socket_connect_timeout": timeout}
    try:
        with Connection(broker_url, connect_timeout=timeout, transport_options=options) as conn:
            conn.ensure_connection(max_retries=0, timeout=math.ceil(timeout))
            channel: Any = conn.default_channel  # a kombu virtual channel (queue_declare is not in its stub)
            counts = {}
            for name in queues or QUEUES:
                try:
                    counts[name] = channel.queue_declare(queue=name, passive=True).message_count
                except ChannelError:  # never declared (Redis: no message ever waited there)
                    counts[name] = 0
            return counts
    except Exception:
        return None
