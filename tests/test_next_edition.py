"""One edition every command means; nothing spent by mistake; failures listed and acted on;
dry runs and test sends that touch nothing else."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from newsletter.editions.compose import Composer
from newsletter.editions.edition import interval, open_edition
from newsletter.editions.offer import load_offer
from newsletter.editions.plan import Candidate, Rules, plan_digest
from newsletter.editions.prepare import EmptyEdition, NoNews, prepare, tally
from newsletter.editions.ranking import Score
from newsletter.editions.slots import slot_time
from newsletter.ingest.run import fetch_feeds
from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.sending.providers.smtp import SMTPProvider
from newsletter.services import editions, editors, sending, timetable
from newsletter.services.sending import NotDue, TooSoon
from newsletter.settings import NewsletterSettings
from newsletter.store.db import unit_of_work
from newsletter.store.models import (
    Article,
    Delivery,
    Edition,
    Subscriber,
    SubscriberNewsletter,
    Suppression,
    Variant,
)
from newsletter.store.statuses import DeliveryStatus, PickAction
from tests.conftest import SAMPLE, SECTIONS, WEEKLY_NOV_23, ZONE
from tests.support.outbox import placeholders
from tests.support.sending import ScriptedSink, add_readers, scripted, smtp_settings

pytestmark = pytest.mark.both_databases

READER = "tom.obrien@example.ie"
DAILY_NOV_21 = datetime(2026, 11, 21, 6, 30, tzinfo=ZONE)
POLITICS = "https://www.europeantimes.example/2026/11/night-trains-return-between-brussels-and-prague/"


@pytest.fixture
def sink() -> Iterator[tuple[ScriptedSink, int]]:
    yield from scripted(smtputf8=False)


def outbox_send(runtime, at: datetime, **options):
    return sending.publish(runtime, OutboxProvider(runtime.settings.outbox_dir), "weekly", at, **options)


def message_to(runtime, edition_id: int, address: str) -> email.message.EmailMessage:
    folder = runtime.settings.outbox_dir / f"edition-{edition_id}"
    [path] = [p for p in folder.glob("*.eml") if address.replace("@", "@") in p.name]
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def rows(runtime) -> dict[str, int]:
    with runtime.factory() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Edition, Variant, Delivery, Suppression)
        }


def test_preview_pins_and_send_mean_the_same_edition_across_its_slot(newsroom) -> None:
    before = WEEKLY_NOV_23 - timedelta(hours=1)
    following = editions.next_edition(newsroom, "weekly", before).edition
    assert following.slot == "2026-11-23T07:00" and following.id is None  # the one ahead
    picked = editors.pick_article(newsroom, "weekly", POLITICS, PickAction.PIN, before)
    assert picked.edition.slot == following.slot
    shown = editors.preview(newsroom, "weekly", before, email=READER)
    assert shown.edition.slot == following.slot and shown.text is not None
    with pytest.raises(NotDue, match="2026-11-23 07:00 CET, not due yet"):
        outbox_send(newsroom, before)
    assert rows(newsroom)["deliveries"] == 0  # nothing spent
    after = WEEKLY_NOV_23 + timedelta(minutes=20)
    assert editions.next_edition(newsroom, "weekly", after).edition.slot == following.slot
    assert editors.preview(newsroom, "weekly", after, email=READER).text == shown.text
    report = outbox_send(newsroom, after)
    assert report.status == "complete"
    sent = message_to(newsroom, report.edition_id, READER)
    assert sent["Subject"] == shown.composed.subject
    text = sent.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert placeholders(text).strip() == shown.text.strip()  # a preview's links open no account
    assert "Night trains return" in shown.text  # the pin went into what was sent
    ahead = editions.next_edition(newsroom, "weekly", after).edition
    assert ahead.slot == "2026-11-30T07:00"  # sent: the next one is ahead
    with pytest.raises(NotDue):
        outbox_send(newsroom, after)


def test_a_missed_slot_is_not_sent_late_but_a_stopped_send_is_finished(newsroom) -> None:
    late = WEEKLY_NOV_23 + timedelta(hours=5)  # past the grace: the 23 November slot was missed
    assert editions.next_edition(newsroom, "weekly", late).edition.slot == "2026-11-30T07:00"
    edition_id, _warnings = sending.prepare_next(newsroom, "weekly", WEEKLY_NOV_23)  # prepared on time
    assert editions.next_edition(newsroom, "weekly", late).edition.id == edition_id  # to be finished


def test_a_newsletters_first_edition_looks_back_one_gap_of_its_schedule_unless_told(newsroom) -> None:
    """A daily of one's own, defined with days and time only, first holds a day, not a week; a
    weekly a week; `first_window_days` says otherwise when given."""
    own = {
        "morning": NewsletterSettings(title="Morning", days="*", at="06:30"),
        "weekly": NewsletterSettings(title="Week"),
        "long": NewsletterSettings(title="Long", days="*", at="06:30", first_window_days=3),
    }
    settings = newsroom.settings.model_copy(update={"newsletters": own})
    with newsroom.factory() as session, session.begin() as transaction:
        for name, days in (("morning", 1), ("weekly", 7), ("long", 3)):
            slot = WEEKLY_NOV_23.replace(hour=6, minute=30) if name != "weekly" else WEEKLY_NOV_23
            edition = open_edition(session, settings, name, slot)
            assert slot_time(edition.slot, ZONE) - edition.window_start == timedelta(days=days), name
        transaction.rollback()


def test_the_usual_interval_is_the_gap_from_the_slot_before(newsroom) -> None:
    settings = newsroom.settings
    assert interval(settings, "weekly", WEEKLY_NOV_23) == timedelta(days=7)
    assert interval(settings, "daily", datetime(2026, 11, 23, 6, 30, tzinfo=ZONE)) == timedelta(days=1)
    twice = settings.newsletters["weekly"].model_copy(update={"days": "mon,thu"})
    settings = settings.model_copy(update={"newsletters": {**settings.newsletters, "weekly": twice}})
    assert interval(settings, "weekly", datetime(2026, 11, 26, 7, 0, tzinfo=ZONE)) == timedelta(days=3)
    assert interval(settings, "weekly", WEEKLY_NOV_23) == timedelta(days=4)
    # across the autumn change (Europe/Brussels, 25 October 2026) a week is an hour longer
    assert interval(newsroom.settings, "weekly", datetime(2026, 10, 26, 7, 0, tzinfo=ZONE)) == timedelta(
        days=7, hours=1
    )


def test_sent_ahead_an_edition_waits_out_the_newsletters_interval_unless_forced(newsroom) -> None:
    """A daily sent at 06:35 is followed by nothing ahead of its next slot that day (`send --now`
    refuses, `--force` does not); once the last went out a day ago or more, `--now` sends."""
    sent = sending.publish(newsroom, OutboxProvider(newsroom.settings.outbox_dir), "daily", DAILY_NOV_21)
    went = DAILY_NOV_21 + timedelta(minutes=5)
    with unit_of_work(newsroom.factory) as session:  # the sender notes the wall clock; the test's is November
        session.execute(update(Edition).where(Edition.id == sent.edition_id).values(started_at=went))
    soon = DAILY_NOV_21 + timedelta(hours=12)
    with pytest.raises(
        TooSoon, match=r"went out at 2026-11-21 06:35 CET, less than its usual interval \(1 day\)"
    ):
        sending.prepare_next(newsroom, "daily", soon, ahead_ok=True)
    assert rows(newsroom)["editions"] == 1
    planned = sending.dry_run(newsroom, "daily", soon, ahead_ok=True)  # told, not refused
    assert planned.early and any(w.startswith("send --now refuses it") for w in planned.warnings)
    # The 22 November slot passed with nothing sent (the site was down); a day after the last: it may go
    later = DAILY_NOV_21 + timedelta(days=1, hours=6)
    edition_id, _warnings = sending.prepare_next(newsroom, "daily", later, ahead_ok=True)
    assert editions.edition(newsroom, edition_id).edition.slot == "2026-11-23T06:30"


def test_send_before_any_fetch_refuses_and_spends_nothing(make_runtime) -> None:
    runtime = make_runtime(
        feeds=[{"url": str(SAMPLE / "site.xml")}], site={"categories": SECTIONS}, timezone="Europe/Brussels"
    )
    add_readers(runtime, 3)
    with pytest.raises(NoNews, match="run `newsletter fetch` first"):
        outbox_send(runtime, WEEKLY_NOV_23)
    assert rows(runtime) == {"editions": 0, "variants": 0, "deliveries": 0, "suppressions": 0}
    fetch_feeds(runtime.settings, runtime.factory)
    assert outbox_send(runtime, WEEKLY_NOV_23).status == "complete"


def test_an_edition_with_nothing_stored_for_its_window_is_not_spent(newsroom) -> None:
    outbox_send(newsroom, WEEKLY_NOV_23)
    nothing = datetime(2026, 11, 30, 7, 0, tzinfo=ZONE)  # the sample has no news for this week
    with pytest.raises(EmptyEdition) as refused:
        outbox_send(newsroom, nothing)
    with newsroom.factory() as session:
        stored, newest = session.execute(select(func.count(), func.max(Article.published_at))).one()
    assert str(refused.value).startswith(  # what is stored is older: fetching again would not help
        f"{stored} articles stored, the newest published {newest.astimezone(ZONE):%Y-%m-%d %H:%M} CET, "
        "none in the window of the weekly edition of "
        "2026-11-30 07:00 CET (2026-11-23 07:00 CET to 2026-11-30 07:00 CET)"
    )
    assert "newsletter fetch" not in str(refused.value)
    with newsroom.factory() as session:
        assert session.scalars(select(Edition.slot)).all() == ["2026-11-23T07:00"]  # can go out later


def test_a_mailbox_that_does_not_exist_is_listed_and_suppressed(newsroom, sink) -> None:
    handler, port = sink
    gone, blocked = "marc.dubois@example.org", "sofia.rossi@example.net"
    handler.always[gone] = f"550 5.1.1 <{gone}>: no such user"
    handler.always[blocked] = "550 5.7.1 blocked by policy"
    provider = SMTPProvider(smtp_settings(newsroom, port))
    report = sending.publish(newsroom, provider, "weekly", WEEKLY_NOV_23)
    assert report.status == "partial"
    listed = editions.deliveries(newsroom, report.edition_id, [DeliveryStatus.FAILED])
    assert {row.email: row.detail for row in listed} == {
        gone: f"550 5.1.1 <{gone}>: no such user",
        blocked: "550 5.7.1 blocked by policy",
    }
    assert editions.deliveries(newsroom, report.edition_id)[0].status == DeliveryStatus.FAILED  # first
    with newsroom.factory() as session:
        assert session.scalars(select(Suppression.email)).all() == [
            gone
        ]  # a policy refusal is not the reader's
    daily = sending.publish(newsroom, provider, "daily", datetime(2026, 11, 22, 6, 30, tzinfo=ZONE))
    provider.close()
    with newsroom.factory() as session:
        status = session.scalar(
            select(Delivery.status)
            .join(Subscriber)
            .where(Delivery.edition_id == daily.edition_id, Subscriber.email == gone)
        )
    assert status == DeliveryStatus.SUPPRESSED  # the next edition does not try it again
    assert gone not in handler.recipients()


def test_a_dry_run_shows_the_edition_and_changes_no_row(newsroom) -> None:
    before = rows(newsroom)
    planned = sending.dry_run(newsroom, "weekly", WEEKLY_NOV_23)
    assert rows(newsroom) == before
    assert planned.edition.slot == "2026-11-23T07:00"
    assert sum(v.recipients for v in planned.variants) == planned.counts[DeliveryStatus.PENDING] == 9
    assert all(v.subject and v.language in ("en", "de") for v in planned.variants)


def test_a_test_send_reaches_only_its_address(newsroom, sink) -> None:
    handler, port = sink
    smtp = smtp_settings(newsroom, port)
    newsroom.settings = smtp
    with unit_of_work(newsroom.factory) as session:
        reader = session.scalars(select(Subscriber).where(Subscriber.email == READER)).one()
        reader.newsletters = [SubscriberNewsletter(newsletter="weekly")]
    before = rows(newsroom)
    sent = sending.test_send(newsroom, "weekly", WEEKLY_NOV_23, "Editor@Example.org", as_reader=READER)
    assert sent.outcome.status == "sent" and sent.to == "editor@example.org"
    assert handler.recipients() == ["editor@example.org"]
    assert rows(newsroom) == before  # outside the ledger
    [(_tos, data)] = handler.messages
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["Subject"].startswith("[TEST] ") and message["X-Newsletter-Test"]
    assert "/unsubscribe/PREVIEW" in message["List-Unsubscribe"]  # a click unsubscribes nobody


def test_windows_are_told_in_the_sites_zone_across_a_change_of_time() -> None:
    spring = datetime(2026, 3, 29, 1, 30, tzinfo=ZONE)  # CET until 02:00, then CEST
    rules = Rules(
        window_start=spring - timedelta(days=1),
        window_end=spring + timedelta(hours=2),
        per_category=5,
        trending=0,
        zone=ZONE,
    )
    late = Candidate(1, "Late", spring + timedelta(hours=3), frozenset({"politics"}))
    score = {1: Score(1, 1.0, {}, late.published_at)}
    [decision] = plan_digest([late], score, ["politics"], frozenset(), rules, {}).decisions
    assert decision.reason == (
        "outside the window (published 2026-03-29 04:30 CEST; window 2026-03-28 01:30 CET to 2026-03-29 03:30 CEST)"
    )


def test_a_drafts_readers_are_counted_as_preparing_it_counts_them(newsroom) -> None:
    """The editors' page counts a draft's readers without composing it (`tally`): the same
    recipients, skipped and suppressed as preparing it, readers who already got some of its
    articles (from another newsletter) and a suppressed one included."""
    settings = newsroom.settings
    more = NewsletterSettings(title="More", per_category=10, trending=0)  # the weekly's slot, more articles
    newsroom.settings = settings = settings.model_copy(
        update={"newsletters": {**settings.newsletters, "more": more}}
    )
    composer = Composer(settings.templates_path())
    with unit_of_work(newsroom.factory) as session:
        weekly = open_edition(session, settings, "weekly", WEEKLY_NOV_23)
        prepare(session, settings, weekly, composer)
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == weekly.id, Delivery.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.SENT)
        )
        for reader in session.scalars(select(Subscriber).where(Subscriber.status == "active")):
            reader.newsletters.append(SubscriberNewsletter(newsletter="more"))
        session.add(Suppression(email=READER, reason="manual"))
    with newsroom.factory() as session, session.begin() as transaction:
        edition = open_edition(session, settings, "more", WEEKLY_NOV_23)
        counted = tally(session, settings, load_offer(session, settings, edition))
        prepared = prepare(session, settings, edition, composer)
        digests = session.scalar(
            select(func.count(func.distinct(Delivery.variant_id))).where(
                Delivery.edition_id == edition.id, Delivery.variant_id.is_not(None)
            )
        )
        transaction.rollback()
    assert (counted.recipients, counted.skipped, counted.suppressed, counted.variants) == (
        prepared.recipients,
        prepared.skipped,
        prepared.suppressed,
        digests,
    )
    assert counted.recipients and counted.skipped and counted.suppressed == 1


def test_a_reader_of_a_language_the_site_does_not_offer_shares_the_sites_digest(make_runtime) -> None:
    """Counted as prepared: an English-only site's French reader reads the English digest, one
    digest for both, on the editors' page as in the ledger."""
    runtime = make_runtime(
        feeds=[{"url": str(SAMPLE / "site.xml")}], site={"categories": SECTIONS}, timezone="Europe/Brussels"
    )
    fetch_feeds(runtime.settings, runtime.factory)
    with unit_of_work(runtime.factory) as session:
        for address, language in (("en.reader@example.org", "en"), ("fr.reader@example.org", "fr")):
            reader = Subscriber(email=address, status="active", language=language)
            reader.newsletters = [SubscriberNewsletter(newsletter="weekly")]
            session.add(reader)
    settings = runtime.settings
    assert settings.languages() == ["en"]
    with runtime.factory() as session, session.begin() as transaction:
        edition = open_edition(session, settings, "weekly", WEEKLY_NOV_23)
        counted = tally(session, settings, load_offer(session, settings, edition))
        prepared = prepare(session, settings, edition, Composer(settings.templates_path()))
        transaction.rollback()
    assert (counted.recipients, counted.variants) == (prepared.recipients, prepared.variants) == (2, 1)


