"""Claims on descriptions being drawn: a row of the locks table per description, taken before its request
is sent and dropped when the run ends, so two runs at once (of one book, or of the same ids) never send the
same request. A claim whose process is gone (same host) is taken over at once; one of another host lapses
after CLAIM_TTL."""

from __future__ import annotations

from bookreader_cli.locks import make_owner, release, try_acquire

CLAIM_TTL = 3600.0


class Claims:
    """The descriptions one run has claimed; release_all() in a finally."""

    def __init__(self, store):
        self.store = store
        self.owner = make_owner()
        self.held: list[str] = []

    @staticmethod
    def name(description_id: int) -> str:
        return f"image:description:{description_id}"

    def take(self, description_id: int) -> bool:
        """Claim it; False when another live run holds it."""
        name = self.name(description_id)
        if try_acquire(self.store, name, self.owner, CLAIM_TTL) is not None:
            return False
        self.held.append(name)
        return True

    def drop(self, description_id: int) -> None:
        name = self.name(description_id)
        if name in self.held:
            self.held.remove(name)
            release(self.store, name, self.owner)

    def release_all(self) -> None:
        for name in self.held:
            release(self.store, name, self.owner)
        self.held = []
