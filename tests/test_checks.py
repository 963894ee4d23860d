"""The checks before an edition goes (issue #13, part 5): every article link answers (a loopback
server's 404 is listed with its status), images carry alt text, each variant's size against
Gmail's clipping, SpamAssassin's score where it is installed, List-Unsubscribe; on the command
line, on the editors' page over real HTTP, and holding an edition with `hold_on_failed_checks`.
A link that hangs, redirects to a private address, answers with a huge body or is no web link
cannot hold a check up or lead it astray."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import format_datetime
from ipaddress import ip_address
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from newsletter.editions import checks as pure
from newsletter.editions.checks import Check, Checklist, Copy
from newsletter.ingest.fetch import is_public, make_client
from newsletter.ingest.run import fetch_feeds
from newsletter.services import accounts, audit, checks, editors, schedule, sending
from newsletter.services.sending import EditionHeld
from newsletter.settings import FetchSettings
from newsletter.store.db import unit_of_work
from newsletter.store.models import Edition, Variant
from newsletter.store.statuses import PickAction
from newsletter.subscribers.bulk import import_csv
from tests.conftest import ROOT, SECTIONS, WEEKLY_NOV_23
from tests.feedserver import FeedServer, Route, TrickleServer
from tests.support.cli import newsletter
from tests.support.clock import NOW
from tests.support.editors import ED, PASSWORD, signed_in
from tests.support.sending import statuses, with_settings
from tests.support.settings_files import SECRET_ENV, settings_file
from tests.support.web import Forms, Site, serve

SPAMASSASSIN = shutil.which("spamassassin")
BEFORE = WEEKLY_NOV_23 - timedelta(hours=20)  # editors at work: the 23 November slot is ahead
ON_TIME = WEEKLY_NOV_23 + timedelta(minutes=5)
PAGE = b"<!DOCTYPE html><html><head><title>An article</title></head><body><p>Text.</p></body></html>"
READERS = (
    "email,name,language,categories,newsletters,status\n"
    "ada@example.com,Ada,en,Politics,weekly,active\n"
    "bert@example.com,Bert,en,Politics;Health,weekly,active\n"
)
# SpamAssassin's test string: any message carrying it scores 1,000.
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
REFUSING = FetchSettings(allow_private=False, timeout_seconds=1)


def feed(server: FeedServer, published: datetime) -> bytes:
    """Three articles on the loopback server: one answers, one is moved there, one is gone."""
    items = [
        ("/articles/kept", "Parliament passes the budget", "Politics"),
        ("/articles/moved", "Clinics open on Sundays", "Health"),
        ("/articles/gone", "Minister resigns", "Politics"),
    ]
    entries = "".join(
        f"<item><title>{title}</title><link>{server.url(path)}</link><guid>{server.url(path)}</guid>"
        f"<pubDate>{format_datetime(published - timedelta(hours=n))}</pubDate><category>{category}</category>"
        f'<description>What happened, in short.</description><enclosure url="{server.url("/img/" + str(n))}.jpg"'
        ' type="image/jpeg" length="100"/></item>'
        for n, (path, title, category) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>The site</title>'
        f"<link>{server.url('/')}</link><description>News</description>{entries}</channel></rss>"
    ).encode()


@pytest.fixture
def newsdesk(make_runtime, feed_server: FeedServer, tmp_path: Path):
    """A store built from a loopback site whose article links answer 200, 301 then 200, and 404."""
    return desk_at(make_runtime, feed_server, tmp_path, BEFORE - timedelta(days=1))


def desk_at(make_runtime, server: FeedServer, folder: Path, published: datetime, **settings: object):
    server.routes["/feed.xml"] = Route(body=feed(server, published))
    server.routes["/articles/kept"] = Route(body=PAGE, content_type="text/html")
    server.routes["/articles/moved"] = Route(status=301, location="/articles/kept")
    runtime = make_runtime(
        feeds=[{"url": server.url("/feed.xml")}],
        site={"categories": SECTIONS, "url": "https://www.europeantimes.example"},
        timezone="Europe/Brussels",
        public_url="https://news.example",
        **settings,
    )
    [report] = fetch_feeds(runtime.settings, runtime.factory)
    assert report.new == 3, report
    readers = folder / "readers.csv"
    readers.write_text(READERS)
    with unit_of_work(runtime.factory) as session:
        assert not import_csv(session, runtime.settings, readers, confirmed=True).rejected
    return runtime


@pytest.fixture(autouse=True)
def _without_spamassassin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks as on a machine without SpamAssassin (its check says skipped), but in the e2e
    test that runs it: it takes seconds a message."""
    if request.node.get_closest_marker("e2e") is None:
        monkeypatch.setattr(checks, "shutil", SimpleNamespace(which=lambda _name: None))


