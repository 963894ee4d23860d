"""The double opt-in email for readers an import left pending (`subscribers import
--send-confirmation`).

A reader is mailed at most once per link lifetime (`LIFETIME_DAYS["confirm"]`): the send is
claimed on their record (`confirm_sent_at`, the same mark the sign-up page's one-notice-an-hour
limit reads) before it goes, so a re-run, a second import at the same time or a crash never
mails anyone twice while their link still works. A reader whose last link has expired may be
sent a new one. The sends are paced; one that fails is that reader's outcome, its claim given
back for the next run. One the relay took without answering may have arrived: it keeps its
claim, is counted apart and logged by subscriber id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import jinja2
from sqlalchemy import or_, select, update

from newsletter.errors import NewsletterError, SettingsError
from newsletter.sending.pace import Pace
from newsletter.sending.providers import OutcomeStatus, ProviderRefused, make_provider
from newsletter.services.notices import environment, send_notice
from newsletter.services.subscribers import LINK_LIFETIME
from newsletter.settings import Settings
from newsletter.store.db import unit_of_work
from newsletter.store.models import Subscriber
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import SubscriberStatus, SubscriptionStatus
from newsletter.subscribers.links import Links

log = logging.getLogger("newsletter.readers")
# Without `[sending] rate`, confirmations go at most this many a second: a burst of mail to a
# fresh list is what a receiving server reads as spam.
NOTICE_RATE = 5.0


@dataclass
class Confirmations:
    """What `send_confirmations` did: `uncertain` were taken by the relay without an answer
    (they may not have arrived; a new link may go once theirs has expired); `already` were sent
    a link that still works and not another; `failed` were not sent (a re-run tries them again);
    `stopped` is the provider's refusal of every message, after which `untried` readers were left
    for the next run."""

    sent: int = 0
    uncertain: int = 0
    already: int = 0
    failed: int = 0
    untried: int = 0
    stopped: str | None = None


def check_settings(settings: Settings) -> None:
    """What sending the confirmations needs, checked before an import changes anything: the
    signing key, the notice's templates, and the provider as configured (made, never used:
    nothing is sent, no server asked). SettingsError names what is wrong."""
    settings.signing_key()
    for name in ("confirm.html", "confirm.txt"):
        try:
            environment(settings).get_template(name)
        except jinja2.TemplateError as exc:
            problem = "missing" if isinstance(exc, jinja2.TemplateNotFound) else str(exc)
            raise SettingsError("templates_dir", f"notices/{name}: {problem}") from None
    try:
        make_provider(settings).close()
    except ProviderRefused as exc:
        raise SettingsError("provider", str(exc)) from None
    except OSError as exc:  # only a CA file can fail here (SMTP)
        raise SettingsError("smtp_ca_file", f"cannot be read as certificates: {exc}") from None


def send_confirmations(
    runtime: Runtime,
    subscriber_ids: Sequence[int],
    now: datetime,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Confirmations:
    """Mail each pending reader named the confirmation link, at most once per link lifetime,
    at `[sending] rate` (else `NOTICE_RATE`) a second."""
    settings = runtime.settings
    pace = Pace(rate=settings.sending.rate or NOTICE_RATE)
    links = Links.from_settings(settings)
    done = Confirmations()
    started = clock()
    for position, subscriber_id in enumerate(subscriber_ids):
        # The pause comes before the claim: a run stopped while it waits (Ctrl-C, SIGTERM) has
        # marked nobody it did not mail; one stopped mid-send keeps the mark (it may have gone).
        if (wait := pace.ahead(done.sent + done.uncertain + done.failed, clock() - started)) > 0:
            sleep(wait)
        reader = _claim(runtime, subscriber_id, now)
        if reader is None:
            done.already += 1
            continue
        link = links.confirm(subscriber_id)  # the reader's record holds what the import chose
        try:
            status = send_notice(runtime, "confirm", reader.email, reader.language, link, reader.newsletters)
        except ProviderRefused as exc:  # bad credentials, a relay refusing everyone: nothing would go
            _release(runtime, subscriber_id, now, reader.previous)
            done.failed += 1
            done.untried = len(subscriber_ids) - position - 1
            done.stopped = str(exc)
            break
        except NewsletterError as exc:  # this reader's alone (an address the provider cannot take)
            status, why = OutcomeStatus.FAILED, type(exc).__name__
        else:
            why = str(status)
        if status == OutcomeStatus.SENT:
            done.sent += 1
            continue
        if status == OutcomeStatus.UNCERTAIN:  # it may have gone: the claim stays, never mailed twice
            done.uncertain += 1
            log.warning(
                "confirmation to subscriber %d may not have arrived: the relay did not answer", subscriber_id
            )
            continue
        _release(runtime, subscriber_id, now, reader.previous)
        done.failed += 1
        log.warning("confirmation to subscriber %d not sent: %s", subscriber_id, why)  # no address
    return done


class Claimed(NamedTuple):
    """A reader this run may mail, and when their last link went (None: never)."""

    email: str
    language: str
    newsletters: list[str]
    previous: datetime | None


def _claim(runtime: Runtime, subscriber_id: int, now: datetime) -> Claimed | None:
    """The reader, once this run has marked them as sent their confirmation; None for a reader
    no longer pending or sent a link that still works. The UPDATE's WHERE decides (the mark
    still what was read, and unset or expired), so two runs at once never both claim them."""
    with unit_of_work(runtime.factory) as session:
        previous = session.scalar(select(Subscriber.confirm_sent_at).where(Subscriber.id == subscriber_id))
        sent = Subscriber.confirm_sent_at
        claimed = session.execute(
            update(Subscriber)
            .where(
                Subscriber.id == subscriber_id,
                Subscriber.status == SubscriberStatus.PENDING,
                or_(sent.is_(None), sent < now - LINK_LIFETIME),
                sent.is_(None) if previous is None else sent == previous,  # as read: restored on failure
            )
            .values(confirm_sent_at=now)
        )
        if not getattr(claimed, "rowcount", 0):
            return None
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None  # just updated, in this transaction
        taken = [n.newsletter for n in subscriber.newsletters if n.status == SubscriptionStatus.ACTIVE]
        return Claimed(subscriber.email, subscriber.language, taken, previous)


def _release(runtime: Runtime, subscriber_id: int, now: datetime, previous: datetime | None) -> None:
    """The claim given back: nothing went, so the next run may send it (and `status` still
    knows when the last link went)."""
    with unit_of_work(runtime.factory) as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == subscriber_id, Subscriber.confirm_sent_at == now)
            .values(confirm_sent_at=previous)
        )