def test_nothing_stored_at_all_says_to_fetch(make_runtime) -> None:
    runtime = make_runtime(
        feeds=[{"url": str(SAMPLE / "site.xml")}], site={"categories": SECTIONS}, timezone="Europe/Brussels"
    )
    add_readers(runtime, 1)
    with pytest.raises(EmptyEdition, match=r"nothing was stored yet .* run `newsletter fetch`$"):
        outbox_send(runtime, WEEKLY_NOV_23, force=True)


SUNDAY_NOON = datetime(2026, 11, 22, 12, 0, tzinfo=ZONE)  # the 23 November slot is ahead


def test_a_first_edition_sent_early_holds_the_week_before_it_goes(make_runtime) -> None:
    """A new site sends its first edition with --now the day before its slot: its window looks
    back `first_window_days` from now (not from the slot), and the next edition starts there."""
    runtime = make_runtime(
        feeds=[{"url": str(SAMPLE / "site.xml")}], site={"categories": SECTIONS}, timezone="Europe/Brussels"
    )
    fetch_feeds(runtime.settings, runtime.factory)
    add_readers(runtime, 2)
    report = outbox_send(runtime, SUNDAY_NOON, ahead_ok=True)
    assert report.status == "complete"
    with runtime.factory() as session:
        first = session.get_one(Edition, report.edition_id)
        assert (first.slot, first.window_start, first.window_end) == (
            "2026-11-23T07:00",
            SUNDAY_NOON - timedelta(days=7),
            SUNDAY_NOON,
        )
    following = editions.next_edition(runtime, "weekly", SUNDAY_NOON + timedelta(hours=1)).edition
    assert (following.slot, following.window_start) == ("2026-11-30T07:00", SUNDAY_NOON)


