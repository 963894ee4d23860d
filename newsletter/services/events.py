"""What the provider tells of the messages it took: SendGrid's Event Webhook.

A POST is checked (signature, time) and stored as it came, then answered: SendGrid waits for
nobody, and a large batch costs one INSERT. Its events are read afterwards, by the web app right
after answering and by the scheduled job for anything left: each event once (by its id), matched
to its delivery by the `custom_args` every message carries. Hard bounces, drops for a bad
address and complaints put the address on the suppression list; unsubscribes end
subscriptions. Every event is the provider's word on its delivery, kept on the row whatever its
state (the event, when, the message id): the provider took the message (or, for a drop, will
not send it). So it settles a delivery no sender settled: one still `sending` (its sender alive
or dead: a crash after the API accepted, before the answer was written), `uncertain`, or put
back once handed over is sent (failed for a drop), and neither recovery nor a sender's later
mark sends it again. A delivery no event settled within `uncertain_minutes` is sent again by
the next send of its edition.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.metrics.counters import count_events
from newsletter.sending.events import Effect, Event, EventRefused, read_events, verifier, verify
from newsletter.sending.report import SendReport
from newsletter.services import editions, sending
from newsletter.services.alerts import alert
from newsletter.services.readers import record_consent, set_newsletters
from newsletter.store import ledger
from newsletter.store.db import unit_of_work
from newsletter.store.models import (
    Delivery,
    Edition,
    ProviderEvent,
    Subscriber,
    Suppression,
    WebhookBatch,
    utcnow,
)
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import DeliveryStatus, EditionStatus, SubscriberStatus, SuppressionReason

log = logging.getLogger("newsletter.events")
PROVIDER = "sendgrid"
# Refused POSTs within an hour before the operators are told (once an hour at most).
REFUSALS_ALERT = 10
# Events read in one transaction at most.
PART_EVENTS = 1000


@dataclass
class EventsReport:
    """What reading the stored POSTs did: events per outcome."""

    batches: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0


def enabled(runtime: Runtime) -> bool:
    return bool(runtime.settings.sendgrid_webhook_public_key)


def receive(
    runtime: Runtime, body: bytes, signature: str | None, timestamp: str | None, now: datetime
) -> int:
    """Check and store one POST; its batch id. EventRefused when it is not SendGrid's, is out
    of the time window, or was received before (a replay)."""
    settings = runtime.settings
    key = settings.sendgrid_webhook_public_key
    if not key:
        raise EventRefused("the event webhook is not configured")
    try:
        text = verify(
            verifier(key),
            body,
            signature,
            timestamp,
            now,
            timedelta(minutes=settings.sending.webhook_tolerance_minutes),
        )
    except EventRefused as exc:
        _refused(runtime, str(exc))
        raise
    # What was signed, not how the signature is spelt: a re-encoded signature is the same POST.
    signed = hashlib.sha256(f"{timestamp}:".encode() + body).hexdigest()
    try:
        with unit_of_work(runtime.factory) as session:
            first: WebhookBatch | None = None
            for index, part in enumerate(_parts(text)):
                row = WebhookBatch(
                    provider=PROVIDER,
                    signature=signed if index == 0 else f"{signed[:56]}#{index:07d}",
                    received_at=now,
                    body=part,
                )
                session.add(row)
                first = first or row
            session.flush()
            assert first is not None
            return first.id
    except IntegrityError:
        _refused(runtime, "the same signed POST again")
        raise EventRefused("this POST was received before (a replay)") from None


def _parts(text: str) -> list[str]:
    """A POST's events in parts of at most PART_EVENTS, each read in its own transaction (a
    large POST never holds the store for long); a body that is not a list is kept whole, to be
    reported when read."""
    try:
        entries = json.loads(text)
    except (ValueError, RecursionError):
        return [text]
    if not isinstance(entries, list) or len(entries) <= PART_EVENTS:
        return [text]
    return [json.dumps(entries[i : i + PART_EVENTS]) for i in range(0, len(entries), PART_EVENTS)]


class _Refusals:
    """Refused POSTs of the last hour, in this process, for the operators' alert."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: list[datetime] = []
        self.alerted: datetime | None = None


_refusals = _Refusals()


