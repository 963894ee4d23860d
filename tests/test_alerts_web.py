"""The editors' alert button (issue #24, point 2), `newsletter serve`'s app in this process:
choose the article, see who gets it and the message as sent, confirm; the alert reaches the
readers who opted in, once however often the button is pressed, and the past editions list it
with its article and counts; nothing of it without a session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from newsletter.services import accounts
from newsletter.store.models import Edition
from tests.support.alerts import TRANSLATED, article_id, opt_in
from tests.support.clock import FixedClock
from tests.support.editors import ED, PASSWORD, shut_out, signed_in
from tests.support.outbox import messages
from tests.support.waiting import until
from tests.support.web import Forms, Site, serve

NOON = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # 10:00 in Brussels: no quiet hours


@pytest.fixture
def desk(newsroom, tmp_path) -> Iterator[Site]:
    accounts.add(newsroom, ED, PASSWORD, NOON)
    extra = '[newsletters.breaking]\nkind = "alert"\nquiet_hours = "22:00-07:00"\n'
    yield from serve(newsroom, tmp_path, extra=extra, clock=FixedClock(NOON))


def status_of(site: Site, edition_id: int) -> str:
    with site.runtime.factory() as session:
        return session.get_one(Edition, edition_id).status


def test_an_editor_chooses_sees_and_confirms_an_alert_sent_once(desk) -> None:
    readers = opt_in(desk.runtime, 3)
    opt_in(desk.runtime, 1, first=10, language="de")
    number = article_id(desk.runtime)
    with desk.client() as client:
        signed_in(client)
        page = client.get("/editor/alerts/breaking")
        assert page.status_code == 200 and str(number) in page.text
        assert "/editor/alerts/breaking" in client.get("/editor/").text  # the desk's menu leads here
        shown = client.get(f"/editor/alerts/breaking?article={TRANSLATED}")
        assert shown.status_code == 200
        assert "4 pending" in shown.text  # the readers who opted in, in both languages
        frame = client.get(f"/editor/alerts/breaking/frame?article={number}&subject=&language=de")
        assert frame.status_code == 200 and "Weiterlesen" in frame.text
        assert "sandbox" in frame.headers["content-security-policy"]
        form = Forms(shown.text).form("/editor/alerts/breaking/send")
        sent = client.post("/editor/alerts/breaking/send", data=form)
        assert sent.status_code == 303 and sent.headers["location"].endswith("done=sent")
        with desk.runtime.factory() as session:
            edition_id = session.scalars(select(Edition.id).where(Edition.article_id == number)).one()
        until(lambda: status_of(desk, edition_id) == "complete", 60)
        again = client.post("/editor/alerts/breaking/send", data=form)
        assert again.headers["location"].endswith("done=already")
        listed = client.get("/editor/alerts/breaking").text
        assert "4 sent" in listed
        past = client.get("/editor/editions").text
        assert "alerted" in past and f"/editor/editions/{edition_id}" in past
    got = sorted(m["To"] for m in messages(desk.runtime, edition_id))
    assert got == sorted([*readers, "alert010@example.com"])  # once each, nobody else


def test_the_alert_pages_need_a_session_and_a_real_article(desk) -> None:
    shut_out(desk.get("/editor/alerts/breaking"))
    shut_out(desk.post("/editor/alerts/breaking/send", data={"article": "1"}))
    with desk.client() as client:
        signed_in(client)
        assert client.get("/editor/alerts/weekly").status_code == 404  # a digest has no alert page
        assert client.get("/editor/upcoming/breaking").status_code == 404  # nor an alert a next edition
        missing = client.get("/editor/alerts/breaking?article=https://nowhere.example/")
        assert missing.status_code == 404 and "no article" in missing.text
        form = Forms(client.get("/editor/alerts/breaking").text).form("/editor/alerts/breaking")
        assert "article" in form
        forged = client.post("/editor/alerts/breaking/send", data={"article": str(article_id(desk.runtime))})
        assert forged.status_code in (400, 403)  # no form token
    with desk.runtime.factory() as session:
        assert session.scalars(select(Edition).where(Edition.article_id.is_not(None))).all() == []
