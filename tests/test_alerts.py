"""Breaking-news alerts (issue #24, point 2): one article, sent at once, to every reader who opted
in and nobody else, once per article whoever presses and however often; in the reader's
language where a translation exists; within `max_per_day` and outside the quiet hours."""

from __future__ import annotations

import html
import json
import os
import signal
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from newsletter.editions.alert import quiet_until
from newsletter.editions.edition import EditionError, EditionHeld
from newsletter.errors import InputError
from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.services import breaking, readers
from newsletter.services.breaking import NotAnAlertNewsletter
from newsletter.store.db import make_engine, unit_of_work
from newsletter.store.models import (
    Article,
    Document,
    Edition,
    Publication,
    Subscriber,
    SubscriberNewsletter,
    Suppression,
)
from tests.conftest import NEWSROOM, ZONE
from tests.support.alerts import OTHER, TRANSLATED, alert_process, article_id, ledger_of, newsletters, opt_in
from tests.support.clock import FixedClock
from tests.support.outbox import messages
from tests.support.sending import newsletter_on, sendgrid_env
from tests.support.store import migrate

# Wednesday 2 December 2026, 10:00 in Brussels: no quiet hours.
NOON = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def site(newsroom, make_runtime):
    """The sample newsroom (its readers take the weekly and the daily, not the alerts) with an
    alert newsletter."""
    return make_runtime(**NEWSROOM, newsletters=newsletters(max_per_day=2, quiet_hours="22:00-07:00"))


def press(runtime, reference: str | int, now: datetime, **options) -> int:
    """An editor's alert of the article, opened and sent to the outbox; its edition's id."""
    opened = breaking.open_by_editor(runtime, "breaking", str(reference), now, **options)
    assert opened.edition.id is not None
    if opened.not_before is None or opened.not_before <= now:
        breaking.send_alert(runtime, opened.edition.id, now, OutboxProvider(runtime.settings.outbox_dir))
    return opened.edition.id


def alerts(runtime) -> int:
    with runtime.factory() as session:
        return session.scalar(select(func.count()).where(Edition.article_id.is_not(None))) or 0