def _refused(runtime: Runtime, why: str) -> None:
    """Log a refused POST; many within the hour mean a wrong key or an attack: alert once an hour."""
    log.warning("event webhook: a POST was refused: %s", why)
    now = utcnow()
    with _refusals.lock:
        _refusals.times = [t for t in _refusals.times if now - t < timedelta(hours=1)] + [now]
        due = len(_refusals.times) >= REFUSALS_ALERT and (
            _refusals.alerted is None or now - _refusals.alerted > timedelta(hours=1)
        )
        if due:
            _refusals.alerted = now
        count = len(_refusals.times)
    if due:
        alert(
            runtime,
            "event webhook signatures failing",
            [
                f"{count} POSTs to /webhooks/sendgrid were refused within the hour (last: {why}).",
                "Check that sendgrid_webhook_public_key is the key SendGrid's settings page shows now.",
            ],
        )


def process(runtime: Runtime, now: datetime) -> EventsReport:
    """Read every stored POST not read yet (each in its own transaction; another process
    reading at the same time skips it on PostgreSQL)."""
    report = EventsReport()
    failed: list[int] = []
    while True:
        batch_id: int | None = None
        try:
            with unit_of_work(runtime.factory) as session:
                query = select(WebhookBatch).where(
                    WebhookBatch.processed_at.is_(None), WebhookBatch.id.not_in(failed)
                )
                if session.get_bind().dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                batch = session.scalars(query.order_by(WebhookBatch.id).limit(1)).first()
                if batch is None:
                    break
                batch_id = batch.id
                provider = batch.provider
                outcomes, kinds = _read(session, runtime, batch, now, report)
        except Exception as exc:  # one POST that cannot be read never stops the others
            if batch_id is None:
                raise  # the store itself failed: nothing was read
            log.exception("event webhook: a stored POST could not be read")
            failed.append(batch_id)
            with unit_of_work(runtime.factory) as session:
                stuck = session.get_one(WebhookBatch, batch_id)
                stuck.processed_at, stuck.problem = now, f"could not be read: {type(exc).__name__}"
            continue
        report.batches += 1
        count_events(provider, kinds)  # once written: a POST read again is not counted twice
        _tell(runtime, outcomes)
    return report


def _read(
    session: Session, runtime: Runtime, batch: WebhookBatch, now: datetime, report: EventsReport
) -> tuple[Counter[str], list[str]]:
    """The POST's events applied; what they did (by outcome), and the kinds of the new ones."""
    events, unreadable = read_events(batch.body)
    report.unreadable += unreadable
    known = set(
        session.scalars(
            select(ProviderEvent.event_id).where(
                ProviderEvent.provider == batch.provider,
                ProviderEvent.event_id.in_([e.event_id for e in events]),
            )
        )
    )
    outcomes: Counter[str] = Counter()
    kinds: list[str] = []
    touched: set[int] = set()
    # By delivery, as a sender writes its rows (by id): a live sender's marks and these events
    # then wait for each other on PostgreSQL rather than deadlock. One delivery's keep their order.
    for event in sorted(events, key=lambda e: e.delivery_id or 0):
        if event.event_id in known:
            outcomes["repeated"] += 1
            continue
        known.add(event.event_id)
        kinds.append(event.kind)
        outcome, delivery = _apply(session, runtime, event, now)
        outcomes[outcome] += 1
        if delivery is not None:
            touched.add(delivery.edition_id)
        session.add(
            ProviderEvent(
                provider=batch.provider,
                event_id=event.event_id,
                event=event.kind,
                delivery_id=event.delivery_id,
                edition_id=delivery.edition_id if delivery is not None else event.edition_id,
                subscriber_id=delivery.subscriber_id if delivery is not None else None,
                happened_at=event.happened_at,
                received_at=now,
                outcome=outcome,
                detail=event.detail,
            )
        )
    session.flush()
    for edition_id in touched:
        _restate(session, edition_id)
    batch.processed_at, batch.body = now, ""  # the addresses in it are not kept
    batch.problem = f"{unreadable} entries could not be read" if unreadable else None
    report.outcomes.update(outcomes)
    return outcomes, kinds


def _delivery(session: Session, event: Event) -> tuple[Delivery | None, Subscriber | None]:
    """The delivery the event's custom_args name, when its reader is the event's recipient."""
    if not event.delivery_id:
        return None, None
    delivery = session.get(Delivery, event.delivery_id)
    if (
        delivery is None
        or (event.subscriber_id and delivery.subscriber_id != event.subscriber_id)
        or (event.edition_id and delivery.edition_id != event.edition_id)
    ):
        return None, None
    subscriber = session.get(Subscriber, delivery.subscriber_id)
    if subscriber is None or (event.email and subscriber.email.lower() != event.email):
        return None, None
    return delivery, subscriber


