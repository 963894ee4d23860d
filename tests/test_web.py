"""The readers' pages, `newsletter serve`'s app driven in this process (two e2e tests start the
real command), the sample store behind it, notices in its outbox. Sign-up, the confirmation from the emailed link, a
change of preferences, one-click unsubscribing in both encodings without cookies; forged,
altered, expired and foreign tokens change nothing; CSRF, origins and rate limits refuse what
they should; a German reader gets German pages and email."""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from newsletter.store.models import Consent, Delivery, Subscriber, SubscriberNewsletter
from newsletter.subscribers.links import Links
from newsletter.subscribers.tokens import sign
from tests.support.web import (
    ANNA,
    MARC,
    PARTNER,
    Forms,
    Site,
    path_of,
    process,
    serve,
)


@pytest.fixture
def site(newsroom, tmp_path) -> Iterator[Site]:
    yield from serve(newsroom, tmp_path)


def emailed_link(message: email.message.EmailMessage, purpose: str) -> str:
    text = message.get_body(("plain",)).get_content()
    found = re.search(rf"https?://\S+/{purpose}/\S+", text)
    assert found, text
    return path_of(found.group(0))


def sign_up(client: httpx.Client, **fields: object) -> httpx.Response:
    page = client.get("/subscribe")
    assert page.status_code == 200
    form = Forms(page.text).form("/subscribe")
    return client.post("/subscribe", data={"csrf": form["csrf"], "lang": form.get("lang", "en"), **fields})