def test_an_edition_begun_early_and_stopped_is_resumed_by_a_plain_send(newsroom) -> None:
    """`send --now` began it, the provider stopped it with deliveries left: plain `send` (no
    --now) resumes it though its slot is still ahead, and `status --check` tells of it meanwhile."""
    edition_id, _warnings = sending.prepare_next(newsroom, "weekly", SUNDAY_NOON, ahead_ok=True)
    with unit_of_work(newsroom.factory) as session:  # as the sender leaves it when the relay refuses
        edition = session.get_one(Edition, edition_id)
        edition.status, edition.started_at = "sending", SUNDAY_NOON - timedelta(hours=1)
    pending = rows(newsroom)["deliveries"]
    stopped = (
        f"the weekly edition of 2026-11-23 07:00 CET stopped sending with {pending} deliveries pending "
        f"and no sender at work since 2026-11-22 11:00:00 CET: `newsletter send --edition {edition_id}` "
        "resumes it"
    )
    assert stopped in timetable.problems(newsroom, SUNDAY_NOON)
    with unit_of_work(newsroom.factory) as session:  # a sender holds a batch right now: in progress
        first = session.scalars(select(Delivery).where(Delivery.edition_id == edition_id).limit(1)).one()
        first.status, first.claimed_by, first.claimed_at = "sending", "host:1:1:1#1", SUNDAY_NOON
    assert not [p for p in timetable.problems(newsroom, SUNDAY_NOON) if "stopped sending" in p]
    with unit_of_work(newsroom.factory) as session:
        first = session.get_one(Delivery, first.id)
        first.status, first.claimed_by, first.claimed_at = "pending", None, None
    report = outbox_send(newsroom, SUNDAY_NOON + timedelta(minutes=5))  # no ahead_ok
    assert (report.edition_id, report.status) == (edition_id, "complete")
    assert not [p for p in timetable.problems(newsroom, SUNDAY_NOON) if "stopped sending" in p]


