"""CSV import and export: bad rows are reported and kept aside, consent is never overridden."""

from __future__ import annotations

import csv

from sqlalchemy import select

from newsletter.store.db import unit_of_work
from newsletter.store.models import Subscriber
from newsletter.subscribers.bulk import export_csv, import_csv
from tests.test_settings import run_cli

ROWS = """\ufeffEmail,Name,Language,Categories,Newsletters,Status
good@example.com,Good Reader,en,Politics;health,weekly,active
  Mixed@EXAMPLE.COM ,Mixed Case,de,,weekly|daily,
not-an-address,Bad,en,Politics,weekly,active
unknown@example.com,Unknown,en,Gardening,weekly,active
wrongnews@example.com,Wrong,en,Politics,monthly,active
badlang@example.com,Lang,english,Politics,weekly,active
good@example.com,Again,en,Politics,weekly,active
tom.obrien@example.ie,Tom,en,Health,weekly,active
"""


def test_import_reports_bad_rows_and_loses_nothing(newsroom, tmp_path) -> None:
    with unit_of_work(newsroom.factory) as session:
        tom = session.scalars(select(Subscriber).where(Subscriber.email == "tom.obrien@example.ie")).one()
        tom.status = "unsubscribed"
    path = tmp_path / "readers.csv"
    path.write_text(ROWS, encoding="utf-8")
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path)
    assert (report.added, report.updated, report.kept) == (2, 0, 1)
    reasons = {line: reason for line, _raw, reason in report.rejected}
    assert reasons == {
        4: "not an email address: 'not-an-address'",
        5: reasons[5],
        6: "unknown newsletter 'monthly' (configured: weekly, daily)",
        7: "language must be a code like 'en' or 'de', not 'english'",
        8: "the same address appears earlier in the file",
    }
    assert reasons[5].startswith("unknown category 'Gardening' (known: ")
    with open(report.rejects_file, newline="", encoding="utf-8") as handle:
        rejected = list(csv.DictReader(handle))
    assert [r["email"] for r in rejected] == [
        "not-an-address",
        "unknown@example.com",
        "wrongnews@example.com",
        "badlang@example.com",
        "good@example.com",
    ]
    assert all(r["error"] for r in rejected) and rejected[0]["line"] == "4"
    with newsroom.factory() as session:
        good = session.scalars(select(Subscriber).where(Subscriber.email == "good@example.com")).one()
        mixed = session.scalars(select(Subscriber).where(Subscriber.email == "mixed@example.com")).one()
        tom = session.scalars(select(Subscriber).where(Subscriber.email == "tom.obrien@example.ie")).one()
    assert [c.slug for c in good.categories] == ["health", "politics"] and good.status == "active"
    assert mixed.language == "de" and {n.newsletter for n in mixed.newsletters} == {"weekly", "daily"}
    assert tom.status == "unsubscribed"  # an import never overrides a withdrawn consent


def test_export_round_trips(newsroom, tmp_path) -> None:
    out = tmp_path / "export.csv"
    with newsroom.factory() as session:
        assert export_csv(session, out) == 12
    with unit_of_work(newsroom.factory) as session:
        again = import_csv(session, newsroom.settings, out)
    assert again.rejected == [] and again.added == 0 and again.updated + again.kept == 12


def test_import_command_exit_status(newsroom, tmp_path) -> None:
    config = tmp_path / "n.toml"
    config.write_text(f'database_url = "{newsroom.settings.database_url}"\n')
    path = tmp_path / "bad.csv"
    path.write_text("email\nnot-an-address\nfine@example.com\n")
    result = run_cli("subscribers", "import", str(path), env={"NEWSLETTER_CONFIG": str(config)}, cwd=tmp_path)
    assert (
        result.returncode == 1
        and "1 added" in result.stdout
        and "line 2: not an email address" in result.stderr
    )
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("reader@example.com\n")
    result = run_cli(
        "subscribers", "import", str(headerless), env={"NEWSLETTER_CONFIG": str(config)}, cwd=tmp_path
    )
    assert (
        result.returncode == 1
        and "must name the columns" in result.stderr
        and "Traceback" not in result.stderr
    )