def by_name(checklist: Checklist) -> dict[str, Check]:
    return {check.name: check for check in checklist.checks}


def rows(runtime) -> tuple[int, int]:
    with runtime.factory() as session:
        return (
            session.scalar(select(func.count()).select_from(Edition)) or 0,
            session.scalar(select(func.count()).select_from(Variant)) or 0,
        )


def test_a_link_answering_404_is_listed_with_its_status(newsdesk, feed_server: FeedServer) -> None:
    checklist = checks.run(newsdesk, "weekly", BEFORE)
    found = by_name(checklist)
    assert [c.name for c in checklist.failed] == ["links"]
    assert found["links"].summary == "1 of 3 article links are broken"
    assert found["links"].details == [f"{feed_server.url('/articles/gone')}: HTTP 404 Not Found"]
    # HEAD is refused by this server (501): GET decided, and the redirect was followed
    assert {path for path, _headers in feed_server.requests} >= {"/articles/kept", "/articles/moved"}
    assert found["images"].status == "pass" and "alt text or marked decorative" in found["images"].summary
    assert found["size"].status == "pass" and "KB left" in found["size"].summary
    assert found["unsubscribe"].status == "pass", found["unsubscribe"]
    assert found["spam"] == Check("spam", "skipped", "skipped: spamassassin is not installed")
    assert checklist.edition.slot == "2026-11-23T07:00" and checklist.edition.status == "draft"
    assert rows(newsdesk) == (0, 0)  # a draft is checked as prepared, and nothing is written
    assert checks.last(newsdesk, "weekly", BEFORE) is None


def test_a_prepared_edition_keeps_its_last_checklist(newsdesk) -> None:
    edition_id, _warnings = sending.prepare_next(newsdesk, "weekly", BEFORE, ahead_ok=True)
    checklist = checks.run(newsdesk, "weekly", BEFORE)
    assert checklist.edition.id == edition_id and checklist.edition.status == "ready"
    kept = checks.last(newsdesk, "weekly", BEFORE)
    assert kept == checklist and Checklist.from_json(checklist.to_json()) == checklist
    with newsdesk.factory() as session:
        assert session.get_one(Edition, edition_id).checked_at == BEFORE


def shipped_templates_changed(folder: Path, old: str, new: str) -> Path:
    copy = folder / "templates"
    shutil.copytree(ROOT / "templates", copy)
    card = copy / "email" / "card.html"
    text = card.read_text()
    assert old in text
    card.write_text(text.replace(old, new))
    return copy


def test_an_image_without_alt_text_fails(make_runtime, feed_server, tmp_path) -> None:
    templates = shipped_templates_changed(tmp_path, 'alt="" role="presentation">', ">")  # no alt
    runtime = desk_at(
        make_runtime, feed_server, tmp_path, BEFORE - timedelta(days=1), templates_dir=templates
    )
    found = by_name(checks.run(runtime, "weekly", BEFORE, links=False))
    assert found["images"].status == "fail" and "have no alt text" in found["images"].summary
    assert all("/img/" in detail and "not marked decorative" in detail for detail in found["images"].details)


@pytest.mark.e2e
@pytest.mark.skipif(not SPAMASSASSIN, reason="needs Debian's spamassassin")
def test_spamassassin_passes_the_shipped_variants_and_fails_a_spammy_one(
    newsdesk, feed_server, tmp_path
) -> None:
    """SpamAssassin is a program of its own, seconds a message: the everyday checks run without
    it (their spam check says skipped); here it scores the variants made from the shipped
    templates (they pass) and from templates carrying its test string (they fail)."""
    found = by_name(checks.run(newsdesk, "weekly", BEFORE, links=False))
    assert found["spam"].status == "pass" and "every variant scored" in found["spam"].summary
    templates = shipped_templates_changed(tmp_path, 'alt="" role="presentation">', f">{GTUBE}")
    spammy = replace(newsdesk, settings=with_settings(newsdesk, templates_dir=templates))
    found = by_name(checks.run(spammy, "weekly", BEFORE, links=False))
    assert found["spam"].status == "fail" and any("GTUBE" in d for d in found["spam"].details)


