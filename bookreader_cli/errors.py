"""The two kinds of failure a user sees, mapped onto exit codes by the CLI."""


class BookreaderError(Exception):
    """Base: a one-line message meant for the user, and the exit code it maps to."""

    exit_code = 1


class BadInput(BookreaderError):
    """Bad usage or bad input (unreadable book, unknown id): exit 2, nothing changed."""

    exit_code = 2


class JobFailed(BookreaderError):
    """The job ran and failed: exit 1."""

    exit_code = 1
