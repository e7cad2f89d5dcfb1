"""The image API client (pollinations.ai over httpx): timeouts, shared rate limit, bounded concurrency, retries.

A free image API is slow and flaky: it times out, answers 429/5xx/524 under load, and sometimes sends a
200 that is not a picture. So every request has a connect, a read and an overall deadline; transient
failures are retried with exponential backoff and jitter (a server's Retry-After wins, and pauses every
request of the client, and of other processes through a shared PauseBoard); a 200 that is HTML, cut short or
a placeholder is retried like a reset mid-body; permanent ones (400, 403, a 200 that is no image at all)
fail at once. An account error (401, 402, a 403 whose body names the account) stops the client: nothing
more is sent. The API key travels only in the Authorization header and is scrubbed, in every spelling,
from every message, so results, URLs and logs never hold it. `cancel()` (Ctrl-C) wakes every waiting or
reading thread at once by shutting the client's sockets down.
"""

from __future__ import annotations

import logging
import math
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, Self
from urllib.parse import quote, urlencode

import httpx

from bookreader_cli.config import ImageSettings
from bookreader_cli.images.files import (
    ImageInfo,
    InvalidImage,
    TruncatedImage,
    placeholder_reason,
    validate_image,
)
from bookreader_cli.images.secret import check_api_key, redact

log = logging.getLogger("bookreader.images")

RETRYABLE_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))  # 5xx includes Cloudflare's 524
ACCOUNT_STATUSES = frozenset({401, 402})  # the key or the account is wrong: every later request fails alike
# a 403 is an account error only when its body says so; otherwise it is this prompt (a content policy)
ACCOUNT_WORDS = re.compile(
    r"account|api[ _-]?key|\btoken|quota|balance|credit|pollen|\btier\b|subscription|billing|payment|suspend|banned",
    re.IGNORECASE,
)


@dataclass
class ImageOptions(ImageSettings):
    """The image settings one client run uses: an ImageSettings (the defaults when None) plus overrides."""

    @classmethod
    def from_settings(cls, images: ImageSettings | None = None, **overrides) -> ImageOptions:
        values = {f.name: getattr(images, f.name) for f in fields(ImageSettings)} if images is not None else {}
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    seed: int
    model: str
    width: int
    height: int
    nologo: bool = True
    enhance: bool = False

    def params(self) -> dict:
        return {
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
            "model": self.model,
            "nologo": str(self.nologo).lower(),
            "enhance": str(self.enhance).lower(),
        }


def build_url(options: ImageOptions, request: ImageRequest) -> str:
    """The source URL for a request; it never carries the API key (that goes in a header)."""
    base = options.base_url.rstrip("/")
    prefix = options.path_prefix.strip("/")
    path = f"{prefix}/{quote(request.prompt, safe='')}" if prefix else quote(request.prompt, safe="")
    return f"{base}/{path}?{urlencode(request.params())}"


@dataclass
class FetchResult:
    data: bytes
    info: ImageInfo
    content_type: str
    url: str
    attempts: int
    elapsed_seconds: float
    waits: list[float] = field(default_factory=list)  # the backoff / Retry-After sleeps taken, in seconds


