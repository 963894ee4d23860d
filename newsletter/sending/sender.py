"""Sending an edition: claim a batch from the ledger, hand it to the provider, record each outcome.

A batch is marked `sending` before the provider is called and `sent`/`failed` right after, in
its own transactions, so a crash leaves a trace: the next `newsletter send` puts the batches of
dead senders back and finishes the edition. Busy providers are retried with capped
exponential backoff and jitter; refused credentials stop the send with nothing marked sent.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.editions.compose import Composer
from newsletter.editions.editions import due_slot, open_edition
from newsletter.editions.personalize import Reader
from newsletter.editions.prepare import claim, counts, prepare, recover, worker_name
from newsletter.errors import NewsletterError
from newsletter.sending.messages import MessageTemplate, list_id
from newsletter.sending.providers import (
    Outcome,
    Outgoing,
    Provider,
    ProviderBusy,
    ProviderRefused,
    VariantContent,
)
from newsletter.settings import SendingSettings, Settings
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import DELIVERIES, Delivery, Edition, Subscriber, Suppression, Variant, utcnow
from newsletter.store.runtime import Runtime
from newsletter.subscribers.tokens import sign

log = logging.getLogger("newsletter.send")


class SendError(NewsletterError):
    """The send stopped; the ledger says exactly what went out."""


@dataclass
class SendReport:
    edition_id: int
    status: str = "sending"
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    recovered: int = 0
    total: int | None = None  # deliveries to work through, when known
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Pace:
    """How hard to push: a messages-per-second cap, the retry schedule, the lease on a batch."""

    rate: float | None = None
    max_retries: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0
    lease: timedelta = timedelta(minutes=10)

    @classmethod
    def from_settings(cls, sending: SendingSettings, rate: float | None = None) -> Pace:
        return cls(
            rate=rate or sending.rate,
            max_retries=sending.max_retries,
            max_delay=sending.max_backoff_seconds,
            lease=timedelta(minutes=sending.lease_minutes),
        )

    def backoff(self, streak: int, told: float | None) -> float:
        """Capped exponential backoff with jitter; a provider's own Retry-After wins if longer."""
        delay = min(self.max_delay, self.base_delay * 2 ** max(streak - 1, 0))
        delay = random.uniform(delay / 2, delay)
        return max(delay, told) if told is not None else delay


class _Recorder:
    """Collects a provider's outcomes and writes them to the ledger in small groups: at once for a
    whole request, within 50 ms for message-at-a-time providers (SMTP), where a write per message
    would cost more than the message. A crash can thus forget at most the last 50 ms of marks."""

    def __init__(
        self, write: Callable[[list[Outcome]], None], size: int = 200, seconds: float = 0.05
    ) -> None:
        self.write = write
        self.size = size
        self.seconds = seconds
        self.lock = threading.Lock()
        self.pending: list[Outcome] = []
        self.since = 0.0
        self.seen: list[Outcome] = []

    def __call__(self, outcomes: list[Outcome]) -> None:
        with self.lock:
            if not self.pending:
                self.since = time.monotonic()
            self.pending.extend(outcomes)
            self.seen.extend(outcomes)
            if len(self.pending) >= self.size or time.monotonic() - self.since >= self.seconds:
                self._flush()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.write(self.pending)
            self.pending = []

    def done(self) -> set[int]:
        with self.lock:
            return {o.delivery_id for o in self.seen}


