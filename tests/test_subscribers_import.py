"""`subscribers import` as a new operator meets it: a wrong setting stops it before any row is
written, a cell lists with commas too, an empty newsletters cell means what the site sends, and
the summary names the settings file and the store it used."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.services import subscribers
from newsletter.store.db import unit_of_work
from newsletter.store.models import Subscriber
from newsletter.subscribers.bulk import import_csv, parse_row
from tests.support.cli import Ran, newsletter, one_line, refused
from tests.support.clock import NOW
from tests.support.settings_files import SECRET_ENV, settings_file

HEADER = "email,name,language,categories,newsletters,status\n"
# The operator's file: Dan's newsletters listed with a comma, as `subscribers add` takes them.
READERS = (
    HEADER
    + "ann@example.org,Ann,en,,weekly,\n"
    + 'dan@example.org,Dan,en,"health, europe","weekly,daily",\n'
    + "eve@example.org,Eve,en,,,\n"
)


def taken(runtime, address: str) -> list[str] | None:
    """The newsletters a reader takes, None when the store has no such reader."""
    with runtime.factory() as session:
        reader = session.scalars(select(Subscriber).where(Subscriber.email == address)).one_or_none()
        return None if reader is None else sorted(n.newsletter for n in reader.newsletters)


def command(runtime, folder: Path, env: dict[str, str], extra: str = ""):
    config = settings_file(runtime, folder, extra)

    def run(*args: str, input: str | None = None) -> Ran:
        return newsletter(*args, "--config", str(config), env=env, cwd=folder, input=input)

    return run


def test_a_wrong_setting_stops_send_confirmation_before_any_row_is_written(newsroom, tmp_path) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(READERS + "not an address,Bad,en,,,\n")
    keyless = command(newsroom, tmp_path, {})("subscribers", "import", str(path), "--send-confirmation")
    refused(keyless, 2, "bad setting secret_key: NEWSLETTER_SECRET_KEY is not set")
    assert keyless.stdout == "" and taken(newsroom, "ann@example.org") is None
    assert not (tmp_path / "readers.rejected.csv").exists()
    # A provider setting that can be checked without sending: an SMTP CA file that holds no certificate.
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    smtp = 'provider = "smtp"\nsmtp_ca_file = "ca.pem"\n'
    bad_ca = command(newsroom, tmp_path, SECRET_ENV, smtp)(
        "subscribers", "import", str(path), "--send-confirmation"
    )
    refused(bad_ca, 2, "bad setting smtp_ca_file: cannot be read as certificates")
    assert taken(newsroom, "ann@example.org") is None
    # Without --send-confirmation nothing of the kind is needed: the rows go in.
    plain = command(newsroom, tmp_path, {})("subscribers", "import", str(path))
    assert plain.returncode == 1 and "3 added" in plain.stdout, plain.stderr


def test_a_cell_lists_with_commas_semicolons_or_bars(newsroom, tmp_path) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(READERS + "fay@example.org,Fay,en,health|europe,daily;weekly,\n")
    result = command(newsroom, tmp_path, SECRET_ENV)("subscribers", "import", str(path))
    assert result.returncode == 0 and "4 added" in result.stdout, (result.stdout, result.stderr)
    assert taken(newsroom, "dan@example.org") == taken(newsroom, "fay@example.org") == ["daily", "weekly"]
    with newsroom.factory() as session:
        dan = session.scalars(select(Subscriber).where(Subscriber.email == "dan@example.org")).one()
        assert sorted(c.slug for c in dan.categories) == ["europe", "health"]


def test_an_unknown_item_names_the_separators(newsroom) -> None:
    row = {"email": "dan@example.org", "newsletters": "weekly daily"}  # a space is no separator
    with pytest.raises(ValueError) as raised:
        parse_row(row, {"health": "Health"}, newsroom.settings)
    assert str(raised.value) == (
        "unknown newsletter in column newsletters (configured: weekly, daily; separate several with , ; or |)"
    )
    with pytest.raises(ValueError, match=r"known: health; separate several with , ; or \|\)$"):
        parse_row(
            {"email": "dan@example.org", "categories": "health europe"},
            {"health": "Health"},
            newsroom.settings,
        )


def test_a_section_name_holding_a_separator_is_told(newsroom) -> None:
    """A section's name may hold a separator ('Health, Science'): its slug, as listed, never does.
    (A newsletter's name never does: the settings refuse it, tests/test_settings.py.)"""
    sections = {"health-science": "Health, Science"}
    with pytest.raises(ValueError, match="a section whose name holds one is named as listed here"):
        parse_row({"email": "dan@example.org", "categories": "Health, Science"}, sections, newsroom.settings)
    row = parse_row({"email": "dan@example.org", "categories": "health-science"}, sections, newsroom.settings)
    assert row.categories == ("health-science",)


def test_an_empty_newsletters_cell_gives_every_newsletter_the_site_sends(newsroom, tmp_path) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(READERS)
    run = command(newsroom, tmp_path, SECRET_ENV)
    assert run("subscribers", "import", str(path)).returncode == 0
    assert taken(newsroom, "eve@example.org") == ["daily", "weekly"]
    # A known reader's newsletters stay as they are when the cell is empty.
    path.write_text(HEADER + "ann@example.org,Ann Again,en,,,\n")
    again = run("subscribers", "import", str(path))
    assert again.returncode == 0 and "1 updated" in again.stdout, again.stdout
    assert taken(newsroom, "ann@example.org") == ["weekly"]


def test_the_operator_names_what_an_empty_cell_means(newsroom, tmp_path) -> None:
    """A list that opted in to the weekly elsewhere: `--newsletters weekly` gives its new
    readers the weekly alone; a name the site does not send is refused before anything is read."""
    path = tmp_path / "readers.csv"
    path.write_text(HEADER + "eve@example.org,Eve,en,,,\nfinn@example.org,Finn,en,,daily,\n")
    run = command(newsroom, tmp_path, SECRET_ENV)
    wrong = run("subscribers", "import", str(path), "--newsletters", "weekley")
    refused(wrong, 2, "--newsletters: no newsletter 'weekley' (configured: weekly, daily)")
    assert taken(newsroom, "eve@example.org") is None
    assert run("subscribers", "import", str(path), "--newsletters", "weekly").returncode == 0
    assert taken(newsroom, "eve@example.org") == ["weekly"] and taken(newsroom, "finn@example.org") == [
        "daily"
    ]


def test_on_a_site_sending_only_a_daily_an_empty_cell_means_the_daily(make_runtime, tmp_path) -> None:
    runtime = make_runtime(newsletters={"daily": {"days": "*", "at": "06:30"}})
    path = tmp_path / "readers.csv"
    path.write_text(HEADER + "eve@example.org,Eve,en,,,\nann@example.org,Ann,en,,weekly,\n")
    with unit_of_work(runtime.factory) as session:
        report = import_csv(session, runtime.settings, path)
    assert report.added == 1 and taken(runtime, "eve@example.org") == ["daily"]
    assert [reason for _line, _raw, reason in report.rejected] == [
        "unknown newsletter in column newsletters (configured: daily; separate several with , ; or |)"
    ]


def test_subscribers_add_without_newsletters_follows_the_same_rule(make_runtime) -> None:
    runtime = make_runtime(newsletters={"daily": {"days": "*", "at": "06:30"}})
    assert subscribers.add(runtime, "eve@example.org", NOW).newsletters == ["daily"]
    both = make_runtime()  # weekly and daily, on the same store: Eve, known, keeps her daily
    assert subscribers.add(both, "eve@example.org", NOW).newsletters == ["daily"]
    assert subscribers.add(both, "ann@example.org", NOW, newsletters=["weekly"]).newsletters == ["weekly"]
    assert subscribers.add(both, "ann@example.org", NOW, name="Ann").newsletters == ["weekly"]  # kept
    assert subscribers.add(both, "fay@example.org", NOW).newsletters == ["daily", "weekly"]


def test_the_summary_names_the_settings_file_and_the_store(newsroom, tmp_path) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(READERS)
    result = command(newsroom, tmp_path, SECRET_ENV)("subscribers", "import", str(path))
    lines = result.stdout.splitlines()
    assert lines[0] == f"settings: {tmp_path / 'n.toml'}"
    assert lines[1] == f"store: {newsroom.settings.database_label()}"
    assert lines[2].startswith(f"{path}: 3 added")


def test_standard_input_is_the_list_not_the_file(newsroom, tmp_path) -> None:
    result = command(newsroom, tmp_path, SECRET_ENV)("subscribers", "import", "-", input=READERS)
    told = one_line(result.stdout)
    assert result.returncode == 0 and "standard input: 3 added" in told, result.stderr
    assert "Import the list again with --send-confirmation" in told and "the file" not in told