class ImageFetchError(Exception):
    """A request that finally failed: the message is safe to show and store (no key in it).

    account: the failure was an account error (the client is stopped); not_attempted: nothing was sent for
    this request because the client had stopped before it."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        attempts: int = 0,
        retryable: bool = False,
        account: bool = False,
        not_attempted: bool = False,
    ):
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.retryable = retryable
        self.account = account
        self.not_attempted = not_attempted


class FetchCancelled(Exception):
    """The client was cancelled (Ctrl-C) while this request waited or read: nothing to record."""


class _Attempt(Exception):
    """One failed attempt: why, whether to retry, and the server's Retry-After if any."""

    def __init__(
        self,
        message: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        account: bool = False,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.account = account


class PauseBoard(Protocol):
    """Where a Retry-After pause is shared between processes on one home (store.py keeps it in SQLite)."""

    def paused_until(self) -> float:
        """Epoch seconds until which nobody should send (0 when there is no pause)."""

    def pause_until(self, until: float) -> None:
        """Extend the shared pause to `until` (epoch seconds); a shorter pause never shortens a longer one."""


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


class TokenBucket:
    """A thread-safe rate limit: `rate` requests per second with bursts up to `burst`; rate <= 0 is unlimited.

    Each caller reserves its token under the lock and sleeps outside it, so waiting threads queue fairly.
    """

    def __init__(self, rate: float, burst: float = 1.0, clock=time.monotonic, sleep=time.sleep):
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = threading.Lock()

    def acquire(self, timeout: float | None = None) -> float | None:
        """Take one token; return the seconds waited, or None (nothing taken) if the wait would exceed timeout."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            wait = max(0.0, (1.0 - self._tokens) / self.rate)
            if timeout is not None and wait > timeout:
                return None
            self._tokens -= 1.0
        if wait > 0:
            self._sleep(wait)
        return wait


class ImageClient:
    """Fetch images one request at a time per thread; safe to share between threads (that is the point)."""

    def __init__(
        self,
        options: ImageOptions,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep=None,
        clock=time.monotonic,
        rng: random.Random | None = None,
        pause_board: PauseBoard | None = None,
        wall=time.time,
    ):
        self.options = options
        self._key = check_api_key(api_key, options.api_key_env)
        self._cancelled = threading.Event()
        self._sleep = sleep  # None: sleep on the cancel event, so cancel() ends every wait at once
        self._clock = clock
        self._wall = wall
        self._rng = rng or random.Random()
        self._slots = threading.BoundedSemaphore(max(1, options.concurrency))
        self._bucket = TokenBucket(options.rate_per_second, burst=1.0, clock=clock, sleep=self._wait)
        self._board = pause_board
        self._state_lock = threading.Lock()
        self._paused_until = 0.0  # epoch seconds: a Retry-After holds every request of this client till then
        self._stop_reason: str | None = None  # set by an account error: nothing more is sent
        self._sockets: set[socket.socket] = set()  # every socket opened, so cancel() can shut them down
        headers = {"User-Agent": "bookreader/0.1 (+https://pypi.org/project/httpx/)", "Accept": "image/*"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._http = httpx.Client(
            transport=transport,
            headers=headers,
            follow_redirects=True,  # httpx drops Authorization on a redirect to another origin
            timeout=self._timeout(options.read_timeout),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def redact(self, text: str) -> str:
        """Scrub the key, in any spelling, from any text that might echo it (error bodies, exception messages)."""
        return redact(text, self._key)

    @property
    def stop_reason(self) -> str | None:
        """Why the client stopped sending (an account error), or None."""
        return self._stop_reason

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop at once (Ctrl-C): end every wait and wake every blocked read by shutting its socket down."""
        self._cancelled.set()
        with self._state_lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def _trace(self, event: str, info: dict) -> None:
        """httpcore's trace hook: remember each new connection's socket (for cancel())."""
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with self._state_lock:
                    self._sockets = {s for s in self._sockets if s.fileno() != -1}
                    self._sockets.add(sock)
                if self._cancelled.is_set():
                    self.cancel()

    def _wait(self, seconds: float) -> None:
        """Sleep, unless cancelled first; raise FetchCancelled when cancelled."""
        if self._cancelled.is_set():
            raise FetchCancelled()
        if seconds > 0:
            if self._sleep is None:
                self._cancelled.wait(seconds)
            else:
                self._sleep(seconds)
        if self._cancelled.is_set():
            raise FetchCancelled()

    def _pause_all(self, seconds: float) -> None:
        """A Retry-After holds every request of this client (and, through the board, of other processes)."""
        until = self._wall() + seconds
        with self._state_lock:
            self._paused_until = max(self._paused_until, until)
        if self._board is not None:
            try:
                self._board.pause_until(until)
            except Exception as exc:  # a busy store must not fail the image; the local pause still holds
                log.info("could not share the pause: %s", exc)

    def _pause_left(self) -> float:
        """Seconds until the client's (or the shared) pause ends; 0 when none."""
        until = self._paused_until
        if self._board is not None:
            try:
                until = max(until, self._board.paused_until())
            except Exception as exc:
                log.info("could not read the shared pause: %s", exc)
        return max(0.0, until - self._wall())

    def _stop(self, message: str) -> None:
        with self._state_lock:
            first = self._stop_reason is None
            if first:
                self._stop_reason = message
        if first:
            log.warning("account error from the image API, stopping the batch (nothing more is sent): %s", message)

    def _timeout(self, remaining: float) -> httpx.Timeout:
        o = self.options
        read = max(0.001, min(o.read_timeout, remaining))
        connect = max(0.001, min(o.connect_timeout, remaining))
        return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random, so parallel retries spread out."""
        o = self.options
        delay = min(o.backoff_max, o.backoff_base * (2 ** (attempt - 1)))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def fetch(self, request: ImageRequest) -> FetchResult:
        """Get one image, retrying transient failures until max_retries or the total deadline; raise ImageFetchError
        (or FetchCancelled after cancel())."""
        o = self.options
        url = build_url(o, request)
        shown = _short(url)  # what logs show: readable, bounded
        started = self._clock()
        deadline = started + o.total_timeout
        waits: list[float] = []
        attempt = 0
        while True:
            attempt += 1
            self._check_stopped(attempt)
            pause = self._pause_left()
            if pause > 0:
                if self._clock() + pause >= deadline:
                    raise self._give_up(
                        f"the API asked to pause {pause:.1f}s, which would pass the {o.total_timeout:g}s deadline",
                        shown,
                        None,
                        attempt - 1,
                    )
                waits.append(pause)
                self._wait(pause)
                self._check_stopped(attempt)
            remaining = deadline - self._clock()
            if self._bucket.acquire(timeout=max(0.0, remaining)) is None:
                raise self._give_up(
                    f"rate-limit wait would pass the {o.total_timeout:g}s deadline", shown, None, attempt - 1
                )
            try:
                with self._slots:
                    self._check_stopped(attempt)
                    data, ctype = self._attempt(url, deadline)
                info = self._check_image(data, ctype, request)
                log.info(
                    "image ok: %s (%d bytes, %dx%d, attempt %d)",
                    shown,
                    info.size_bytes,
                    info.width,
                    info.height,
                    attempt,
                )
                return FetchResult(data, info, ctype, url, attempt, self._clock() - started, waits)
            except _Attempt as failure:
                if self._cancelled.is_set():
                    raise FetchCancelled() from None
                message = self.redact(str(failure))
                if failure.account:
                    self._stop(message)
                    raise ImageFetchError(message, failure.status, attempt, retryable=False, account=True) from None
                if not failure.retryable:
                    log.warning("image failed (not retried): %s: %s", shown, message)
                    raise ImageFetchError(message, failure.status, attempt, retryable=False) from None
                if attempt > o.max_retries:
                    log.warning("image failed after %d attempts: %s: %s", attempt, shown, message)
                    raise ImageFetchError(
                        f"{message} (gave up after {attempt} attempts)", failure.status, attempt, True
                    ) from None
                delay = self.backoff(attempt)
                if failure.retry_after is not None:
                    if failure.retry_after > o.max_retry_after:
                        raise self._give_up(
                            f"{message}; server asks to wait {failure.retry_after:.0f}s (more than "
                            f"{o.max_retry_after:g}s)",
                            shown,
                            failure.status,
                            attempt,
                        )
                    self._pause_all(failure.retry_after)
                    delay = max(delay, failure.retry_after)
                if self._clock() + delay >= deadline:
                    raise self._give_up(
                        f"{message}; a {delay:.2f}s wait would pass the {o.total_timeout:g}s deadline "
                        f"(after {attempt} attempts)",
                        shown,
                        failure.status,
                        attempt,
                    )
                log.info("image retry %d/%d in %.2fs: %s: %s", attempt, o.max_retries, delay, shown, message)
                waits.append(delay)
                self._wait(delay)

    def _check_stopped(self, attempt: int) -> None:
        """Raise before sending when cancelled or stopped by an account error."""
        if self._cancelled.is_set():
            raise FetchCancelled()
        reason = self._stop_reason
        if reason is not None:
            what = "not attempted" if attempt == 1 else f"stopped after {attempt - 1} attempts"
            raise ImageFetchError(
                f"{what}: the batch stopped on an account error ({reason})",
                attempts=attempt - 1,
                not_attempted=attempt == 1,
            )

    def _give_up(self, message: str, shown: str, status: int | None, attempts: int) -> ImageFetchError:
        """A retryable failure we stop retrying (a wait too long): warn, as every other give-up does."""
        log.warning("image failed, not retried: %s: %s", shown, message)
        return ImageFetchError(message, status, attempts, True)

    def _attempt(self, url: str, deadline: float) -> tuple[bytes, str]:
        """One GET, body streamed under the overall deadline; raise _Attempt classifying any failure."""
        o = self.options
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _Attempt(f"total timeout {o.total_timeout:g}s exceeded", retryable=False)
        try:
            with self._http.stream(
                "GET", url, timeout=self._timeout(remaining), extensions={"trace": self._trace}
            ) as response:
                status = response.status_code
                if status != 200:
                    snippet = _read_snippet(response)
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
                    message = f"{reason}: {snippet}" if snippet else reason
                    account = status in ACCOUNT_STATUSES or (status == 403 and bool(ACCOUNT_WORDS.search(snippet)))
                    raise _Attempt(message, status in RETRYABLE_STATUSES, status, retry_after, account=account)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > o.max_bytes:
                        raise _Attempt(f"body larger than {o.max_bytes} bytes", retryable=False, status=status)
                    if self._clock() > deadline:
                        raise _Attempt(f"total timeout {o.total_timeout:g}s exceeded while reading", retryable=False)
                    chunks.append(chunk)
                data = b"".join(chunks)
                expected = response.headers.get("Content-Length")
                if (
                    expected
                    and expected.isdigit()
                    and not response.headers.get("Content-Encoding")
                    and len(data) != int(expected)
                ):
                    raise _Attempt(f"truncated body: {len(data)} of {expected} bytes", retryable=True, status=status)
                return data, response.headers.get("Content-Type", "")
        except httpx.TimeoutException as exc:
            raise _Attempt(f"{_kind(exc)} timeout", retryable=True) from None
        except httpx.RemoteProtocolError as exc:
            raise _Attempt(f"connection broken mid-response (truncated body?): {exc}", retryable=True) from None
        except httpx.LocalProtocolError as exc:
            # we could not even form the request (h11 refused a header): nothing was sent, a retry fails alike
            raise _Attempt(
                f"request refused locally before sending: {type(exc).__name__}: {exc}", retryable=False
            ) from None
        except httpx.TransportError as exc:
            raise _Attempt(f"network error: {type(exc).__name__}: {exc}", retryable=True) from None
        except (UnicodeError, ValueError) as exc:  # a header or URL that cannot be encoded: a local error too
            raise _Attempt(
                f"request refused locally before sending: {type(exc).__name__}: {exc}", retryable=False
            ) from None

    def _check_image(self, data: bytes, content_type: str, request: ImageRequest | None = None) -> ImageInfo:
        """A decodable picture of about the size asked; an HTML page, a cut body or a placeholder is worth
        another try (the API's busy answers), anything else is not."""
        ctype = (content_type or "").split(";")[0].strip().lower()
        try:
            info = validate_image(data, content_type, self.options.min_px, self.options.max_px)
        except TruncatedImage as exc:
            raise _Attempt(f"HTTP 200 but the image is cut short: {exc}", retryable=True, status=200) from None
        except InvalidImage as exc:
            busy_page = ctype.startswith("text/")  # an HTML or text "queue full" page
            raise _Attempt(f"HTTP 200 but not an image: {exc}", retryable=busy_page, status=200) from None
        why = placeholder_reason(data, info, request.width, request.height) if request is not None else None
        if why:
            raise _Attempt(f"HTTP 200 but a placeholder, not the picture asked: {why}", retryable=True, status=200)
        return info


def _short(url: str, limit: int = 120) -> str:
    """A URL as a person reads it in a log line: percent-decoding undone, cut to `limit` characters."""
    from urllib.parse import unquote

    text = unquote(url)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(exc: httpx.TimeoutException) -> str:
    return {
        httpx.ConnectTimeout: "connect",
        httpx.ReadTimeout: "read",
        httpx.WriteTimeout: "write",
        httpx.PoolTimeout: "pool",
    }.get(type(exc), "request")


def _read_snippet(response: httpx.Response, limit: int = 200) -> str:
    """The start of an error body, on one line, for the failure message; unreadable bodies give ''."""
    try:
        raw = b""
        for chunk in response.iter_bytes():
            raw += chunk
            if len(raw) >= limit:
                break
    except httpx.HTTPError:
        return ""
    return " ".join(raw[:limit].decode("utf-8", "replace").split())