class Sender:
    """One worker sending one edition; several may run at once on PostgreSQL."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        provider: Provider,
        pace: Pace = Pace(),
        on_progress: Callable[[SendReport], None] = lambda _r: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.provider = provider
        self.pace = pace
        self.on_progress = on_progress
        self.sleep = sleep
        self.worker = worker_name()
        self.key = settings.signing_key()
        self.base = str(settings.public_url).rstrip("/")
        self._variants: dict[int, VariantContent] = {}
        self._counting = threading.Lock()
        self._claims = 0

    def send(self, edition_id: int, retry_failed: bool = False) -> SendReport:
        report = SendReport(edition_id)
        with unit_of_work(self.factory) as session:
            edition = session.get(Edition, edition_id)
            if edition is None:
                raise SendError(f"no edition {edition_id}")
            if edition.status == "draft":
                raise SendError(f"edition {edition_id} is not prepared yet")
            if retry_failed:
                session.execute(
                    update(Delivery)
                    .where(Delivery.edition_id == edition_id, Delivery.status == "failed")
                    .values(status="pending", detail=None)
                )
            report.recovered = recover(session, edition_id, self.pace.lease, self.worker)
            report.total = sum(
                n for status, n in counts(session, edition_id).items() if status in ("pending", "sending")
            )
            if edition.status in ("ready", "complete", "partial"):
                edition.status = "sending"
                edition.started_at = edition.started_at or utcnow()
            self.newsletter = edition.newsletter
        if report.recovered:
            log.warning(
                "edition %d: %d deliveries of a stopped sender put back",
                edition_id,
                report.recovered,
            )
        started = time.monotonic()
        self._streak = 0
        # One batch in flight while the next is claimed and built: the provider's wait overlaps our work.
        in_flight: Future[list[Outcome]] | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="deliver") as courier:
            while True:
                self._claims += 1
                token = f"{self.worker}#{self._claims}"
                with unit_of_work(self.factory) as session:
                    ids = claim(session, edition_id, token, self.provider.batch_size)
                batch = self._outgoing(edition_id, ids, report) if ids else []
                if in_flight is not None:
                    try:
                        retried = self._settle(in_flight.result(), report, started)
                    except SendError:
                        self._release(ids)
                        raise
                    in_flight = None
                    if retried and not ids:
                        continue  # the batch came back to pending: claim it again
                if not ids:
                    break
                if batch:
                    in_flight = courier.submit(self._deliver, batch, ids, report)
        return self._finish(edition_id, report)

    def _settle(self, outcomes: list[Outcome], report: SendReport, started: float) -> bool:
        """After a batch: keep pace, or back off while the provider is busy (and give up at last).
        True when some of the batch is to be tried again."""
        self.on_progress(report)
        retries = [o for o in outcomes if o.status == "retry"]
        if not retries:
            self._streak = 0
            self._pace(started, report)
            return False
        self._streak += 1
        if self._streak > self.pace.max_retries:
            raise SendError(
                f"{self.provider.name} still busy after {self._streak} tries ({retries[0].detail}); "
                "nothing was lost: run `newsletter send` again to resume"
            )
        told = max((o.retry_after for o in retries if o.retry_after is not None), default=None)
        delay = self.pace.backoff(self._streak, told)
        log.warning("%s busy (%s); retrying in %.1f s", self.provider.name, retries[0].detail, delay)
        self.sleep(delay)
        return True

    def _outgoing(self, edition_id: int, ids: list[int], report: SendReport) -> list[Outgoing]:
        """The batch's messages; readers who left since the edition was prepared are dropped."""
        with reading(self.factory) as session:
            rows = session.execute(
                select(
                    Delivery.id,
                    Delivery.variant_id,
                    Subscriber.id,
                    Subscriber.email,
                    Subscriber.name,
                    Subscriber.status,
                    Suppression.id,
                )
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .outerjoin(Suppression, Suppression.email == Subscriber.email)
                .where(Delivery.id.in_(ids))
                .order_by(Delivery.id)
            ).all()
            for missing in {row[1] for row in rows if row[1] is not None} - self._variants.keys():
                self._variant(session, missing)
        gone = [row[0] for row in rows if row[5] != "active" or row[6] is not None]
        if gone:
            with unit_of_work(self.factory) as session:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(gone))
                    .values(status="suppressed", detail="unsubscribed or suppressed during the send")
                )
            report.suppressed += len(gone)
        batch: list[Outgoing] = []
        for delivery_id, variant_id, subscriber_id, email, name, status, suppressed in rows:
            if status != "active" or suppressed is not None or variant_id is None:
                continue
            batch.append(
                Outgoing(
                    delivery_id=delivery_id,
                    subscriber_id=subscriber_id,
                    edition_id=edition_id,
                    newsletter=self.newsletter,
                    email=email,
                    name=name,
                    variant=self._variants[variant_id],
                    reader=self.reader(subscriber_id, name),
                )
            )
        return batch

    def reader(self, subscriber_id: int, name: str | None) -> Reader:
        return Reader(
            name=name,
            unsubscribe_url=f"{self.base}/unsubscribe/{sign(self.key, 'unsubscribe', subscriber_id)}",
            preferences_url=f"{self.base}/preferences/{sign(self.key, 'preferences', subscriber_id)}",
        )

    def _variant(self, session: Session, variant_id: int) -> VariantContent:
        if variant_id not in self._variants:
            row = session.get(Variant, variant_id)
            if row is None:
                raise SendError(f"variant {variant_id} is missing from the store")
            site = self.settings.site
            config = self.settings.newsletter(self.newsletter)
            template = MessageTemplate(
                subject=row.subject,
                html=row.html,
                text=row.text,
                from_name=site.from_name,
                from_address=site.from_address,
                reply_to=site.reply_to,
                list_name=f"{site.name} {config.title}",
                list_id=list_id(self.newsletter, str(site.url)),
                unsubscribe_mailto=site.unsubscribe_mailto or site.reply_to,
            )
            self._variants[variant_id] = VariantContent(row.id, row.subject, row.html, row.text, template)
        return self._variants[variant_id]

    def _deliver(self, batch: Sequence[Outgoing], ids: list[int], report: SendReport) -> list[Outcome]:
        """Hand the batch to the provider, recording outcomes as they come (in groups of at most
        50 ms); what the provider could not take is put back for a retry, a refusal stops the send."""
        record = _Recorder(lambda outcomes: self._record(outcomes, report))
        try:
            self.provider.send(batch, record)
        except ProviderRefused as exc:
            record.flush()
            self._release(ids)
            raise SendError(f"{self.provider.name} refused the send: {exc}") from None
        except ProviderBusy as exc:
            done = record.done()
            record(
                [
                    Outcome(m.delivery_id, "retry", None, str(exc), exc.retry_after)
                    for m in batch
                    if m.delivery_id not in done
                ]
            )
        done = record.done()
        missing = [m.delivery_id for m in batch if m.delivery_id not in done]
        if missing:  # a provider must account for every message; never guess "sent"
            record([Outcome(i, "retry", None, "no outcome reported") for i in missing])
        record.flush()
        return record.seen

    def _release(self, ids: list[int]) -> None:
        """Give a batch back to pending: nothing in it was accepted."""
        with unit_of_work(self.factory) as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids), Delivery.status == "sending")
                .values(status="pending", claimed_by=None, claimed_at=None)
            )

    def _record(self, outcomes: list[Outcome], report: SendReport) -> None:
        """Write outcomes at once: sent and failed are final, retry goes back to pending.
        Outcomes alike (a SendGrid request's readers share one message id) are one UPDATE."""
        now = utcnow()
        alike: dict[tuple[str, str | None, str | None], list[int]] = {}
        for o in outcomes:
            alike.setdefault((o.status, o.message_id, o.detail), []).append(o.delivery_id)
        table = DELIVERIES
        with unit_of_work(self.factory) as session:
            if session.get_bind().dialect.name == "postgresql":
                # A lost sender loses nothing this way; only a database crash could lose the last
                # few hundred milliseconds of marks, and the cost of one flush per mark is spared.
                session.execute(text("SET LOCAL synchronous_commit = off"))
            for (status, message_id, detail), ids in alike.items():
                if status == "sent":
                    values = {
                        "status": "sent",
                        "sent_at": now,
                        "provider_message_id": message_id,
                        "detail": detail,
                    }
                elif status == "failed":
                    values = {"status": "failed", "detail": detail}
                else:
                    values = {"status": "pending", "detail": detail, "claimed_by": None, "claimed_at": None}
                session.execute(update(table).where(table.c.id.in_(ids)).values(**values))
        with self._counting:
            report.sent += sum(len(ids) for (status, _m, _d), ids in alike.items() if status == "sent")
            report.failed += sum(len(ids) for (status, _m, _d), ids in alike.items() if status == "failed")

    def _pace(self, started: float, report: SendReport) -> None:
        if not self.pace.rate:
            return
        ahead = (report.sent + report.failed) / self.pace.rate - (time.monotonic() - started)
        if ahead > 0:
            self.sleep(ahead)

    def _finish(self, edition_id: int, report: SendReport) -> SendReport:
        """complete when every delivery ended well, partial when some failed; else still sending."""
        with unit_of_work(self.factory) as session:
            report.counts = counts(session, edition_id)
            edition = session.get(Edition, edition_id)
            assert edition is not None  # checked when the send began
            open_rows = report.counts.get("pending", 0) + report.counts.get("sending", 0)
            if not open_rows:
                edition.status = "partial" if report.counts.get("failed") else "complete"
                edition.finished_at = utcnow()
            report.status = edition.status
        return report