def test_the_pure_checks() -> None:
    https = {
        "List-Unsubscribe": "<https://news.example/unsubscribe/T>, <mailto:u@news.example?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    ok = Copy(
        "en: politics",
        '<p><img src="a.jpg" alt="A crowd"><img src="b.jpg" alt="" role="presentation"></p>',
        https,
    )
    assert pure.images([ok]).status == "pass"
    for bad in ('<img src="x.jpg">', '<img src="x.jpg" alt="  ">', '<img src="x.jpg" alt="">'):
        check = pure.images([Copy("de: health", bad, https)])
        assert check.status == "fail" and check.details == [
            "de: health: x.jpg has no alt text and is not marked decorative"
        ]
    big = Copy("en: all", "x" * (102 * 1024 + 1), https)
    small = Copy("en: few", "x" * (50 * 1024), https)
    size = pure.size([small, big])
    assert size.status == "fail" and size.details == [
        "en: all: 102.0 KB, 0.0 KB over",
        "en: few: 50.0 KB, 52.0 KB left",
    ]
    assert pure.size([small]).summary == "the largest variant is 50.0 KB of 102 KB: 52.0 KB left"
    assert pure.unsubscribe([ok]).status == "pass"
    plain = {**https, "List-Unsubscribe": "<http://news.example/unsubscribe/T>"}
    missing = {"List-Unsubscribe": https["List-Unsubscribe"]}
    check = pure.unsubscribe([Copy("a", "", plain), Copy("b", "", missing), Copy("c", "", {})])
    assert check.status == "fail" and [d.split(":")[0] for d in check.details] == ["a", "b", "c"]
    assert "not HTTPS" in check.details[0] and "List-Unsubscribe-Post" in check.details[1]
    links = pure.links(
        [pure.Answer("https://x.example/a", 200), pure.Answer("https://x.example/b", 410, "HTTP 410 Gone")]
    )
    assert links.status == "fail" and links.details == ["https://x.example/b: HTTP 410 Gone"]


@pytest.fixture
def trickle() -> Iterator[list[TrickleServer]]:
    started: list[TrickleServer] = []
    yield started
    for server in started:
        server.close()


def test_a_hanging_link_times_out_and_a_huge_body_is_never_read(trickle, feed_server: FeedServer) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 50000000000\r\n\r\n"
    hanging = TrickleServer(slow=head)  # a byte every 0.25 s: never a per-read timeout
    endless = TrickleServer(fast=head, slow=b"x" * 10_000, interval=0.01)  # 50 GB promised
    trickle += [hanging, endless]
    feed_server.routes["/huge"] = Route(body=b"x" * 20_000_000, content_type="text/html")  # by GET
    settings = FetchSettings(allow_private=True, timeout_seconds=1, max_bytes=1000)
    with make_client(settings) as client:
        started = time.monotonic()
        slow = checks.answer(client, hanging.url("/a"), settings)
        assert slow.problem == "timed out after 1 s" and time.monotonic() - started < 2
        for url in (endless.url("/a"), feed_server.url("/huge")):
            started = time.monotonic()
            assert checks.answer(client, url, settings) == pure.Answer(url, 200)
            assert time.monotonic() - started < 1


@pytest.mark.parametrize("target", ["http://10.0.0.7/a", "http://[::1]:{port}/a", "http://169.254.169.254/"])
def test_a_redirect_to_a_private_address_is_refused(feed_server: FeedServer, target: str) -> None:
    """The test server stands in for a public one: its own address, and only that, is let through."""
    feed_server.routes["/hop"] = Route(status=302, location=target.format(port=feed_server.port))
    server = ip_address("127.0.0.1")
    with make_client(REFUSING, allowed=lambda a: a == server or is_public(a)) as client:
        found = checks.answer(client, feed_server.url("/hop"), REFUSING)
    assert found.status is None and found.problem is not None
    assert (
        found.problem.startswith("refused: redirected to http://") and "fetch.allow_private" in found.problem
    )
    with make_client(REFUSING) as client:  # a private first hop is never connected to
        first = checks.answer(client, feed_server.url("/hop"), REFUSING)
    assert first.problem == "refused: 127.0.0.1 is not a public address (fetch.allow_private is off)"


def test_links_that_are_not_web_links_are_broken(feed_server: FeedServer) -> None:
    settings = FetchSettings(allow_private=True, timeout_seconds=1, max_redirects=1)
    feed_server.routes["/loop"] = Route(status=302, location="/loop")
    with make_client(settings) as client:
        for url in ("ftp://example.com/a", "javascript:alert(1)", "/relative"):
            assert checks.answer(client, url, settings).problem == "not a web link (http or https)"
        assert (checks.answer(client, "http://[::1/a", settings).problem or "").startswith("InvalidURL")
        assert checks.answer(client, feed_server.url("/loop"), settings).problem == "more than 1 redirects"


