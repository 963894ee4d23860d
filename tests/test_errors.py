"""Outside text is printed as text, and bad input gets one line and an exit status, never a traceback.

Exit status: 2 when what was asked is wrong whatever the store holds (settings, options,
arguments, values out of range), 1 when the command ran and could not do it all (a feed or a
delivery failed, nothing matched a name, the store or a file could not be used).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from newsletter.editions.edition import EditionError
from newsletter.errors import InputError
from newsletter.services.editors import pick_article
from newsletter.store.runtime import MAX_ID
from newsletter.store.statuses import PickAction
from tests.conftest import SAMPLE
from tests.support.cli import newsletter

MARKUP_TITLE = "Breaking [/red] news [bold]"
PASSWORD = "hunter2secret"


@pytest.fixture
def busy_server() -> Iterator[str]:
    """A feed server that answers 503 with Rich markup as its reason phrase."""

    class Busy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503, "Busy [/red] \x1b]0;PWNED\x07\x1b[2J")  # markup and terminal escapes
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()  # stops in 0.05 s
    yield f"http://127.0.0.1:{server.server_address[1]}/feed/"
    server.shutdown()
    server.server_close()


def test_outside_text_is_printed_as_text(tmp_path, busy_server) -> None:
    """Titles, reason phrases, stored errors, paths and names with markup in them, end to end."""
    folder = tmp_path / "feeds ["  # the file's path reads "feeds [/red] health.xml"
    folder.mkdir()
    sample = (SAMPLE / "category-health.xml").read_text(encoding="utf-8")
    feed = folder / "red] health.xml"
    feed.write_text(
        sample.replace("New guidelines cut sugar in school meals", MARKUP_TITLE, 1), encoding="utf-8"
    )
    config = tmp_path / "n.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "n.db"}"\ntimezone = "Europe/Brussels"\n'
        '[site]\ncategories = ["Health"]\n[fetch]\nallow_private = true\n'
        f'[[feeds]]\nurl = "{feed}"\ncategory = "health"\n[[feeds]]\nurl = "{busy_server}"\n'
        '[newsletters."w[/red]"]\ntitle = "W"\n'
    )
    env = {"NEWSLETTER_CONFIG": str(config), "COLUMNS": "400"}
    for _run in range(2):  # the second run reads the error the first one stored
        fetched = newsletter("fetch", env=env, cwd=tmp_path)
        assert fetched.returncode == 1, fetched.stderr
        assert "HTTP 503 Busy [/red]" in fetched.stderr and "Traceback" not in fetched.stderr
        assert "feeds [/red]" in fetched.stdout
        assert "\x1b" not in fetched.stderr + fetched.stdout
    status = newsletter("status", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "HTTP 503 Busy [/red]" in status.stdout and "feeds [/red]" in status.stdout
    assert "\x1b" not in status.stdout + status.stderr
    at = ("--at", "2026-11-22T12:00")
    trending = newsletter("trending", *at, env=env, cwd=tmp_path)
    assert trending.returncode == 0, trending.stderr
    assert MARKUP_TITLE in trending.stdout
    preview = newsletter(
        "preview", "-n", "w[/red]", "--explain", "--category", "health", *at, env=env, cwd=tmp_path
    )
    assert preview.returncode == 0, preview.stderr
    assert MARKUP_TITLE in preview.stderr and "w[/red] edition" in preview.stderr
    pinned = newsletter("edition", "pin", "1", "-n", "w[/red]", *at, env=env, cwd=tmp_path)
    assert pinned.returncode == 0, pinned.stderr
    assert MARKUP_TITLE in pinned.stdout
    listed = newsletter("editions", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "w[/red]" in listed.stdout
    status = newsletter("status", env=env, cwd=tmp_path)
    assert status.returncode == 0 and "w[/red]" in status.stdout, status.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a settings file and a store holding the sample site, for commands to refuse."""
    folder = tmp_path_factory.mktemp("store")
    feeds = "".join(f'[[feeds]]\nurl = "{SAMPLE / name}"\n' for name in ("site.xml", "trending.xml"))
    (folder / "n.toml").write_text(
        f'database_url = "sqlite:///{folder / "n.db"}"\ntimezone = "Europe/Brussels"\n'
        '[site]\ncategories = ["Politics", "Health", "Europe", "Business", "Technology", "Culture", '
        '"Human Rights"]\n' + feeds
    )
    assert newsletter("fetch", env={"NEWSLETTER_CONFIG": str(folder / "n.toml")}, cwd=folder).returncode == 0
    return folder


