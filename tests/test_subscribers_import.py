"""`subscribers import` as a new operator meets it: a wrong setting stops it before any row is
written, a cell lists with commas too, an empty newsletters cell means what the site sends, and
the summary names the settings file and the store it used. Rows go in by chunks: a file of every
kind of row does in small chunks what it did row by row, and a store failure keeps the chunks
before it, said so, for the same file imported again to finish."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from newsletter.services import subscribers
from newsletter.store.db import unit_of_work
from newsletter.store.models import Subscriber
from newsletter.subscribers import bulk, merge
from newsletter.subscribers.bulk import ImportStopped, import_csv, parse_row
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


# A file of every kind of row, imported without --confirmed over readers of every standing.
VARIED = [
    b"new@example.org,New,en,Politics;health,,",  # 2: added, takes what the site sends
    b"NEW@Example.org,Dup,en,,,",  # 3: the same mailbox spelt otherwise
    b"act@example.org,Act Renamed,de,Europe,weekly,",  # 4: updated, leaves the daily
    b"left@example.org,Left,en,,weekly;daily,",  # 5: unchanged: the daily it left stays left
    b"gone@example.org,Gone,en,,,active",  # 6: kept: unsubscribed
    b"supp@example.org,Supp,en,,,",  # 7: kept: suppressed
    b"forgot@example.org,Forgot,en,,,",  # 8: kept: forgotten (a hash)
    b"not-an-address,Bad,en,,,",  # 9
    b"cat@example.org,Cat,en,Gardening,,",  # 10
    b"ctl@example.org,Ctl\x01,en,,,",  # 11
    b"huge@example.org," + b"N" * 20_000 + b",en,,,",  # 12
    b"pend@example.org,,,,,",  # 13: unchanged, still pending: empty cells change nothing
    b"actv@example.org,Actv,en,,,active",  # 14: active without --confirmed
    b'"  Mixed@EXAMPLE.org ",Mixed,en,,daily,',  # 15: added, normalized
    b"mixed@example.org,Again,en,,,",  # 16
]
VARIED_REJECTED = {
    3: "the same address appears earlier in the file",
    9: "column email is not an email address: An email address must have an @-sign.",
    10: "unknown category",
    11: "column name holds a control character (U+0001)",
    12: "column name is longer than 10,000 characters",
    14: "status active for a reader who has not confirmed",
    16: "the same address appears earlier in the file",
}


def _readers_of_every_standing(runtime) -> None:
    from newsletter.store.models import Category, SubscriberNewsletter, Suppression
    from newsletter.subscribers.addresses import address_hash

    with unit_of_work(runtime.factory) as session:
        health = session.scalars(select(Category).where(Category.slug == "health")).one()
        for email, name, status, language, newsletters in (
            ("act@example.org", "Act", "active", "en", {"weekly": "active", "daily": "active"}),
            ("left@example.org", "Left", "active", "en", {"weekly": "active", "daily": "unsubscribed"}),
            ("gone@example.org", "Gone", "unsubscribed", "en", {"weekly": "unsubscribed"}),
            ("pend@example.org", "Pend", "pending", "en", {"weekly": "active"}),
        ):
            reader = Subscriber(email=email, name=name, status=status, language=language, created_at=NOW)
            reader.newsletters = [
                SubscriberNewsletter(newsletter=n, status=s) for n, s in newsletters.items()
            ]
            reader.categories = [health] if email == "act@example.org" else []
            session.add(reader)
        key = runtime.settings.signing_key()
        session.add(Suppression(email="supp@example.org", reason="manual", created_at=NOW))
        session.add(
            Suppression(email=address_hash("forgot@example.org", key), reason="forgotten", created_at=NOW)
        )


def _stored(runtime) -> dict[str, tuple[object, ...]]:
    """Every reader of the varied file as the store keeps them, and how many subscription rows."""
    from newsletter.store.models import SubscriberNewsletter

    with runtime.factory() as session:
        readers = {
            s.email: (
                s.name,
                s.language,
                str(s.status),
                s.confirmed_at is not None,
                sorted(c.slug for c in s.categories),
                sorted((n.newsletter, str(n.status)) for n in s.newsletters),
            )
            for s in session.scalars(select(Subscriber).where(Subscriber.email.like("%@example.org")))
        }
        rows = session.scalar(select(func.count()).select_from(SubscriberNewsletter))
    return {**readers, "subscription rows": (rows,)}


@pytest.mark.both_databases
def test_a_varied_file_in_small_chunks_does_what_it_did_row_by_row(newsroom, tmp_path, monkeypatch) -> None:
    """Chunks of 4 rows: a duplicate found in a later chunk than its first spelling, readers of
    every standing, every kind of bad row; the same file again changes nothing."""
    monkeypatch.setattr(bulk, "CHUNK", 4)
    _readers_of_every_standing(newsroom)
    path = tmp_path / "readers.csv"
    path.write_bytes(HEADER.encode() + b"\n".join(VARIED) + b"\n")
    before = _stored(newsroom)["subscription rows"][0]
    with unit_of_work(newsroom.factory) as session:
        report = import_csv(session, newsroom.settings, path)
    assert (report.added, report.updated, report.unchanged, report.kept) == (2, 1, 2, 3)
    reasons = {line: reason for line, _raw, reason in report.rejected}
    assert sorted(reasons) == sorted(VARIED_REJECTED)
    assert all(reasons[line].startswith(start) for line, start in VARIED_REJECTED.items()), reasons
    stored = _stored(newsroom)
    assert stored["new@example.org"] == (
        "New", "en", "pending", False, ["health", "politics"], [("daily", "active"), ("weekly", "active")]
    )  # fmt: skip
    assert stored["mixed@example.org"] == ("Mixed", "en", "pending", False, [], [("daily", "active")])
    assert stored["act@example.org"] == (
        "Act Renamed",
        "de",
        "active",
        True,  # an active reader with no time of consent gets the import's
        ["europe"],
        [("weekly", "active")],
    )
    assert stored["left@example.org"][5] == [("daily", "unsubscribed"), ("weekly", "active")]
    assert stored["gone@example.org"][2] == "unsubscribed" and stored["pend@example.org"][:3] == (
        "Pend",
        "en",
        "pending",
    )
    assert not {"supp@example.org", "forgot@example.org", "actv@example.org", "ctl@example.org"} & set(stored)
    assert stored["subscription rows"] == (before + 3 - 1,)  # new's two and mixed's daily; act's daily gone
    with newsroom.factory() as session:
        ids = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
    assert sorted(report.pending) == sorted(
        ids[e] for e in ("new@example.org", "mixed@example.org", "pend@example.org")
    )
    with unit_of_work(newsroom.factory) as session:
        again = import_csv(session, newsroom.settings, path)
    assert (again.added, again.updated, again.unchanged, again.kept) == (0, 0, 5, 3)
    assert [line for line, _raw, _reason in again.rejected] == sorted(VARIED_REJECTED)
    assert _stored(newsroom) == stored


@pytest.mark.both_databases
def test_a_store_failure_keeps_the_chunks_before_it_and_a_rerun_finishes(
    newsroom, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 2)
    path = tmp_path / "readers.csv"
    path.write_text(HEADER + "".join(f"r{i}@example.org,R{i},en,,,\n" for i in range(7)))  # lines 2-8
    write, calls = merge.write, []

    def failing(session, changes, now):
        calls.append(len(changes))
        if len(calls) == 3:  # the third chunk, lines 6 and 7
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return write(session, changes, now)

    monkeypatch.setattr(merge, "write", failing)
    with pytest.raises(ImportStopped) as stopped:
        subscribers.import_file(newsroom, path)
    assert stopped.value.line == 5 and stopped.value.report.added == 4
    assert isinstance(stopped.value.__cause__, OperationalError)
    assert [e for e in _stored(newsroom) if e.startswith("r")] == [f"r{i}@example.org" for i in range(4)]
    monkeypatch.setattr(merge, "write", write)
    again = subscribers.import_file(newsroom, path)
    assert (again.added, again.unchanged, again.rejected) == (3, 4, [])
    stored = _stored(newsroom)
    assert sorted(e for e in stored if e.startswith("r")) == [f"r{i}@example.org" for i in range(7)]
    assert all(
        stored[f"r{i}@example.org"][5] == [("daily", "active"), ("weekly", "active")] for i in range(7)
    )


def test_the_command_says_what_a_stopped_import_kept(newsroom, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 2)
    path = tmp_path / "readers.csv"
    path.write_text(HEADER + "".join(f"r{i}@example.org,R{i},en,,,\n" for i in range(5)))
    write = merge.write
    chunks = iter(range(10))

    def failing(session, changes, now):
        if next(chunks) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return write(session, changes, now)

    monkeypatch.setattr(merge, "write", failing)
    run = command(newsroom, tmp_path, SECRET_ENV)
    result = run("subscribers", "import", str(path))
    assert result.returncode == 1, result.stderr
    told = one_line(result.stderr)
    assert f"{path}: stopped after line 3; committed up to there: 2 added, 0 updated" in told, told
    assert "Import the same file again to finish" in told and "database is locked" in told
    monkeypatch.setattr(merge, "write", write)
    assert "3 added, 0 updated, 2 unchanged" in run("subscribers", "import", str(path)).stdout
