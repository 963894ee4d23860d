"""`newsletter send` in process: which newsletter an edition is sent as, a second edition
minutes after the first refused, and a dry run that shows the plan whenever it is asked."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from newsletter.editions.compose import Composer
from newsletter.editions.edition import open_edition
from newsletter.editions.prepare import prepare
from newsletter.ingest.run import fetch_feeds
from newsletter.store.db import unit_of_work
from newsletter.store.models import (
    Article,
    Category,
    Delivery,
    Edition,
    Feed,
    Subscriber,
    SubscriberNewsletter,
    Variant,
)
from tests.conftest import SAMPLE, SECTIONS, WEEKLY_NOV_23, ZONE
from tests.support.cli import Ran, newsletter, one_line, refused
from tests.support.editions import publish
from tests.support.sending import add_readers
from tests.support.settings_files import SECRET_ENV, settings_file

DAILY_NOV_23 = datetime(2026, 11, 23, 6, 30, tzinfo=ZONE)


def test_an_edition_named_by_id_is_sent_whatever_the_default_newsletter(
    make_runtime, tmp_path, monkeypatch
) -> None:
    """Only a daily is configured: `send --edition ID` and `--resend-uncertain ID` need no `-n`."""
    runtime = make_runtime(
        feeds=[{"url": str(SAMPLE / "site.xml")}],
        site={"categories": SECTIONS},
        timezone="Europe/Brussels",
        newsletters={"daily": {"days": "*", "at": "06:30", "first_window_days": 7}},
    )
    fetch_feeds(runtime.settings, runtime.factory)
    with unit_of_work(runtime.factory) as session:
        for i in range(3):
            reader = Subscriber(email=f"reader{i}@example.com", status="active", language="en")
            reader.newsletters = [SubscriberNewsletter(newsletter="daily")]
            session.add(reader)
    with unit_of_work(runtime.factory) as session:
        edition = open_edition(session, runtime.settings, "daily", DAILY_NOV_23)
        prepare(session, runtime.settings, edition, Composer(runtime.settings.templates_path()))
        edition_id = edition.id
    config = tmp_path / "daily.toml"
    config.write_text(
        f'database_url = "{runtime.settings.database_url}"\noutbox_dir = "{runtime.settings.outbox_dir}"\n'
        'timezone = "Europe/Brussels"\npublic_url = "https://news.example"\n'
        '[newsletters.daily]\ndays = "*"\nat = "06:30"\n'
    )
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789")
    at = ["--config", str(config), "send"]

    sent = newsletter(*at, "--edition", str(edition_id))
    assert sent.returncode == 0, sent.stderr
    assert "daily edition of 2026-11-23 06:30 CET" in sent.stdout
    assert len(list(runtime.settings.outbox_dir.glob("edition-*/*.eml"))) == 3

    with unit_of_work(runtime.factory) as session:  # as a dead sender's would be
        session.execute(update(Delivery).where(Delivery.edition_id == edition_id).values(status="uncertain"))
    again = newsletter(*at, "--resend-uncertain", str(edition_id))
    assert again.returncode == 0, again.stderr
    assert "3 uncertain deliveries" in again.stdout

    other = newsletter(*at, "--edition", str(edition_id), "-n", "weekly")
    assert other.returncode == 2 and "no newsletter 'weekly' (configured: daily)" in other.stderr
    unnamed = newsletter(*at, "--at", "2026-11-23T07:00")  # the next edition of which newsletter?
    assert unnamed.returncode == 2 and "-n/--newsletter: no newsletter 'weekly'" in unnamed.stderr


def rows(runtime) -> tuple[int, ...]:
    """Editions, variants and deliveries in the store."""
    with runtime.factory() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Edition, Variant, Delivery)
        )


def on(runtime, folder):
    """`newsletter ARGS --config FILE` on the runtime's store, in this process."""
    config = settings_file(runtime, folder)

    def run(*args: str) -> Ran:
        return newsletter(*args, "--config", str(config), env=SECRET_ENV, cwd=folder)

    return run


