"""The command line as issue #9 asks: every command says which edition it acts on, in the site's
time zone; sending spends nothing by mistake; failures are listed; options behave alike
everywhere (`--config` and `--verbose` anywhere, errors naming the option, `-`, `--json`), and
output that is not a terminal is never cut."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest
from sqlalchemy import func, select

from newsletter.store.models import Delivery, Edition, EditionPick, Subscriber, Variant
from tests.conftest import ROOT, SAMPLE, SECTIONS
from tests.support.cli import BEFORE, NOV_23, ON_TIME, Ran, newsletter, one_line
from tests.support.settings_files import SECRET_ENV, settings_file, smtp_env

LONG_TITLE = "A very long headline " * 12 + "that ends here"


@pytest.fixture
def cli(newsroom, tmp_path):
    """Run `newsletter ARGS --config FILE` on the sample store; the config after the command."""
    config = settings_file(newsroom, tmp_path)

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        return newsletter(*args, "--config", str(config), env={**SECRET_ENV, **(env or {})}, cwd=tmp_path)

    return run


def rows(runtime) -> dict[str, int]:
    with runtime.factory() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Edition, Variant, Delivery, EditionPick, Subscriber)
        }


def test_config_and_verbose_work_before_or_after_the_command(newsroom, tmp_path) -> None:
    config = settings_file(newsroom, tmp_path)
    empty = tmp_path / "empty.toml"
    empty.write_text(f'database_url = "sqlite:///{tmp_path / "other.db"}"\n')
    for args in (
        ["status", "--config", str(config)],
        ["--config", str(config), "status"],
        ["--verbose", "status", "--config", str(config)],
        ["--config", str(empty), "status", "--config", str(config), "-v"],  # the command's own wins
        ["edition", "--config", str(config), "picks", *BEFORE],
        ["edition", "picks", *BEFORE, "--config", str(config), "--verbose"],
    ):
        result = newsletter(*args, env=SECRET_ENV, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert "58 articles stored" in result.stdout or NOV_23 in result.stdout, args
    assert not (tmp_path / "other.db").exists()
    helped = newsletter("deliveries", "--help", env={"COLUMNS": "200"}, cwd=tmp_path)
    assert "--config" in helped.stdout and "--verbose" in helped.stdout


def test_option_errors_name_the_option_in_plain_words(cli) -> None:
    expected = {
        ("preview", "-n", "dayly"): "-n/--newsletter: no newsletter 'dayly' (configured: daily, weekly)",
        ("send", "--at", "next friday"): (
            "--at: not a time: 'next friday' (use ISO 8601, e.g. 2026-11-23T07:00)"
        ),
        ("trending", "--days", "x"): "--days: not a whole number: 'x'",
        ("trending", "--days", "0"): "--days: use a number from 1 to 36500, not 0",
        ("preview", "--language", "xx"): "--language: not a known language code: 'xx'",
        ("deliveries", "abc"): "EDITION: not a whole number: 'abc'",
        ("test-send", "--to", "editor at example"): "--to: not an email address: 'editor at example'",
    }
    for args, words in expected.items():
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        [line] = result.stderr.splitlines()
        assert line.startswith(f"newsletter: {words}"), line
        assert "Value error" not in line and "bad setting" not in line and "Input should" not in line
    missing = newsletter("status", "--config", "/nonexistent/n.toml", cwd=ROOT)
    assert missing.returncode == 2
    assert missing.stderr == "newsletter: --config: no such file: /nonexistent/n.toml\n"


def test_every_command_says_which_edition_it_acts_on(newsroom, cli) -> None:
    pinned = cli("edition", "pin", "1", *BEFORE)
    assert pinned.returncode == 0, pinned.stderr
    assert f"pinned to the {NOV_23} (edition 1, draft)" in one_line(pinned.stdout)
    for args in (
        ("edition", "exclude", "2", *BEFORE),
        ("edition", "picks", *BEFORE),
        ("edition", "unpick", "2", *BEFORE),
        ("send", "--dry-run", *ON_TIME),
        ("send", *ON_TIME),
    ):
        result = cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert NOV_23 in one_line(result.stdout), args
    preview = cli("preview", "--text", "--at", "2026-11-23T07:20")  # sent: the next one is a week on
    assert preview.returncode == 3, preview.stderr  # the sample has no news for it
    assert (
        "weekly edition of 2026-11-30 07:00 CET, window 2026-11-23 07:00 CET to 2026-11-30" in preview.stderr
    )


def test_send_spends_nothing_before_its_slot_or_without_news(newsroom, cli) -> None:
    before = rows(newsroom)
    early = cli("send", *BEFORE)
    assert early.returncode == 1
    assert "not due yet" in early.stderr.splitlines()[-1] and "--now" in early.stderr
    assert len(early.stderr.splitlines()) == 1 and "Traceback" not in early.stderr
    future = ("--at", "2027-01-04T07:10")  # a slot whose window opened after the last fetch
    stale = cli("send", *future, "--now")
    assert stale.returncode == 1 and "run `newsletter fetch` (or send with --force)" in stale.stderr
    assert rows(newsroom) == before
    forced = cli("send", *future, "--force")  # past the check: the window holds no news
    assert forced.returncode == 1 and "none in the window" in forced.stderr, forced.stderr
    assert rows(newsroom) == before
    now = cli("send", *BEFORE, "--now")
    assert now.returncode == 0, now.stderr
    assert "complete — this run sent 9" in now.stdout


def test_a_dry_run_shows_the_variants_and_changes_nothing(newsroom, cli) -> None:
    before = rows(newsroom)
    result = cli("send", "--dry-run", *ON_TIME)
    assert result.returncode == 0, result.stderr
    assert rows(newsroom) == before
    text = one_line(result.stdout)
    assert f"{NOV_23} dry run: nothing was written and nothing sent" in text
    assert "recipients ┃ language ┃ categories ┃ subject" in text
    assert "Weekly digest:" in text and "│ de │" in text
    assert "9 to send in 9 variants; 0 skipped (nothing new), 0 suppressed" in text
    assert "prepared" not in result.stderr  # the rehearsal's rolled-back preparation is not logged
    early = cli("send", "--dry-run", *BEFORE)  # the plan whenever asked, and when it would go
    assert early.returncode == 0 and "it would go at 2026-11-23 07:00 CET" in early.stdout, early.stderr
    assert cli("send", "--dry-run", *BEFORE, "--now").returncode == 0
    assert rows(newsroom) == before


def test_deliveries_lists_each_failure_with_the_providers_words(newsroom, tmp_path, smtp_sink) -> None:
    sink, port = smtp_sink
    gone = "marc.dubois@example.org"
    sink.refuse[gone] = "550 5.1.1 <marc.dubois@example.org>: no such user"
    env = smtp_env(newsroom, tmp_path, port)
    sent = newsletter("send", *ON_TIME, env=env, cwd=tmp_path)
    assert sent.returncode == 1, sent.stderr
    assert "partial" in sent.stdout and "`newsletter deliveries 1 --status failed`" in sent.stdout
    failed = newsletter("deliveries", "1", "--status", "failed", env=env, cwd=tmp_path)
    assert failed.returncode == 0, failed.stderr
    [row] = [line for line in failed.stdout.splitlines() if gone in line]
    assert "failed" in row and "550 5.1.1 <marc.dubois@example.org>: no such user" in row
    assert NOV_23 in failed.stdout and "8 sent, 1 failed" in failed.stdout
    listed = json.loads(newsletter("deliveries", "1", "--json", env=env, cwd=tmp_path).stdout)
    assert listed["edition"]["id"] == 1 and listed["edition"]["deliveries"]["sent"] == 8
    first = listed["deliveries"][0]
    assert (first["email"], first["status"], first["attempts"]) == (gone, "failed", 1)
    assert first["detail"] == "550 5.1.1 <marc.dubois@example.org>: no such user"
    delivered = [d for d in listed["deliveries"] if d["status"] == "sent"]
    assert len(delivered) == 8 and all(datetime.fromisoformat(d["sent_at"]).utcoffset() for d in delivered)
    limited = json.loads(
        newsletter("deliveries", "1", "--json", "--limit", "2", env=env, cwd=tmp_path).stdout
    )
    assert len(limited["deliveries"]) == 2


def test_a_test_send_reaches_only_its_address(newsroom, tmp_path, smtp_sink) -> None:
    sink, port = smtp_sink
    env = smtp_env(newsroom, tmp_path, port)
    before = rows(newsroom)
    args = ("test-send", "--to", "Editor@Example.org", "--as", "tom.obrien@example.ie", *BEFORE)
    sent = newsletter(*args, env=env, cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    assert sink.recipients() == ["editor@example.org"]
    assert NOV_23 in one_line(sent.stdout) and "to editor@example.org through smtp: sent" in one_line(
        sent.stdout
    )
    assert "[TEST]" in sent.stdout
    assert rows(newsroom) == before
    sink.refuse["editor@example.org"] = "550 5.1.1 no such user"
    refused = newsletter(*args, env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "550 5.1.1 no such user" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1


def picks_listed(cli) -> dict[str, str]:
    listed = cli("edition", "picks", *BEFORE)
    assert listed.returncode == 0, listed.stderr
    return {
        cells[1]: cells[2]
        for line in listed.stdout.splitlines()
        if line.startswith("│") and (cells := [c.strip() for c in line.split("│")])
    }


def test_picks_are_listed_and_undone(newsroom, cli) -> None:
    ranked = json.loads(cli("trending", "--json", "--at", "2026-11-23T07:00").stdout)
    first, second = str(ranked["articles"][0]["id"]), str(ranked["articles"][1]["id"])
    assert datetime.fromisoformat(ranked["as_of"]).utcoffset() is not None
    assert cli("edition", "pin", first, *BEFORE).returncode == 0  # the id trending shows
    assert cli("edition", "exclude", second, *BEFORE).returncode == 0
    assert picks_listed(cli) == {first: "pin", second: "exclude"}
    undone = cli("edition", "unpick", second, *BEFORE)
    assert undone.returncode == 0 and f"exclusion removed from the {NOV_23}" in one_line(undone.stdout)
    again = cli("edition", "unpick", second, *BEFORE)
    assert again.returncode == 1 and "has no pin or exclusion" in again.stderr
    assert picks_listed(cli) == {first: "pin"}


def test_preview_says_why_a_subscriber_gets_nothing(cli) -> None:
    result = cli("preview", "--email", "eva.lindqvist@example.se", "--explain", *BEFORE)
    assert result.returncode == 3
    assert "no digest for this reader: this reader does not take the weekly newsletter" in result.stderr
    assert result.stdout == ""
    explained = cli("preview", "--email", "tom.obrien@example.ie", "--explain", "--out", "-", *BEFORE)
    assert explained.returncode == 0 and explained.stdout.startswith("<!DOCTYPE html>")
    assert "┃ id ┃ kept ┃ why" in one_line(explained.stderr)


def test_times_carry_the_sites_zone(newsroom, cli) -> None:
    assert cli("send", *ON_TIME).returncode == 0
    status = cli("status", env={"COLUMNS": "80"})
    assert "last fetched (UTC)" not in status.stdout
    feed_rows = [line for line in status.stdout.splitlines() if "site.xml" in line]
    assert feed_rows and all(" CET │" in line or " CEST │" in line for line in feed_rows)
    editions = cli("editions")
    assert "│ 2026-11-23 07:00 CET │ complete │" in editions.stdout
    summer = cli("trending", "--at", "2026-07-01T09:00")
    assert "Trending as of 2026-07-01 09:00 CEST" in summer.stdout
    winter = cli("trending", "--at", "2026-11-23T06:00:00+00:00")
    assert "Trending as of 2026-11-23 07:00 CET" in winter.stdout


def test_json_output_parses_with_stable_keys(newsroom, cli) -> None:
    assert cli("send", *ON_TIME).returncode == 0
    status = json.loads(cli("status", "--json").stdout)
    assert set(status) == {
        "settings_file",
        "store",
        "feeds",
        "articles",
        "subscribers",
        "unconfirmed",
        "suppressions",
        "editions",
        "jobs",
        "problems",
    }
    assert {job["id"] for job in status["jobs"]} == {
        "feeds",
        "edition:weekly",
        "edition:daily",
        "maintenance",
    }
    assert status["articles"] == 58 and status["subscribers"]["active"] == 10
    feed = status["feeds"][0]
    assert set(feed) == {"url", "status", "http_status", "fetched_at", "read_well_at", "entries", "error"}
    assert datetime.fromisoformat(feed["fetched_at"]).utcoffset() is not None
    [edition] = json.loads(cli("editions", "--json").stdout)
    assert edition == status["editions"][0]
    assert edition["slot"] == "2026-11-23T07:00:00+01:00" and edition["status"] == "complete"
    assert edition["window_end"] == "2026-11-23T07:00:00+01:00"
    assert edition["deliveries"] == {
        "pending": 0,
        "sending": 0,
        "sent": 9,
        "uncertain": 0,
        "failed": 0,
        "skipped": 0,
        "suppressed": 0,
    }
    ranked = json.loads(cli("trending", "--json", "--at", "2026-11-23T07:00", "--limit", "3").stdout)
    assert [a["rank"] for a in ranked["articles"]] == [1, 2, 3]
    assert set(ranked["articles"][0]) == {
        "rank",
        "id",
        "title",
        "categories",
        "published_at",
        "score",
        "signals",
        "shares",
    }


def test_piped_output_is_never_cut(make_runtime, tmp_path) -> None:
    """Rich cuts tables to 80 columns when it cannot see a terminal; piped output must not be."""
    folder = tmp_path / ("a folder with a long name " * 3).strip()
    folder.mkdir()
    feed = folder / "site.xml"
    feed.write_text(
        (SAMPLE / "site.xml")
        .read_text(encoding="utf-8")
        .replace("Avignon festival announces programme focused on young audiences", LONG_TITLE, 1),
        encoding="utf-8",
    )
    runtime = make_runtime(
        feeds=[{"url": str(feed)}], site={"categories": SECTIONS}, timezone="Europe/Brussels"
    )
    long_name = "the-weekly-digest-for-readers-who-like-long-names"
    config = settings_file(runtime, tmp_path, f"[newsletters.{long_name}]\n")
    env = {**SECRET_ENV, "NEWSLETTER_CONFIG": str(config), "COLUMNS": "80"}
    assert newsletter("fetch", env=env, cwd=tmp_path).returncode == 0
    assert newsletter("edition", "pin", "1", "-n", long_name, *BEFORE, env=env, cwd=tmp_path).returncode == 0
    outputs = {
        "trending": newsletter("trending", "--at", "2026-11-23T07:00", env=env, cwd=tmp_path).stdout,
        "status": newsletter("status", env=env, cwd=tmp_path).stdout,
        "editions": newsletter("editions", env=env, cwd=tmp_path).stdout,
    }
    for command, printed in outputs.items():
        assert "…" not in printed, command
        table_rows = [line for line in printed.splitlines() if line.startswith("│")]
        assert table_rows, command
        assert all(line.endswith("│") for line in table_rows), command
    assert any(f"│ {LONG_TITLE} │" in line for line in outputs["trending"].splitlines())
    assert any(f"│ {feed} │" in line for line in outputs["status"].splitlines())
    assert any(f"│ {long_name} │" in line for line in outputs["editions"].splitlines())
    # The table says how each feed went; the log does not say it again.
    fetched = newsletter("fetch", env=env, cwd=tmp_path)
    assert fetched.returncode == 0 and "unchanged" not in fetched.stderr, fetched.stderr
    assert fetched.stdout.count(str(feed)) == 1


def test_a_dash_is_standard_input_or_output(newsroom, tmp_path) -> None:
    config = settings_file(newsroom, tmp_path)
    env = {**SECRET_ENV, "NEWSLETTER_CONFIG": str(config)}
    exported = newsletter("subscribers", "export", "-", env=env, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    readers = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(readers) == 12 and readers[0]["email"] == "anna.keller@example.com"
    assert "12 subscribers written to standard output" in exported.stderr
    assert not (tmp_path / "-").exists()
    data = "email,name,categories,newsletters\nnew.reader@example.org,New Reader,Health,weekly\n"
    imported = newsletter("subscribers", "import", "-", input=data, env=env, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "standard input: 1 added, 0 updated" in imported.stdout
    with newsroom.factory() as session:
        assert session.scalar(
            select(Subscriber.name).where(Subscriber.email == "new.reader@example.org")
        ) == ("New Reader")
    preview = newsletter("preview", "--out", "-", "--text", *BEFORE, env=env, cwd=tmp_path)
    assert preview.returncode == 0 and "TRENDING" in preview.stdout
    assert not (tmp_path / "-").exists()