def test_newsletter_check_prints_the_checklist_and_exits_1(newsdesk, feed_server, tmp_path) -> None:
    config = settings_file(newsdesk, tmp_path, "[fetch]\nallow_private = true\n")
    env = {**SECRET_ENV, "COLUMNS": "200"}
    at = BEFORE.isoformat()
    shown = newsletter("check", "--at", at, "--config", str(config), env=env, cwd=tmp_path)
    assert shown.returncode == 1, shown.stderr
    lines = [" ".join(line.replace("│", " ").split()) for line in shown.stdout.splitlines()]
    assert "weekly edition of 2026-11-23 07:00 CET" in lines[0] and "(not started)" in lines[0]
    assert "Article links answer fail 1 of 3 article links are broken" in lines
    assert f"{feed_server.url('/articles/gone')}: HTTP 404 Not Found" in lines
    assert any(line.startswith("List-Unsubscribe headers pass") for line in lines)
    as_json = newsletter("check", "--json", "--at", at, "--config", str(config), env=env, cwd=tmp_path)
    assert as_json.returncode == 1, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["failed"] == ["links"] and data["edition"]["window_end"] == "2026-11-23T07:00:00+01:00"
    quick = newsletter("check", "--no-links", "--at", at, "--config", str(config), env=env, cwd=tmp_path)
    assert quick.returncode == 0, quick.stdout + quick.stderr
    assert "skipped: links were not fetched" in quick.stdout


def test_hold_on_failed_checks_holds_the_edition_and_send_sends_nothing(
    make_runtime, feed_server, tmp_path
) -> None:
    runtime = desk_at(
        make_runtime,
        feed_server,
        tmp_path,
        BEFORE - timedelta(days=1),
        newsletters={"weekly": {"hold_on_failed_checks": True}},
        scheduler={"alerts_to": "ops@example.com"},
    )
    with pytest.raises(EditionHeld, match=r"held by checks \(links failed\)"):
        sending.send(runtime, "weekly", ON_TIME)
    with runtime.factory() as session:
        edition = session.scalars(select(Edition)).one()
        assert (edition.status, edition.held_by, edition.released_at) == ("ready", "checks", None)
        assert Checklist.from_json(edition.checks or "").failed[0].name == "links"
    assert statuses(runtime, edition.id) == {"pending": 2}
    with pytest.raises(EditionHeld):  # sending again sends nothing either
        sending.send(runtime, "weekly", ON_TIME)
    assert not (runtime.settings.outbox_dir / f"edition-{edition.id}").exists()
    [entry] = [e for e in audit.entries(runtime) if e.action == "checks failed"]
    assert entry.target == "weekly 2026-11-23T07:00" and entry.detail == {"failed": ["links"]}
    [alert] = (runtime.settings.outbox_dir / "outside-ledger").glob("*.eml")
    told = email.message_from_bytes(alert.read_bytes(), policy=email.policy.default)
    assert "its checks failed" in str(told["Subject"]) and told["To"] == "ops@example.com"
    assert "/articles/gone: HTTP 404" in told.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    editors.decide(runtime, "weekly", "release", ON_TIME, ED)  # an editor accepts it
    assert sending.send(runtime, "weekly", ON_TIME).status == "complete"
    assert statuses(runtime, edition.id) == {"sent": 2}


def test_hold_on_failed_checks_lifts_its_hold_when_every_check_passes(
    make_runtime, feed_server, tmp_path
) -> None:
    runtime = desk_at(
        make_runtime,
        feed_server,
        tmp_path,
        BEFORE - timedelta(days=1),
        newsletters={"weekly": {"hold_on_failed_checks": True}},
    )
    feed_server.routes["/articles/gone"] = Route(body=PAGE, content_type="text/html")  # back again
    report = sending.send(runtime, "weekly", ON_TIME)
    assert report.status == "complete" and statuses(runtime, report.edition_id) == {"sent": 2}
    with runtime.factory() as session:
        edition = session.get_one(Edition, report.edition_id)
        assert (edition.held_at, edition.held_by, edition.released_at) == (None, None, None)
        assert edition.checked_at is not None


