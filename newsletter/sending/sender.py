"""Sending an edition: claim a batch from the ledger, hand it to the provider, record each outcome.

A batch is marked `sending` before the provider is called and `sent`/`failed` right after, in
its own transactions, so a crash leaves a trace: the next `newsletter send` puts the batches of
dead senders back and finishes the edition. One reader's trouble is that reader's outcome: a
message that cannot be built fails alone, a mailbox refusing for now is tried again later in
the same send. The provider's trouble is the send's: a busy provider is retried with capped
exponential backoff and jitter; a refusal (credentials, connection, or the same refusal for
much of a batch) stops the send with nobody marked failed for it.

Each message (SMTP) or request (an API) passes a gate in the ledger just before it goes: noted
as handed over, in a write that also checks its reader is still subscribed (one who left is
suppressed there, not mailed). What cannot be noted is not sent: when the store cannot be
written, no more goes, and the sender tries the store again for `store_retry_seconds`; then it
writes what it knows and goes on, or stops with one line naming the store, leaving what went
unrecorded to be found uncertain, never sent again blindly.

While a batch is with the provider the next is claimed and built, and once the provider has
answered well two batches are with it at once, so its requests or connections (`concurrency`,
`smtp_connections`: the provider caps what is really in flight) never wait between batches.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from newsletter.editions.edition import EditionHeld
from newsletter.errors import StoreUnavailable
from newsletter.metrics.counters import count_sent
from newsletter.sending.batches import BatchBuilder
from newsletter.sending.pace import Pace
from newsletter.sending.providers import (
    Outcome,
    OutcomeStatus,
    Outgoing,
    Provider,
    ProviderBusy,
    ProviderRefused,
)
from newsletter.sending.recorder import NotWritten, Recorder
from newsletter.sending.report import SendError, SendReport
from newsletter.settings import Settings
from newsletter.store import ledger
from newsletter.store.db import reading, unit_of_work
from newsletter.store.ledger import Mark
from newsletter.store.models import Edition, utcnow
from newsletter.store.runtime import driver_words
from newsletter.store.statuses import OPEN, DeliveryStatus, EditionStatus, SuppressionReason
from newsletter.store.suppressions import suppress_recipients
from newsletter.subscribers.links import Links

log = logging.getLogger("newsletter.send")
# How a provider's outcome moves its delivery in the ledger (a deferral: see ledger.defer).
MARKS = {
    OutcomeStatus.SENT: DeliveryStatus.SENT,
    OutcomeStatus.FAILED: DeliveryStatus.FAILED,
    OutcomeStatus.UNCERTAIN: DeliveryStatus.UNCERTAIN,
    OutcomeStatus.RETRY: DeliveryStatus.PENDING,
}
FAILED = (OutcomeStatus.FAILED, OutcomeStatus.UNCERTAIN)
# A written outcome other than "sent" as the metrics' reason (newsletter.metrics.counters.REASONS).
REASONS = {
    OutcomeStatus.FAILED: "rejected",
    OutcomeStatus.DEFERRED: "deferred",
    OutcomeStatus.UNCERTAIN: "uncertain",
    OutcomeStatus.RETRY: "busy",
}
RESUME = "nothing was lost: run `newsletter send` again to resume"
# How long a message's hand-over waits for others to share its write (SMTP).
GATHER = 0.002
# The store could not be written (down, full, locked past its timeout): wait for it, a while.
STORE_TROUBLE = (OperationalError, InterfaceError, PoolTimeout, NotWritten)
# The same refusal for this share of a batch (and at least `SHARED_MIN` messages) is the provider's.
SHARED_SHARE = 0.5
SHARED_MIN = 3


def provider_at_fault(held: list[Outcome], batch: Sequence[Outgoing]) -> list[Outcome]:
    """The refusals that share one answer for much of the batch (the reader's own address taken
    out of the answer), or none. Only first attempts count: readers tried again (deferred, or
    failed and retried) are refused alike by nature, and each must get their own outcome."""
    addresses = {m.delivery_id: m.email.lower() for m in batch if m.attempt <= 1}
    alike: dict[tuple[OutcomeStatus, str], list[Outcome]] = {}
    for outcome in (o for o in held if o.delivery_id in addresses):
        words = (outcome.detail or "").lower().replace(addresses.get(outcome.delivery_id, "\0"), "")
        alike.setdefault((outcome.status, words), []).append(outcome)
    largest = max(alike.values(), key=len, default=[])
    return largest if len(largest) >= max(SHARED_MIN, SHARED_SHARE * len(addresses)) else []


# How often a sender with nothing left to claim looks whether the others' batches are done: the
# first to run dry is often the command of `send --workers`, whose exit ends it (a look costs
# a few milliseconds of the store's time: the claims, not their rows, are read).
OTHERS_POLL = 0.2
# Batches in the provider's hands at once: while one's last requests are answered, the next
# one's already go (the provider caps what is really in flight: requests, connections).
DEPTH = 2


# glibc's mallopt parameter for the most malloc arenas a process makes (M_ARENA_MAX).
_M_ARENA_MAX = -8


def _fewer_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core) and keeps
    what is freed in it: a sender's request threads, each building a body of a megabyte per
    request, held about 30 MB more than two shared arenas do, at no cost in speed. Elsewhere
    (not glibc) nothing changes. Arenas made before this stay."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)


def _give_back_freed() -> None:
    """glibc keeps what a process frees for its next allocations, but a sender's threads
    allocate in arenas of their own: what preparing the edition freed (its sort, its page
    cache, the composed digests' trees) stayed resident beside them. Returned to the system
    before the send (not glibc: nothing happens)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


@contextmanager
def _tuned_for_sending() -> Iterator[None]:
    """The interpreter set for a send, then put back. A send makes and drops a few hundred
    thousand small dicts a second, none in a cycle: at the collector's default thresholds a
    quarter of a sender's CPU went to scanning them. And threads switch every 0.5 ms, not 5: a
    thread holding the database's write lock, which other senders wait for, gets the interpreter
    back sooner from the one building the next batch (a million readers: 44 s became 35 s)."""
    _fewer_malloc_arenas()  # for the process: not put back (the arenas are made by then)
    _give_back_freed()
    collector, switch = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(0.0005)
    try:
        yield
    finally:
        gc.set_threshold(*collector)
        sys.setswitchinterval(switch)


class Sender:
    """One worker sending one edition at a time; several may share an edition."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        provider: Provider,
        pace: Pace = Pace(),
        on_progress: Callable[[SendReport], None] = lambda _r: None,
        sleep: Callable[[float], object] | None = None,
        stop: threading.Event | None = None,
        due_by: datetime | None = None,
    ) -> None:
        self.settings = settings
        # A local-time edition's waves due by then are sent (default: as the store's clock has it).
        self.due_by = due_by
        self.factory = factory
        self.provider = provider
        self.pace = pace
        self.on_progress = on_progress
        self.links = Links.from_settings(settings)  # refuses a missing or placeholder key up front
        self.worker = ledger.worker_name()
        self.claims = 0  # numbers this worker's batches: a claim token is worker#n
        self.streak = 0  # batches in a row that the provider was too busy for
        self.calmed = 0.0  # when the last wait for a busy provider ended (monotonic)
        self.counting = threading.Lock()
        # Set to stop between batches (a scheduler shutting down): the batch in flight is
        # finished and recorded, the next one given back, the edition left to the next run.
        self.stop = stop or threading.Event()
        self.sleep = sleep if sleep is not None else self.stop.wait  # pacing and backoff end early on stop
        # Outcomes known but not written when the store failed: written when it is back.
        self.unsaved: list[Outcome] = []
        self.newsletter = ""  # the edition's being sent, for the metrics

    def send(self, edition_id: int, retry_failed: bool = False) -> SendReport:
        """Work through the edition's open deliveries until none is left; while the store
        cannot be written, try it again with backoff for `store_retry_seconds`, then give up."""
        report = SendReport(edition_id)
        patience = self.settings.sending.store_retry_seconds
        give_up: float | None = None
        tries = 0
        while True:
            try:
                if tries:
                    self._after_trouble(edition_id, report)
                return self._send(edition_id, retry_failed and not tries, report)
            except STORE_TROUBLE as exc:
                now = time.monotonic()
                give_up = now + patience if give_up is None else give_up
                words = driver_words(self.settings, exc)
                if now >= give_up or self.stop.is_set():
                    raise StoreUnavailable(self.settings.database_label(), words, patience) from None
                if not tries:
                    log.warning(
                        "edition %d: the store cannot be written (%s): nothing more goes; "
                        "trying it again for up to %g s",
                        edition_id,
                        words,
                        patience,
                    )
                tries += 1
                self.sleep(min(self.pace.backoff(tries, None), give_up - now))

    def _after_trouble(self, edition_id: int, report: SendReport) -> None:
        """The store is back: write what this sender knew, and settle what it still held (what
        was handed over without an outcome known is uncertain, the rest goes back to pending)."""
        if self.unsaved:
            self._record(self.unsaved, report)
            self.unsaved = []
        with unit_of_work(self.factory) as session:
            back, uncertain = ledger.give_back(session, edition_id, self.worker)
        report.uncertain += uncertain
        log.warning(
            "edition %d: the store is back; %d deliveries given back, %d uncertain; going on",
            edition_id,
            back,
            uncertain,
        )

    def _send(self, edition_id: int, retry_failed: bool, report: SendReport) -> SendReport:
        newsletter = self.newsletter = self._begin(edition_id, retry_failed, report)
        builder = BatchBuilder(self.settings, self.factory, self.links, edition_id, newsletter)
        started = time.monotonic()
        self.streak = 0
        # Up to DEPTH batches with the provider while the next is claimed and built: its waits
        # overlap our work, and its requests or connections never idle between two batches.
        in_flight: deque[tuple[Future[list[Outcome]], float]] = deque()
        window = 1  # the first batch goes alone, and the first after trouble: see below
        with (
            self._heartbeat(edition_id),
            _tuned_for_sending(),
            ThreadPoolExecutor(DEPTH, thread_name_prefix="deliver") as courier,  # waited for first
        ):
            taken_over = time.monotonic()
            while True:
                if time.monotonic() - taken_over >= self.pace.lease.total_seconds() / 2:
                    self._take_over(edition_id, report)  # a sender that died meanwhile
                    taken_over = time.monotonic()
                token, ids = self._claim(edition_id)
                claimed = time.monotonic()
                batch: list[Outgoing] = []
                if ids:
                    built = builder.build(ids)
                    batch = built.messages
                    with self.counting:  # the courier threads count too
                        report.suppressed += built.left
                        report.failed += built.unsendable
                retried = False
                # Settle the oldest when the provider has its fill; all of them before stopping
                # or looking for deferred readers (what comes back as a retry is claimed again).
                while in_flight and (len(in_flight) >= window or not ids or self.stop.is_set()):
                    future, submitted = in_flight.popleft()
                    try:
                        busy = self._settle(future.result(), report, started, submitted)
                    except SendError:
                        self._release(ids, token)
                        raise
                    retried = retried or busy
                    # Open the window once the provider answered well: a refusal meant for
                    # everyone (a wrong key) costs one batch's first request, not two batches'.
                    window = 1 if busy else DEPTH
                if retried and not ids:
                    continue  # the batch came back to pending: claim it again
                if self.stop.is_set():
                    self._release(ids, token)
                    log.info("edition %d: stopping between batches; the next run finishes it", edition_id)
                    break
                if not ids:
                    wait = self._deferred_wait(edition_id)  # readers whose mailboxes said "later"
                    if wait is None:
                        wait = self._others_wait(edition_id, report)  # or other senders' batches
                        taken_over = time.monotonic()
                    if wait is None:
                        break
                    self.sleep(wait)
                    continue
                batch = self._still_held(batch, token, claimed)  # settling may have slept: check
                if batch:
                    submitted = time.monotonic()
                    in_flight.append(
                        (courier.submit(self._deliver, batch, token, report, newsletter), submitted)
                    )
        return self._finish(edition_id, report)

    @contextmanager
    def _heartbeat(self, edition_id: int) -> Iterator[None]:
        """Keep this sender's claims fresh while it works, so that however slow the provider or
        the pace, no other sender takes them for a dead one's and mails them again."""
        stop = threading.Event()
        interval = max(self.pace.lease.total_seconds() / 4, 0.2)

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    with unit_of_work(self.factory) as session:
                        ledger.renew(session, edition_id, self.worker)
                except STORE_TROUBLE as exc:  # the next beat tries again; the lease leaves room for three
                    log.warning("renewing this sender's claims failed: %s", driver_words(self.settings, exc))
                except Exception:
                    log.exception("renewing this sender's claims failed")

        thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _take_over(self, edition_id: int, report: SendReport) -> int:
        """Other senders' claims silent past their lease (or of a dead process on this host): what
        they never handed over goes back to pending, for this sender; what they did becomes
        uncertain. How many went back."""
        with unit_of_work(self.factory) as session:
            back, uncertain = ledger.recover(session, edition_id, self.pace.lease, self.worker)
        if back or uncertain:
            log.warning(
                "edition %d: a sender died or went silent past its lease: %d of its deliveries "
                "taken over, %d uncertain (in flight when it stopped)",
                edition_id,
                back,
                uncertain,
            )
            with self.counting:
                report.recovered += back
                report.uncertain += uncertain
        return back

    def _others_wait(self, edition_id: int, report: SendReport) -> float | None:
        """Nothing left to claim: seconds to wait for the batches other senders hold (taking over
        those of a dead one, 0 then), or None when none holds any. Stopping before they are done
        would leave a dead sender's readers to whoever sends next, and say "sent" too soon."""
        if self._take_over(edition_id, report):
            return 0.0
        with reading(self.factory) as session:
            if not ledger.held_by_others(session, edition_id, self.worker):
                return None
        # Soon again: their last batches end within a request or two, and this sender's exit is
        # the end of `send --workers` (at 5 s, 50,000 readers with two senders took a third longer).
        return min(self.pace.lease.total_seconds() / 4, OTHERS_POLL)

    def _still_held(self, batch: list[Outgoing], token: str, claimed: float) -> list[Outgoing]:
        """The messages whose deliveries this claim still holds: never hand over one that another
        sender took (after this one was stalled past its lease). A claim made less than a
        heartbeat ago (`claimed`, monotonic) cannot have been taken: no query then."""
        if not batch or time.monotonic() - claimed < self.pace.lease.total_seconds() / 4:
            return batch
        with reading(self.factory) as session:
            mine = ledger.held(session, [m.delivery_id for m in batch], token)
        if len(mine) < len(batch):
            log.warning(
                "%d deliveries of this sender's batch were taken over; left to their new sender",
                len(batch) - len(mine),
            )
        return [m for m in batch if m.delivery_id in mine]

    def _begin(self, edition_id: int, retry_failed: bool, report: SendReport) -> str:
        """Check the edition can be sent, put back what dead senders held, and mark it sending."""
        with unit_of_work(self.factory) as session:
            # Locked: an editor's hold or change comes before this start, or finds it sending.
            edition = session.get(Edition, edition_id, with_for_update=True)
            if edition is None:
                raise SendError(f"no edition {edition_id}")
            if edition.status == EditionStatus.DRAFT:
                raise SendError(f"edition {edition_id} is not prepared yet")
            config = self.settings.newsletters.get(edition.newsletter)
            why = edition.waiting(config.approval if config else "auto")
            if edition.status == EditionStatus.READY and why is not None:
                raise EditionHeld(f"edition {edition_id} is {why}: it goes when released or approved")
            if retry_failed:
                ledger.retry_failed(session, edition_id)
            recovered, uncertain = ledger.recover(session, edition_id, self.pace.lease, self.worker)
            report.recovered += recovered  # beside what a store failure gave back before this start
            report.uncertain += uncertain
            cutoff = self._uncertain_cutoff()
            if cutoff is not None:
                report.resent = sum(ledger.resend_uncertain(session, edition_id, cutoff).values())
            tally = ledger.counts(session, edition_id)
            report.total = sum(n for status, n in tally.items() if status in OPEN)
            if edition.status != EditionStatus.SENDING:
                edition.status = EditionStatus.SENDING
                edition.started_at = edition.started_at or utcnow()
            newsletter = edition.newsletter
        if report.recovered:
            log.warning(
                "edition %d: %d deliveries of a stopped sender put back", edition_id, report.recovered
            )
        if report.resent:
            log.warning(
                "edition %d: %d uncertain deliveries sent again: nothing settled them in time",
                edition_id,
                report.resent,
            )
        if report.uncertain > report.resent:
            log.warning(
                "edition %d: %d deliveries were in flight when their sender stopped: uncertain, "
                "not sent again until the provider's events or the operator settle them",
                edition_id,
                report.uncertain - report.resent,
            )
        return newsletter

    def _uncertain_cutoff(self) -> datetime | None:
        """Uncertain deliveries handed over before this are sent again: with the provider's event
        webhook, those no event settled within `uncertain_minutes`; without one, all of them
        when `in_flight = "resend"`, none when "hold" (`send --resend-uncertain` does it)."""
        sending = self.settings.sending
        if self.provider.name == "sendgrid" and self.settings.sendgrid_webhook_public_key:
            return utcnow() - timedelta(minutes=sending.uncertain_minutes)
        return utcnow() if sending.in_flight == "resend" else None

    def _deferred_wait(self, edition_id: int) -> float | None:
        """Seconds until a deferred delivery may be tried again (at most a minute, to stay
        responsive); None when none is left."""
        with reading(self.factory) as session:
            when = ledger.next_retry(session, edition_id)
        if when is None:
            return None
        return min(max((when - utcnow()).total_seconds(), 0.0), 60.0)

    def _claim(self, edition_id: int) -> tuple[str, list[int]]:
        """The next batch, and the token that claims it (worker#n)."""
        self.claims += 1
        token = f"{self.worker}#{self.claims}"
        with unit_of_work(self.factory) as session:
            return token, ledger.claim(session, edition_id, token, self.provider.batch_size, self.due_by)

    def _release(self, ids: Sequence[int], token: str) -> None:
        with unit_of_work(self.factory) as session:
            ledger.release(session, ids, token)

    def _deliver(
        self, batch: Sequence[Outgoing], token: str, report: SendReport, newsletter: str
    ) -> list[Outcome]:
        """Hand the batch to the provider, each message or request through the gate, recording
        outcomes as they come; what the provider could not take is put back for a retry, a
        refusal stops the send. When the store fails, nothing more goes: what is known but
        unwritten is kept for when it is back."""
        record = Recorder(
            lambda outcomes: self._record(outcomes, report),
            durable=self.provider.marks_in_flight,
            gate=lambda outcomes, ids: self._record(outcomes, report, token, ids, newsletter),
            # SMTP's connections each pass the gate per message: a moment's wait lets theirs
            # share one write (an API's requests are few and long: none).
            gather=0.0 if self.provider.marks_in_flight else GATHER,
        )
        try:
            try:
                self.provider.send(batch, record, record.hand)
            except ProviderBusy as exc:
                done = record.done()
                record(
                    [
                        Outcome(m.delivery_id, OutcomeStatus.RETRY, None, str(exc), exc.retry_after)
                        for m in batch
                        if m.delivery_id not in done
                    ]
                )
            except STORE_TROUBLE:
                raise
            except Exception as exc:  # refused, or a fault of the provider's own: stop, lose nothing
                self._stop(record, batch, token)
                words = str(exc) if isinstance(exc, ProviderRefused) else f"{type(exc).__name__}: {exc}"
                raise SendError(f"{self.provider.name} refused the send: {words}; {RESUME}") from None
            done = record.done()
            missing = [m.delivery_id for m in batch if m.delivery_id not in done]
            if missing and self.stop.is_set():  # stopping: what never went is given back
                self._release(missing, token)
            elif missing:  # a provider must account for every message; never guess "sent"
                record([Outcome(i, OutcomeStatus.RETRY, None, "no outcome reported") for i in missing])
            self._judge(record, batch, token)
            record.write_held()
            record.close()
            sent = [o.delivery_id for o in record.seen if o.status == OutcomeStatus.SENT]
            if sent:  # readers who left while their message was on its way: the ledger says so
                with unit_of_work(self.factory) as session:
                    ledger.note_left(session, sent, newsletter)
            return record.seen
        except STORE_TROUBLE:
            record.close(flush=False)  # the writer stops: what it could not write stays
            with self.counting:
                self.unsaved.extend(record.unsaved())
            raise
        finally:
            record.close(flush=False)  # the writer thread ends however the batch ended

    def _judge(self, record: Recorder, batch: Sequence[Outgoing], token: str) -> None:
        """Refusals held back by the recorder are the readers' own, unless the same one came for
        much of the batch: then it is the provider's. A shared permanent refusal (a relay denying
        everyone) stops the send with nobody failed; a shared temporary one makes it wait."""
        blamed = provider_at_fault(record.held, batch)
        if not blamed:
            return
        first = blamed[0]
        if first.status == OutcomeStatus.FAILED:
            self._stop(record, batch, token)
            raise SendError(
                f"{self.provider.name} refused {len(blamed)} of {len(batch)} messages with the same "
                f"answer ({first.detail}): the provider's fault, not the readers'; nobody was marked "
                f"failed; {RESUME}"
            )
        record.held = [o for o in record.held if o not in blamed]
        record([Outcome(o.delivery_id, OutcomeStatus.RETRY, None, o.detail) for o in blamed])

    def _stop(self, record: Recorder, batch: Sequence[Outgoing], token: str) -> None:
        """Write what was accepted, then give back everything else of the batch."""
        record.close()
        self._release([m.delivery_id for m in batch], token)
        accepted = sum(o.status == OutcomeStatus.SENT for o in record.seen)
        count_sent(self.newsletter, self.provider.name, 0, {"stopped": len(batch) - accepted})

    def _record(
        self,
        outcomes: list[Outcome],
        report: SendReport,
        token: str | None = None,
        handing: Sequence[int] = (),
        newsletter: str = "",
    ) -> set[int]:
        """Write outcomes, and hand over these deliveries of the claim `token` in the same
        transaction (the gate); which were handed over (the others' readers left)."""
        deferrals = [(o.delivery_id, o.detail or "") for o in outcomes if o.status == OutcomeStatus.DEFERRED]
        marks = [
            Mark(o.delivery_id, MARKS[o.status], o.message_id, o.detail)
            for o in outcomes
            if o.status != OutcomeStatus.DEFERRED
        ]
        bad = [(o.delivery_id, o.detail or "") for o in outcomes if o.bad_address and o.status in FAILED]
        with unit_of_work(self.factory) as session:
            ledger.record(session, marks)
            if bad:  # never mailed again, so the next edition does not try it
                suppress_recipients(session, bad, SuppressionReason.BOUNCE)
            spent = (
                ledger.defer(session, deferrals, self.pace.max_attempts, self.pace.deferral)
                if deferrals
                else 0
            )
            handed, left = ledger.hand(session, handing, token, newsletter) if token else (set(), set())
        with self.counting:
            report.sent += sum(o.status == OutcomeStatus.SENT for o in outcomes)
            report.failed += spent + sum(o.status in FAILED for o in outcomes)
            report.suppressed += len(left)
        reasons = Counter(REASONS[o.status] for o in outcomes if o.status != OutcomeStatus.SENT)
        if bad:
            reasons["bad_address"] = sum(o.bad_address for o in outcomes if o.status == OutcomeStatus.FAILED)
            reasons["rejected"] -= reasons["bad_address"]
        count_sent(self.newsletter, self.provider.name, len(outcomes) - reasons.total(), reasons)
        return handed

    def _settle(self, outcomes: list[Outcome], report: SendReport, started: float, submitted: float) -> bool:
        """After a batch (given to the provider at `submitted`): keep pace, or back off while the
        provider is busy (and give up at last). True when some of the batch is to be tried again."""
        self.on_progress(report)
        retries = [o for o in outcomes if o.status == OutcomeStatus.RETRY]
        if not retries:
            self.streak = 0
            wait = self.pace.ahead(report.sent + report.failed, time.monotonic() - started)
            if wait > 0:
                self.sleep(wait)
            return False
        if submitted < self.calmed:  # it went before the last wait ended: the same trouble, waited for
            return True
        self.streak += 1
        if self.streak > self.pace.max_retries:
            raise SendError(
                f"{self.provider.name} still busy after {self.streak} tries ({retries[0].detail}); {RESUME}"
            )
        told = max((o.retry_after for o in retries if o.retry_after is not None), default=None)
        delay = self.pace.backoff(self.streak, told)
        log.warning("%s busy (%s); retrying in %.1f s", self.provider.name, retries[0].detail, delay)
        self.sleep(delay)
        self.calmed = time.monotonic()
        return True

    def _finish(self, edition_id: int, report: SendReport) -> SendReport:
        """complete when every delivery ended well, partial when some failed; else still sending."""
        with unit_of_work(self.factory) as session:
            report.counts = ledger.counts(session, edition_id)
            edition = session.get(Edition, edition_id)
            assert edition is not None  # checked when the send began
            ledger.finish(edition, report.counts)
            report.status = edition.status
        return report
