"""CSV import and export: bad rows are reported and kept aside, consent is never overridden. The
import's and export's own SQL runs on both databases; checking a row's cells and the command on SQLite."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from newsletter.errors import NewsletterError
from newsletter.services.subscribers import import_file
from newsletter.store.db import unit_of_work
from newsletter.store.models import Category, Subscriber, Suppression
from newsletter.store.statuses import SuppressionReason
from newsletter.subscribers.bulk import export_csv, from_cell, import_csv, to_cell
from tests.conftest import ROOT
from tests.support.cli import newsletter
from tests.support.clock import NOW

HEADER = "email,name,language,categories,newsletters,status\n"
LANGUAGE = "language must be a known language code like 'en' or 'de'"

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


def emails(runtime) -> list[str]:
    with runtime.factory() as session:
        return list(session.scalars(select(Subscriber.email).order_by(Subscriber.email)))


def reader(runtime, email: str) -> Subscriber:
    with runtime.factory() as session:
        return session.scalars(select(Subscriber).where(Subscriber.email == email)).one()


@pytest.mark.both_databases
def test_import_reports_bad_rows_and_loses_nothing(newsroom, tmp_path) -> None:
    with unit_of_work(newsroom.factory) as session:
        tom = session.scalars(select(Subscriber).where(Subscriber.email == "tom.obrien@example.ie")).one()
        tom.status = "unsubscribed"
    path = tmp_path / "readers.csv"
    path.write_text(ROWS, encoding="utf-8")
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path, confirmed=True)
    assert (report.added, report.updated, report.kept) == (2, 0, 1)
    reasons = {line: reason for line, _raw, reason in report.rejected}
    assert reasons == {
        4: "column email is not an email address: An email address must have an @-sign.",
        5: reasons[5],
        6: "unknown newsletter in column newsletters (configured: weekly, daily; separate several with , ; or |)",
        7: LANGUAGE,
        8: "the same address appears earlier in the file",
    }
    assert reasons[5].startswith("unknown category in column categories (known: business, culture, ")
    with open(report.rejects_file, newline="", encoding="utf-8") as handle:
        rejected = list(csv.DictReader(handle))
    assert [r["email"] for r in rejected] == [
        "not-an-address",
        "unknown@example.com",
        "wrongnews@example.com",
        "badlang@example.com",
        "good@example.com",
    ]
    assert rejected[1]["categories"] == "Gardening"  # the file keeps the row; the reason does not
    assert all(r["error"] for r in rejected) and rejected[0]["line"] == "4"
    good, mixed = reader(newsroom, "good@example.com"), reader(newsroom, "mixed@example.com")
    assert [c.slug for c in good.categories] == ["health", "politics"] and good.status == "active"
    assert mixed.language == "de" and {n.newsletter for n in mixed.newsletters} == {"weekly", "daily"}
    assert mixed.status == "active"  # no status given, and the import says they confirmed
    assert reader(newsroom, "tom.obrien@example.ie").status == "unsubscribed"  # consent withdrawn


def test_addresses_smtp_would_reduce_to_an_unsubscribed_reader_are_refused(newsroom, tmp_path) -> None:
    """`RCPT TO` for `re:tom.obrien@example.ie` would reach Tom, who unsubscribed."""
    with unit_of_work(newsroom.factory) as session:
        tom = session.scalars(select(Subscriber).where(Subscriber.email == "tom.obrien@example.ie")).one()
        tom.status = "unsubscribed"
    tricks = [
        "re:tom.obrien@example.ie",
        "fwd:tom.obrien@example.ie",
        "(x)tom.obrien@example.ie",
        "mailto:tom.obrien@example.ie",
        '"Tom" <tom.obrien@example.ie>',
        '"tom.obrien"@example.ie',
        "tom.obrien@example.ie.",
    ]
    path = tmp_path / "tricks.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["email", "name"], *[[trick, "Tom"] for trick in tricks]])
        csv.writer(handle).writerow([" TOM.OBRIEN@EXAMPLE.IE ", "Tom"])
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path)
    assert (report.added, report.updated, report.kept) == (0, 0, 1)
    assert [line for line, _raw, _reason in report.rejected] == list(range(2, 2 + len(tricks)))
    assert all(
        reason.startswith("column email is not an email address: ") and "obrien" not in reason
        for _line, _raw, reason in report.rejected
    )
    assert [e for e in emails(newsroom) if "obrien" in e] == ["tom.obrien@example.ie"]


@pytest.mark.both_databases
def test_a_suppressed_mailbox_is_never_imported(newsroom, tmp_path) -> None:
    with unit_of_work(newsroom.factory) as session:
        session.add(Suppression(email="gone@example.com", reason=SuppressionReason.COMPLAINT))
    path = tmp_path / "readers.csv"
    path.write_text(HEADER + "Gone@Example.COM,Gone,en,,weekly,active\n")
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path, confirmed=True)
    assert (report.added, report.kept, report.rejected) == (0, 1, [])
    assert "gone@example.com" not in emails(newsroom)


@pytest.mark.both_databases
def test_one_mailbox_is_one_reader_whatever_its_spelling(newsroom, tmp_path) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(HEADER + "jörg@exämple.de,Jörg,de,,weekly,\nJÖRG@EXÄMPLE.DE,Jörg,de,,weekly,\n")
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path)
    assert report.added == 1 and [r[2] for r in report.rejected] == [
        "the same address appears earlier in the file"
    ]
    again = tmp_path / "again.csv"
    again.write_text(HEADER + "JÖRG@xn--exmple-cua.de,Jörg Neu,de,,weekly,\n")
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, again)
    assert (report.added, report.updated) == (0, 1)
    assert [e for e in emails(newsroom) if "rg@" in e] == ["jörg@exämple.de"]
    assert reader(newsroom, "jörg@exämple.de").name == "Jörg Neu"


def test_a_bad_row_never_stops_the_file_nor_echoes_a_reader(newsroom, tmp_path) -> None:
    """A huge cell, a NUL, bad UTF-8, broken quoting, a shifted row: each is its own rejection."""
    lines = [
        HEADER.encode(),
        b"first@example.com,Secret First,en,,weekly,pending\n",
        b"huge@example.com,Secret " + b"N" * 1_000_000 + b",en,,weekly,pending\n",
        b"nul@example.com,Secret\x00Nul,en,,weekly,pending\n",
        b"latin1@example.com,Secret J\xf6rg,en,,weekly,pending\n",
        b'broken@example.com,"Secret" Broken,en,,weekly,pending\n',
        b"shifted@example.com,Secret, Shifted,en,,weekly,pending\n",
        b"lang@example.com,Secret Lang,secretish,,weekly,pending\n",
        b"news@example.com,Secret News,en,,secretly,pending\n",
        b"cat@example.com,Secret Cat,en,Secrets,weekly,pending\n",
        b"status@example.com,Secret Status,en,,weekly,secret\n",
        b"re:victim@example.com,Secret Victim,en,,weekly,pending\n",
        b'multi@example.com,"Secret\r\nMulti Line",en,,weekly,pending\n',
        b"last@example.com,Secret Last,en,,weekly,pending\n",
    ]
    path = tmp_path / "readers.csv"
    path.write_bytes(b"".join(lines))
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path)
    reasons = {line: reason for line, _raw, reason in report.rejected}
    assert reasons == {
        3: "column name is longer than 10,000 characters",
        4: "column name holds a control character (U+0000)",
        5: "column name is not UTF-8",
        6: "unreadable CSV: ',' expected after '\"'",
        7: "more cells than the first line names",
        8: LANGUAGE,
        9: "unknown newsletter in column newsletters (configured: weekly, daily; separate several with , ; or |)",
        10: reasons[10],
        11: "status must be one of pending, active, unsubscribed, bounced, complained",
        12: reasons[12],
    }
    assert reasons[12].startswith("column email is not an email address: ") and "victim" not in reasons[12]
    assert all("secret" not in reason.lower() for reason in reasons.values())
    assert report.added == 3
    added = set(emails(newsroom))
    assert {"first@example.com", "multi@example.com", "last@example.com"} <= added
    assert reader(newsroom, "multi@example.com").name == "Secret Multi Line"
    assert not {"huge@example.com", "nul@example.com", "latin1@example.com"} & added
    assert b"Secret J\xf6rg" in report.rejects_file.read_bytes()  # the bytes kept as they came


@pytest.fixture
def refusing_database(newsroom) -> Iterator[None]:
    """The database itself refuses one address, as it would a value it cannot store."""
    with unit_of_work(newsroom.factory) as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(
                text(
                    "CREATE TRIGGER refuse_one BEFORE INSERT ON subscribers "
                    "WHEN NEW.email = 'refused@example.com' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            session.execute(
                text(
                    "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.email = 'refused@example.com' THEN "
                    "RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            session.execute(
                text(
                    "CREATE TRIGGER refuse_one BEFORE INSERT ON subscribers "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_one()"
                )
            )
    yield
    with unit_of_work(newsroom.factory) as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("DROP TRIGGER refuse_one"))
        else:
            session.execute(text("DROP TRIGGER refuse_one ON subscribers"))
            session.execute(text("DROP FUNCTION refuse_one()"))


@pytest.mark.both_databases
def test_a_row_the_database_refuses_is_rolled_back_alone(newsroom, refusing_database, tmp_path) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(
        HEADER
        + "before@example.com,Before,en,Politics,weekly,pending\n"
        + "refused@example.com,Secret Name,en,Politics,weekly,pending\n"
        + "after@example.com,After,en,Health,weekly,pending\n"
    )
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path)
    assert report.added == 2
    assert [(line, reason) for line, _raw, reason in report.rejected] == [
        (3, "refused by the database (IntegrityError)")
    ]
    added = set(emails(newsroom))
    assert {"before@example.com", "after@example.com"} <= added and "refused@example.com" not in added
    assert [c.slug for c in reader(newsroom, "after@example.com").categories] == ["health"]


@pytest.mark.both_databases
def test_active_readers_are_imported_only_when_the_import_says_they_confirmed(newsroom, tmp_path) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(
        HEADER
        + "fresh@example.com,Fresh,en,,weekly,active\n"
        + "new.signup@example.com,Pending Person,en,Health,weekly,active\n"  # pending so far
        + "anna.keller@example.com,Anna Keller,de,Politics,weekly,active\n"  # active already
        + "quiet@example.com,Quiet,en,,weekly,\n"
    )
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path)
    assert [line for line, _raw, _reason in report.rejected] == [2, 3]
    assert all("confirmed" in reason for _line, _raw, reason in report.rejected)
    assert (report.added, report.updated) == (1, 1)
    assert reader(newsroom, "quiet@example.com").status == "pending"
    assert reader(newsroom, "new.signup@example.com").status == "pending"
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path, confirmed=True)
    assert report.rejected == [] and (report.added, report.updated, report.unchanged) == (1, 2, 1)
    fresh = reader(newsroom, "fresh@example.com")
    assert fresh.status == "active" and fresh.confirmed_at is not None
    assert reader(newsroom, "quiet@example.com").status == "active"  # no status given: they confirmed


@pytest.mark.both_databases
def test_importing_an_unsubscribed_reader_records_when(newsroom, tmp_path) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(
        HEADER
        + "left@example.com,Left,en,,weekly,unsubscribed\n"
        + "anna.keller@example.com,Anna Keller,de,,weekly,unsubscribed\n"
    )
    with time_machine.travel(NOW, tick=False), unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path)
    assert (report.added, report.updated, report.rejected) == (1, 1, [])
    for email in ("left@example.com", "anna.keller@example.com"):
        gone = reader(newsroom, email)
        assert gone.status == "unsubscribed" and gone.unsubscribed_at == NOW  # when the import ran


@pytest.mark.both_databases
def test_export_round_trips(newsroom, tmp_path) -> None:
    out = tmp_path / "export.csv"
    with newsroom.factory() as session:
        assert export_csv(session, out) == 12
    with unit_of_work(newsroom.factory) as session:
        again = import_csv(session, newsroom.settings, out)
    assert again.rejected == [] and (again.added, again.updated, again.unchanged + again.kept) == (0, 0, 12)


FORMULAS = {
    "=sum@example.com": '=HYPERLINK("https://evil.example","click")',
    "+plus@example.com": "+SUM(1;2)",
    "-minus@example.com": "-2+3",
    "'=quoted@example.com": "@cmd",
    "plain@example.com": "'=already quoted",
}


@pytest.mark.both_databases
def test_export_neutralizes_formulas_and_import_reads_them_back(newsroom, tmp_path) -> None:
    with unit_of_work(newsroom.factory) as session:
        for email, name in FORMULAS.items():
            session.add(Subscriber(email=email, name=name, status="active", language="en"))
    out = tmp_path / "export.csv"
    with newsroom.factory() as session:
        export_csv(session, out)
    with open(out, newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert '\'=HYPERLINK("https://evil.example","click")' in cells and "''=already quoted" in cells
    with unit_of_work(newsroom.factory) as session:
        again = import_csv(session, newsroom.settings, out)
    assert again.rejected == [] and again.added == 0
    with newsroom.factory() as session:
        names = dict(session.execute(select(Subscriber.email, Subscriber.name)).all())
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 12 + len(FORMULAS)
    assert {email: names[email] for email in FORMULAS} == FORMULAS


@given(st.text())
def test_a_cell_reads_back_as_it_was_written(value: str) -> None:
    cell = to_cell(value)
    assert from_cell(cell) == value
    assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r")


def test_import_command_exit_status(newsroom, tmp_path) -> None:
    config = tmp_path / "n.toml"
    config.write_text(f'database_url = "{newsroom.settings.database_url}"\n')
    env = {"NEWSLETTER_CONFIG": str(config), "COLUMNS": "300"}
    path = tmp_path / "bad.csv"
    path.write_text("email\nnot-an-address\nfine@example.com\n")
    result = newsletter("subscribers", "import", str(path), env=env, cwd=tmp_path)
    assert (
        result.returncode == 1
        and "1 added" in result.stdout
        and "line 2: column email is not an email address" in result.stderr
    )
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("reader@example.com\n")
    result = newsletter("subscribers", "import", str(headerless), env=env, cwd=tmp_path)
    assert (
        result.returncode == 1
        and "must name the columns" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_a_refused_address_is_named_by_line_and_column_never_echoed(newsroom, tmp_path) -> None:
    """What the operator reads on a terminal (and a log keeps): the line, the column, the problem."""
    config = tmp_path / "n.toml"
    config.write_text(f'database_url = "{newsroom.settings.database_url}"\n')
    env = {"NEWSLETTER_CONFIG": str(config), "COLUMNS": "300"}
    path = tmp_path / "readers.csv"
    path.write_text(
        "email,name\n"
        "fine@example.com,Fine\n"
        "Jack Doe <jack@riverside.example>,Jack\n"
        "erin@[10.0.0]  ,Erin\n"  # email-validator's detail quotes the cell: 'Expected 4 octets in ...'
        "re:moira@example.com,Moira\n"
    )
    result = newsletter("subscribers", "import", str(path), env=env, cwd=tmp_path)
    assert result.returncode == 1 and "1 added" in result.stdout
    errors = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("line ")]
    assert errors == [
        "line 3: column email is not an email address: A display name and angle brackets around the "
        "email address are not permitted here. Put the address alone in the email column and the "
        "name in the name column.",
        "line 4: column email is not an email address: The address in brackets after the @-sign is not "
        "valid: It is not an IPv4 address or is missing an address literal tag.",
        "line 5: column email is not an email address: The email address contains invalid characters "
        "before the @-sign: ':'.",
    ]
    for echoed in ("jack", "riverside", "10.0.0", "moira", "erin"):
        assert echoed not in result.stderr.lower()
    assert "Jack Doe <jack@riverside.example>" in path.with_suffix(".rejected.csv").read_text()


def test_import_command_takes_confirmed_readers(newsroom, tmp_path) -> None:
    config = tmp_path / "n.toml"
    config.write_text(f'database_url = "{newsroom.settings.database_url}"\n')
    env = {"NEWSLETTER_CONFIG": str(config), "COLUMNS": "300"}
    path = tmp_path / "opted-in.csv"
    path.write_text("email,status\nopted.in@example.com,active\n")
    refused = newsletter("subscribers", "import", str(path), env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "--confirmed" in refused.stderr
    assert (
        "status active for a reader who has not confirmed: import with --confirmed only if these "
        "readers opted in elsewhere, or leave the status empty (pending)"
    ) in refused.stderr
    taken = newsletter("subscribers", "import", str(path), "--confirmed", env=env, cwd=tmp_path)
    assert taken.returncode == 0 and "1 added" in taken.stdout, taken.stderr
    assert reader(newsroom, "opted.in@example.com").status == "active"


@pytest.mark.both_databases
def test_import_before_any_fetch_knows_the_configured_sections(make_runtime, tmp_path) -> None:
    """A new site imports its readers first: `[site] categories` and category feeds are sections."""
    runtime = make_runtime(
        site={"categories": ["Politics", "Human Rights"]},
        feeds=[{"url": str(tmp_path / "europe.xml"), "category": "europe", "category_name": "Europe"}],
    )
    with unit_of_work(runtime.factory) as session:
        session.add(Category(slug="politics", name="politics", is_section=False))  # a tag so far
    path = tmp_path / "readers.csv"
    path.write_text(
        HEADER
        + "first@example.com,First,en,Human Rights;Politics,weekly,pending\n"
        + "second@example.com,Second,en,europe,weekly,pending\n"
        + "third@example.com,Third,en,Gardening,weekly,pending\n"
    )
    with unit_of_work(runtime.factory) as session:
        report = import_csv(session, runtime.settings, path)
    assert report.added == 2
    assert [(line, reason) for line, _raw, reason in report.rejected] == [
        (
            4,
            "unknown category in column categories (known: europe, human-rights, politics; separate several with , ; or |)",
        )
    ]
    assert [c.slug for c in reader(runtime, "first@example.com").categories] == ["human-rights", "politics"]
    assert [c.slug for c in reader(runtime, "second@example.com").categories] == ["europe"]
    with runtime.factory() as session:
        stored = {c.slug: (c.name, c.is_section) for c in session.scalars(select(Category))}
    assert stored == {
        "human-rights": ("Human Rights", True),
        "europe": ("Europe", True),
        "politics": ("politics", True),
    }


@pytest.mark.both_databases
def test_reimporting_the_same_file_changes_nothing(newsroom, tmp_path) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(
        HEADER
        + "one@example.com,One,en,Politics;Health,weekly,pending\n"
        + "two@example.com,Two,de,,weekly|daily,pending\n"
        + "anna.keller@example.com,Anna Keller,de,Politics;Europe,weekly,active\n"
    )
    with unit_of_work(newsroom.factory) as session:
        first = import_csv(session, newsroom.settings, path)
    assert (first.added, first.updated, first.unchanged) == (2, 0, 1)
    with unit_of_work(newsroom.factory) as session:
        again = import_csv(session, newsroom.settings, path)
    assert (again.added, again.updated, again.unchanged, again.rejected) == (0, 0, 3, [])
    path.write_text(
        HEADER
        + "one@example.com,One,en,health;politics,weekly,pending\n"  # the same, said otherwise
        + "two@example.com,Two,de,,daily,pending\n"
        + "anna.keller@example.com,Anna K.,de,Politics;Europe,weekly,active\n"
    )
    with unit_of_work(newsroom.factory) as session:
        changed = import_csv(session, newsroom.settings, path)
    assert (changed.added, changed.updated, changed.unchanged) == (0, 2, 1)


def test_rejected_rows_are_written_where_the_readme_says(newsroom, tmp_path) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(HEADER + "not-an-address,Bad,en,,weekly,\n")
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path)
    assert report.rejects_file == tmp_path / "readers.rejected.csv" and report.rejects_file.is_file()
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "`readers.csv` go to `readers.rejected.csv`" in readme


def test_rejected_rows_from_standard_input_go_to_the_home_folder(make_runtime, tmp_path) -> None:
    """`-` reads standard input: its rejects go under the home folder, wherever the command ran."""
    runtime = make_runtime(home=tmp_path)
    piped = io.BytesIO(
        b"email,name\nnot-an-address,Bad\nfine@example.com,Fine\nalso.fine@example.com,J\xf6rg\n"
    )
    report = import_file(runtime, piped)
    assert report.added == 1 and [line for line, _raw, _reason in report.rejected] == [2, 4]
    assert report.rejects_file is not None and report.rejects_file.parent == tmp_path / "subscribers"
    assert re.fullmatch(r"stdin-\d{8}T\d{6}Z\.rejected\.csv", report.rejects_file.name)
    assert b"not-an-address" in report.rejects_file.read_bytes()
    assert b"J\xf6rg" in report.rejects_file.read_bytes()  # bad UTF-8 kept as it came
    again = import_file(runtime, io.BytesIO(b"email\nnot-an-address\n"))
    assert again.rejects_file is not None and again.rejects_file != report.rejects_file  # none lost
    with pytest.raises(NewsletterError, match="must name the columns"):
        import_file(runtime, io.BytesIO(b"reader@example.com\n"))


@pytest.mark.parametrize("language", ["xx", "zz", "qq", "english", "e1"])
def test_a_row_with_an_unknown_language_is_rejected(newsroom, tmp_path, language) -> None:
    path = tmp_path / "readers.csv"
    path.write_text(HEADER + f"polyglot@example.com,P,{language},,weekly,\nok@example.com,O,pt-BR,,weekly,\n")
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path)
    assert [(line, reason) for line, _raw, reason in report.rejected] == [(2, LANGUAGE)]
    assert report.added == 1 and reader(newsroom, "ok@example.com").language == "pt"
