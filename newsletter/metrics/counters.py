"""What happens in a process, counted for Prometheus: messages the provider took or refused,
the provider's webhook events, one-click unsubscribes, sign-ups and confirmations.

The counters are made on first use, not at import, so `newsletter serve --workers N` can set
PROMETHEUS_MULTIPROC_DIR before any of them exists: each worker then counts in its own files of
that folder, and `/metrics` sums them. What the store knows (deliveries, feeds, editions) is
not counted here but read at each scrape (`newsletter.metrics.gauges`), so it survives restarts
and counts what other processes did too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by `counters()`: a command that counts nothing never loads it (0.1 s)
    from prometheus_client import Counter
    from prometheus_client.registry import Collector

# SendGrid's Event Webhook events (its documentation's list); anything else is counted as
# "other", so a provider's text never makes a new series.
EVENT_KINDS = frozenset(
    {
        "processed",
        "dropped",
        "delivered",
        "deferred",
        "bounce",
        "open",
        "click",
        "spamreport",
        "unsubscribe",
        "group_unsubscribe",
        "group_resubscribe",
    }
)
# Why a message did not go as asked (the label `reason`): its reader's mailbox refused it for
# good ("rejected", or "bad_address": the address itself), or for now ("deferred"); the provider
# was busy ("busy": tried again), its answer was lost ("uncertain"), or it refused the whole send
# ("stopped": credentials, a relay denying everyone).
REASONS = ("rejected", "bad_address", "deferred", "busy", "uncertain", "stopped")
# How a reader left (the label `source`), as the store records it; any other is "other".
LEAVING_SOURCES = frozenset({"one-click", "page", "mailto"})
# What a sign-up did (services.readers.sign_up's answer): a confirmation link sent, a link to an
# active reader's settings sent, nothing (a suppressed address), nothing again within the hour.
SIGNUP_OUTCOMES = frozenset({"confirm", "already", "quiet", "throttled"})


@dataclass(frozen=True)
class Counters:
    sent: Counter
    refused: Counter
    webhook_events: Counter
    unsubscribes: Counter
    signups: Counter
    confirmations: Counter

    def collectors(self) -> list[Collector]:
        return [
            self.sent,
            self.refused,
            self.webhook_events,
            self.unsubscribes,
            self.signups,
            self.confirmations,
        ]


@cache
def counters() -> Counters:
    """This process's counters, made once, at first use (never registered anywhere: a scrape's
    registry takes them, or, with several workers, reads their files)."""
    from prometheus_client import Counter

    return Counters(
        sent=Counter(
            "newsletter_messages_sent",
            "Messages the provider accepted.",
            ["newsletter", "provider"],
            registry=None,
        ),
        refused=Counter(
            "newsletter_provider_refusals",
            "Messages the provider did not take as asked, by reason.",
            ["newsletter", "provider", "reason"],
            registry=None,
        ),
        webhook_events=Counter(
            "newsletter_webhook_events",
            "Provider events read from the event webhook, by type (repeats not counted).",
            ["provider", "event"],
            registry=None,
        ),
        unsubscribes=Counter(
            "newsletter_unsubscribes",
            "Newsletters left from an email's unsubscribe link (one-click) or page.",
            ["source"],
            registry=None,
        ),
        signups=Counter(
            "newsletter_signups",
            "Sign-up forms received, by what they did.",
            ["outcome"],
            registry=None,
        ),
        confirmations=Counter(
            "newsletter_confirmations",
            "Readers made active by their confirmation link.",
            registry=None,
        ),
    )


def count_sent(newsletter: str, provider: str, accepted: int, refusals: Mapping[str, int]) -> None:
    """A write of a sender's outcomes: how many the provider accepted and refused, by reason."""
    if not accepted and not any(refusals.values()):
        return
    found = counters()
    if accepted:
        found.sent.labels(newsletter, provider).inc(accepted)
    for reason, count in refusals.items():
        if count:
            found.refused.labels(newsletter, provider, reason).inc(count)


def count_events(provider: str, kinds: Iterable[str]) -> None:
    """Events of one stored POST, once they are written."""
    webhook = counters().webhook_events
    for kind in kinds:
        webhook.labels(provider, kind if kind in EVENT_KINDS else "other").inc()


def count_unsubscribes(sources: Iterable[str]) -> None:
    """Newsletters left, once written."""
    leaving = counters().unsubscribes
    for source in sources:
        leaving.labels(source if source in LEAVING_SOURCES else "other").inc()


def count_signup(outcome: str) -> None:
    counters().signups.labels(outcome if outcome in SIGNUP_OUTCOMES else "other").inc()


def count_confirmation() -> None:
    counters().confirmations.inc()
