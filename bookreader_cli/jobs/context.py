"""What every job takes: the settings and a store opened on first use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Self

from bookreader_cli.config import Settings, load_settings
from bookreader_cli.errors import NotFound

if TYPE_CHECKING:
    from bookreader_cli.store import Store


class Context:
    """What a job needs: settings, and the store opened on first use."""

    def __init__(self, settings: Settings | None = None):
        from bookreader_cli.nlp.engine import check_settings

        self.settings = settings or load_settings()
        check_settings(self.settings)  # the names config.py cannot know (modes, processors)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            from bookreader_cli.store import Store

            self._store = Store(self.settings.db_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_file(path: Path) -> Path:
    """A readable regular file, or NotFound / BadInput naming what is wrong with it."""
    from bookreader_cli.errors import BadInput

    if not path.exists():
        raise NotFound(f"{path}: no such file")
    if not path.is_file():
        raise BadInput(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise BadInput(f"{path}: not readable")
    return path