def prepare_due(runtime: Runtime, newsletter: str, now: datetime) -> tuple[int, list[str]]:
    """Open the edition due at `now` and prepare it (once); its id and any composing warnings."""
    settings = runtime.settings
    settings.signing_key()  # refuse a missing or placeholder key before any work
    if settings.public_url.scheme != "https" and not settings.demo:
        log.warning(
            "public_url %s is not HTTPS: Gmail and Yahoo ignore one-click unsubscribe links that are not",
            settings.public_url,
        )
    with unit_of_work(runtime.factory) as session:
        edition = open_edition(session, settings, newsletter, due_slot(settings, newsletter, now))
        prepared = prepare(session, settings, edition, Composer(settings.templates_path()))
        return edition.id, prepared.warnings


def publish(
    runtime: Runtime,
    provider: Provider,
    newsletter: str,
    now: datetime,
    edition_id: int | None = None,
    retry_failed: bool = False,
    pace: Pace | None = None,
    on_progress: Callable[[SendReport], None] = lambda _r: None,
) -> SendReport:
    """The operator's job: open the due edition, prepare it once, and send it (or resume it)."""
    settings = runtime.settings
    warnings: list[str] = []
    if edition_id is None:
        edition_id, warnings = prepare_due(runtime, newsletter, now)
    else:
        settings.signing_key()  # refuse a missing or placeholder key before any work
    pace = pace or Pace.from_settings(settings.sending)
    report = Sender(settings, runtime.factory, provider, pace, on_progress).send(edition_id, retry_failed)
    report.warnings = warnings
    return report