def test_sign_up_confirm_change_and_leave(site: Site) -> None:
    reader = "new.reader@example.net"
    with site.client() as browser:
        sent = sign_up(
            browser,
            email="New.Reader@Example.NET",
            name="<b>New</b> Reader",
            newsletters=["weekly", "daily"],
            categories=["health"],
            language="en",
        )
        assert sent.status_code == 200, sent.text
        assert "New.Reader@Example.NET" in sent.text or reader in sent.text
        assert site.subscriber(reader).status == "pending"  # no digest before the confirmation
        [notice] = site.notices_for(reader)
        assert notice["List-Unsubscribe"] is None and notice["List-Id"] is None  # no list mail
        confirm = emailed_link(notice, "confirm")
        page = browser.get(confirm)  # a link scanner's GET confirms nothing
        assert page.status_code == 200 and site.subscriber(reader).status == "pending"
        done = browser.post(confirm, data=Forms(page.text).form(confirm))
        assert done.status_code == 200, done.text
        assert site.subscriber(reader).status == "active"
        assert "&lt;b&gt;New&lt;/b&gt;" in done.text or "<b>New</b>" not in done.text  # escaped
        settings_link = re.search(r'href="(https?://[^"]+/preferences/[^"]+)"', done.text)
        assert settings_link, done.text
        preferences = path_of(settings_link.group(1))
        page = browser.get(preferences)
        assert page.status_code == 200
        fields = Forms(page.text).form(preferences)
        saved = browser.post(
            preferences,
            data={
                "csrf": fields["csrf"],
                "newsletters": ["weekly"],
                "categories": ["politics", "europe"],
                "language": "de",
                "pause_weeks": "0",
            },
        )
        assert saved.status_code == 200, saved.text
    record = site.subscriber(reader)
    assert sorted(c.slug for c in record.categories) == ["europe", "politics"] and record.language == "de"
    assert site.subscriptions(reader) == {"weekly": "active", "daily": "unsubscribed"}
    with site.runtime.factory() as session:
        consents = session.scalars(select(Consent).where(Consent.subscriber_id == record.id)).all()
    assert [c.action for c in consents] == ["subscribe", "confirm", "change"]
    assert consents[0].source.endswith("/subscribe") and consents[0].wording
    # One click, from a mail client: no cookie, no form token.
    left = site.post(
        path_of(site.links().unsubscribe(record.id, "weekly")),
        data={"List-Unsubscribe": "One-Click"},
    )
    assert left.status_code == 200 and "set-cookie" not in left.headers
    listed = json.loads(site.cli("subscribers", "list", "--json").stdout)
    [row] = [r for r in listed if r["email"] == reader]
    assert row["newsletters"] == [] and sorted(row["left"]) == ["daily", "weekly"]
    # The next edition skips them.
    sent_edition = site.cli("send", "--at", "2026-11-23T07:10")
    assert sent_edition.returncode == 0, sent_edition.stderr
    with site.runtime.factory() as session:
        deliveries = session.scalars(select(Delivery).where(Delivery.subscriber_id == record.id)).all()
        assert deliveries == []
        assert session.scalars(select(Delivery)).first() is not None  # the others got theirs


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "----newsletter-test-boundary"
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    )
    return f"{body}--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_one_click_in_both_encodings_without_cookies(site: Site) -> None:
    marc = site.subscriber(MARC).id
    links = site.links()
    weekly, daily = path_of(links.unsubscribe(marc, "weekly")), path_of(links.unsubscribe(marc, "daily"))
    urlencoded = site.post(
        weekly,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert urlencoded.status_code == 200, urlencoded.text
    assert "location" not in urlencoded.headers and "set-cookie" not in urlencoded.headers
    assert site.subscriptions(MARC) == {"weekly": "unsubscribed", "daily": "active"}  # the daily stays
    body, kind = multipart({"List-Unsubscribe": "One-Click"})
    form_data = site.post(daily, content=body, headers={"content-type": kind})
    assert form_data.status_code == 200, form_data.text
    assert site.subscriptions(MARC) == {"weekly": "unsubscribed", "daily": "unsubscribed"}
    again = site.post(weekly, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200  # a second click is harmless
    with site.runtime.factory() as session:
        sources = session.scalars(
            select(SubscriberNewsletter.source).where(SubscriberNewsletter.subscriber_id == marc)
        ).all()
    assert set(sources) == {"one-click"}
    assert site.subscriber(MARC).status == "active"  # left both, still not suppressed
    # Without the RFC 8058 body, nothing happens.
    anna = site.subscriber(ANNA).id
    missing = site.post(path_of(links.unsubscribe(anna, "weekly")), data={"other": "x"})
    assert missing.status_code == 400 and site.subscriptions(ANNA)["weekly"] == "active"


def test_the_unsubscribe_page_confirms_then_offers_to_come_back(site: Site) -> None:
    anna = site.subscriber(ANNA).id
    link = path_of(site.links().unsubscribe(anna, "weekly"))
    with site.client() as browser:
        page = browser.get(link)
        assert page.status_code == 200 and site.subscriptions(ANNA)["weekly"] == "active"
        assert 'lang="de"' in page.text and "Wochenüberblick" in page.text  # her language, her title
        left = browser.post(link, data=Forms(page.text).form(link))
        assert left.status_code == 200 and site.subscriptions(ANNA)["weekly"] == "unsubscribed"
        forms = Forms(left.text)
        back = browser.post(f"{link}/again", data=forms.form(f"{link}/again"))
        assert back.status_code == 200 and site.subscriptions(ANNA)["weekly"] == "active"
        everything = browser.post(f"{link}/everything", data=forms.form(f"{link}/everything"))
        assert everything.status_code == 200
    assert set(site.subscriptions(ANNA).values()) == {"unsubscribed"}
    assert site.subscriber(ANNA).status == "unsubscribed"
    shown = json.loads(site.cli("subscribers", "show", ANNA, "--json").stdout)
    assert shown["suppression"].startswith("unsubscribe")


def test_bad_tokens_change_nothing(site: Site) -> None:
    key = site.runtime.settings.signing_key()
    marc = site.subscriber(MARC).id
    good = sign(key, "unsubscribe", marc, scope="weekly")
    payload, mac = good.split(".")
    daily_payload = sign(key, "unsubscribe", marc, scope="daily").split(".")[0]
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    bad = {
        "forged": sign(b"not-our-key-0123456789abcdef", "unsubscribe", marc, scope="weekly"),
        "altered": f"{flipped}.{mac}",
        "foreign newsletter": f"{daily_payload}.{mac}",
        "another purpose": sign(key, "preferences", marc),
        "garbage": "x" * 5000,
        "other reader": f"{sign(key, 'unsubscribe', marc + 1, scope='weekly').split('.')[0]}.{mac}",
    }
    for name, token in bad.items():
        for answer in (
            site.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}),
            site.get(f"/unsubscribe/{token}"),
        ):
            assert answer.status_code == 400, (name, answer.status_code)
            assert "Traceback" not in answer.text and token[:40] not in answer.text
    expired = sign(key, "preferences", marc, now=(site.clock() - timedelta(days=800)).timestamp())
    page = site.get(f"/preferences/{expired}")
    assert page.status_code == 400 and 'action="/preferences"' in page.text  # a fresh link offered
    for purpose in ("confirm", "address", "preferences"):
        assert site.get(f"/{purpose}/{bad['forged']}").status_code == 400
    assert site.subscriptions(MARC) == {"weekly": "active", "daily": "active"}