def checked_desk(make_runtime, feed_server: FeedServer, tmp_path: Path, **weekly: object):
    """A store whose every article link answers, with `hold_on_failed_checks` on the weekly."""
    runtime = desk_at(
        make_runtime,
        feed_server,
        tmp_path,
        BEFORE - timedelta(days=1),
        newsletters={"weekly": {"hold_on_failed_checks": True, **weekly}},
    )
    feed_server.routes["/articles/gone"] = Route(body=PAGE, content_type="text/html")
    return runtime


def test_a_hold_given_while_the_edition_is_checked_keeps_it(
    make_runtime, feed_server, tmp_path, monkeypatch
) -> None:
    runtime = checked_desk(make_runtime, feed_server, tmp_path)
    checking = checks.run

    def held_meanwhile(*args, **options):  # an editor holds it while its links are fetched
        editors.decide(runtime, "weekly", "hold", ON_TIME, ED)
        return checking(*args, **options)

    monkeypatch.setattr(checks, "run", held_meanwhile)
    with pytest.raises(EditionHeld, match=f"held by {ED}"):
        sending.send(runtime, "weekly", ON_TIME)
    with runtime.factory() as session:
        edition = session.scalars(select(Edition)).one()
        assert (edition.status, edition.held_by) == ("ready", ED)
    assert statuses(runtime, edition.id) == {"pending": 2}


def test_an_editors_hold_outlasts_the_checks_of_the_review(make_runtime, feed_server, tmp_path) -> None:
    runtime = checked_desk(make_runtime, feed_server, tmp_path, review_minutes=60)
    editors.decide(runtime, "weekly", "hold", BEFORE, ED)
    assert schedule.review_due(runtime, "weekly", WEEKLY_NOV_23 - timedelta(minutes=30)).action == "composed"
    with runtime.factory() as session:
        edition = session.scalars(select(Edition)).one()
        assert (edition.status, edition.held_by) == ("ready", ED) and edition.checked_at is not None
    with pytest.raises(EditionHeld, match=f"held by {ED}"):  # the checks passed: still the editor's hold
        sending.send(runtime, "weekly", ON_TIME)
    assert statuses(runtime, edition.id) == {"pending": 2}


def test_a_change_after_the_checks_passed_is_checked_again(make_runtime, feed_server, tmp_path) -> None:
    runtime = checked_desk(make_runtime, feed_server, tmp_path)
    gone = feed_server.url("/articles/gone")
    editors.pick_article(runtime, "weekly", gone, PickAction.EXCLUDE, BEFORE, ED)
    sending.prepare_next(runtime, "weekly", BEFORE, ahead_ok=True)  # every check passes: it may go
    feed_server.routes.pop("/articles/gone")  # now answers 404
    editors.unpick_article(runtime, "weekly", gone, BEFORE, ED)  # and goes back in
    with pytest.raises(EditionHeld, match="held by checks"):
        sending.send(runtime, "weekly", ON_TIME)
    with runtime.factory() as session:
        edition = session.scalars(select(Edition)).one()
        assert (edition.status, edition.held_by) == ("ready", "checks")
    assert statuses(runtime, edition.id) == {"pending": 2}
    failed = [e.detail for e in audit.entries(runtime) if e.action == "checks failed"]
    assert failed == [{"failed": ["links"]}]
    editors.pick_article(runtime, "weekly", gone, PickAction.EXCLUDE, BEFORE, ED)  # out again: it passes
    assert sending.send(runtime, "weekly", ON_TIME).status == "complete"


def test_checks_that_passed_lift_no_hold_of_a_change_made_meanwhile(
    make_runtime, feed_server, tmp_path, monkeypatch
) -> None:
    runtime = checked_desk(make_runtime, feed_server, tmp_path)
    gone = feed_server.url("/articles/gone")
    editors.pick_article(runtime, "weekly", gone, PickAction.EXCLUDE, BEFORE, ED)
    checking = checks.run

    def changed_meanwhile(*args, **options):  # while the first checks end, the broken link goes in
        found = checking(*args, **options)
        if feed_server.routes.pop("/articles/gone", None):
            editors.unpick_article(runtime, "weekly", gone, ON_TIME + timedelta(seconds=1), ED)
        return found

    monkeypatch.setattr(checks, "run", changed_meanwhile)
    with pytest.raises(EditionHeld, match="held by checks"):
        sending.send(runtime, "weekly", ON_TIME)  # its own checks passed; the change's did not
    with runtime.factory() as session:
        edition = session.scalars(select(Edition)).one()
        assert (edition.status, edition.held_by) == ("ready", "checks")
    assert statuses(runtime, edition.id) == {"pending": 2}


