"""One base error for everything a person should read as a clear line, not a traceback."""

from __future__ import annotations

from typing import ClassVar


class NewsletterError(Exception):
    """Base of the project's errors; `str()` is the one line shown to the operator.

    `exit_code` is the command's exit status: 1 when it ran and could not do it all, 2 when
    what was asked is wrong whatever the store holds (see `InputError`, `SettingsError`).
    """

    exit_code: ClassVar[int] = 1


class SettingsError(NewsletterError):
    """A setting is missing or wrong; carries the key so the message can name it."""

    exit_code = 2

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"bad setting {key}: {problem}")
        self.key = key
        self.problem = problem


class InputError(NewsletterError):
    """A value given to a command can never be right (out of range, malformed); carries the
    option or argument it came from."""

    exit_code = 2

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


class StoreError(NewsletterError):
    """The store could not be opened; carries its URL with any password masked."""

    def __init__(self, database: str, problem: str) -> None:
        super().__init__(f"cannot open the database {database}: {problem}")
        self.database = database
        self.problem = problem


class StoreUnavailable(NewsletterError):
    """The store could not be written for a while during a send; carries its URL (password
    masked) and the driver's words. What went unrecorded is found uncertain by the next send."""

    def __init__(self, database: str, problem: str, seconds: float) -> None:
        super().__init__(
            f"cannot write to the database {database} ({problem}), tried for {seconds:g} s: "
            "the send stopped; nothing went that the ledger cannot account for; "
            "run `newsletter send` again once the database is back"
        )
        self.database = database
        self.problem = problem


class FeedError(NewsletterError):
    """A feed could not be fetched or read; carries the feed's URL."""

    def __init__(self, url: str, problem: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {problem}")
        self.url = url
        self.problem = problem
        self.status = status  # the HTTP status, when the server answered one