def test_csrf_origins_and_rate_limits(newsroom, tmp_path) -> None:
    readers = f'signup_origins = ["{PARTNER}"]\ntrusted_proxies = ["127.0.0.1"]\nclient_per_minute = 3\n'
    for site in serve(newsroom, tmp_path, readers):
        fields = {"email": "someone@example.net", "newsletters": "weekly", "language": "en"}
        with site.client() as browser:
            form = Forms(browser.get("/subscribe").text).form("/subscribe")
            no_cookie = site.post("/subscribe", data={**fields, "csrf": form["csrf"]})
            assert no_cookie.status_code == 403
            foreign = browser.post(
                "/subscribe",
                data={**fields, "csrf": form["csrf"]},
                headers={"origin": "https://evil.example"},
            )
            assert foreign.status_code == 403
            wrong = browser.post("/subscribe", data={**fields, "csrf": "A" * 32})
            assert wrong.status_code == 403
        assert site.notices() == [] and "someone@example.net" not in json.dumps(
            json.loads(site.cli("subscribers", "list", "--json").stdout)
        )
        # A partner page's form: no cookie, accepted, its page recorded as the consent's source.
        partner = site.post(
            "/subscribe",
            data=fields,
            headers={"origin": PARTNER, "referer": f"{PARTNER}/join?x=1", "x-forwarded-for": "203.0.113.1"},
        )
        assert partner.status_code == 200, partner.text
        with site.runtime.factory() as session:
            [consent] = session.scalars(select(Consent)).all()
        assert consent.source == f"{PARTNER}/join?x=1"
        # Three a minute per client: the client is the forwarded address (127.0.0.1 is trusted).
        for i in range(2):
            answer = site.post(
                "/subscribe",
                data={**fields, "email": f"r{i}@example.net"},
                headers={"origin": PARTNER, "x-forwarded-for": "198.51.100.7, 203.0.113.1"},
            )
            assert answer.status_code == 200
        over = site.post(
            "/subscribe",
            data={**fields, "email": "r9@example.net"},
            headers={"origin": PARTNER, "x-forwarded-for": "203.0.113.1"},
        )
        assert over.status_code == 429 and over.headers["retry-after"] == "60"
        other = site.post(
            "/subscribe",
            data={**fields, "email": "r9@example.net"},
            headers={"origin": PARTNER, "x-forwarded-for": "203.0.113.2"},
        )
        assert other.status_code == 200
        # One address asked for again and again from many clients: one confirmation an hour.
        for i in range(6):
            site.post(
                "/subscribe",
                data={**fields, "email": "victim@example.net"},
                headers={"origin": PARTNER, "x-forwarded-for": f"192.0.2.{i + 10}"},
            )
        site.notices_for("victim@example.net")  # sent before the answer came back
        assert [m["To"] for m in site.notices()].count("victim@example.net") == 1


def test_a_german_reader_gets_german_pages(site: Site) -> None:
    anna = site.subscriber(ANNA).id
    links = site.links()
    for link in (links.preferences(anna), links.unsubscribe(anna, "weekly")):
        page = site.get(path_of(link))
        assert page.status_code == 200 and 'lang="de"' in page.text
        for english in ("Unsubscribe", "Newsletters", "Save", "Language", "Your "):
            assert f">{english}" not in page.text, (link, english)
    signup = site.get("/subscribe", headers={"accept-language": "de-AT,de;q=0.9,en;q=0.5"})
    assert 'lang="de"' in signup.text and "E-Mail" in signup.text


