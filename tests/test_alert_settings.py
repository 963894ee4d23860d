"""Breaking-news alerts, part one (issue #24, point 2): an alert newsletter in the settings, and
readers opting in and out of it by every path a digest has (sign-up, preferences, one-click,
CSV, `subscribers add --newsletters`), never put on it by default."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from newsletter.errors import NewsletterError
from newsletter.services import readers, subscribers
from newsletter.services.readers import Change, SignUp
from newsletter.settings import Settings
from newsletter.store.models import Subscriber
from newsletter.subscribers.tokens import sign
from tests.conftest import SAMPLE, SECTIONS
from tests.support.cli import newsletter
from tests.support.settings_files import SECRET_ENV, settings_file

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NEWSLETTERS = {
    "weekly": {},
    "breaking": {"kind": "alert", "max_per_day": 3, "quiet_hours": "22:00-07:00"},
}


def test_an_alert_newsletter_takes_its_options_and_refuses_a_digests() -> None:
    settings = Settings(newsletters=NEWSLETTERS)
    assert settings.digests() == ["weekly"] and settings.alerts() == ["breaking"]
    assert settings.newsletter("breaking").title == "Breaking news"
    assert Settings(**settings.model_dump()).alerts() == ["breaking"]  # a dump reloads
    with pytest.raises(ValidationError, match="days, per_category are for digests only"):
        Settings(newsletters={"b": {"kind": "alert", "days": "tue", "per_category": 2}})
    with pytest.raises(ValidationError, match='for alert newsletters only: add kind = "alert"'):
        Settings(newsletters={"weekly": {"quiet_hours": "22:00-07:00"}})
    for bad in ("22-07", "22:00-22:00", "24:00-07:00"):
        with pytest.raises(ValidationError, match="quiet_hours"):
            Settings(newsletters={"b": {"kind": "alert", "quiet_hours": bad}})
    with pytest.raises(ValidationError, match=r"translations\.de\.subject is for digests only"):
        Settings(newsletters={"b": {"kind": "alert", "translations": {"de": {"subject": "x"}}}})
    alert = Settings(newsletters={"b": {"kind": "alert", "translations": {"de": {"title": "Eilmeldung"}}}})
    assert alert.newsletter("b").in_language("de").title == "Eilmeldung"
    with pytest.raises(ValidationError, match="kind"):
        Settings(newsletters={"b": {"kind": "flash"}})


def test_a_settings_file_without_kind_keeps_working(tmp_path) -> None:
    from newsletter.settings import load_settings

    path = tmp_path / "n.toml"
    path.write_text('[newsletters.weekly]\ndays = "mon"\nat = "07:00"\n')
    settings = load_settings(path)
    assert settings.newsletter("weekly").kind == "digest" and settings.alerts() == []


@pytest.fixture
def site(make_runtime):
    return make_runtime(
        feeds=[{"url": str(SAMPLE / "site.xml")}],
        site={"categories": SECTIONS},
        timezone="Europe/Brussels",
        newsletters=NEWSLETTERS,
    )


def newsletters_of(runtime, address: str) -> list[str]:
    row = next(r for r in subscribers.readers(runtime) if r.email == address)
    return row.newsletters


@pytest.mark.both_databases
def test_readers_opt_in_and_out_of_alerts_by_every_path(site, tmp_path) -> None:
    # Not by default: a reader added or imported without newsletters takes the digests only.
    subscribers.add(site, "ann@example.org", NOW)
    assert newsletters_of(site, "ann@example.org") == ["weekly"]
    # Sign-up.
    assert readers.sign_up(site, SignUp("bob@example.org", ["breaking"]), NOW) == "confirm"
    # Preferences.
    with site.factory() as session:
        ann = session.scalars(select(Subscriber.id).where(Subscriber.email == "ann@example.org")).one()
    token = sign(site.settings.signing_key(), "preferences", ann)
    readers.change(site, token, Change(["weekly", "breaking"], [], "en"), NOW)
    assert newsletters_of(site, "ann@example.org") == ["breaking", "weekly"]
    # One-click, for the alerts only.
    left = readers.unsubscribe(
        site, sign(site.settings.signing_key(), "unsubscribe", ann, scope="breaking"), "one-click", NOW
    )
    assert left.newsletter == "breaking" and newsletters_of(site, "ann@example.org") == ["weekly"]
    # CSV.
    csv = tmp_path / "readers.csv"
    csv.write_text("email,newsletters\ncai@example.org,breaking;weekly\ndee@example.org,\n")
    report = subscribers.import_file(site, csv, confirmed=True)
    assert not report.rejected
    assert newsletters_of(site, "cai@example.org") == ["breaking", "weekly"]
    assert newsletters_of(site, "dee@example.org") == ["weekly"]
    with pytest.raises(NewsletterError, match="no newsletter 'braking'"):
        subscribers.add(site, "eve@example.org", NOW, newsletters=["braking"])


def test_subscribers_add_names_the_alert_newsletter(newsroom, tmp_path) -> None:
    extra = '[newsletters.weekly]\n[newsletters.breaking]\nkind = "alert"\n'
    config = settings_file(newsroom, tmp_path, extra)
    added = newsletter(
        "subscribers",
        "add",
        "fay@example.org",
        "--newsletters",
        "breaking",
        "--config",
        str(config),
        env=SECRET_ENV,
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    shown = newsletter("subscribers", "list", "--json", "--config", str(config), env=SECRET_ENV, cwd=tmp_path)
    [fay] = [r for r in json.loads(shown.stdout) if r["email"] == "fay@example.org"]
    assert fay["newsletters"] == ["breaking"]


@pytest.mark.parametrize(
    "command",
    [["preview"], ["check"], ["test-send", "me@example.org"], ["edition", "hold"], ["edition", "picks"]],
)
def test_the_next_edition_s_commands_refuse_an_alert_newsletter_and_say_what_to_use(
    newsroom, tmp_path, command: list[str]
) -> None:
    """An alert newsletter has no next edition: previewing, checking or holding one would show
    a digest it never sends."""
    extra = '[newsletters.weekly]\n[newsletters.breaking]\nkind = "alert"\n'
    config = settings_file(newsroom, tmp_path, extra)
    done = newsletter(*command, "-n", "breaking", "--config", str(config), env=SECRET_ENV, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert "breaking is an alert newsletter" in done.stderr and "--dry-run" in done.stderr
    assert "Traceback" not in done.stderr
