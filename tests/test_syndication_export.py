"""Issue #14, parts 3 and 4: the archive written out as static files (only what changed, what was
withdrawn removed, nothing else touched), withdrawing an edition, and the WebSub hubs told of
each changed feed, retried with backoff, one hub never holding up another."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from sqlalchemy import delete, select, text, update

from newsletter import published
from newsletter.editions.edition import EditionError, open_edition
from newsletter.scheduler.runner import Runner
from newsletter.services import archive, editors, sending
from newsletter.store.db import HEAD_REVISION, make_engine, unit_of_work, upgrade
from newsletter.store.models import Document, HubPush, Publication
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import PickAction
from newsletter.syndication import hubs
from newsletter.syndication.export import MANIFEST, ExportError, file_for
from tests.conftest import WEEKLY_NOV_23, free_port
from tests.support.cli import newsletter
from tests.support.sending import with_settings
from tests.support.settings_files import SECRET_ENV, settings_file
from tests.support.store import migrate

WEEKLY_NOV_16 = WEEKLY_NOV_23 - timedelta(days=7)
FIRST, SECOND = "archive/weekly/2026-11-16", "archive/weekly/2026-11-23"
FARMERS = "https://www.europeantimes.example/2026/11/farmers-protest-in-brussels-over-trade-deal/"


@dataclass
class Hub:
    """A loopback WebSub hub: every POST's form recorded, answered with `status`."""

    status: int = 204
    posts: list[dict[str, list[str]]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub"

    def topics(self) -> list[str]:
        return [topic for form in self.posts for topic in form["hub.url"]]


@pytest.fixture
def hub_servers() -> Iterator[list[Hub]]:
    """Two hubs; a test sets each one's answer."""
    made = []
    for _ in range(2):
        hub = Hub()

        def handler(hub: Hub = hub) -> type[BaseHTTPRequestHandler]:
            class Handler(BaseHTTPRequestHandler):
                def do_POST(self) -> None:
                    length = int(self.headers.get("Content-Length", "0"))
                    hub.posts.append(parse_qs(self.rfile.read(length).decode()))
                    hub.content_types.append(self.headers.get("Content-Type", ""))
                    self.send_response(hub.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

                def log_message(self, *args: object) -> None:
                    pass

            return Handler

        server = ThreadingHTTPServer(("127.0.0.1", 0), handler())
        hub.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()  # stops in 0.05 s
        made.append((hub, server))
    yield [hub for hub, _server in made]
    for _hub, server in made:
        server.shutdown()
        server.server_close()


def send_weekly(runtime: Runtime, slot) -> int:
    """Send the weekly edition of `slot` to the outbox: sending it archives it."""
    report = sending.send(runtime, "weekly", slot + timedelta(minutes=5))
    assert report.status == "complete", report
    return report.edition_id


def etags(runtime: Runtime) -> dict[str, str]:
    with runtime.factory() as session:
        return {path: tag for path, tag in session.execute(select(Document.path, Document.etag))}


def changed_feeds(runtime: Runtime, before: dict[str, str]) -> set[str]:
    """The absolute URLs of the feeds new or changed since `before`."""
    return {
        published.url(str(runtime.settings.public_url), path)
        for path, tag in etags(runtime).items()
        if path.startswith("/feeds/") and before.get(path) != tag
    }


def files(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under `folder` but the manifest: its bytes, mtime and inode (a rename makes a new one)."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and path.name != MANIFEST:
            stat = path.stat()
            found[path.relative_to(folder).as_posix()] = (path.read_bytes(), stat.st_mtime_ns, stat.st_ino)
    return found


def test_document_paths_become_files_inside_the_folder() -> None:
    assert file_for("/feeds/weekly/en.atom") == "feeds/weekly/en.atom"
    assert file_for("/feeds/weekly/de/politics.json") == "feeds/weekly/de/politics.json"
    assert file_for("/sitemap.xml") == "sitemap.xml" and file_for("/robots.txt") == "robots.txt"
    assert file_for("/archive/weekly/2026-11-23") == "archive/weekly/2026-11-23/index.html"
    assert file_for("/archive/weekly/page/2") == "archive/weekly/page/2/index.html"
    assert file_for("/") == "index.html"
    for bad in (
        "archive/weekly",
        "/../outside.xml",
        "/archive/../../outside",
        "//etc/passwd",
        "/archive//weekly",
        "/archive/./weekly",
        "/a\\..\\b",
        "/" + MANIFEST,
    ):
        with pytest.raises(ExportError):
            file_for(bad)


def test_a_second_edition_leaves_the_first_editions_files_as_they_were(newsroom, tmp_path) -> None:
    site = tmp_path / "site"
    send_weekly(newsroom, WEEKLY_NOV_16)
    first = archive.export(newsroom, site)
    assert not first.removed and first.unchanged == 0
    exported = files(site)
    assert set(first.written) == set(exported)
    for name in (f"{FIRST}/index.html", "archive/weekly/index.html", "feeds/weekly/en.atom"):
        assert name in exported
    assert {"feeds/weekly/en.rss", "feeds/weekly/en.json", "sitemap.xml", "robots.txt"} <= set(exported)
    assert b"2026-11-16" in exported["sitemap.xml"][0]
    # Nothing changed: nothing is written, not even touched.
    again = archive.export(newsroom, site)
    assert (again.written, again.removed, again.unchanged) == ([], [], len(exported))
    assert files(site) == exported

    send_weekly(newsroom, WEEKLY_NOV_23)
    second = archive.export(newsroom, site)
    now = files(site)
    mine = [name for name in exported if name.startswith(f"{FIRST}/")]
    assert mine and all(now[name] == exported[name] for name in mine)  # same bytes, time and inode
    assert not set(mine) & set(second.written) and not second.removed
    assert f"{SECOND}/index.html" in second.written
    assert {"archive/weekly/index.html", "feeds/weekly/en.atom", "sitemap.xml"} <= set(second.written)
    assert "robots.txt" not in second.written and now["robots.txt"] == exported["robots.txt"]
    assert b"2026-11-23" in now["feeds/weekly/en.atom"][0] and b"2026-11-23" in now["sitemap.xml"][0]
    assert not [p for p in site.rglob("*.tmp")]
    listed = json.loads((site / MANIFEST).read_text())["files"]
    assert sorted(listed) == sorted(now)


def test_a_withdrawn_edition_answers_410_and_leaves_the_feeds_and_the_export(newsroom, tmp_path) -> None:
    site = tmp_path / "site"
    first_id = send_weekly(newsroom, WEEKLY_NOV_16)
    send_weekly(newsroom, WEEKLY_NOV_23)
    archive.export(newsroom, site)
    (site / "CNAME").write_text("news.example\n")  # the operator's own file
    exported = files(site)
    first_pages = sorted(name for name in exported if name.startswith(f"{FIRST}/"))
    assert first_pages

    changed = archive.withdraw(newsroom, first_id, WEEKLY_NOV_23 + timedelta(hours=1))
    assert changed and all("/feeds/weekly/" in url for url in changed)
    page = archive.document(newsroom, "/archive/weekly/2026-11-16")
    assert page is not None and page.gone
    link = published.url(str(newsroom.settings.public_url), "/archive/weekly/2026-11-16")
    with newsroom.factory() as session:
        live = session.execute(select(Document.path, Document.body).where(Document.gone.is_(False))).all()
    mentioning = [path for path, body in live if link in body]
    assert not mentioning, mentioning  # no feed, index or sitemap
    assert any(path == "/feeds/weekly/en.atom" for path, _body in live)

    report = archive.export(newsroom, site)
    assert sorted(report.removed) == first_pages
    assert not (site / FIRST).exists()  # its emptied folders go too
    now = files(site)
    assert now["CNAME"] == exported["CNAME"]  # never touched
    assert all(now[name] == exported[name] for name in exported if name.startswith(f"{SECOND}/"))
    assert "feeds/weekly/en.atom" in report.written and b"2026-11-16" not in now["feeds/weekly/en.atom"][0]
    # withdrawing again changes nothing; an unknown edition, or one never archived, is refused
    assert archive.withdraw(newsroom, first_id, WEEKLY_NOV_23 + timedelta(hours=2)) == []
    with pytest.raises(EditionError, match="no edition 999"):
        archive.withdraw(newsroom, 999, WEEKLY_NOV_23)
    with unit_of_work(newsroom.factory) as session:
        draft = open_edition(session, newsroom.settings, "weekly", WEEKLY_NOV_23 + timedelta(days=7)).id
    with pytest.raises(EditionError, match="not in the archive"):
        archive.withdraw(newsroom, draft, WEEKLY_NOV_23)


def test_an_export_touches_no_file_it_did_not_write(newsroom, tmp_path) -> None:
    send_weekly(newsroom, WEEKLY_NOV_16)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "index.html").write_text("the operator's page")
    with pytest.raises(ExportError, match=r"no \.newsletter-export\.json"):
        archive.export(newsroom, foreign)
    assert [p.name for p in foreign.iterdir()] == ["index.html"]
    assert archive.export(newsroom, tmp_path / "new" / "site").written  # a missing folder is made

    site = tmp_path / "site"
    site.mkdir()  # empty: fine
    archive.export(newsroom, site)
    # a file of someone else's where a new document goes is refused, and left as it was
    manifest = json.loads((site / MANIFEST).read_text())
    (site / MANIFEST).write_text(json.dumps({"files": [f for f in manifest["files"] if f != "robots.txt"]}))
    (site / "robots.txt").write_text("User-agent: *\nDisallow: /\n")
    with pytest.raises(ExportError, match="did not write"):
        archive.export(newsroom, site)
    assert (site / "robots.txt").read_text() == "User-agent: *\nDisallow: /\n"
    # a manifest naming a file outside the folder is refused; the file stays
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (site / MANIFEST).write_text(json.dumps({"files": ["../outside.txt"]}))
    with pytest.raises(ExportError, match="outside the folder"):
        archive.export(newsroom, site)
    (site / MANIFEST).write_text("not json")
    with pytest.raises(ExportError, match="not an export's manifest"):
        archive.export(newsroom, site)
    # a link inside the folder that leads outside is never followed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (site / MANIFEST).write_text(json.dumps(manifest))
    (site / "robots.txt").unlink()
    for child in sorted((site / "feeds").rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()
    (site / "feeds").rmdir()
    (site / "feeds").symlink_to(elsewhere)
    with pytest.raises(ExportError, match="outside the export folder"):
        archive.export(newsroom, site)
    assert not list(elsewhere.iterdir()) and outside.read_text() == "keep me"


def hub_runtime(runtime: Runtime, *urls: str) -> Runtime:
    return replace(runtime, settings=with_settings(runtime, syndication={"hubs": list(urls)}))


def test_hubs_get_one_publish_per_changed_feed_and_failures_wait(newsroom, hub_servers, caplog) -> None:
    good, failing = hub_servers
    failing.status = 500
    dead = f"http://127.0.0.1:{free_port()}/hub"  # nothing listens: no answer at all
    runtime = hub_runtime(newsroom, dead, failing.url, good.url)
    before = etags(runtime)
    send_weekly(runtime, WEEKLY_NOV_16)  # its last delivery recorded, the send tells the hubs
    sent = WEEKLY_NOV_16 + timedelta(minutes=5)
    changed = changed_feeds(runtime, before)
    assert len(changed) > 3
    assert sorted(good.topics()) == sorted(changed)  # one request per changed feed
    assert all(form["hub.mode"] == ["publish"] and len(form["hub.url"]) == 1 for form in good.posts)
    assert all(kind.startswith("application/x-www-form-urlencoded") for kind in good.content_types)
    assert sorted(failing.topics()) == sorted(changed)  # the dead hub held up neither
    with runtime.factory() as session:
        waiting = session.scalars(select(HubPush)).all()
    assert {row.hub for row in waiting} == {dead, failing.url}
    assert len(waiting) == 2 * len(changed)
    assert all(row.attempts == 1 and row.next_at == sent + timedelta(minutes=1) for row in waiting)
    assert {row.last_error for row in waiting if row.hub == failing.url} == {"HTTP 500 Internal Server Error"}
    assert all("ConnectError" in (row.last_error or "") for row in waiting if row.hub == dead)

    # not due yet: nothing asked; due: the scheduler's step asks the failing hub (now well) again
    assert archive.push(runtime, sent + timedelta(seconds=30)).attempts == []
    failing.status = 202
    now = sent + timedelta(minutes=1)
    Runner(runtime, clock=lambda: now).push()
    assert sorted(failing.topics()) == sorted(list(changed) * 2)
    with runtime.factory() as session:
        waiting = session.scalars(select(HubPush)).all()
    assert {row.hub for row in waiting} == {dead}  # the failing hub, told, has no row left
    assert all(row.attempts == 2 and row.next_at == now + timedelta(minutes=2) for row in waiting)
    assert len(good.posts) == len(changed)  # told once

    # the second edition: only the feeds it changed, once each; the dead hub leaves the settings
    runtime = hub_runtime(newsroom, failing.url, good.url)
    good.posts.clear()
    before = etags(runtime)
    send_weekly(runtime, WEEKLY_NOV_23)
    changed = changed_feeds(runtime, before)
    assert sorted(good.topics()) == sorted(changed)
    with runtime.factory() as session:
        assert session.scalars(select(HubPush)).all() == []  # the dead hub's rows dropped too

    # queued again while waiting: due now, counted afresh, never twice
    topic = sorted(changed)[0]
    with unit_of_work(runtime.factory) as session:
        hubs.enqueue(session, runtime.settings, [topic, topic], now)
    with unit_of_work(runtime.factory) as session:
        session.execute(update(HubPush).values(attempts=hubs.MAX_ATTEMPTS - 1))
    with unit_of_work(runtime.factory) as session:
        hubs.enqueue(session, runtime.settings, [topic], now)
    with runtime.factory() as session:
        rows = session.scalars(select(HubPush)).all()
    assert len(rows) == 2 and all(r.attempts == 0 and r.next_at == now for r in rows)

    # the last attempt fails: given up, logged, kept with the hub's answer, no longer asked
    with unit_of_work(runtime.factory) as session:
        session.execute(update(HubPush).values(attempts=hubs.MAX_ATTEMPTS - 1))
    good.status = failing.status = 503
    with caplog.at_level(logging.WARNING, logger="newsletter.hubs"):
        report = archive.push(runtime, now)
    assert len(report.failed) == 2 and all(a.retry_at is None for a in report.failed)
    assert "gave up" in caplog.text
    asked = len(good.posts)
    assert archive.push(runtime, now + timedelta(days=30)).attempts == [] and len(good.posts) == asked
    with runtime.factory() as session:
        kept = session.scalars(select(HubPush)).all()
    assert len(kept) == 2 and {r.last_error for r in kept} == {"HTTP 503 Service Unavailable"}


def test_backoff_doubles_from_a_minute_to_six_hours() -> None:
    assert [hubs.wait(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert hubs.wait(9) == timedelta(minutes=256) and hubs.wait(10) == timedelta(hours=6)
    assert hubs.wait(hubs.MAX_ATTEMPTS) == timedelta(hours=6)


def test_the_command_line_rebuilds_exports_withdraws_and_pushes(newsroom, hub_servers, tmp_path) -> None:
    hub = hub_servers[0]
    hub.status = 500
    config = settings_file(newsroom, tmp_path, extra=f'[syndication]\nhubs = ["{hub.url}"]\n')

    def cli(*args: str, settings: Path = config):
        return newsletter("archive", *args, "--config", str(settings), env=SECRET_ENV, cwd=tmp_path)

    ids = [send_weekly(newsroom, slot) for slot in (WEEKLY_NOV_16, WEEKLY_NOV_23)]
    with unit_of_work(newsroom.factory) as session:  # as if archiving had failed: rebuild publishes them
        session.execute(delete(Publication))
    rebuilt = cli("rebuild", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["published"] == ids
    site = tmp_path / "site"
    exported = cli("export", str(site), "--json")
    assert exported.returncode == 0, exported.stderr
    assert f"{FIRST}/index.html" in json.loads(exported.stdout)["written"]
    assert "https://news.example/archive/weekly/2026-11-16" in (site / "sitemap.xml").read_text()

    withdrawn = cli("withdraw", str(ids[0]))
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert "410 Gone" in withdrawn.stdout and "archive push" in withdrawn.stdout
    pushed = cli("push", "--json")
    assert pushed.returncode == 1, pushed.stderr  # the hub refused: asked again later
    attempts = json.loads(pushed.stdout)
    assert attempts and len(hub.posts) == len(attempts) == len({a["feed"] for a in attempts})
    assert all(a["hub"] == hub.url and not a["accepted"] and a["retry_at"] for a in attempts)
    assert {a["problem"] for a in attempts} == {"HTTP 500 Internal Server Error"}
    assert all(a["feed"].startswith("https://news.example/feeds/") for a in attempts)  # rebuilt or withdrawn
    assert cli("push").stdout.strip() == "no push is due"
    again = cli("export", str(site))
    assert again.returncode == 0 and "removed" in again.stdout
    assert not (site / FIRST).exists() and (site / SECOND / "index.html").exists()

    unknown = cli("withdraw", "999")
    assert unknown.returncode == 1 and unknown.stderr.strip() == "newsletter: no edition 999"
    assert cli("withdraw", "0").returncode == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refused = cli("export", str(foreign))
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "Traceback" not in refused.stderr and (foreign / "notes.txt").read_text() == "mine"
    (tmp_path / "plain").mkdir()
    plain = cli("push", settings=settings_file(newsroom, tmp_path / "plain"))
    assert plain.returncode == 0 and "no WebSub hubs configured" in plain.stdout


def test_a_newsletter_that_keeps_no_archive_has_no_page_or_feed(newsroom, tmp_path) -> None:
    """Turned off after an edition was archived: `rebuild` takes its pages and feeds down (and
    makes no empty index or feed for it); the export removes their files."""
    send_weekly(newsroom, WEEKLY_NOV_16)
    site = tmp_path / "site"
    archive.export(newsroom, site)
    assert (site / FIRST / "index.html").exists()
    runtime = replace(newsroom, settings=with_settings(newsroom, newsletters={"weekly": {"archive": False}}))
    send_weekly(runtime, WEEKLY_NOV_23)
    archive.rebuild(runtime, WEEKLY_NOV_23 + timedelta(hours=1))
    assert set(etags(runtime)) == {"/sitemap.xml", "/robots.txt", "/site.css"}
    sitemap = archive.document(runtime, "/sitemap.xml")
    assert sitemap is not None and b"/archive/weekly" not in sitemap.body
    report = archive.export(runtime, site)
    assert report.removed and sorted(p.name for p in site.iterdir()) == [
        MANIFEST,
        "robots.txt",
        "site.css",
        "sitemap.xml",
    ]


def test_a_section_feed_stays_while_an_edition_carries_the_section(newsroom) -> None:
    """One entry a feed: the edition of the 16th has no Technology section, yet the feed of the
    9th's stays (a feed reader following it, and the 9th's page linking it, get no 404)."""
    runtime = replace(newsroom, settings=with_settings(newsroom, syndication={"feed_entries": 1}))
    send_weekly(runtime, WEEKLY_NOV_16 - timedelta(days=7))
    send_weekly(runtime, WEEKLY_NOV_16)
    technology = archive.document(runtime, "/feeds/weekly/en/technology.atom")
    assert technology is not None and not technology.gone
    assert b"/archive/weekly/2026-11-09#technology" in technology.body
    page = archive.document(runtime, "/archive/weekly/2026-11-09")
    assert page is not None
    base = str(runtime.settings.public_url).rstrip("/")
    for link in re.findall(rf'href="{re.escape(base)}(/feeds/[^"]+)"', page.body.decode()):
        assert archive.document(runtime, link) is not None, link


def test_a_second_edition_on_the_same_day_never_stops_a_rebuild(newsroom, caplog) -> None:
    """The send time moved after the day's edition went: the second one of that date is left out
    of the archive (its page would be the first's address), and `rebuild` still works."""
    send_weekly(newsroom, WEEKLY_NOV_23)
    evening = replace(newsroom, settings=with_settings(newsroom, newsletters={"weekly": {"at": "18:00"}}))
    later = WEEKLY_NOV_23 + timedelta(hours=11)
    editors.pick_article(evening, "weekly", FARMERS, PickAction.PIN, later)  # its window holds no news
    with caplog.at_level(logging.WARNING, logger="newsletter.archive"):
        send_weekly(evening, later)
    assert "already has the edition of 2026-11-23" in caplog.text
    with evening.factory() as session:
        assert len(session.scalars(select(Publication)).all()) == 1
    assert archive.rebuild(evening, WEEKLY_NOV_23 + timedelta(days=1)).published == []


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_archiving_never_holds_up_a_migration(make_runtime) -> None:
    """Every command migrates first under PostgreSQL's migration lock: a long archive rebuild
    must not make `newsletter status` (or a starting web worker) wait for it. (SQLite has no
    advisory locks.) The store is one migration behind, so the upgrade takes the lock."""
    runtime = make_runtime()
    engine = make_engine(runtime.settings.database_url)
    migrate(engine, "downgrade", "-1")
    with unit_of_work(runtime.factory) as session:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": archive.ARCHIVE_LOCK})
        migrating = threading.Thread(target=upgrade, args=(engine,), daemon=True)
        migrating.start()
        migrating.join(10)
        assert not migrating.is_alive()
    with engine.connect() as connection:  # the upgrade did run (a store at head skips the lock)
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == HEAD_REVISION
    engine.dispose()


def test_an_export_killed_half_way_leaves_nothing_behind_the_next(newsroom, tmp_path) -> None:
    """`kill -9` between writing a file beside its place and renaming it: the next export removes
    the copy (a host would publish it, and a withdrawn edition's folder would stay for it)."""
    first_id = send_weekly(newsroom, WEEKLY_NOV_16)
    site = tmp_path / "site"
    archive.export(newsroom, site)
    page = site / FIRST / "index.html"
    stray = page.with_name(f".index.html.{'a1' * 16}.tmp")
    stray.write_bytes(page.read_bytes())
    (site / f".{MANIFEST}.{'b2' * 16}.tmp").write_text("{}")
    theirs = [site / "feeds/weekly/.en.atom.notes.tmp", site / f".CNAME.{'d4' * 16}.tmp"]  # not the export's
    archive.withdraw(newsroom, first_id, WEEKLY_NOV_23)
    archive.export(newsroom, site)
    assert not stray.exists() and not list(site.glob(".*.tmp"))
    assert not (site / FIRST).exists()  # its emptied folder went too
    for path in theirs:
        path.write_text("mine")
    archive.export(newsroom, site)
    assert all(path.read_text() == "mine" for path in theirs)

    fresh = tmp_path / "fresh"  # the first export stopped as it wrote its manifest
    fresh.mkdir()
    (fresh / f".{MANIFEST}.{'c3' * 16}.tmp").write_text('{"files": []}')
    assert archive.export(newsroom, fresh).written and not list(fresh.glob(".*.tmp"))