def test_every_page_carries_the_security_headers(site: Site) -> None:
    anna = site.subscriber(ANNA).id
    for path in ("/subscribe", "/preferences", path_of(site.links().preferences(anna)), "/no-such-page"):
        page = site.get(path)
        headers = page.headers
        assert "script-src" not in headers["content-security-policy"]
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        token_page = path.startswith("/preferences/")
        assert headers["referrer-policy"] == ("no-referrer" if token_page else "same-origin")
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        assert "<script" not in page.text and " style=" not in page.text
    assert site.get("/no-such-page").status_code == 404
    huge = site.post("/subscribe", content=b"a=" + b"x" * 200_000)
    assert huge.status_code == 413
    health = site.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"


@pytest.mark.e2e
def test_the_scheduled_job_serves_the_pages_too(newsroom, tmp_path) -> None:
    """End to end: `newsletter run --with-web`, a real process, serves the pages from a thread of
    its own and stops cleanly on SIGTERM, which no in-process client of the app shows."""
    with process(newsroom, tmp_path, "run", "--with-web") as url:
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_a_token_pages_form_is_checked_by_its_own_token(site: Site) -> None:
    """A no-referrer page's form comes with `Origin: null`; another site's is refused, and so is
    a form token made for another reader's page."""
    links = site.links()
    anna, marc = site.subscriber(ANNA).id, site.subscriber(MARC).id
    link = path_of(links.unsubscribe(marc, "weekly"))
    anna_page = path_of(links.unsubscribe(anna, "weekly"))
    with site.client() as browser:
        fields = Forms(browser.post(link, data={"List-Unsubscribe": "One-Click"}).text).form(f"{link}/again")
        foreign = browser.post(f"{link}/again", data=fields, headers={"origin": "https://evil.example"})
        assert foreign.status_code == 403
        borrowed = browser.post(f"{anna_page}/everything", data=fields, headers={"origin": "null"})
        assert borrowed.status_code == 403 and site.subscriber(ANNA).status == "active"
        back = browser.post(f"{link}/again", data=fields, headers={"origin": "null"})
        assert back.status_code == 200 and site.subscriptions(MARC)["weekly"] == "active"


def test_a_strangers_sign_up_changes_nobody_and_mails_no_one_who_left(site: Site) -> None:
    pending = "new.signup@example.com"  # a sample reader who never confirmed: Health, weekly, en
    before = site.subscriber(pending)
    partner = {"origin": PARTNER}
    asked = site.post(
        "/subscribe",
        data={"email": pending, "newsletters": "daily", "language": "de", "name": "Someone Else"},
        headers=partner,
    )
    assert asked.status_code == 200
    after = site.subscriber(pending)
    assert (after.name, after.language, site.subscriptions(pending)) == (
        before.name,
        before.language,
        {"weekly": "active"},
    )  # nothing changes before the link is followed
    [notice] = site.notices_for(pending)
    confirm = emailed_link(notice, "confirm")
    with site.client() as browser:
        page = browser.get(confirm)
        assert browser.post(confirm, data=Forms(page.text).form(confirm)).status_code == 200
    confirmed = site.subscriber(pending)
    assert confirmed.status == "active" and confirmed.language == "de" and confirmed.name == "Someone Else"
    assert site.subscriptions(pending)["daily"] == "active"
    # Marc leaves everything; a sign-up of his address sends nothing and changes nothing.
    marc = site.subscriber(MARC).id
    link = path_of(site.links().unsubscribe(marc, "weekly"))
    with site.client() as browser:
        left = browser.post(link, data={"List-Unsubscribe": "One-Click"})
        browser.post(f"{link}/everything", data=Forms(left.text).form(f"{link}/everything"))
    asked = site.post(
        "/subscribe",
        data={"email": MARC, "newsletters": "daily", "language": "de"},
        headers=partner,
    )
    assert asked.status_code == 200  # what it mails is sent before the answer comes back
    assert [m for m in site.notices() if m["To"] == MARC] == []
    assert site.subscriber(MARC).status == "unsubscribed" and site.subscriber(MARC).language == "en"


def main_text(page: str) -> str:
    return page.split('<main id="main" tabindex="-1">')[1].split("</main>")[0]


