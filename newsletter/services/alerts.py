"""Telling the operators when the unattended job goes wrong: a log line always, and an email to
`[scheduler] alerts_to` when it is set, through the configured provider, outside the ledger."""

from __future__ import annotations

import html
import logging

from newsletter.editions.compose import Markers
from newsletter.errors import NewsletterError
from newsletter.sending.single import send_one
from newsletter.store.runtime import Runtime

log = logging.getLogger("newsletter.alerts")


def alert(runtime: Runtime, subject: str, lines: list[str]) -> bool:
    """Log the alert and mail it; True when the mail went. An alert that cannot go is logged,
    never raised: the job that hit trouble goes on."""
    log.error("%s: %s", subject, "; ".join(lines))
    settings = runtime.settings
    to = settings.scheduler.alerts_to
    if not to:
        return False
    text = "\n".join([subject, "", *lines, "", "-- newsletter run"]) + "\n"
    body = "".join(f"<p>{html.escape(line)}</p>" for line in [subject, *lines])
    try:
        _address, outcome = send_one(
            settings,
            to,
            f"[{settings.site.name}] {subject}",
            f"<!DOCTYPE html><html><body>{body}</body></html>",
            text,
            Markers.fresh(),
            f"{settings.site.name} alerts",
            "alerts",
            {"X-Newsletter-Alert": "yes"},
            list_headers=False,
        )
    except NewsletterError as exc:
        log.error("the alert could not be sent to %s: %s", to, exc)
        return False
    if outcome.status != "sent":
        log.error("the alert could not be sent to %s: %s", to, outcome.detail)
    return outcome.status == "sent"
