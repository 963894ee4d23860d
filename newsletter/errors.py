"""One base error for everything a person should read as a clear line, not a traceback."""

from __future__ import annotations


class NewsletterError(Exception):
    """Base of the project's errors; `str()` is the one line shown to the operator."""


class SettingsError(NewsletterError):
    """A setting is missing or wrong; carries the key so the message can name it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"bad setting {key}: {problem}")
        self.key = key
        self.problem = problem


class FeedError(NewsletterError):
    """A feed could not be fetched or read; carries the feed's URL."""

    def __init__(self, url: str, problem: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {problem}")
        self.url = url
        self.problem = problem
        self.status = status  # the HTTP status, when the server answered one