@pytest.mark.both_databases
def test_an_alert_reaches_every_opted_in_reader_once_and_nobody_else(site) -> None:
    english = opt_in(site, 5)
    german = opt_in(site, 2, first=10, language="de")
    opt_in(site, 1, first=20)  # suppressed
    opt_in(site, 1, first=30)  # left the alerts
    with unit_of_work(site.factory) as session:
        session.add(Suppression(email="alert020@example.com", reason="manual"))
        left = session.scalars(
            select(SubscriberNewsletter).join(Subscriber).where(Subscriber.email == "alert030@example.com")
        ).one()
        left.status = "unsubscribed"
    edition_id = press(site, TRANSLATED, NOON)
    sent = messages(site, edition_id)
    assert sorted(m["To"] for m in sent) == sorted(english + german)  # once each, nobody else
    assert ledger_of(site, edition_id)["alert020@example.com"][0] == "suppressed"
    assert "alert030@example.com" not in ledger_of(site, edition_id)
    by_language = {m["To"][5:8]: m for m in sent}
    english_one, german_one = by_language["000"], by_language["010"]
    with site.factory() as session:
        slot = session.scalars(select(func.min(Edition.slot)).where(Edition.id == edition_id)).one()
    assert slot.endswith(f"~{article_id(site)}")
    html = english_one.get_body(("html",)).get_content()
    text = english_one.get_body(("plain",)).get_content()
    assert english_one["Subject"] in html and "Read more" in html and "Read more" in text
    german_html = german_one.get_body(("html",)).get_content()
    assert 'lang="de"' in german_html and "Weiterlesen" in german_html
    assert german_one["Subject"] != english_one["Subject"]  # the German article's headline
    # List-Unsubscribe leaves the alerts, and only them.
    assert english_one["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = english_one["List-Unsubscribe"].split("<", 1)[1].split(">", 1)[0]
    gone = readers.unsubscribe(site, url.rsplit("/", 1)[-1], "one-click", NOON)
    assert gone.newsletter == "breaking"


def test_the_editors_subject_and_an_urgent_alert_in_the_quiet_hours(site) -> None:
    opt_in(site, 2)
    night = datetime(2026, 12, 2, 23, 30, tzinfo=ZONE)
    edition_id = press(site, OTHER, night, subject="  Breaking:\nthe vote  ", urgent=True)
    assert {m["Subject"] for m in messages(site, edition_id)} == {"Breaking: the vote"}


@pytest.mark.both_databases
def test_pressing_twice_or_two_processes_at_once_send_it_once(site) -> None:
    readers_ = opt_in(site, 30)
    first = press(site, TRANSLATED, NOON)
    # Again, by the German translation's number: the same article, nothing more goes.
    again = press(site, article_id(site, language="de"), NOON + timedelta(minutes=1))
    assert again == first and alerts(site) == 1
    assert sorted(m["To"] for m in messages(site, first)) == sorted(readers_)
    # Two at once, of another article.
    start = threading.Barrier(2)
    found: list[int] = []

    def one() -> None:
        start.wait()
        found.append(press(site, OTHER, NOON + timedelta(minutes=2)))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and alerts(site) == 2
    assert sorted(m["To"] for m in messages(site, found[0])) == sorted(readers_)


def test_a_dry_run_shows_who_and_the_message_and_writes_nothing(site) -> None:
    opt_in(site, 3)
    opt_in(site, 1, first=10, language="de")
    shown = breaking.rehearse(site, None, TRANSLATED, NOON)
    assert shown.counts == {"pending": 4} and shown.already is None
    assert [language for language, *_rest in shown.messages] == ["de", "en"]
    assert {check.name: check.status for check in shown.checks} == {
        "images": "pass",
        "size": "pass",
        "unsubscribe": "fail",  # the test site's public_url is http: Gmail wants HTTPS
    }
    assert alerts(site) == 0
    with pytest.raises(EditionError, match="no article"):
        breaking.rehearse(site, None, "https://nowhere.example/x", NOON)
    with pytest.raises(NotAnAlertNewsletter, match="weekly is a digest"):
        breaking.open_by_editor(site, "weekly", TRANSLATED, NOON)
    for hostile in ("Bcc: x@y\x00", "x" * 301, "a\u2028b"):
        with pytest.raises(InputError, match="--subject"):
            breaking.open_by_editor(site, "breaking", TRANSLATED, NOON, subject=hostile)
    assert alerts(site) == 0


def test_max_per_day_holds_on_the_sites_day(site) -> None:
    clock = FixedClock(NOON)
    opt_in(site, 2)
    keys = [f"https://www.europeantimes.example/?p={n}" for n in (1046, 1045, 1044, 1043)]
    first, second, third = (press(site, key, clock.advance(minutes=10)) for key in keys[:3])
    assert {s for s, _d in ledger_of(site, first).values()} == {"sent"}
    assert {s for s, _d in ledger_of(site, second).values()} == {"sent"}
    assert set(ledger_of(site, third).values()) == {
        ("skipped", "max_per_day: 2 breaking alerts today already")
    }
    assert messages(site, third) == []
    # The site's next day (midnight in Brussels, 23:00 UTC) counts afresh.
    clock.now = datetime(2026, 12, 3, 0, 0, tzinfo=ZONE) + timedelta(hours=8)
    fourth = press(site, keys[3], clock.now)
    assert {s for s, _d in ledger_of(site, fourth).values()} == {"sent"}


@pytest.mark.both_databases
def test_quiet_hours_hold_an_alert_until_they_end_then_the_job_sends_it(site) -> None:
    readers_ = opt_in(site, 3)
    clock = FixedClock(datetime(2026, 12, 2, 23, 30, tzinfo=ZONE))
    opened = breaking.open_by_editor(site, "breaking", TRANSLATED, clock.now)
    assert opened.not_before == datetime(2026, 12, 3, 7, 0, tzinfo=ZONE)
    edition_id = opened.edition.id
    with pytest.raises(EditionHeld, match="quiet hours"):
        breaking.send_alert(site, edition_id, clock.now, OutboxProvider(site.settings.outbox_dir))
    clock.now = datetime(2026, 12, 3, 6, 59, tzinfo=ZONE)
    assert breaking.due(site, clock.now) == []
    clock.now = datetime(2026, 12, 3, 7, 0, tzinfo=ZONE)
    assert breaking.due(site, clock.now) == [edition_id]
    reports = breaking.send_due(site, clock.now)
    assert [r.status for r in reports] == ["complete"]
    assert breaking.due(site, clock.now) == []
    assert sorted(m["To"] for m in messages(site, edition_id)) == sorted(readers_)


def test_a_held_alert_pressed_again_as_urgent_goes_now_with_the_new_subject(site) -> None:
    """Opened at night without "urgent", held by the quiet hours: the editor's second press,
    urgent and with a subject, sends the same alert now (one edition, each reader once)."""
    readers_ = opt_in(site, 3)
    night = datetime(2026, 12, 2, 23, 30, tzinfo=ZONE)
    held = breaking.open_by_editor(site, "breaking", TRANSLATED, night)
    assert held.not_before is not None
    again = breaking.open_by_editor(
        site, "breaking", TRANSLATED, night + timedelta(minutes=1), subject="Now: the vote", urgent=True
    )
    assert again.edition.id == held.edition.id and not again.created and again.not_before is None
    edition_id = press(site, TRANSLATED, night + timedelta(minutes=2))  # a third press: nothing more
    assert edition_id == held.edition.id and alerts(site) == 1
    sent = messages(site, edition_id)
    assert sorted(m["To"] for m in sent) == sorted(readers_)
    assert {m["Subject"] for m in sent} == {"Now: the vote"}


def test_quiet_hours_arithmetic() -> None:
    at = lambda h, m=0, d=2: datetime(2026, 12, d, h, m, tzinfo=ZONE)  # noqa: E731
    assert quiet_until("22:00-07:00", ZONE, at(21, 59)) is None
    assert quiet_until("22:00-07:00", ZONE, at(22)) == at(7, d=3)
    assert quiet_until("22:00-07:00", ZONE, at(3)) == at(7)
    assert quiet_until("22:00-07:00", ZONE, at(7)) is None
    assert quiet_until("12:00-14:00", ZONE, at(13)) == at(14)
    assert quiet_until(None, ZONE, at(3)) is None


def test_the_alert_command(site) -> None:
    opt_in(site, 2)
    env = {"NEWSLETTER_NEWSLETTERS": '{"weekly": {}, "breaking": {"kind": "alert"}}'}
    dry = newsletter_on(site, "alert", TRANSLATED, "--dry-run", "--at", "2026-12-02T10:00", **env)
    assert dry.returncode == 0, dry.stderr
    assert "would go to: 2 pending" in dry.stdout and alerts(site) == 0
    ran = newsletter_on(site, "alert", TRANSLATED, "--at", "2026-12-02T10:00", **env)
    assert ran.returncode == 0, ran.stderr
    assert "complete" in ran.stdout
    listed = newsletter_on(site, "editions", "--json", **env)
    [alert] = [e for e in json.loads(listed.stdout) if e["article"] is not None]
    assert alert["article"]["id"] == article_id(site) and alert["deliveries"]["sent"] == 2
    assert "alert of article" in newsletter_on(site, "status", **env).stdout
    again = newsletter_on(site, "alert", TRANSLATED, "--at", "2026-12-02T10:05", **env)
    assert again.returncode == 0 and "already alerted" in again.stdout
    wrong = newsletter_on(site, "alert", TRANSLATED, "-n", "weekly", **env)
    assert wrong.returncode != 0 and "weekly is a digest" in wrong.stderr


@pytest.mark.both_databases
@pytest.mark.e2e
def test_an_alert_killed_mid_send_and_run_again_mails_every_reader_once(site, mail_api) -> None:
    """A real `newsletter alert` killed -9 while its third request is in the API (dropped
    unanswered), then the same command again: the killed sender's claims are put back, the
    request in flight is uncertain and (the operator knowing it never arrived) sent again, and
    every reader is mailed by the first run or the second, once."""
    readers_ = opt_in(site, 40)
    victim: dict = {}

    def die_on_third(number: int) -> bool:
        if number == 3:
            os.kill(victim["process"].pid, signal.SIGKILL)
            return False
        return True

    mail_api.on_request = die_on_third
    env = sendgrid_env(mail_api, NEWSLETTER_SENDING__SENDGRID_BATCH="5", NEWSLETTER_SENDING__CONCURRENCY="1")
    at = ("--at", "2026-12-02T10:00")
    victim["process"] = alert_process(site, TRANSLATED, *at, **env)
    victim["process"].wait(timeout=60)
    assert victim["process"].returncode == -signal.SIGKILL
    assert 0 < len(mail_api.recipients()) < len(readers_)
    mail_api.on_request = None
    # The operator knows the request never arrived: what was in flight goes again (in_flight).
    again = alert_process(site, TRANSLATED, *at, **env, NEWSLETTER_SENDING__IN_FLIGHT="resend")
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, out + err
    assert sorted(mail_api.recipients()) == sorted(readers_)  # every reader, once
    assert alerts(site) == 1


@pytest.mark.both_databases
def test_a_sent_alert_is_archived_and_in_the_feeds_unless_archive_is_off(site, make_runtime) -> None:
    opt_in(site, 2)
    first = press(site, TRANSLATED, NOON)
    press(site, OTHER, NOON + timedelta(minutes=5))  # two the same day: two pages
    number = article_id(site)
    with site.factory() as session:
        slugs = {p.edition_id: p.slug for p in session.scalars(select(Publication))}
        page = session.get_one(Document, f"/archive/breaking/{slugs[first]}")
        feed = session.get_one(Document, "/feeds/breaking/en.atom")
        title = session.get_one(Article, number).title
    assert slugs[first] == f"2026-12-02-{number}" and len(set(slugs.values())) == 2
    assert html.escape(title) in page.body and "alert0" not in page.body  # no reader's data
    assert html.escape(title) in feed.body
    quiet = make_runtime(**NEWSROOM, newsletters=newsletters(archive=False))
    third = press(quiet, "https://www.europeantimes.example/?p=1043", NOON)
    with quiet.factory() as session:
        assert session.get(Publication, third) is None


@pytest.mark.both_databases
def test_the_alerts_migration_keeps_every_edition_and_delivery(site) -> None:
    """0018 adds its columns in place (and the migrations after 0013 go down and up again): an `editions` table copied and dropped on SQLite would
    delete every delivery, variant and publication by cascade."""
    opt_in(site, 3)
    edition_id = press(site, TRANSLATED, NOON)
    before = ledger_of(site, edition_id)
    engine = make_engine(site.settings.database_url)
    try:
        migrate(engine, "downgrade", "0013")
        migrate(engine, "upgrade", "head")
    finally:
        engine.dispose()
    assert ledger_of(site, edition_id) == before and len(before) == 3
    with site.factory() as session:
        assert session.scalar(select(func.count()).select_from(Publication)) == 1
