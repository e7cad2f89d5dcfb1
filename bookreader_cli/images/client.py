"""The image API client (pollinations.ai over httpx): timeouts, shared rate limit, bounded concurrency, retries.

A free image API is slow and flaky: it times out, answers 429/5xx/524 under load, and sometimes sends a
200 that is not a picture. So every request has a connect, a read and an overall deadline; transient
failures are retried with exponential backoff and jitter (a server's Retry-After wins); permanent ones
(400, 401, 402, 403, a 200 that is not an image) fail at once. The API key travels only in the
Authorization header and is scrubbed from every message, so results, URLs and logs never hold it.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Self
from urllib.parse import quote, urlencode

import httpx

from bookreader_cli.config import ImageSettings
from bookreader_cli.images.files import ImageInfo, InvalidImage, validate_image

log = logging.getLogger("bookreader.images")

RETRYABLE_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))  # 5xx includes Cloudflare's 524


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
    """A request that finally failed: the message is safe to show and store (no key in it)."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 0, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.retryable = retryable


class _Attempt(Exception):
    """One failed attempt: why, whether to retry, and the server's Retry-After if any."""

    def __init__(self, message: str, retryable: bool, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


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
        sleep=time.sleep,
        clock=time.monotonic,
        rng: random.Random | None = None,
    ):
        self.options = options
        self._key = api_key or None
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._slots = threading.BoundedSemaphore(max(1, options.concurrency))
        self._bucket = TokenBucket(options.rate_per_second, burst=1.0, clock=clock, sleep=sleep)
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
        """Scrub the key from any text that might echo it (error bodies, exception messages)."""
        return text.replace(self._key, "***") if self._key else text

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
        """Get one image, retrying transient failures until max_retries or the total deadline; raise ImageFetchError."""
        o = self.options
        url = build_url(o, request)
        shown = _short(url)  # what logs show: readable, bounded
        started = self._clock()
        deadline = started + o.total_timeout
        waits: list[float] = []
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            if self._bucket.acquire(timeout=max(0.0, remaining)) is None:
                raise ImageFetchError(f"rate-limit wait would pass the {o.total_timeout:g}s deadline", attempts=attempt - 1)
            try:
                with self._slots:
                    data, ctype = self._attempt(url, deadline)
                info = self._check_image(data, ctype)
                log.info("image ok: %s (%d bytes, %dx%d, attempt %d)", shown, info.size_bytes, info.width, info.height, attempt)
                return FetchResult(data, info, ctype, url, attempt, self._clock() - started, waits)
            except _Attempt as failure:
                message = self.redact(str(failure))
                if not failure.retryable:
                    log.warning("image failed (not retried): %s: %s", shown, message)
                    raise ImageFetchError(message, failure.status, attempt, retryable=False) from None
                if attempt > o.max_retries:
                    log.warning("image failed after %d attempts: %s: %s", attempt, shown, message)
                    raise ImageFetchError(f"{message} (gave up after {attempt} attempts)", failure.status, attempt, True) from None
                delay = self.backoff(attempt)
                if failure.retry_after is not None:
                    if failure.retry_after > o.max_retry_after:
                        raise ImageFetchError(
                            f"{message}; server asks to wait {failure.retry_after:.0f}s (more than {o.max_retry_after:g}s)",
                            failure.status, attempt, True,
                        ) from None
                    delay = max(delay, failure.retry_after)
                if self._clock() + delay >= deadline:
                    raise ImageFetchError(
                        f"{message}; a {delay:.2f}s wait would pass the {o.total_timeout:g}s deadline (after {attempt} attempts)",
                        failure.status, attempt, True,
                    ) from None
                log.info("image retry %d/%d in %.2fs: %s: %s", attempt, o.max_retries, delay, shown, message)
                waits.append(delay)
                self._sleep(delay)

    def _attempt(self, url: str, deadline: float) -> tuple[bytes, str]:
        """One GET, body streamed under the overall deadline; raise _Attempt classifying any failure."""
        o = self.options
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _Attempt(f"total timeout {o.total_timeout:g}s exceeded", retryable=False)
        try:
            with self._http.stream("GET", url, timeout=self._timeout(remaining)) as response:
                status = response.status_code
                if status != 200:
                    snippet = _read_snippet(response)
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
                    message = f"{reason}: {snippet}" if snippet else reason
                    raise _Attempt(message, status in RETRYABLE_STATUSES, status, retry_after)
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
                if (expected and expected.isdigit() and not response.headers.get("Content-Encoding")
                        and len(data) != int(expected)):
                    raise _Attempt(f"truncated body: {len(data)} of {expected} bytes", retryable=True, status=status)
                return data, response.headers.get("Content-Type", "")
        except httpx.TimeoutException as exc:
            raise _Attempt(f"{_kind(exc)} timeout", retryable=True) from None
        except httpx.RemoteProtocolError as exc:
            raise _Attempt(f"connection broken mid-response (truncated body?): {exc}", retryable=True) from None
        except httpx.TransportError as exc:
            raise _Attempt(f"network error: {type(exc).__name__}: {exc}", retryable=True) from None

    def _check_image(self, data: bytes, content_type: str) -> ImageInfo:
        try:
            return validate_image(data, content_type, self.options.min_px, self.options.max_px)
        except InvalidImage as exc:
            raise _Attempt(f"HTTP 200 but not an image: {exc}", retryable=False, status=200) from None


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