HUGE = "99999999999999999999"  # beyond 64 bits
AT = ("--at", "2026-11-22T12:00")
# (args, extra environment, settings file instead of the store's, exit status, words in the line)
BAD_INPUT: dict[str, tuple[list[str], dict[str, str], bytes | None, int, str]] = {
    "settings file not UTF-8": (["status"], {}, b'timezone = "\xff"\n', 2, "UTF-8"),
    "feeds = 5": (["fetch"], {}, b"feeds = 5\n", 2, "feeds"),
    "secret in a table": (["status"], {}, b'[site]\nSecret_Key = "x"\n', 2, "environment only"),
    "broken subject template": (["status"], {}, b'[newsletters.weekly]\nsubject = "{{ top"\n', 2, "subject"),
    "site not JSON": (["status"], {"NEWSLETTER_SITE": "{bad"}, None, 2, "NEWSLETTER_SITE"),
    "config file missing": (
        ["--config", "/nonexistent/n.toml", "status"],
        {},
        None,
        2,
        "/nonexistent/n.toml",
    ),
    "database unreachable": (
        ["status"],
        {"NEWSLETTER_DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x"},
        None,
        1,
        "postgresql://postgres:***@127.0.0.1:1/x",
    ),
    "database URL malformed": (
        ["status"],
        {"NEWSLETTER_DATABASE_URL": f"postgresql://bob:{PASSWORD}@db:port/x"},
        None,
        2,
        "database_url",
    ),
    "export into a missing folder": (
        ["subscribers", "export", "/nonexistent/x.csv"],
        {},
        None,
        1,
        "/nonexistent/x.csv",
    ),
    "preview into a missing folder": (
        ["preview", *AT, "--out", "/nonexistent/x.html"],
        {},
        None,
        1,
        "/nonexistent/x.html",
    ),
    "--at year 1": (["trending", "--at", "0001-01-01"], {}, None, 2, "--at"),
    "--at year 1 UTC": (["preview", "--at", "0001-01-01T00:00+00:00"], {}, None, 2, "--at"),
    "--at year 9999": (["send", "--at", "9999-12-31T23:59"], {}, None, 2, "--at"),
    "--at end of time UTC": (["edition", "pin", "1", "--at", "9999-12-31T23:59+00:00"], {}, None, 2, "--at"),
    "--at gibberish": (["trending", "--at", "yesterday"], {}, None, 2, "--at: not a time: 'yesterday'"),
    "--config after the command, missing": (
        ["status", "--config", "/nonexistent/n.toml"],
        {},
        None,
        2,
        "--config: no such file: /nonexistent/n.toml",
    ),
    "-n unknown": (["preview", "-n", "dayly", *AT], {}, None, 2, "-n/--newsletter: no newsletter 'dayly'"),
    "send -n unknown": (["send", "--newsletter", "dayly"], {}, None, 2, "-n/--newsletter: no newsletter"),
    "preview --language unknown": (["preview", *AT, "--language", "xx"], {}, None, 2, "--language: not a"),
    "trending --days not a number": (["trending", "--days", "x"], {}, None, 2, "--days: not a whole number"),
    "trending --days huge": (["trending", "--days", "99999999999"], {}, None, 2, "--days"),
    "trending --days 0": (["trending", "--days", "0"], {}, None, 2, "--days"),
    "trending --limit -1": (["trending", "--limit", "-1"], {}, None, 2, "--limit"),
    "trending --limit abc": (["trending", "--limit", "abc"], {}, None, 2, "--limit"),
    "pin beyond 64 bits": (["edition", "pin", HUGE, *AT], {}, None, 2, HUGE),
    "exclude beyond 64 bits": (["edition", "exclude", HUGE, *AT], {}, None, 2, HUGE),
    "pin a superscript digit": (["edition", "pin", "²", *AT], {}, None, 1, "no article"),
    "pin nothing": (["edition", "pin", "99999", *AT], {}, None, 1, "no article"),
    "preview --category empty": (["preview", *AT, "--category", ""], {}, None, 2, "category"),
    "preview --category markup": (["preview", *AT, "--category", "[/red]"], {}, None, 1, "unknown category"),
    "preview --category huge": (["preview", *AT, "--category", "x" * 5000], {}, None, 2, "category"),
    "send --edition beyond 64 bits": (["send", "--edition", HUGE], {}, None, 2, "--edition"),
    "send --retry-failed beyond 64 bits": (["send", "--retry-failed", HUGE], {}, None, 2, "--retry-failed"),
    "send --edition unknown": (["send", "--edition", "12345"], {}, None, 1, "no edition 12345"),
    "send --rate nan": (["send", "--rate", "nan"], {}, None, 2, "--rate"),
    "send --rate 0": (["send", "--rate", "0"], {}, None, 2, "--rate"),
    "send --dry-run --edition": (["send", "--dry-run", "--edition", "1"], {}, None, 2, "--dry-run"),
    "deliveries not a number": (["deliveries", "abc"], {}, None, 2, "EDITION: not a whole number: 'abc'"),
    "deliveries unknown": (["deliveries", "12345"], {}, None, 1, "no edition 12345"),
    "deliveries beyond 64 bits": (["deliveries", HUGE], {}, None, 2, "EDITION: use a number from 1"),
    "deliveries --status bogus": (["deliveries", "1", "--status", "bogus"], {}, None, 2, "--status"),
    "deliveries --limit 0": (["deliveries", "1", "--limit", "0"], {}, None, 2, "--limit: use 1 or more"),
    "editions --limit 0": (["editions", "--limit", "0"], {}, None, 2, "--limit: use 1 or more"),
    "test-send without --to": (["test-send", *AT], {}, None, 2, "--to"),
    "test-send bad address": (["test-send", "--to", "a@b@c", *AT], {}, None, 2, "--to: not an email address"),
    "test-send --as unknown": (
        ["test-send", "--to", "ed@example.org", "--as", "nobody@example.org", *AT],
        {},
        None,
        1,
        "no subscriber 'nobody@example.org'",
    ),
    "unpick nothing": (["edition", "unpick", "1", *AT], {}, None, 1, "has no pin or exclusion"),
    "unknown command": (["bogus"], {}, None, 2, "bogus"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_gets_one_line_and_an_exit_status(store, tmp_path, case) -> None:
    args, extra, settings_file, code, words = BAD_INPUT[case]
    config = store / "n.toml"
    if settings_file is not None:
        config = tmp_path / "bad.toml"
        config.write_bytes(settings_file)
    env = {
        "NEWSLETTER_CONFIG": str(config),
        "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789",
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        **extra,
    }
    result = newsletter(*args, env=env, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("newsletter: ") and words in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout


def test_an_id_beyond_the_store_is_refused_before_any_query(make_runtime) -> None:
    """SQLite overflows past 64 bits and PostgreSQL's ids are 32-bit: such an id is input, not a lookup."""
    runtime = make_runtime()
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    for reference in (str(MAX_ID + 1), str(2**63), HUGE):
        with pytest.raises(InputError, match=reference):
            pick_article(runtime, "weekly", reference, PickAction.PIN, now)
    with pytest.raises(EditionError, match="no article"):
        pick_article(runtime, "weekly", str(MAX_ID), PickAction.PIN, now)