def test_a_send_paused_by_a_live_sender_is_not_taken_for_stopped(newsroom) -> None:
    """A busy provider's answer puts the batch back to pending (its claim undone) while the sender
    backs off; a deferred delivery's time comes while it naps: nothing is claimed, and the send
    is not stopped. Once nothing in its ledger changed for longer than any such pause, it is."""
    edition_id, _warnings = sending.prepare_next(newsroom, "weekly", SUNDAY_NOON, ahead_ok=True)
    with unit_of_work(newsroom.factory) as session:
        edition = session.get_one(Edition, edition_id)
        edition.status, edition.started_at = "sending", SUNDAY_NOON - timedelta(hours=1)
        first, second, *_rest = session.scalars(
            select(Delivery).where(Delivery.edition_id == edition_id).order_by(Delivery.id)
        )
        first.status, first.sent_at = "sent", SUNDAY_NOON - timedelta(minutes=30)
        # the batch the provider was too busy for, handed over moments ago, back to pending
        second.handed_at = SUNDAY_NOON - timedelta(seconds=10)
    pause = timetable.longest_pause(newsroom.settings.sending)
    assert pause == timedelta(seconds=8 * 60 + 60 + 60 + 60)  # the defaults: retries, store, lease, nap

    def stopped(now: datetime) -> list[str]:
        return [p for p in timetable.problems(newsroom, now) if "stopped sending" in p]

    assert not stopped(SUNDAY_NOON)
    assert not stopped(SUNDAY_NOON + pause - timedelta(seconds=11))
    [alarm] = stopped(SUNDAY_NOON + pause)
    assert alarm.endswith(
        f"no sender at work since 2026-11-22 11:59:50 CET: `newsletter send --edition {edition_id}` resumes it"
    )
    with unit_of_work(newsroom.factory) as session:  # a deferred delivery's time came a moment ago
        session.get_one(Delivery, second.id).retry_at = SUNDAY_NOON + pause - timedelta(seconds=30)
    assert not stopped(SUNDAY_NOON + pause)
    assert stopped(SUNDAY_NOON + 2 * pause)
