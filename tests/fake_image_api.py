"""A real HTTP server on 127.0.0.1 that plays the image API, so the client is tested over real sockets.

Behaviour is chosen per request, first match wins:
  0. `api.script = {"word": SPEC}` (or `POST /_control {"script": {...}}`): a prompt holding that word (for
     descriptions whose text is fixed)
  1. a query parameter  `fake=SPEC`
  2. a token in the prompt  `fake:SPEC`  (so a description's text can carry it through the prompt builder)
  3. the server default  (`api.set_default(SPEC)` or `POST /_control {"default": SPEC}`), initially "png"
SPEC is a comma-separated list of steps; the n-th request for the same prompt and SPEC gets step n; the last
step repeats: "500,500,png" fails twice, then succeeds. A step may take an argument after "@".

Steps: png | jpeg | webp (real images made with Pillow, colour from the seed, of the width x height the query
asks, capped at 2048 px) | slow[@s] | slow500[@s] (wait, then a 500) | gate[@n] (hold requests until n have been
in flight at once, max 5 s) | 429[@secs] | 429date[@secs] (Retry-After as HTTP-date) |
400 401 402 403 404 500 502 503 524 (401 echoes the Authorization header back, to test redaction; 401, 402 and
403@account answer an account body, plain 403 a content-policy one) | echo (a 400 echoing the Authorization header) |
hang[@s] (sleep beyond any read timeout) | html | truncated (Content-Length larger than the body sent) |
cut (half an image, no Content-Length, connection closed: only the image's own structure shows it is cut) |
reset (half the body, then a TCP reset) | placeholder (a real 64x48 PNG whatever size was asked) | badmagic |
corrupt | huge (10000x10 px) | octet (a real PNG sent as application/octet-stream).

Every request is recorded (monotonic time, prompt, query, Authorization header, step), and the highest
number of requests in flight at once is kept.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

_TOKEN = re.compile(r"fake:([a-z0-9@.,]+)", re.IGNORECASE)


@dataclass
class RecordedRequest:
    at: float  # time.monotonic() when the request arrived
    path: str
    prompt: str
    query: dict
    authorization: str | None
    step: str
    finished_at: float | None = None


MAX_SIDE = 2048  # the fake draws at most this many pixels a side (the tests ask 1024x768 or less)
ACCOUNT_BODIES = {
    401: "invalid API key: check the key in your account at enter.pollinations.ai",
    402: "insufficient pollen balance: top up your account to continue",
    403: "account suspended: contact support",
}


def make_image(fmt: str = "PNG", seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small real image whose pixels depend on the seed (so different seeds give different files)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
        draw.rectangle([x0, y0, x0 + size[0] // 3, y0 + size[1] // 3], fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def corrupt_png(seed: int = 0) -> bytes:
    """A PNG with valid signature and header but damaged pixel data (its IDAT CRC no longer matches)."""
    data = bytearray(make_image("PNG", seed))
    idat = data.find(b"IDAT")
    for i in range(idat + 6, min(idat + 30, len(data) - 12)):
        data[i] ^= 0x5A
    return bytes(data)


@dataclass
class _State:
    default: str = "png"
    counters: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class FakeImageAPI:
    """Start with `with FakeImageAPI() as api:`; point the client at `api.base_url`."""

    def __init__(self, slow_seconds: float = 0.2, hang_seconds: float = 30.0, gate_timeout: float = 5.0):
        self.slow_seconds = slow_seconds
        self.hang_seconds = hang_seconds
        self.gate_timeout = gate_timeout
        self._state = _State()
        self.script: dict[str, str] = {}
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeImageAPI:
        api = self

        class Handler(_Handler):
            fake = api

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-image-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- control and inspection ---------------------------------------------------------------
    def set_default(self, spec: str) -> None:
        with self._lock:
            self._state.default = spec

    def reset(self) -> None:
        with self._lock:
            self._state = _State(default=self._state.default)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._state.max_in_flight

    def requests_for(self, token: str) -> list[RecordedRequest]:
        return [r for r in self.requests if token in r.prompt]

    # ---- used by the handler ------------------------------------------------------------------
    def _choose(self, prompt: str, query: dict) -> str:
        scripted = [spec for word, spec in dict(self.script).items() if word in prompt]
        spec = scripted[0] if scripted else (query.get("fake") or [None])[0]
        if spec is None:
            match = _TOKEN.search(prompt)
            spec = match.group(1) if match else None
        with self._lock:
            spec = (spec or self._state.default).lower()
            steps = [s for s in spec.split(",") if s]
            n = self._state.counters.get((prompt, spec), 0)
            self._state.counters[(prompt, spec)] = n + 1
            return steps[min(n, len(steps) - 1)]

    def _enter(self, record: RecordedRequest) -> None:
        with self._lock:
            self._state.requests.append(record)
            self._state.in_flight += 1
            self._state.max_in_flight = max(self._state.max_in_flight, self._state.in_flight)
            self._lock.notify_all()

    def _leave(self, record: RecordedRequest) -> None:
        """Called before the response is sent, so a client cannot see it and start anew while still counted."""
        with self._lock:
            if record.finished_at is None:
                self._state.in_flight -= 1
                record.finished_at = time.monotonic()

    def _wait_for_in_flight(self, count: int) -> None:
        """A latch: hold requests until `count` have been in flight together once (or the gate times out)."""
        with self._lock:
            self._lock.wait_for(
                lambda: self._state.max_in_flight >= count or self._stopping.is_set(), self.gate_timeout
            )


def _asked_size(query: dict) -> tuple[int, int]:
    """The width x height the request asks for (the real API's default 1024x1024), capped at MAX_SIDE."""

    def side(name: str) -> int:
        try:
            return max(1, min(MAX_SIDE, int((query.get(name) or ["1024"])[0])))
        except ValueError:
            return 1024

    return side("width"), side("height")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeImageAPI  # set on the subclass made in start()

    def log_message(self, format, *args) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/_control":
            return self._send(404, b'{"error": "not found"}', "application/json")
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if body.get("reset"):
            self.fake.reset()
        if "default" in body:
            self.fake.set_default(body["default"])
        if "script" in body:
            self.fake.script = dict(body["script"])
        self._send(200, b'{"ok": true}', "application/json")

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        segments = parts.path.split("/", 2)
        prompt = unquote(segments[2]) if len(segments) == 3 and segments[1] in ("prompt", "image") else ""
        step = self.fake._choose(prompt, query)
        record = RecordedRequest(time.monotonic(), self.path, prompt, query, self.headers.get("Authorization"), step)
        self.fake._enter(record)
        self._record = record
        try:
            self._play(step, query)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to do
        finally:
            self.fake._leave(record)

    # ---- behaviours ---------------------------------------------------------------------------
    def _play(self, step: str, query: dict) -> None:
        name, _, arg = step.partition("@")
        seed = int((query.get("seed") or ["0"])[0] or 0)
        size = _asked_size(query)
        fake = self.fake
        if name in ("png", "jpeg", "webp"):
            return self._send(200, make_image(name.upper(), seed, size), f"image/{name}")
        if name == "slow":
            fake._stopping.wait(float(arg or fake.slow_seconds))
            return self._send(200, make_image("PNG", seed, size), "image/png")
        if name == "slow500":
            fake._stopping.wait(float(arg or fake.slow_seconds))
            return self._send(500, b'{"error": "fake 500 after a wait"}', "application/json")
        if name == "gate":
            fake._wait_for_in_flight(int(arg or 2))
            return self._send(200, make_image("PNG", seed, size), "image/png")
        if name == "hang":
            fake._stopping.wait(float(arg or fake.hang_seconds))
            return self._send(200, make_image("PNG", seed, size), "image/png")
        if name == "placeholder":
            return self._send(200, make_image("PNG", seed), "image/png")
        if name == "echo":
            body = {"error": "bad request", "you_sent": self.headers.get("Authorization")}
            return self._send(400, json.dumps(body).encode(), "application/json")
        if name == "403" and arg == "account":
            return self._send(403, json.dumps({"error": ACCOUNT_BODIES[403]}).encode(), "application/json")
        if name == "429":
            return self._send(429, b'{"error": "rate limited"}', "application/json", {"Retry-After": arg or "1"})
        if name == "429date":
            when = formatdate(time.time() + float(arg or 2), usegmt=True)
            return self._send(429, b'{"error": "rate limited"}', "application/json", {"Retry-After": when})
        if name.isdigit():
            status = int(name)
            body = {"error": ACCOUNT_BODIES.get(status) if status in (401, 402) else f"fake {status}"}
            if status == 403:
                body = {"error": "prompt blocked by the content policy"}
            if status == 401:
                body["you_sent"] = self.headers.get("Authorization")  # a careless server echoing the key
            return self._send(status, json.dumps(body).encode(), "application/json")
        if name == "html":
            return self._send(200, b"<!doctype html><html><body>Queue full, try later</body></html>", "text/html")
        if name == "badmagic":
            return self._send(200, os.urandom(2048), "image/png")
        if name == "corrupt":
            return self._send(200, corrupt_png(seed), "image/png")
        if name == "huge":
            return self._send(200, make_image("PNG", seed, size=(10000, 10)), "image/png")
        if name == "octet":
            return self._send(200, make_image("PNG", seed), "application/octet-stream")
        if name == "cut":
            data = make_image("PNG", seed, size)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Connection", "close")
            self.fake._leave(self._record)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        if name == "reset":
            data = make_image("PNG", seed, size)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.fake._leave(self._record)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            # SO_LINGER 0: close() sends a TCP RST instead of a FIN, as a proxy dropping the connection does
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return None
        if name == "truncated":
            data = make_image("PNG", seed, size)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data) + 1000))
            self.fake._leave(self._record)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        return self._send(500, f'{{"error": "fake server: unknown step {step}"}}'.encode(), "application/json")

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if getattr(self, "_record", None) is not None:
            self.fake._leave(self._record)
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":  # for the docs' examples: python tests/fake_image_api.py [SECONDS]; prints its URL
    import sys

    server = FakeImageAPI()
    server.start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait(float(sys.argv[1]) if len(sys.argv) > 1 else 3600)
    finally:
        server.stop()
