"""The bundled sample's weekly edition as the outbox writes it: one .eml per reader, and the
parts the deliverability and accessibility checks read."""

from __future__ import annotations

import email
import email.message
import email.policy
import re
from pathlib import Path

from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.services.sending import publish
from newsletter.store.runtime import Runtime
from tests.conftest import WEEKLY_NOV_23


def publish_demo(runtime: Runtime) -> list[Path]:
    """The real weekly edition of the bundled sample, sent to the outbox: one .eml per reader."""
    report = publish(runtime, OutboxProvider(runtime.settings.outbox_dir), "weekly", WEEKLY_NOV_23)
    return sorted((runtime.settings.outbox_dir / f"edition-{report.edition_id}").glob("*.eml"))


def parse(path: Path) -> email.message.EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def html_part(message: email.message.EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return body.get_content()


def language(message: email.message.EmailMessage) -> str:
    found = re.search(r'<html lang="([^"]+)"', html_part(message))
    assert found, "the HTML part has no lang"
    return found.group(1)
