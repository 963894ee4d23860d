"""One reader at a time on the command line (issue #11, point 1): `subscribers add`, `remove`,
`list`, `show` and `forget`, run as an operator runs them on the sample store. What a reader
left stays left, what is forgotten is gone, and an import brings back neither."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.store.statuses import DeliveryStatus
from tests.support.cli import ON_TIME, Ran, environment, newsletter, one_line, refused
from tests.support.settings_files import SECRET_ENV, settings_file, smtp_env
from tests.support.store import readable

NEW = "new.reader@example.org"
FORGOTTEN, FORGOTTEN_NAME = "zoe.forgetme@example.org", "Zoë Forgetme"


@pytest.fixture
def cli(newsroom, tmp_path):
    """Run `newsletter ARGS --config FILE` on the sample store (12 readers, 10 active)."""
    config = settings_file(newsroom, tmp_path)

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        return newsletter(*args, "--config", str(config), env={**SECRET_ENV, **(env or {})}, cwd=tmp_path)

    return run


def listed(cli, *args: str) -> dict[str, dict]:
    result = cli("subscribers", "list", "--json", *args)
    assert result.returncode == 0, result.stderr
    return {reader["email"]: reader for reader in json.loads(result.stdout)}


def test_an_added_reader_is_listed_active(cli) -> None:
    added = cli(
        "subscribers",
        "add",
        "New.Reader@Example.ORG",
        "--name",
        "  New   Reader ",
        "--newsletters",
        "weekly,daily",
        "--categories",
        "Health",
        "--categories",
        "Human Rights",
        "--language",
        "pt-BR",
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout == (
        f"added {NEW}: active, takes daily, weekly; language pt; time zone the site's; "
        "categories health, human-rights\n"
    )
    table = cli("subscribers", "list", env={"COLUMNS": "80"})  # piped: as wide as its cells
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 13 and all(line.endswith("│") for line in rows) and "…" not in table.stdout
    [cells] = [[cell.strip() for cell in line.split("│")[1:-1]] for line in rows if NEW in line]
    assert cells[:7] == [NEW, "New Reader", "active", "daily, weekly", "", "pt", "health, human-rights"]
    assert cells[7].endswith((" CET", " CEST"))
    readers = listed(cli, "--status", "active")
    assert len(readers) == 11 and readers[NEW]["newsletters"] == ["daily", "weekly"]
    assert set(readers[NEW]) == {
        "email",
        "name",
        "status",
        "language",
        "timezone",
        "newsletters",
        "left",
        "categories",
        "created_at",
    }
    assert readers[NEW]["created_at"][-6:] in ("+01:00", "+02:00")  # the site's zone
    assert list(listed(cli, "--status", "pending")) == ["new.signup@example.com"]
    assert len(listed(cli, "--limit", "2")) == 2
    assert cli("subscribers", "list", "--status", "bounced").stdout == "no bounced subscribers\n"
    # A known reader is updated: what the command does not give stays as it was.
    again = cli("subscribers", "add", "tom.obrien@example.ie", "--newsletters", "daily")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("updated tom.obrien@example.ie: active, takes daily, weekly;")
    tom = listed(cli)["tom.obrien@example.ie"]
    assert tom["name"] == "Tom O'Brien" and tom["categories"] == ["europe", "health", "politics"]


def test_leaving_one_newsletter_keeps_the_other(cli) -> None:
    marc = "marc.dubois@example.org"  # takes the weekly and the daily
    left = cli("subscribers", "remove", marc, "--newsletter", "daily")
    assert left.returncode == 0, left.stderr
    assert left.stdout == f"{marc} left the daily newsletter; still takes weekly\n"
    reader = listed(cli)[marc]
    assert (reader["status"], reader["newsletters"], reader["left"]) == ("active", ["weekly"], ["daily"])
    again = cli("subscribers", "remove", marc, "-n", "daily")
    assert again.returncode == 0 and "already left the daily newsletter; nothing changed" in again.stdout
    refused(
        cli("subscribers", "remove", "jan.novak@example.com", "-n", "daily"),
        1,
        "jan.novak@example.com does not take the daily newsletter (takes: weekly)",
    )
    refused(
        cli("subscribers", "remove", marc, "-n", "dayly"),
        2,
        "-n/--newsletter: no newsletter 'dayly' (configured: daily, weekly)",
    )
    # Only the reader takes back what they left.
    refused(cli("subscribers", "add", marc, "--newsletters", "daily"), 1, f"{marc} left the daily newsletter")
    assert listed(cli)[marc]["left"] == ["daily"]
    daily = cli("preview", "-n", "daily", "--email", marc, "--text", "--at", "2026-11-22T12:00")
    assert daily.returncode == 3 and "this reader left the daily newsletter" in daily.stderr, daily.stderr
    weekly = cli("preview", "--email", marc, "--text", "--at", "2026-11-22T12:00")
    assert weekly.returncode == 0, weekly.stderr


def test_leaving_everything_suppresses_and_no_import_brings_the_reader_back(cli, tmp_path) -> None:
    marc = "marc.dubois@example.org"
    removed = cli("subscribers", "remove", "Marc.Dubois@Example.org")
    assert removed.returncode == 0, removed.stderr
    assert "unsubscribed from every newsletter and suppressed" in removed.stdout
    rows = tmp_path / "back.csv"
    rows.write_text(
        "email,name,language,categories,newsletters,status\n"
        "MARC.DUBOIS@example.org,Marc Dubois,en,Health,weekly;daily,active\n"
    )
    imported = cli("subscribers", "import", str(rows), "--confirmed")
    assert imported.returncode == 0, imported.stderr
    assert "0 added, 0 updated, 0 unchanged, 1 kept as they were" in imported.stdout
    reader = listed(cli, "--status", "unsubscribed")[marc]
    assert (reader["newsletters"], reader["left"]) == ([], ["daily", "weekly"])
    refused(cli("subscribers", "add", marc), 1, f"{marc} is on the suppression list")
    shown = json.loads(cli("subscribers", "show", marc, "--json").stdout)
    assert shown["suppression"] == "unsubscribe: cli" and shown["unsubscribed_at"]
    assert [c["action"] for c in shown["consents"]] == ["unsubscribe"]


def test_show_gives_everything_stored_about_a_reader(cli) -> None:
    assert (
        cli("subscribers", "add", NEW, "--name", "New Reader", "--newsletters", "weekly,daily").returncode
        == 0
    )
    assert cli("subscribers", "remove", NEW, "-n", "daily").returncode == 0
    assert cli("send", *ON_TIME).returncode == 0
    shown = cli("subscribers", "show", NEW, env={"COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    text = one_line(shown.stdout)
    assert shown.stdout.startswith(f"{NEW}\nname: New Reader\nstatus: active;")
    assert "suppressed: no" in text and "deliveries: 1 sent" in text
    assert "┃ newsletter ┃ status ┃ subscribed ┃ left ┃ paused until ┃ source ┃" in text
    assert "│ daily │ unsubscribed │" in text and "│ weekly │ active │" in text
    assert "┃ at ┃ action ┃ source ┃ wording ┃ detail ┃" in text
    consents = [line for line in shown.stdout.splitlines() if re.search(r"│ (un)?subscribe +│ cli +│", line)]
    assert len(consents) == 2 and all(line.endswith("│") for line in consents)
    record = json.loads(cli("subscribers", "show", NEW, "--json").stdout)
    assert record["email"] == NEW and record["suppression"] is None
    assert [(s["newsletter"], s["status"], s["source"]) for s in record["subscriptions"]] == [
        ("daily", "unsubscribed", "cli"),
        ("weekly", "active", "cli"),
    ]
    assert record["subscriptions"][0]["unsubscribed_at"][-6:] == "+01:00"  # the site's zone
    assert [(c["action"], c["source"]) for c in record["consents"]] == [
        ("subscribe", "cli"),
        ("unsubscribe", "cli"),
    ]
    assert json.loads(record["consents"][1]["detail"]) == {"newsletter": "daily"}
    assert record["deliveries"] == {status.value: int(status == "sent") for status in DeliveryStatus}
    refused(cli("subscribers", "show", "nobody@example.org"), 1, "no subscriber nobody@example.org")


def test_forget_leaves_nothing_readable_and_keeps_the_address_out(newsroom, cli, tmp_path) -> None:
    added = cli("subscribers", "add", FORGOTTEN, "--name", FORGOTTEN_NAME, "--newsletters", "weekly,daily")
    assert added.returncode == 0, added.stderr
    assert cli("subscribers", "remove", FORGOTTEN, "-n", "daily").returncode == 0
    assert cli("send", *ON_TIME).returncode == 0
    sent_before = json.loads(cli("editions", "--json").stdout)[0]["deliveries"]
    assert sent_before["sent"] == 10
    assert readable(newsroom, FORGOTTEN, FORGOTTEN_NAME)  # the search does find them
    refused(cli("subscribers", "forget", FORGOTTEN), 2, "--yes")  # no terminal to ask on
    assert listed(cli)[FORGOTTEN]["name"] == FORGOTTEN_NAME
    forgotten = cli("subscribers", "forget", FORGOTTEN, "--yes")
    assert forgotten.returncode == 0, forgotten.stderr
    assert forgotten.stdout.startswith(f"{FORGOTTEN} forgotten:")
    assert readable(newsroom, FORGOTTEN, "forgetme", FORGOTTEN_NAME, "Zoë") == []
    # The edition's counts stay true; the reader is nowhere to be listed or shown.
    assert json.loads(cli("editions", "--json").stdout)[0]["deliveries"] == sent_before
    assert FORGOTTEN not in listed(cli) and len(listed(cli)) == 12
    refused(cli("subscribers", "show", FORGOTTEN), 1, f"no subscriber {FORGOTTEN}")
    # The address is refused from then on, however it is spelled.
    refused(cli("subscribers", "add", "Zoe.Forgetme@Example.org"), 1, "is on the suppression list")
    rows = tmp_path / "again.csv"
    rows.write_text(f"email,name,status\nZOE.FORGETME@example.org,{FORGOTTEN_NAME},active\n")
    imported = cli("subscribers", "import", str(rows), "--confirmed")
    assert imported.returncode == 0 and "0 added" in imported.stdout and "1 kept" in imported.stdout
    assert readable(newsroom, FORGOTTEN, "forgetme", FORGOTTEN_NAME) == []
    refused(cli("subscribers", "forget", "nobody@example.org", "--yes"), 1, "no subscriber")
    # An export lists nobody forgotten, so importing it back refuses no row.
    exported = tmp_path / "everyone.csv"
    assert cli("subscribers", "export", str(exported)).stdout.startswith("12 subscribers written")
    assert "sha256:" not in exported.read_text()
    again = cli("subscribers", "import", str(exported))
    assert again.returncode == 0 and "0 rejected" in again.stdout, again.stderr


def test_forget_erases_the_address_from_the_providers_words(newsroom, tmp_path, smtp_sink) -> None:
    sink, port = smtp_sink
    marc = "marc.dubois@example.org"
    sink.refuse[marc] = f"550 5.1.1 <{marc}>: no such user"
    env = smtp_env(newsroom, tmp_path, port)
    assert newsletter("send", *ON_TIME, env=env, cwd=tmp_path).returncode == 1  # partial: marc failed
    forgotten = newsletter("subscribers", "forget", marc, "--yes", env=env, cwd=tmp_path)
    assert forgotten.returncode == 0, forgotten.stderr
    assert readable(newsroom, marc, "Marc Dubois") == []


def on_terminal(cli_args: list[str], answer: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command with a terminal on standard input that answers `answer`."""
    master, terminal = pty.openpty()
    try:
        os.write(master, answer.encode())
        return subprocess.run(
            [sys.executable, "-m", "newsletter", *cli_args],
            stdin=terminal,
            env=environment(**SECRET_ENV),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(master)
        os.close(terminal)


@pytest.mark.e2e
def test_forget_asks_on_a_terminal(newsroom, cli, tmp_path) -> None:
    """A real process whose standard input is a pseudo-terminal: the in-process runner has no
    terminal to ask on (there, `forget` without --yes is refused, as from cron)."""
    config = settings_file(newsroom, tmp_path)
    anna = "anna.keller@example.com"
    args = ["subscribers", "forget", anna, "--config", str(config)]
    declined = on_terminal(args, "n\n", tmp_path)
    assert declined.returncode == 130, declined.stderr
    assert f"Erase everything stored about {anna} (Anna Keller), for good?" in declined.stderr
    assert listed(cli)[anna]["name"] == "Anna Keller"
    agreed = on_terminal(args, "y\n", tmp_path)
    assert agreed.returncode == 0, agreed.stderr
    assert f"{anna} forgotten:" in agreed.stdout and anna not in listed(cli)


def test_odd_addresses_are_refused_or_normalized_with_one_line(cli) -> None:
    for address in ("re:x@example.org", "Anna <anna@example.org>", "(c)x@example.org", "x@example"):
        for command in (["add"], ["remove"], ["show"], ["forget", "--yes"]):
            refused(
                cli("subscribers", command[0], address, *command[1:]),
                2,
                f"EMAIL: not an email address: {address!r}",
            )
    upper = cli("subscribers", "add", "Tom.OBrien@EXAMPLE.IE", "--language", "en")
    assert upper.returncode == 0 and upper.stdout.startswith("updated tom.obrien@example.ie:"), upper.stderr
    idn = cli("subscribers", "add", "Zoë@Bücher.Example", "--name", "Zoë")
    assert idn.returncode == 0 and idn.stdout.startswith("added zoë@bücher.example:"), idn.stderr
    as_ascii = json.loads(cli("subscribers", "show", "zoë@xn--bcher-kva.example", "--json").stdout)
    assert as_ascii["email"] == "zoë@bücher.example"
    assert len(listed(cli)) == 13  # one new reader, no second row for Tom


def test_bad_options_are_named(cli) -> None:
    expected = {
        ("add", NEW, "--newsletters", "dayly"): "--newsletters: no newsletter 'dayly'",
        ("add", NEW, "--newsletters", " , "): "--newsletters: name at least one",
        ("add", NEW, "--categories", "Sport"): "--categories: unknown category 'Sport'",
        ("add", NEW, "--language", "xx"): "--language: not a known language code: 'xx'",
        ("add", NEW, "--name", "x" * 301): "--name: longer than 300 characters",
        ("list", "--limit", "0"): "--limit:",
        ("list", "--status", "gone"): "--status:",
    }
    for args, words in expected.items():
        refused(cli("subscribers", *args), 2, words)
    assert NEW not in listed(cli)
