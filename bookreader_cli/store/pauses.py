"""The api_pauses table: a server's Retry-After shared by every process on one home (images.client.PauseBoard).

The image client's worker threads ask it before each request, so it keeps a connection of its own, used
under a lock (an SQLite connection belongs to one thread unless told otherwise)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from bookreader_cli.store.schema import BUSY_TIMEOUT_MS


class ApiPause:
    """The pause of one image API (its base URL) in the store at `path`."""

    def __init__(self, path: Path, api: str):
        self.api = api
        self._conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._lock = threading.Lock()

    def paused_until(self) -> float:
        """Epoch seconds until which nobody should send to this API (0.0: no pause)."""
        with self._lock:
            row = self._conn.execute("SELECT paused_until FROM api_pauses WHERE api = ?", [self.api]).fetchone()
        return float(row[0]) if row else 0.0

    def pause_until(self, until: float) -> None:
        """Extend the pause to `until`; a shorter pause never shortens a longer one."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_pauses (api, paused_until) VALUES (?, ?) ON CONFLICT(api) DO UPDATE "
                "SET paused_until = max(paused_until, excluded.paused_until)",
                [self.api, until],
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
