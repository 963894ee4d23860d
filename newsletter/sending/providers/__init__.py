"""Where messages go: one small interface, three providers (outbox, smtp, sendgrid).

A provider takes a batch of outgoing messages and reports each one's outcome the moment it
knows it (`report`), so the ledger records an accepted message right away and a crash loses
as little as possible. A message that cannot be built, or that the provider refuses for its reader alone, is
that message's outcome, never an exception. Trouble with the whole provider that may pass
(rate limits, 421, 5xx for a request, a dropped connection) raises `ProviderBusy` for the
messages not yet reported, so the sender waits and tries them again; trouble that will not
pass by waiting (bad credentials, a refused connection, a refused sender) raises
`ProviderRefused`, and the send stops at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Protocol

from newsletter.editions.compose import Markers
from newsletter.editions.personalize import Reader
from newsletter.errors import NewsletterError
from newsletter.sending.messages import MessageTemplate
from newsletter.settings import Settings


@dataclass(frozen=True)
class VariantContent:
    """A composed variant as providers need it: raw parts, and the MIME template (SMTP, the
    outbox) built once, on first use: an API provider never needs it, nor its memory."""

    id: int
    subject: str
    html: str
    text: str
    markers: Markers
    make_template: Callable[[], MessageTemplate] = field(repr=False, compare=False)
    language: str = "en"  # the greeting's language, filled per reader
    list_headers: bool = True  # list mail (List-Id, List-Unsubscribe), not a reader's own notice

    @cached_property
    def template(self) -> MessageTemplate:
        return self.make_template()


# The delivery id of a message outside the ledger (a test send, an alert), to one address.
OUTSIDE_LEDGER = 0


@dataclass(frozen=True, slots=True)
class Outgoing:
    delivery_id: int
    subscriber_id: int
    edition_id: int
    newsletter: str
    email: str  # the address as it goes out: ASCII (IDN domain in punycode), or UTF-8 (SMTPUTF8)
    name: str | None
    variant: VariantContent
    reader: Reader
    attempt: int = 1  # 1 the first time this delivery is handed to a provider

    @property
    def needs_smtputf8(self) -> bool:
        """A non-ASCII local part can only travel over SMTPUTF8."""
        return not self.email.isascii()


class OutcomeStatus(StrEnum):
    """What became of one message."""

    SENT = "sent"
    FAILED = "failed"  # refused for good (SMTP 5xx for this reader, API 400 for this address)
    DEFERRED = "deferred"  # this reader's mailbox refused for now (SMTP 45x): tried later, counted
    UNCERTAIN = "uncertain"  # may have been delivered (a timeout after sending): never resent blindly
    RETRY = "retry"  # the provider could not take it (busy, request refused): tried again, not counted


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    status: OutcomeStatus
    message_id: str | None = None
    detail: str | None = None
    retry_after: float | None = None
    # A permanent refusal of the address itself (SMTP 5.1.x, an API's invalid address): the
    # reader is suppressed, so no later edition tries it again.
    bad_address: bool = False


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
# The gate, called by a provider with a message (SMTP) or a request's messages (an API) just
# before they go: the ledger notes them as handed over, so a sender dying after it leaves them
# uncertain, never pending. It returns the delivery ids that may go: a reader who left since is
# suppressed there and must not be sent. It raises when the ledger cannot be written: then
# nothing more may go.
Handing = Callable[[Sequence[Outgoing]], set[int]]


class Provider(Protocol):
    name: str
    batch_size: int
    # True when an answer can be lost with many readers in it (an HTTP API's request): each
    # outcome is then written before that thread posts another request.
    marks_in_flight: bool

    def send(self, batch: Sequence[Outgoing], report: Report, handing: Handing | None = None) -> None: ...

    def close(self) -> None: ...


def make_provider(settings: Settings, stop: threading.Event | None = None) -> Provider:
    """The configured provider (imported on demand: the outbox needs no network library); once
    `stop` is set, an SMTP connection takes no further message, SendGrid posts no further request."""
    if settings.provider == "smtp":
        from newsletter.sending.providers.smtp import SMTPProvider

        return SMTPProvider(settings, stop)
    if settings.provider == "sendgrid":
        from newsletter.sending.providers.sendgrid import SendGridProvider

        return SendGridProvider(settings, stop)
    from newsletter.sending.providers.outbox import OutboxProvider

    return OutboxProvider(settings.outbox_dir)