def test_a_sign_up_again_within_the_hour_is_told_to_check_the_inbox(site: Site) -> None:
    """Issue #22, 5: a second sign-up within the hour mails nothing, and its page says a link
    went a few minutes ago, in the same words whatever the address (new, asked twice, a
    reader's): the page tells a stranger nothing."""
    owner = "fresh.owner@example.net"
    pages = []
    with site.client() as browser:
        for address in (owner, owner, ANNA, "another.owner@example.net"):
            answer = sign_up(browser, email=address, newsletters=["weekly"], language="en")
            assert answer.status_code == 200, answer.text
            pages.append(main_text(answer.text).replace(address, "ADDRESS"))
    assert len(site.notices_for(owner)) == 1  # the second was not sent
    assert "we sent a link then, and send no other within the hour: check your inbox" in pages[1]
    assert len(set(pages)) == 1, pages


def test_the_confirmation_page_shows_what_its_sign_up_asked_for(site: Site) -> None:
    """Within the hour the owner is sent to the link already in their inbox, which may be a
    stranger's sign-up of their address: before the button, the page shows its choices, the
    name among them, as text."""
    victim = "victim.owner@example.net"
    planted = "URGENT: your account is suspended, call <b>+1-800-555-0100</b>"
    with site.client() as browser:
        asked = sign_up(browser, email=victim, name=planted, newsletters=["daily"], categories=["health"])
        assert asked.status_code == 200, asked.text
        [notice] = site.notices_for(victim)
        page = browser.get(emailed_link(notice, "confirm"))
    shown = main_text(page.text)
    assert page.status_code == 200 and html.escape(planted, quote=False) in shown  # text, never markup
    assert "Daily briefing" in shown and "Health" in shown and "Not what you chose?" in shown
    assert site.subscriber(victim).status == "pending"  # the page changed nothing


def test_address_changes_mail_one_link_an_hour(site: Site) -> None:
    anna = site.subscriber(ANNA).id
    preferences = path_of(site.links().preferences(anna))
    with site.client() as browser:
        answers = []
        for target in ("victim@example.net", "victim@ｅxample.net", "other@example.net"):
            fields = Forms(browser.get(preferences).text).form(preferences)
            answers.append(
                browser.post(
                    preferences,
                    data={
                        "csrf": fields["csrf"],
                        "newsletters": "weekly",
                        "language": "de",
                        "new_email": target,
                    },
                )
            )
    assert [a.status_code for a in answers] == [200, 400, 400]
    site.notices_for("victim@example.net")  # sent before the answer came back
    assert [m["To"] for m in site.notices()] == ["victim@example.net"]
    assert site.subscriber(ANNA).email == ANNA  # only the link sent to the new address moves it


def test_hostile_form_text(site: Site) -> None:
    partner = {"origin": PARTNER}
    latin1 = site.post(
        "/subscribe",
        content=b"email=a\xff@b.com&newsletters=weekly",
        headers={**partner, "content-type": "application/x-www-form-urlencoded"},
    )
    percent = site.post(
        "/subscribe",
        content=b"email=a%ff@b.com&newsletters=weekly",
        headers={**partner, "content-type": "application/x-www-form-urlencoded"},
    )
    assert latin1.status_code == 400 and percent.status_code == 400
    nul = site.post(
        "/subscribe",
        data={"email": "nul@example.net", "newsletters": "weekly", "name": "a\x00b"},
        headers=partner,
    )
    assert nul.status_code == 409 and "control character" in nul.text  # issue #22, 8
    named = site.post(
        "/subscribe",
        data={"email": "nul@example.net", "newsletters": "weekly", "name": "a\u202eevil\r\nBcc: x@y"},
        headers=partner,
    )
    assert named.status_code == 200
    confirm = emailed_link(site.notices_for("nul@example.net")[0], "confirm")
    with site.client() as browser:
        page = browser.get(confirm)
        assert browser.post(confirm, data=Forms(page.text).form(confirm)).status_code == 200
    assert site.subscriber("nul@example.net").name == "a evil Bcc: x@y"


def test_two_clicks_at_once_are_one_change(site: Site) -> None:
    """A double click on Save, and a page's forms sent together: no error, one result."""
    from concurrent.futures import ThreadPoolExecutor

    marc = site.subscriber(MARC).id
    links = site.links()
    preferences = path_of(links.preferences(marc))
    unsubscribe = path_of(links.unsubscribe(marc, "daily"))
    with site.client() as browser:
        fields = Forms(browser.get(preferences).text).form(preferences)
    form = {"csrf": fields["csrf"], "newsletters": ["weekly", "daily"], "categories": ["europe", "culture"]}

    def save(_n: int) -> int:
        return site.post(preferences, data={**form, "language": "en"}).status_code

    def leave(_n: int) -> int:
        return site.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda n: save(n) if n % 2 else leave(n), range(16)))
    assert set(codes) == {200}, codes
    assert sorted(c.slug for c in site.subscriber(MARC).categories) == ["culture", "europe"]


