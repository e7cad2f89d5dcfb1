"""The failures a user (or a script using the library) can tell apart. Imports nothing.

Two families: `BadInput` (bad usage or bad input; nothing was changed) and `JobFailed` (the job ran and
failed). The exit codes they map to live in one place: `cli.common.exit_code`.
"""


class BookreaderError(Exception):
    """Base: a one-line message meant for the user."""


class BadInput(BookreaderError):
    """Bad usage or bad input (unknown option value, unreadable book, unknown id): nothing changed."""


class NotFound(BadInput):
    """No such book, description, task run or file."""


class UnreadableBook(BadInput):
    """The file is not a book this program reads, or it is broken (a bad EPUB, a truncated FB2…)."""


class NotAnEpub(BadInput):
    """An EPUB-only job (CFIs, the EPUB cache) was given a book in another format."""


class JobFailed(BookreaderError):
    """The job ran and failed."""


class Busy(JobFailed):
    """Another live process holds the lock. Not bad input: the same command succeeds later."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread and handled like Ctrl-C: the run is recorded as failed and can be
    resumed; the CLI exits 143 (128 + 15) where Ctrl-C exits 130."""

    def __str__(self) -> str:
        return "terminated by SIGTERM"