def test_a_second_edition_minutes_after_the_first_is_refused_unless_forced(newsroom, tmp_path) -> None:
    """The issue's case: the weekly went out, a fetch found one article, and `send --now` would
    have sent next week's edition with it. It is refused, saying when the last one went and when
    the next is due; `--force` sends it all the same."""
    cli = on(newsroom, tmp_path)
    first = cli("send", "--at", "2026-11-23T07:03")
    assert first.returncode == 0, first.stderr
    went = WEEKLY_NOV_23 + timedelta(minutes=3)
    with unit_of_work(
        newsroom.factory
    ) as session:  # the sender notes the wall clock; the test's is 23 November
        session.execute(update(Edition).values(started_at=went))
        politics = session.scalars(select(Category).where(Category.slug == "politics")).one()
        session.add(  # what the next fetch found
            Article(
                key="https://www.europeantimes.example/one-more",
                language="en",
                url="https://www.europeantimes.example/one-more",
                title="One more article",
                published_at=went + timedelta(minutes=2),
                categories=[politics],
            )
        )
    before = rows(newsroom)
    again = cli("send", "--now", "--at", "2026-11-23T07:10")
    refused(again, 1, "--force")
    assert (
        "the last weekly edition (of 2026-11-23 07:00 CET) went out at 2026-11-23 07:03 CET, less than its "
        "usual interval (7 days) ago; the next is due at 2026-11-30 07:00 CET and goes out then"
    ) in again.stderr
    assert rows(newsroom) == before
    rehearsed = cli("send", "--dry-run", "--now", "--at", "2026-11-23T07:10")  # says so, refuses nothing
    assert rehearsed.returncode == 0, rehearsed.stderr
    assert "warning: send --now refuses it: the last weekly edition" in one_line(rehearsed.stderr)
    assert rows(newsroom) == before
    forced = cli("send", "--now", "--force", "--at", "2026-11-23T07:10")
    assert forced.returncode == 0, forced.stderr
    assert "weekly edition of 2026-11-30 07:00 CET" in forced.stdout
    assert rows(newsroom)[0] == before[0] + 1


def test_a_dry_run_before_the_slot_shows_when_it_would_go_and_writes_nothing(make_runtime, tmp_path) -> None:
    runtime = make_runtime(
        feeds=[{"url": str(SAMPLE / "site.xml")}], site={"categories": SECTIONS}, timezone="Europe/Brussels"
    )
    fetch_feeds(runtime.settings, runtime.factory)
    add_readers(runtime, 3)  # alike: one variant
    cli = on(runtime, tmp_path)
    early = cli("send", "--dry-run", "--at", "2026-11-22T12:00")  # the 23 November slot is ahead
    assert early.returncode == 0, early.stderr
    said = one_line(early.stdout)
    assert (
        "weekly edition of 2026-11-23 07:00 CET, window 2026-11-16 07:00 CET to 2026-11-23 07:00 CET" in said
    )
    assert "it would go at 2026-11-23 07:00 CET, its slot (or now, with --now)" in said
    assert "3 to send in 1 variant; 0 skipped (nothing new), 0 suppressed" in said
    assert rows(runtime) == (0, 0, 0)
    now = cli("send", "--dry-run", "--now", "--at", "2026-11-22T12:00")
    assert now.returncode == 0, now.stderr
    said = one_line(now.stdout)
    # closed now, as the send would; the first edition looks back its 7 days from then
    assert "window 2026-11-15 12:00 CET to 2026-11-22 12:00 CET" in said
    assert (
        "it would go now, with --now, ahead of its slot: this is the weekly edition of 2026-11-23 07:00 "
        "CET, none goes then; the next goes at 2026-11-30 07:00 CET"
    ) in said
    assert rows(runtime) == (0, 0, 0)
    due = cli("send", "--dry-run", "--at", "2026-11-23T07:10")
    assert due.returncode == 0 and "it would go now" in due.stdout and "ahead" not in due.stdout
    assert rows(runtime) == (0, 0, 0)