def _apply(session: Session, runtime: Runtime, event: Event, now: datetime) -> tuple[str, Delivery | None]:
    """Do what the event means; the outcome recorded with it."""
    delivery, subscriber = _delivery(session, event)
    if delivery is None or subscriber is None:
        if event.delivery_id == 0 and event.email and event.effect in (Effect.BOUNCE, Effect.COMPLAINT):
            return _outside_ledger(session, event), None
        return ("recorded" if event.effect == Effect.RECORD else "unmatched"), None
    told = _told(delivery, event, now)
    if event.effect == Effect.CONFIRM:
        return told or _confirmed(delivery, event), delivery
    if event.effect in (Effect.BOUNCE, Effect.COMPLAINT):
        complaint = event.effect == Effect.COMPLAINT
        _suppress(
            session,
            subscriber,
            SuppressionReason.COMPLAINT if complaint else SuppressionReason.BOUNCE,
            f"{event.kind}: {event.detail or ''}".strip(": "),
        )
        subscriber.status = SubscriberStatus.COMPLAINED if complaint else SubscriberStatus.BOUNCED
        if not complaint and delivery.status == DeliveryStatus.SENT:
            # It went (the send did its part); the reader's mailbox refused it.
            delivery.detail = f"bounced: {event.detail or event.kind}"
        return ("complained" if complaint else "bounced"), delivery
    if event.effect in (Effect.UNSUBSCRIBE, Effect.LEAVE):
        kept = (
            [
                n.newsletter
                for n in subscriber.newsletters
                if n.status == "active" and n.newsletter != event.newsletter
            ]
            if event.effect == Effect.LEAVE
            else []
        )
        set_newsletters(subscriber, kept, now, "provider", reactivate=False)
        if event.effect == Effect.UNSUBSCRIBE:
            subscriber.status, subscriber.unsubscribed_at = SubscriberStatus.UNSUBSCRIBED, now
            _suppress(session, subscriber, SuppressionReason.UNSUBSCRIBE, "the provider's unsubscribe")
        record_consent(
            session, subscriber, "unsubscribe", "provider", now, newsletter=event.newsletter or "all"
        )
        return "unsubscribed", delivery
    if event.effect == Effect.DROPPED:
        if delivery.status == DeliveryStatus.SENT and _same_message(delivery, event):
            delivery.status, delivery.detail = DeliveryStatus.FAILED, f"dropped: {event.detail or ''}".strip()
        return "dropped", delivery
    return ("problem" if event.effect == Effect.PROBLEM else "recorded"), delivery


def _outside_ledger(session: Session, event: Event) -> str:
    """A bounce or complaint about a message outside the ledger (a confirmation, a notice): the
    event is signed, so its address is the one to suppress."""
    complaint = event.effect == Effect.COMPLAINT
    subscriber = session.scalars(select(Subscriber).where(Subscriber.email == event.email)).one_or_none()
    reason = SuppressionReason.COMPLAINT if complaint else SuppressionReason.BOUNCE
    detail = f"{event.kind}: {event.detail or ''}".strip(": ")
    if subscriber is not None:
        _suppress(session, subscriber, reason, detail)
        subscriber.status = SubscriberStatus.COMPLAINED if complaint else SubscriberStatus.BOUNCED
    elif session.scalars(select(Suppression).where(Suppression.email == event.email)).first() is None:
        session.add(Suppression(email=event.email, reason=reason, detail=detail[:2000], created_at=utcnow()))
    return "complained" if complaint else "bounced"


