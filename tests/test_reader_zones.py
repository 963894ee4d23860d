"""A reader's time zone (issue #25, point 1): an IANA name checked against the system's zones,
set on the command line, by an import's `timezone` column, at sign-up and on the preferences
page, exported again and shown; none kept means the site's zone."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from newsletter.errors import InputError
from newsletter.services import readers, subscribers
from newsletter.services.readers import Change, SignUp
from newsletter.store.models import Subscriber
from newsletter.subscribers.links import Links
from newsletter.subscribers.zones import reader_zone, zone_choices, zone_of
from tests.support.cli import refused
from tests.support.web import MARC, Forms, Site, path_of, serve

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def zone(runtime, address: str) -> str | None:
    with runtime.factory() as session:
        return session.scalars(select(Subscriber.timezone).where(Subscriber.email == address)).one()


def test_a_zone_is_an_iana_name_in_its_own_spelling() -> None:
    assert reader_zone("europe/lisbon") == "Europe/Lisbon"
    assert reader_zone(" America/New York ") == "America/New_York"
    assert reader_zone("") is None and reader_zone(None) is None
    for hostile in ("Mars/Olympus", "../../etc/passwd", "/usr/share/zoneinfo/UTC", "Europe/" + "x" * 10_000):
        with pytest.raises(ValueError) as refusal:
            reader_zone(hostile)
        assert hostile not in str(refusal.value)  # the value is never echoed
    brussels = ZoneInfo("Europe/Brussels")
    assert zone_of(None, brussels) is brussels and zone_of("Gone/Zone", brussels) is brussels
    assert zone_of("Europe/Lisbon", brussels).key == "Europe/Lisbon"


def test_the_list_puts_the_sites_zone_first_and_groups_by_region() -> None:
    groups = zone_choices("Europe/Brussels")
    assert groups[0] == ("Europe/Brussels", ("Europe/Brussels",)) and groups[1] == ("UTC", ("UTC",))
    regions = dict(groups[2:])
    assert "Europe/Helsinki" in regions["Europe"] and "America/New_York" in regions["America"]
    offered = [name for _region, names in groups[2:] for name in names]
    assert offered == sorted(offered) and not [n for n in offered if n.startswith(("US/", "Etc/"))]


@pytest.mark.both_databases
def test_added_changed_and_reset_on_the_service(newsroom) -> None:
    row = subscribers.add(newsroom, "zoned@example.org", NOW, timezone="asia/tokyo")
    assert row.timezone == "Asia/Tokyo" == zone(newsroom, "zoned@example.org")
    subscribers.add(newsroom, "zoned@example.org", NOW)  # none given: kept
    assert zone(newsroom, "zoned@example.org") == "Asia/Tokyo"
    with pytest.raises(InputError) as refusal:
        subscribers.add(newsroom, "zoned@example.org", NOW, timezone="Nowhere/At_All")
    assert refusal.value.name == "--timezone"
    assert subscribers.add(newsroom, "zoned@example.org", NOW, timezone="").timezone is None
    assert subscribers.show(newsroom, "zoned@example.org").row.timezone is None


@pytest.mark.both_databases
def test_the_timezone_column_imports_exports_and_refuses_alone(newsroom, tmp_path: Path) -> None:
    source = tmp_path / "readers.csv"
    source.write_text(
        "email,name,timezone\n"
        "lisbon@example.org,Lis,europe/lisbon\n"
        "nowhere@example.org,No,Atlantis/Capital\n"
        "site@example.org,Site,\n"
    )
    report = subscribers.import_file(newsroom, source, confirmed=True)
    assert report.added == 2 and [line for line, _raw, _why in report.rejected] == [3]
    assert "column timezone" in report.rejected[0][2] and "Atlantis" not in report.rejected[0][2]
    assert (
        zone(newsroom, "lisbon@example.org") == "Europe/Lisbon" and zone(newsroom, "site@example.org") is None
    )
    # A file without the column, or with the cell empty, keeps a known reader's zone.
    source.write_text("email,name\nlisbon@example.org,Lis\n")
    assert subscribers.import_file(newsroom, source, confirmed=True).unchanged == 1
    assert zone(newsroom, "lisbon@example.org") == "Europe/Lisbon"
    source.write_text("email,timezone\nlisbon@example.org,Europe/Helsinki\n")
    assert subscribers.import_file(newsroom, source, confirmed=True).updated == 1
    exported = tmp_path / "export.csv"
    subscribers.export_file(newsroom, exported)
    with exported.open(newline="") as handle:
        rows = {row["email"]: row for row in csv.DictReader(handle)}
    assert (
        rows["lisbon@example.org"]["timezone"] == "Europe/Helsinki"
        and rows["site@example.org"]["timezone"] == ""
    )
    before = subscribers.import_file(newsroom, exported, confirmed=True)  # the export imports unchanged
    assert before.updated == 0 and not before.rejected


@pytest.mark.both_databases
def test_a_sign_up_keeps_its_zone_until_confirmed_and_the_preferences_change_it(newsroom) -> None:
    with pytest.raises(InputError):
        readers.sign_up(newsroom, SignUp("tz@example.org", ["weekly"], timezone="Moon/Base"), NOW)
    assert readers.sign_up(newsroom, SignUp("tz@example.org", ["weekly"], timezone="America/New_York"), NOW)
    with newsroom.factory() as session:
        subscriber = session.scalars(select(Subscriber).where(Subscriber.email == "tz@example.org")).one()
    links = Links.from_settings(newsroom.settings)
    assert zone(newsroom, "tz@example.org") == "America/New_York"
    view = readers.preferences(newsroom, path_of(links.preferences(subscriber.id)).rsplit("/", 1)[1])
    assert view.timezone == "America/New_York"
    preferences = path_of(links.preferences(subscriber.id)).rsplit("/", 1)[1]
    wanted = Change(["weekly"], [], "en", timezone="Europe/Helsinki")
    changed, _asked = readers.change(newsroom, preferences, wanted, NOW)
    assert changed.timezone == "Europe/Helsinki"
    kept, _asked = readers.change(newsroom, preferences, Change(["weekly"], [], "en"), NOW)  # an old form
    assert kept.timezone == "Europe/Helsinki"
    reset, _asked = readers.change(newsroom, preferences, Change(["weekly"], [], "en", timezone=""), NOW)
    assert reset.timezone is None


@pytest.fixture
def site(newsroom, tmp_path) -> Iterator[Site]:
    yield from serve(newsroom, tmp_path)


def test_the_preferences_page_offers_the_sites_zone_first_and_saves_a_choice(site: Site) -> None:
    marc = site.subscriber(MARC).id
    preferences = path_of(site.links().preferences(marc))
    with site.client() as browser:
        page = browser.get(preferences)
        site_zone = site.runtime.settings.timezone
        select_html = re.search(r'<select id="timezone".*?</select>', page.text, re.S).group(0)
        first = re.search(r'<optgroup label="([^"]+)">\s*<option value=""( selected)?>([^<]+)<', select_html)
        assert first and first.group(2) and first.group(3) == site_zone
        assert '<optgroup label="Europe">' in select_html and 'value="Europe/Lisbon"' in select_html
        csrf = Forms(page.text).form(preferences)["csrf"]
        form = {"csrf": csrf, "newsletters": "weekly", "language": "en"}
        bad = browser.post(preferences, data={**form, "timezone": "<script>x</script>"})
        assert bad.status_code == 400 and "Choose a time zone from the list." in bad.text
        assert "<script>x</script>" not in bad.text
        saved = browser.post(preferences, data={**form, "timezone": "Europe/Lisbon"})
        assert saved.status_code == 200 and 'value="Europe/Lisbon" selected' in saved.text
    assert site.subscriber(MARC).timezone == "Europe/Lisbon"


def test_a_zone_is_set_and_shown_on_the_command_line(site: Site) -> None:
    added = site.cli("subscribers", "add", "cli.zone@example.org", "--timezone", "europe/helsinki")
    assert added.returncode == 0, added.stderr
    assert "time zone Europe/Helsinki" in added.stdout
    shown = site.cli("subscribers", "show", "cli.zone@example.org")
    assert "time zone: Europe/Helsinki" in shown.stdout
    refused(site.cli("subscribers", "add", "cli.zone@example.org", "--timezone", "Nowhere"), 2, "--timezone")