def test_send_now_names_the_window_it_uses_and_a_dry_run_after_it_shows_its_plan(newsroom, tmp_path) -> None:
    """The operator's walk: the first edition sent with --now on Sunday at noon. Its header names
    the window the edition really has (closed now, looking back its 7 days), as `editions --json`
    stores it, the slot there with its offset. A dry run right after shows the next edition's plan,
    with the send's refusal (no feed read since its window opened) as a warning."""
    cli = on(newsroom, tmp_path)
    sent = cli("send", "--now", "--at", "2026-11-22T12:00")
    assert sent.returncode == 0, sent.stderr
    assert (
        "weekly edition of 2026-11-23 07:00 CET, window 2026-11-15 12:00 CET to 2026-11-22 12:00 CET "
        "(edition 1, ready)"
    ) in one_line(sent.stdout)
    # what going early spends, said where the operator looks: that slot's edition
    assert (
        "ahead of its slot: this is the weekly edition of 2026-11-23 07:00 CET, none goes then; the "
        "next goes at 2026-11-30 07:00 CET"
    ) in one_line(sent.stdout)
    listed = cli("editions", "--json")
    assert listed.returncode == 0, listed.stderr
    (edition,) = json.loads(listed.stdout)
    assert edition["slot"] == "2026-11-23T07:00:00+01:00"
    assert (edition["window_start"], edition["window_end"]) == (
        "2026-11-15T12:00:00+01:00",
        "2026-11-22T12:00:00+01:00",
    )
    with unit_of_work(newsroom.factory) as session:  # no fetch since it went; an article after it
        session.execute(update(Feed).values(last_ok_at=datetime(2026, 11, 22, 11, 0, tzinfo=ZONE)))
    publish(newsroom, datetime(2026, 11, 22, 12, 5, tzinfo=ZONE), "Later news")
    before = rows(newsroom)
    rehearsed = cli("send", "--dry-run", "--at", "2026-11-22T12:10")
    assert rehearsed.returncode == 0, rehearsed.stderr
    said = one_line(rehearsed.stdout)
    assert (
        "weekly edition of 2026-11-30 07:00 CET, window 2026-11-22 12:00 CET to 2026-11-30 07:00 CET" in said
    )
    assert "it would go at 2026-11-30 07:00 CET" in said and "5 to send in 5 variants" in said
    assert "warning: send refuses it: no feed was read since the edition's window opened" in one_line(
        rehearsed.stderr
    )
    assert rows(newsroom) == before


def test_a_dry_run_of_an_empty_edition_says_it_would_not_be_prepared(make_runtime, tmp_path) -> None:
    """Before its slot, nothing stored of its window: a dry run says what would happen, and, for a
    newsletter's first edition only, that `send --now` would close the window now."""
    runtime = make_runtime(
        feeds=[{"url": str(SAMPLE / "site.xml")}], site={"categories": SECTIONS}, timezone="Europe/Brussels"
    )
    fetch_feeds(runtime.settings, runtime.factory)
    add_readers(runtime, 3)
    cli = on(runtime, tmp_path)
    first = cli("send", "--dry-run", "--at", "2026-12-12T12:00")  # the sample is older than 7 December
    assert first.returncode == 1
    said = one_line(first.stderr)
    assert "none in the window of the weekly edition of 2026-12-14 07:00 CET" in said
    assert "it would not be prepared, so it can go out once a fetch stores news" in said
    assert "`send --now` would close its window now" in said
    assert "it was not prepared" not in said
    sent = cli("send", "--now", "--at", "2026-11-22T12:00")
    assert sent.returncode == 0, sent.stderr
    later = cli("send", "--dry-run", "--at", "2026-12-12T12:00")  # not the first: --now would not help
    assert later.returncode == 1
    said = one_line(later.stderr)
    assert "it would not be prepared" in said and "send --now" not in said
    assert rows(runtime)[0] == 1


def test_a_dry_run_lists_a_hold_and_a_missing_approval_as_warnings(newsroom, tmp_path) -> None:
    cli = on(newsroom, tmp_path)
    held = cli("edition", "hold", "--at", "2026-11-22T12:00")
    assert held.returncode == 0, held.stderr
    rehearsed = cli("send", "--dry-run", "--at", "2026-11-23T07:10")
    assert rehearsed.returncode == 0, rehearsed.stderr
    assert "it would go now" in rehearsed.stdout
    assert "warning: send refuses it: the weekly edition of 2026-11-23 07:00 CET is held by " in one_line(
        rehearsed.stderr
    )
    refused(cli("send", "--at", "2026-11-23T07:10"), 1, "is held by")
    assert cli("edition", "release", "--at", "2026-11-22T12:00").returncode == 0
    config = settings_file(newsroom, tmp_path, '[newsletters.weekly]\napproval = "required"\n')
    waiting = newsletter(
        "send", "--dry-run", "--at", "2026-11-23T07:10", "--config", str(config), env=SECRET_ENV
    )
    assert waiting.returncode == 0, waiting.stderr
    assert "it would go now" in waiting.stdout
    assert (
        "warning: send refuses it: the weekly edition of 2026-11-23 07:00 CET is waiting for an editor's "
        "approval: it goes when released (`newsletter edition release`) or approved"
    ) in one_line(waiting.stderr)
