"""Issue #22, 8: text from any form holding NUL or another control character is refused with a
page that says so, on both databases (PostgreSQL refuses a NUL: it never gets one), by the rule
a CSV's cells follow; the store is left as it was."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from newsletter.store.models import AuditEntry, EditionPick, Subscriber
from tests.support.editors import LOGIN, PASSWORD, login_form, signed_in
from tests.support.upcoming import desk_of
from tests.support.web import ANNA, PARTNER, Forms, Site, path_of

pytestmark = pytest.mark.both_databases

# NUL, ESC, DEL and a C1 control (NEL).
CONTROLS = ("\x00", "\x1b", "\x7f", "\x85")


@pytest.fixture
def desk(newsroom, tmp_path) -> Iterator[Site]:
    yield from desk_of(newsroom, tmp_path)


def refused(answer: httpx.Response) -> None:
    assert answer.status_code == 409, answer.text
    assert "holds a control character (such as NUL)" in answer.text, answer.text


def count(site: Site, model: type) -> int:
    with site.runtime.factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_the_readers_forms_refuse_a_control_character(desk: Site) -> None:
    partner = {"origin": PARTNER}
    readers = count(desk, Subscriber)
    for control in CONTROLS:
        for field, value in (("name", f"a{control}b"), ("email", f"nul{control}@example.net")):
            fields = {"email": "nul@example.net", "newsletters": "weekly", field: value}
            refused(desk.post("/subscribe", data=fields, headers=partner))
        sections = {"email": "nul@example.net", "newsletters": "weekly", "categories": f"health{control}"}
        refused(desk.post("/subscribe", data=sections, headers=partner))
    assert count(desk, Subscriber) == readers and desk.notices() == []
    anna = desk.subscriber(ANNA)
    preferences = path_of(desk.links().preferences(anna.id))
    with desk.client() as browser:
        fields = Forms(browser.get(preferences).text).form(preferences)
        for control in CONTROLS:
            changed = {"csrf": fields["csrf"], "newsletters": "weekly", "language": "en"}
            refused(browser.post(preferences, data={**changed, "categories": f"politics{control}"}))
            refused(browser.post(preferences, data={**changed, "new_email": f"anna{control}@example.org"}))
    assert desk.subscriber(ANNA).language == anna.language  # nothing saved
    # The body as a browser encodes it, a name with a tab and a line break is still a name.
    sent = desk.post(
        "/subscribe",
        content=b"email=nul%40example.net&newsletters=weekly&name=a%00b",
        headers={**partner, "content-type": "application/x-www-form-urlencoded"},
    )
    refused(sent)
    named = {"email": "tab@example.net", "newsletters": "weekly", "name": "Tab\tand\r\nbreak"}
    assert desk.post("/subscribe", data=named, headers=partner).status_code == 200


def test_the_editors_forms_refuse_a_control_character(desk: Site) -> None:
    audited = count(desk, AuditEntry)
    with desk.client() as client:
        form = login_form(client)
        wrong = {"csrf": form["csrf"], "email": "ed.itor\x00@example.com", "password": PASSWORD}
        refused(client.post(LOGIN, data=wrong))
        assert count(desk, AuditEntry) == audited  # not even a failed attempt: nothing was read
        signed_in(client)
        page = client.get("/editor/upcoming/weekly").text
        csrf = Forms(page).form("/editor/upcoming/weekly/pick")["csrf"]
        for control in CONTROLS:
            pick = {"csrf": csrf, "article": f"https://x/{control}", "action": "pin"}
            refused(client.post("/editor/upcoming/weekly/pick", data=pick))
            subject = {"csrf": csrf, "language": "en", "subject": f"Hello{control}", "preheader": ""}
            refused(client.post("/editor/upcoming/weekly/override", data=subject))
            refused(
                client.post("/editor/upcoming/weekly/reader", data={"csrf": csrf, "email": f"a{control}@b.c"})
            )
            refused(client.post("/editor/checks/weekly", data={"csrf": csrf, "x": control}))
        encoded = client.post(
            "/editor/upcoming/weekly/pick",
            content=f"csrf={csrf}&article=https://x/%00&action=pin".encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        refused(encoded)
    assert count(desk, EditionPick) == 0
