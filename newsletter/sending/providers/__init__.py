"""Where messages go: one small interface, three providers (outbox, smtp, sendgrid).

A provider takes a batch of outgoing messages and reports each one's outcome the moment it
knows it (`report`), so the ledger records an accepted message right away and a crash loses
as little as possible. Trouble that may pass (rate limits, 5xx, dropped connections) raises
`ProviderBusy` for the messages not yet reported, so the sender waits and tries them again;
trouble that will not pass (bad credentials) raises `ProviderRefused`, and the send stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from newsletter.editions.personalize import Reader
from newsletter.errors import NewsletterError
from newsletter.sending.messages import MessageTemplate
from newsletter.settings import Settings


@dataclass(frozen=True)
class VariantContent:
    """A composed variant as providers need it: raw parts, and the MIME template built once."""

    id: int
    subject: str
    html: str
    text: str
    template: MessageTemplate


@dataclass(frozen=True, slots=True)
class Outgoing:
    delivery_id: int
    subscriber_id: int
    edition_id: int
    newsletter: str
    email: str
    name: str | None
    variant: VariantContent
    reader: Reader


class OutcomeStatus(StrEnum):
    """What became of one message: sent, failed for good, or to be tried again later."""

    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    status: OutcomeStatus
    message_id: str | None = None
    detail: str | None = None
    retry_after: float | None = None


class ProviderError(NewsletterError):
    """Base of provider trouble; carries the provider's own words."""


class ProviderBusy(ProviderError):
    """Try again later (429, 5xx, connection trouble); `retry_after` in seconds when told."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderRefused(ProviderError):
    """Will not work until a person fixes something (401/403, bad configuration)."""


Report = Callable[[list[Outcome]], None]


class Provider(Protocol):
    name: str
    batch_size: int

    def send(self, batch: Sequence[Outgoing], report: Report) -> None: ...

    def close(self) -> None: ...


def make_provider(settings: Settings) -> Provider:
    """The configured provider (imported on demand: the outbox needs no network library)."""
    if settings.provider == "smtp":
        from newsletter.sending.providers.smtp import SMTPProvider

        return SMTPProvider(settings)
    if settings.provider == "sendgrid":
        from newsletter.sending.providers.sendgrid import SendGridProvider

        return SendGridProvider(settings)
    from newsletter.sending.providers.outbox import OutboxProvider

    return OutboxProvider(settings.outbox_dir)