@pytest.mark.e2e
def test_several_worker_processes_share_the_pages(newsroom, tmp_path) -> None:
    """End to end: `newsletter serve --workers 2` starts worker processes sharing the socket and
    the store, which no in-process client of the app shows."""
    with process(newsroom, tmp_path, "serve", "--workers", "2") as url:
        with newsroom.factory() as session:
            marc = session.scalars(select(Subscriber.id).where(Subscriber.email == MARC)).one()
        links = Links.from_settings(newsroom.settings)
        for newsletter in ("weekly", "daily"):
            answer = httpx.post(
                url + path_of(links.unsubscribe(marc, newsletter)),
                data={"List-Unsubscribe": "One-Click"},
            )
            assert answer.status_code == 200
    with newsroom.factory() as session:
        found = session.scalars(
            select(SubscriberNewsletter.status).where(SubscriberNewsletter.subscriber_id == marc)
        )
        assert sorted(found) == ["unsubscribed", "unsubscribed"]


def test_an_english_only_site_offers_english_and_reads_a_german_reader_in_english(newsroom, tmp_path) -> None:
    """The newsroom with `[site] languages = []`: no German feed or words offered, so the forms
    offer English alone, and Anna, stored as German, gets English pages that save as English."""
    served = serve(newsroom, tmp_path, env={"NEWSLETTER_SITE__LANGUAGES": "[]"})
    site = next(served)
    try:
        assert site.runtime.settings.site.language == "en"
        with site.client() as browser:
            for path, asked in (("/subscribe", "en"), ("/subscribe?lang=de", "en"), ("/subscribe", "de")):
                page = browser.get(path, headers={"accept-language": asked})
                assert page.status_code == 200 and '<html lang="en">' in page.text
                # one language: nothing to choose, and no word of translations
                assert (
                    '<select id="language"' not in page.text
                    and '<input type="hidden" name="language" value="en">' in page.text
                )
                assert (
                    "Deutsch" not in page.text and "German" not in page.text and "translated" not in page.text
                )
            refused = sign_up(browser, email="new@example.net", newsletters=["weekly"], language="de")
            assert refused.status_code == 400 and "Choose a language." in refused.text
            # a German browser posting a form that asks no language signs up in the site's
            csrf = Forms(browser.get("/subscribe").text).form("/subscribe")["csrf"]
            german = browser.post(
                "/subscribe",
                data={"csrf": csrf, "email": "browser.de@example.net", "newsletters": "weekly"},
                headers={"accept-language": "de"},
            )
            assert german.status_code == 200, german.text
            assert site.subscriber("browser.de@example.net").language == "en"
            preferences = path_of(site.links().preferences(site.subscriber(ANNA).id))
            page = browser.get(preferences)
            assert page.status_code == 200 and '<html lang="en">' in page.text
            assert "Your newsletter settings" in page.text and "Einstellungen" not in page.text
            fields = Forms(page.text).form(preferences)
            assert fields["language"] == "en" and '<select id="language"' not in page.text
            saved = browser.post(
                preferences,
                data={"csrf": fields["csrf"], "newsletters": "weekly", "language": fields["language"]},
            )
            assert saved.status_code == 200, saved.text
        assert site.subscriber(ANNA).language == "en"
    finally:
        served.close()


def test_section_names_in_the_readers_language_or_marked_as_the_sites(newsroom, tmp_path) -> None:
    """German pages name a section in German where the settings do, and the others by their
    English name marked lang="en"; English pages mark nothing."""
    served = serve(newsroom, tmp_path, extra='[site.category_names.de]\npolitics = "Politik"\n')
    site = next(served)
    try:
        with site.client() as browser:
            german = browser.get("/subscribe?lang=de").text
            assert '<label for="category-politics">Politik</label>' in german
            assert '<label for="category-health" lang="en">Health</label>' in german
            english = browser.get("/subscribe?lang=en").text
            assert '<label for="category-politics">Politics</label>' in english
            assert '<label for="category-health">Health</label>' in english
    finally:
        served.close()
