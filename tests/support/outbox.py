"""An edition sent to the outbox (files, no provider) and the messages it wrote, read back."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime

from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.sending.report import SendReport
from newsletter.services.sending import publish
from newsletter.store.runtime import Runtime


def send(runtime: Runtime, newsletter: str, at: datetime) -> SendReport:
    """The edition of `newsletter` due at `at`, prepared and sent to the outbox."""
    return publish(runtime, OutboxProvider(runtime.settings.outbox_dir), newsletter, at)


def messages(runtime: Runtime, edition_id: int) -> list[email.message.EmailMessage]:
    """The messages the outbox holds for an edition, in file order."""
    folder = runtime.settings.outbox_dir / f"edition-{edition_id}"
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(folder.glob("*.eml"))
    ]


# A link to a reader's account, and the reader's part of a tracked link.
ACCOUNT_LINK = re.compile(r"/(preferences|unsubscribe)/([^\"'<>\s]+)")
TRACKED = re.compile(r"(/c/[^/\"'<>\s]+)/([^\"'<>\s]+)")


def placeholders(sent: str) -> str:
    """A sent digest's HTML or text with each link to the reader's account (or naming them) a
    placeholder, as a preview shows it."""
    return TRACKED.sub(r"\1/preview", ACCOUNT_LINK.sub(r"/\1/PREVIEW", sent))
