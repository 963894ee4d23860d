"""Past editions for editors (issue #13 part 8), `newsletter serve`'s app in this process: an
edition sent over SMTP with one address refused, one reader bounced and one who left everything,
and clicks through the tracked links; the pages show deliveries per status, the provider's words, the
suppressions it caused and clicks per article, all as text, and nothing without a session."""

from __future__ import annotations

import email
import email.policy
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import select, update

from newsletter.editions.edition import open_edition
from newsletter.sending.providers.smtp import SMTPProvider
from newsletter.sending.sender import Sender
from newsletter.services import accounts, history, readers, sending
from newsletter.services import bounces as bounce_service
from newsletter.store.db import unit_of_work
from newsletter.store.models import Article, Delivery, Edition, Subscriber, Suppression
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import DeliveryStatus, EditionStatus, SuppressionReason
from newsletter.subscribers.links import Links, token_of
from newsletter.subscribers.tokens import read
from tests.conftest import WEEKLY_NOV_23
from tests.support.bounces import dsn
from tests.support.clock import NOW, FixedClock
from tests.support.editions import ON_TIME, tracked
from tests.support.editors import ED, PASSWORD, shut_out, signed_in
from tests.support.sending import prepared, smtp_settings
from tests.support.web import MARC, Forms, Site, path_of, serve

TOM = "tom.obrien@example.ie"  # his mailbox does not exist: the server refuses it
JAN = "jan.novak@example.com"  # his mail system bounces the digest afterwards
SOFIA = "sofia.rossi@example.net"
REFUSAL = "550 5.1.1 <tom.obrien@example.ie>: <script>alert('smtp')</script> no such mailbox"
HOSTILE = "<script>alert('title')</script> Breaking"
MISSED = 26  # missed editions, enough for a second page of past editions
EDITIONS = "/editor/editions"


class Tables(HTMLParser):
    """The text of every table cell of a page, row by row, by the table's classes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: list[list[str]] | None = None
        self.cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.current = self.tables.setdefault(dict(attrs).get("class") or "", [])
        elif tag == "tr" and self.current is not None:
            self.current.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None and self.current is not None:
            self.current[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def body(self, name: str) -> list[list[str]]:
        """The rows under the table's header row."""
        return self.tables[name][1:]


@dataclass
class Sent:
    """The edition sent, the article clicked by two readers (the other by one), the draft after."""

    edition_id: int
    shared: int
    single: int
    draft: int


def links_by_reader(messages: list[tuple[list[str], bytes]], key: bytes) -> dict[str, dict[int, str]]:
    """Each reader's tracked article links, by article id, as their message carries them."""
    found: dict[str, dict[int, str]] = {}
    for [to], data in messages:
        message = email.message_from_bytes(data, policy=email.policy.default)
        html = message.get_body(("html",)).get_content()
        paths = [path_of(link) for link in re.findall(r'class="card-title" href="([^"]+)"', html)]
        found[to] = {read(key, "article", path.split("/")[2]).subscriber_id: path for path in paths}
    return found


def send_with_trouble(runtime: Runtime, smtp_sink) -> int:
    """The weekly over SMTP: Tom's address refused for good, Jan's digest bounced afterwards."""
    sink, port = smtp_sink
    tracked(runtime)
    edition_id = prepared(runtime)
    with unit_of_work(runtime.factory) as session:
        session.execute(
            update(Edition).where(Edition.id == edition_id).values(approved_by=ED, approved_at=NOW)
        )
    sink.refuse[TOM] = REFUSAL
    settings = smtp_settings(runtime, port)
    provider = SMTPProvider(settings)
    try:
        report = Sender(settings, runtime.factory, provider).send(edition_id)
    finally:
        provider.close()
    assert report.status == "partial" and (report.sent, report.failed) == (8, 1)
    with runtime.factory() as session:
        message_id = session.scalars(
            select(Delivery.provider_message_id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.edition_id == edition_id, Subscriber.email == JAN)
        ).one()
    bounced = dsn("bounces@news.example", JAN, "5.1.1", "550 5.1.1 user unknown", original_id=message_id)
    handled = bounce_service.handle(runtime, "bounces", "1", bounced, NOW)
    assert handled.outcome == "hard" and handled.suppressed
    return edition_id


def the_past(runtime: Runtime) -> int:
    """Missed editions before the weekly (one with a hostile note) and a draft after it."""
    with unit_of_work(runtime.factory) as session:
        for day in range(MISSED):
            start = datetime(2026, 10, 1, 4, 30, tzinfo=UTC) + timedelta(days=day)
            session.add(
                Edition(
                    newsletter="daily",
                    slot=f"2026-10-{day + 1:02d}T06:30",
                    window_start=start,
                    window_end=start + timedelta(days=1),
                    status=EditionStatus.MISSED,
                    note="skipped: still held by <b>someone</b>" if day == 0 else None,
                )
            )
        return open_edition(session, runtime.settings, "weekly", WEEKLY_NOV_23 + timedelta(days=7)).id