def _told(delivery: Delivery, event: Event, now: datetime) -> str | None:
    """Keep the provider's word on the delivery: the event and when (the first word; a drop of
    the same message replaces it, as that message will not go), and the message id if none is
    known. A delivery no sender settled (sending, its sender alive or dead; uncertain; put back
    once handed) is settled by it: sent, or failed for a drop. "settled", or "duplicate" when a
    copy sent again is on its way too; None when the delivery was settled already, or is
    pending and not handed since it was put back (its next attempt is a new message: the word
    stays in provider_events only)."""
    status = delivery.status
    unsettled = status in (DeliveryStatus.SENDING, DeliveryStatus.UNCERTAIN) or (
        status == DeliveryStatus.PENDING and delivery.handed_at is not None
    )
    if status == DeliveryStatus.PENDING and not unsettled:
        return None
    same = _same_message(delivery, event)
    dropped = event.kind == ledger.DROPPED
    if delivery.provider_event is None or (dropped and same and delivery.provider_event != ledger.DROPPED):
        delivery.provider_event, delivery.provider_event_at = event.kind, event.happened_at or now
    delivery.provider_message_id = delivery.provider_message_id or event.message_id
    if not unsettled:
        return None
    # Put back after nothing settled it, and handed over again: the first copy went after all.
    again = status == DeliveryStatus.SENDING and delivery.handed_at is not None
    again = again and (delivery.detail or "").startswith(ledger.RESENT)
    words = f"settled by the provider's {event.kind} event"
    if dropped:
        delivery.status, delivery.detail = DeliveryStatus.FAILED, f"{words}: {event.detail or ''}".strip(": ")
    else:
        delivery.status, delivery.detail = DeliveryStatus.SENT, words
        delivery.sent_at = event.happened_at or delivery.handed_at or now
    delivery.retry_at = None
    return "duplicate" if again else "settled"


def _same_message(delivery: Delivery, event: Event) -> bool:
    """Whether the event may be about the message the ledger knows of (when either id is unknown, it may)."""
    known = delivery.provider_message_id
    return not event.message_id or not known or event.message_id == known


def _confirmed(delivery: Delivery, event: Event) -> str:
    """A delivery settled already: one sent under another message id was sent twice (a known
    duplicate, counted)."""
    another = event.kind == "processed" and not _same_message(delivery, event)
    return "duplicate" if delivery.status == DeliveryStatus.SENT and another else "confirmed"


def _suppress(session: Session, subscriber: Subscriber, reason: SuppressionReason, detail: str) -> None:
    found = session.scalars(select(Suppression).where(Suppression.email == subscriber.email)).first()
    if found is None:
        session.add(
            Suppression(email=subscriber.email, reason=reason, detail=detail[:2000], created_at=utcnow())
        )
    elif found.reason == SuppressionReason.UNSUBSCRIBE and reason != SuppressionReason.UNSUBSCRIBE:
        found.reason, found.detail = reason, detail[:2000]  # a bounce or complaint outranks leaving


def _restate(session: Session, edition_id: int) -> None:
    """A partial edition no sender is working on is complete once its last uncertain delivery
    settled (a bounce afterwards is the reader's, not the send's: it changes no edition)."""
    edition = session.get(Edition, edition_id)
    if edition is not None and edition.status == EditionStatus.PARTIAL:
        ledger.finish(edition, ledger.counts(session, edition_id))


def _tell(runtime: Runtime, outcomes: Counter[str]) -> None:
    problems = outcomes["problem"] + outcomes["dropped"]
    if problems >= runtime.settings.sending.provider_problem_events:
        alert(
            runtime,
            "the provider is blocking, deferring or dropping messages",
            [
                f"{outcomes['problem']} blocked or deferred and {outcomes['dropped']} dropped messages "
                "in one event POST: look at SendGrid's activity feed (a block list, the sender's "
                "reputation, a quota).",
            ],
        )


def settle(runtime: Runtime, now: datetime, stop: threading.Event | None = None) -> list[SendReport]:
    """The scheduled job's part: read any stored POST left unread, then send again what no
    event settled in time."""
    if enabled(runtime):
        process(runtime, now)
    reports = []
    for edition_id in overdue(runtime, now):
        newsletter = editions.edition(runtime, edition_id).edition.newsletter
        reports.append(sending.send(runtime, newsletter, now, edition_id, stop=stop))
    return reports


def overdue(runtime: Runtime, now: datetime) -> list[int]:
    """Editions with uncertain deliveries that no event settled in time (with the webhook on):
    the next send of each puts them back and sends them again."""
    if not enabled(runtime):
        return []
    cutoff = now - timedelta(minutes=runtime.settings.sending.uncertain_minutes)
    with unit_of_work(runtime.factory) as session:
        rows = session.scalars(
            select(Delivery.edition_id)
            .where(Delivery.status == DeliveryStatus.UNCERTAIN, Delivery.handed_at < cutoff)
            .distinct()
        )
        return sorted(rows)
