"""`newsletter send` in process: which newsletter an edition is sent as."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from newsletter.editions.compose import Composer
from newsletter.editions.edition import open_edition
from newsletter.editions.prepare import prepare
from newsletter.ingest.run import fetch_feeds
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Subscriber, SubscriberNewsletter
from tests.conftest import SAMPLE, SECTIONS, ZONE
from tests.support.cli import newsletter

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