@pytest.fixture
def live_desk(make_runtime, feed_server, tmp_path) -> Iterator[Site]:
    """The served app checks the edition due by the wall clock: its articles are from an hour ago."""
    runtime = desk_at(make_runtime, feed_server, tmp_path, NOW - timedelta(hours=1))
    accounts.add(runtime, ED, PASSWORD, NOW)
    yield from serve(runtime, tmp_path, extra="[fetch]\nallow_private = true\n")


def test_the_editors_page_runs_the_checks_over_http(live_desk: Site, feed_server: FeedServer) -> None:
    with live_desk.client() as client:
        assert client.get("/editor/checks/weekly").headers["location"].startswith("/editor/login")
        signed_in(client)
        page = client.get("/editor/checks/weekly")
        assert page.status_code == 200 and "has not been checked yet" in page.text
        form = Forms(page.text).form("/editor/checks/weekly")
        assert client.post("/editor/checks/weekly", data={"csrf": "forged"}).status_code == 403
        done = client.post("/editor/checks/weekly", data=form, timeout=120)
        assert done.status_code == 200, done.text
        text = " ".join(done.text.split())
        assert "Article links answer: failed" in text
        assert f"{feed_server.url('/articles/gone')}: HTTP 404 Not Found" in text
        assert "Images have alt text: passed" in text
        # served at http://127.0.0.1 here: the one-click link is not HTTPS
        assert "List-Unsubscribe headers: failed" in text and "2 checks failed." in text
        assert client.get("/editor/checks/nope").status_code == 404


FAKE_SPAMASSASSIN = """#!/usr/bin/env python3
import mailbox, sys
given = list(mailbox.mbox(sys.argv[-1]))
for message in reversed(given):  # an order of its own, as SpamAssassin's
    place = int(str(message["X-Newsletter-Check-Place"]))
    message["X-Spam-Status"] = f"No, score={place}.0 required=5.0"
    message["X-Spam-Tests"] = f"RULE_{place}={place}.0"
    sys.stdout.buffer.write(b"From checker Mon Dec  7 00:00:00 2026\\n" + message.as_bytes() + b"\\n")
"""


def test_each_variants_score_is_its_own(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SpamAssassin gives an mbox's messages back in an order of its own: each score still goes
    to the variant it was given for."""
    fake = tmp_path / "spamassassin"
    fake.write_text(FAKE_SPAMASSASSIN)
    fake.chmod(0o755)
    monkeypatch.setattr(checks, "shutil", SimpleNamespace(which=lambda _name: str(fake)))
    copies = [Copy(f"variant {n}", "<p>x</p>", {}) for n in range(3)]
    messages = [f"Subject: {n}\r\n\r\nbody {n}\r\n".encode() for n in range(3)]
    found = checks._spam(copies, messages)
    assert found.status == "pass", found
    assert found.details == [
        f"variant {n}: {n}.0 (RULE_{n} +{n}.0)" if n else "variant 0: 0.0 (no rule scored)" for n in range(3)
    ]


def test_an_edition_without_any_image_is_said_so(make_runtime, feed_server, tmp_path) -> None:
    """Issue #21, 12: the sections' cards drawn without images and Trending told to show none
    (`trending_images = false`): the check says the edition carries no image, and that its
    articles have some; with Trending's images on, its items carry them."""
    templates = shipped_templates_changed(tmp_path, "  {{ image(item) }}\n", "")
    published = BEFORE - timedelta(days=1)
    bare = desk_at(
        make_runtime,
        feed_server,
        tmp_path,
        published,
        templates_dir=templates,
        newsletters={"weekly": {"trending_images": False}},
    )
    found = by_name(checks.run(bare, "weekly", BEFORE, links=False))["images"]
    assert (
        found.status == "pass" and found.summary == "no image at all: no variant of this edition carries one"
    )
    assert found.details == [
        "3 of its articles have an image, and no variant shows one (Trending items show none while the "
        "newsletter's trending_images is off)"
    ]
    weekly = bare.settings.newsletter("weekly").model_copy(update={"trending_images": True})
    bare.settings = with_settings(bare, newsletters={**bare.settings.newsletters, "weekly": weekly})
    shown = by_name(checks.run(bare, "weekly", BEFORE, links=False))["images"]
    assert shown.status == "pass" and shown.summary.endswith(
        "images, each with alt text or marked decorative"
    )
    assert not shown.summary.startswith("0 ")