@pytest.fixture
def desk(newsroom, smtp_sink, tmp_path) -> Iterator[tuple[Site, Sent]]:
    """A server on a store with the troubled weekly, its readers' clicks, and an editor."""
    accounts.add(newsroom, ED, PASSWORD, NOW)
    edition_id = send_with_trouble(newsroom, smtp_sink)
    draft = the_past(newsroom)
    links = links_by_reader(smtp_sink[0].messages, newsroom.settings.signing_key())
    with newsroom.factory() as session:
        began = session.get_one(Edition, edition_id).started_at  # the sender's own time
    clock = FixedClock(began + timedelta(minutes=5))  # the readers act after the edition went
    for site in serve(newsroom, tmp_path, extra="[links]\ntrack_clicks = true\n", clock=clock):
        # The article most digests carry: one reader clicks it twice, another once; the first
        # reader clicks one more article too.
        mailed = {reader: found for reader, found in links.items() if reader not in (TOM, JAN, MARC)}
        shared, _count = Counter(a for found in mailed.values() for a in found).most_common(1)[0]
        first, second = [reader for reader, found in mailed.items() if shared in found and len(found) > 1][:2]
        single = next(a for a in mailed[first] if a != shared)
        for path in (
            mailed[first][shared],
            mailed[first][shared],
            mailed[first][single],
            mailed[second][shared],
        ):
            assert site.get(path).status_code == 302
        # Marc leaves every newsletter from his digest's unsubscribe link.
        link = path_of(site.links().unsubscribe(site.subscriber(MARC).id, "weekly"))
        with site.client() as browser:
            left = browser.post(link, data={"List-Unsubscribe": "One-Click"})
            everything = Forms(left.text).form(f"{link}/everything")
            assert browser.post(f"{link}/everything", data=everything).status_code == 200
        with unit_of_work(newsroom.factory) as session:
            session.execute(update(Article).where(Article.id == shared).values(title=HOSTILE))
        yield site, Sent(edition_id, shared, single, draft)


def test_the_past_editions_list_pages_newest_first(desk) -> None:
    site, sent = desk
    with site.client() as client:
        shut_out(client.get(EDITIONS))
        shut_out(client.get(f"{EDITIONS}/{sent.edition_id}"))
        signed_in(client)
        home = client.get("/editor/")
        assert f'href="{EDITIONS}?lang=en"' in home.text
        first = client.get(EDITIONS)
        assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
        rows = Tables(first.text).body("audit")
        assert len(rows) == 25
        weekly = rows[0]
        assert weekly[0].startswith("Weekly") and weekly[1] == "partial"
        assert weekly[4] == "8 sent, 1 failed"
        assert all(row[1] == "missed" and row[4] == "none" for row in rows[1:])
        assert "Page 1 of 2" in first.text and f'href="{EDITIONS}?page=2&amp;lang=en"' in first.text
        second = client.get(f"{EDITIONS}?page=2")
        assert len(Tables(second.text).body("audit")) == MISSED + 1 - 25
        assert "Page 2 of 2" in second.text
        assert f"{EDITIONS}/{sent.draft}?" not in first.text + second.text  # a draft has not gone yet
        beyond = client.get(f"{EDITIONS}?page=99999999999999999999999999")  # the last page
        assert beyond.status_code == 200 and "Page 2 of 2" in beyond.text
        for wrong in ("0", "-1", "two", "1.5", "9" * 5000):
            assert client.get(EDITIONS, params={"page": wrong}).status_code == 400, wrong


def test_an_edition_shows_its_failures_suppressions_and_clicks(desk) -> None:
    site, sent = desk
    with site.client() as client:
        signed_in(client)
        page = client.get(f"{EDITIONS}/{sent.edition_id}")
        assert page.status_code == 200
        tables = Tables(page.text)
        assert tables.body("audit deliveries") == [["sent", "8"], ["failed", "1"], ["Total", "9"]]
        assert f"by {ED}" in page.text  # who approved it
        [failure] = tables.body("audit failures")
        assert failure == [TOM, "1", REFUSAL]
        assert history.report(site.runtime, sent.edition_id, failures_limit=0).more_failures == 1
        suppressed = {row[0]: row[1:] for row in tables.body("audit suppressed")}
        assert set(suppressed) == {TOM, JAN, MARC}
        assert suppressed[TOM][0] == "bounce" and suppressed[TOM][2] == REFUSAL
        assert suppressed[JAN][0] == "bounce" and "user unknown" in suppressed[JAN][2]
        assert suppressed[MARC][0] == "left every newsletter"
        assert "<li>bounce: 2</li>" in page.text and "<li>left every newsletter: 1</li>" in page.text
        clicks = tables.body("audit clicks")
        with site.runtime.factory() as session:
            single = session.get(Article, sent.single)
            assert single is not None
            single_row = [single.title, single.url, "1", "1"]
        assert clicks[0][0].startswith(HOSTILE) and clicks[0][2:] == ["2", "2"]
        assert clicks[1:] == [single_row]
        # What came from outside is text: the provider's words and the title, escaped.
        assert "<script>" not in page.text
        assert "&lt;script&gt;alert(&#39;smtp&#39;)&lt;/script&gt;" in page.text
        assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in page.text
        # The oldest missed edition: its note as text, nothing sent, nothing caused.
        listed = client.get(f"{EDITIONS}?page=2").text
        links = re.findall(rf'href="{EDITIONS}/(\d+)\?lang=en"', listed)
        oldest = client.get(f"{EDITIONS}/{links[-1]}")
        assert oldest.status_code == 200
        assert "skipped: still held by &lt;b&gt;someone&lt;/b&gt;" in oldest.text
        assert "This edition has no deliveries." in oldest.text and "No delivery failed." in oldest.text
        assert "No reader was suppressed after this edition." in oldest.text
        for unknown in ("999999", str(2**31), str(2**64 + 1), "9" * 40, "abc", "-1", "1x"):
            answer = client.get(f"{EDITIONS}/{unknown}")
            assert answer.status_code == 404 and "Page not found" in answer.text, unknown


def test_without_click_tracking_the_page_says_so(newsroom, tmp_path) -> None:
    accounts.add(newsroom, ED, PASSWORD, NOW)
    report = sending.send(newsroom, "weekly", ON_TIME)
    for site in serve(newsroom, tmp_path):
        with site.client() as client:
            signed_in(client)
            page = client.get(f"{EDITIONS}/{report.edition_id}")
            assert page.status_code == 200 and "Click tracking is off." in page.text
            assert Tables(page.text).body("audit deliveries")[0] == ["sent", str(report.sent)]
            assert "No delivery failed." in page.text


@pytest.mark.both_databases
def test_a_suppression_is_put_down_to_the_last_edition_mailed_before_it(newsroom) -> None:
    """Service level: a later edition that mailed the reader takes it, one that skipped them
    does not; an operator's suppression and one older than the edition are nobody's doing."""
    first = sending.send(newsroom, "weekly", ON_TIME).edition_id
    assert first is not None
    with unit_of_work(newsroom.factory) as session:
        began = session.get(Edition, first).started_at  # the sender's own time
        after = began + timedelta(minutes=1)
        long_ago = began - timedelta(days=30)
        session.add(Suppression(email=SOFIA, reason=SuppressionReason.BOUNCE, created_at=long_ago))
        ids = {address: id_ for address, id_ in session.execute(select(Subscriber.email, Subscriber.id))}
        later = Edition(
            newsletter="daily",
            slot="2026-11-24T06:30",
            window_start=WEEKLY_NOV_23,
            window_end=WEEKLY_NOV_23 + timedelta(days=1),
            status=EditionStatus.COMPLETE,
            started_at=after,
        )
        session.add(later)
        session.flush()
        session.add(Delivery(edition_id=later.id, subscriber_id=ids[MARC], status=DeliveryStatus.SENT))
        session.add(Delivery(edition_id=later.id, subscriber_id=ids[TOM], status=DeliveryStatus.SKIPPED))
        session.add(Suppression(email=JAN, reason=SuppressionReason.MANUAL))
        second = later.id
    links = Links.from_settings(newsroom.settings)
    for reader in (MARC, TOM):
        token = token_of(links.unsubscribe(ids[reader], "weekly"))
        readers.leave_everything(newsroom, token, "page", after + timedelta(minutes=1))
    earlier, latest = history.report(newsroom, first), history.report(newsroom, second)
    assert [s.email for s in earlier.suppressed] == [TOM]
    assert earlier.suppressions == {SuppressionReason.UNSUBSCRIBE: 1}
    assert [s.email for s in latest.suppressed] == [MARC]
    assert earlier.clicks is None and earlier.failures == [] and earlier.more_failures == 0
    shown = history.past(newsroom, 1)
    assert shown.total == 2 and [p.edition.id for p in shown.editions] == [second, first]
    assert shown.editions[0].counts == {DeliveryStatus.SENT: 1, DeliveryStatus.SKIPPED: 1}
