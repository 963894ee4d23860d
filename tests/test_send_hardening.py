"""Hardening the send: one reader never stops an edition, outside text never becomes a
placeholder, the provider's trouble is told from the readers', headers stay clean."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import select

from newsletter.editions.compose import Markers
from newsletter.editions.personalize import Reader
from newsletter.ingest.run import fetch_feeds
from newsletter.sending.messages import MessageTemplate
from newsletter.sending.pace import Pace
from newsletter.sending.providers import Outcome, OutcomeStatus
from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.sending.providers.sendgrid import SendGridProvider
from newsletter.sending.providers.smtp import NO_SMTPUTF8, SMTPProvider
from newsletter.sending.recorder import Recorder
from newsletter.sending.report import SendError
from newsletter.sending.sender import Sender
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Subscriber, SubscriberNewsletter
from tests.conftest import free_port
from tests.test_send import (
    Sleeps,
    add_readers,
    prepared,
    recipients_of,
    sendgrid_settings,
    smtp_settings,
    statuses,
)

FAST = Pace(retry_delay=0.05, max_delay=0.05, base_delay=0.01)


class ScriptedSink:
    """An aiosmtpd handler answering RCPT from a script per address: a list of answers given
    one per try (then 250), or one answer for every try."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.tries: dict[str, list[str]] = {}
        self.always: dict[str, str] = {}
        self.everyone: str | None = None
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            if self.everyone:
                return self.everyone
            if address in self.always:
                return self.always[address]
            if self.tries.get(address):
                return self.tries[address].pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def recipients(self) -> list[str]:
        return [to for tos, _data in self.messages for to in tos]


def serve(smtputf8: bool) -> Iterator[tuple[ScriptedSink, int]]:
    handler = ScriptedSink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def sink() -> Iterator[tuple[ScriptedSink, int]]:
    yield from serve(smtputf8=False)


@pytest.fixture
def utf8_sink() -> Iterator[tuple[ScriptedSink, int]]:
    yield from serve(smtputf8=True)


def add_reader(runtime, address: str, name: str | None = None) -> None:
    with unit_of_work(runtime.factory) as session:
        subscriber = Subscriber(email=address, name=name, status="active", language="en")
        subscriber.newsletters = [SubscriberNewsletter(newsletter="weekly")]
        session.add(subscriber)


def smtp_send(runtime, port: int, edition_id: int, **sending):
    settings = smtp_settings(runtime, port, **sending)
    pace = replace(Pace.from_settings(settings.sending), retry_delay=0.05, max_delay=0.05, base_delay=0.01)
    provider = SMTPProvider(settings)
    try:
        return Sender(settings, runtime.factory, provider, pace, sleep=time.sleep).send(edition_id)
    finally:
        provider.close()


def failures(runtime, edition_id: int) -> dict[str, str]:
    with runtime.factory() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.detail)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition_id, Delivery.status == "failed")
        ).all()
    return {address: detail for address, detail in rows}


# --- one reader never stops an edition ----------------------------------------------------------


def test_an_edition_of_5000_ends_partial_with_exactly_the_two_bad_mailboxes(newsroom, sink) -> None:
    handler, port = sink
    add_readers(newsroom, 4997)
    add_reader(newsroom, "jörg@example.com", "Jörg")  # needs SMTPUTF8, which this server lacks
    add_reader(newsroom, "full@example.com")
    add_reader(newsroom, "gone@example.com")
    handler.tries["full@example.com"] = ["452 4.2.2 mailbox full", "452 4.2.2 mailbox full"]
    handler.always["gone@example.com"] = "550 5.1.1 <gone@example.com>: no such user"
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    report = smtp_send(newsroom, port, edition_id)
    assert report.status == "partial"
    found = failures(newsroom, edition_id)
    assert set(found) == {"jörg@example.com", "gone@example.com"}
    assert found["jörg@example.com"] == NO_SMTPUTF8 and "550 5.1.1" in found["gone@example.com"]
    mailed = handler.recipients()
    assert sorted(mailed) == sorted(set(expected) - set(found))  # everyone else, exactly once
    with newsroom.factory() as session:
        full = session.scalars(
            select(Delivery).join(Subscriber).where(Subscriber.email == "full@example.com")
        ).one()
    assert full.status == "sent" and full.attempts == 3


def test_a_mailbox_refusing_for_now_fails_after_its_attempts(newsroom, sink) -> None:
    handler, port = sink
    add_reader(newsroom, "full@example.com")
    handler.always["full@example.com"] = "452 4.2.2 mailbox full"
    edition_id = prepared(newsroom)
    report = smtp_send(newsroom, port, edition_id, max_attempts=3)
    assert report.status == "partial" and report.failed == 1
    assert failures(newsroom, edition_id) == {"full@example.com": "452 4.2.2 mailbox full (refused 3 times)"}


def test_a_non_ascii_mailbox_goes_with_smtputf8_and_an_idn_domain_in_ascii(newsroom, utf8_sink) -> None:
    handler, port = utf8_sink
    add_reader(newsroom, "jörg@example.com", "Jörg Müller")
    add_reader(newsroom, "anna@exämple.de", "Anna")
    edition_id = prepared(newsroom)
    report = smtp_send(newsroom, port, edition_id)
    assert report.status == "complete"
    assert "jörg@example.com" in handler.recipients() and "anna@xn--exmple-cua.de" in handler.recipients()
    data = next(data for tos, data in handler.messages if tos == ["jörg@example.com"])
    message = email.message_from_string(data.decode("utf-8"), policy=email.policy.SMTPUTF8)
    assert message["To"].addresses[0].addr_spec == "jörg@example.com"
    assert message["To"].addresses[0].display_name == "Jörg Müller"


def test_a_stored_address_that_cannot_be_sent_to_fails_alone(newsroom, mail_api) -> None:
    add_reader(newsroom, "re:victim@example.com")  # written before addresses were validated
    edition_id = prepared(newsroom)
    settings = sendgrid_settings(newsroom, mail_api)
    report = Sender(settings, newsroom.factory, SendGridProvider(settings), FAST, sleep=Sleeps()).send(
        edition_id
    )
    assert report.status == "partial"
    assert list(failures(newsroom, edition_id)) == ["re:victim@example.com"]
    assert "victim@example.com" not in mail_api.recipients()


def test_a_refusal_for_everyone_is_the_relays_and_fails_nobody(newsroom, sink) -> None:
    handler, port = sink
    handler.everyone = "554 5.7.1 relay access denied"
    edition_id = prepared(newsroom)
    with pytest.raises(SendError, match="provider's fault") as stopped:
        smtp_send(newsroom, port, edition_id)
    assert "554 5.7.1 relay access denied" in str(stopped.value)
    assert statuses(newsroom, edition_id) == {"pending": 9}
    handler.everyone = None
    assert smtp_send(newsroom, port, edition_id).status == "complete"  # fixed: resumes for all


def test_a_temporary_refusal_for_everyone_slows_the_send_and_spends_no_attempt(newsroom, sink) -> None:
    handler, port = sink
    handler.everyone = "451 4.3.0 try again later"
    edition_id = prepared(newsroom)
    sleeps = Sleeps()
    settings = smtp_settings(newsroom, port, max_retries=2)
    provider = SMTPProvider(settings)
    with pytest.raises(SendError, match="still busy"):
        Sender(settings, newsroom.factory, provider, Pace.from_settings(settings.sending), sleep=sleeps).send(
            edition_id
        )
    provider.close()
    assert len(sleeps) == 2 and statuses(newsroom, edition_id) == {"pending": 9}
    with newsroom.factory() as session:
        assert set(session.scalars(select(Delivery.attempts))) == {0}


def test_a_refused_connection_stops_at_once_with_nothing_lost(newsroom) -> None:
    edition_id = prepared(newsroom)
    sleeps = Sleeps()
    settings = smtp_settings(newsroom, free_port())
    provider = SMTPProvider(settings)
    with pytest.raises(SendError, match=r"cannot connect to 127\.0\.0\.1"):
        Sender(settings, newsroom.factory, provider, FAST, sleep=sleeps).send(edition_id)
    provider.close()
    assert sleeps == [] and statuses(newsroom, edition_id) == {"pending": 9}


# --- outside text never becomes a placeholder ----------------------------------------------------

HOSTILE = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Site</title><link>https://site.example/</link>
<item><title>Hi __NL_GREETING__ and __NL_UNSUBSCRIBE_URL__</title>
<link>https://evil.example/steal?t=__NL_UNSUBSCRIBE_URL__&amp;p=__NL_PREFERENCES_URL__</link>
<guid>https://evil.example/1</guid><category>Politics</category>
<pubDate>Fri, 20 Nov 2026 10:00:00 +0000</pubDate>
<description>__NL_PREFERENCES_URL__ __NL_TEXT_GREETING__</description></item>
</channel></rss>
"""


@pytest.fixture
def hostile_site(make_runtime, tmp_path: Path):
    feed = tmp_path / "hostile.xml"
    feed.write_text(HOSTILE)
    runtime = make_runtime(
        feeds=[{"url": str(feed)}], site={"categories": ["Politics"]}, timezone="Europe/Brussels"
    )
    fetch_feeds(runtime.settings, runtime.factory)
    add_reader(runtime, "ann@example.com", "Ann")
    return runtime


def no_placeholder_from_feed_text(body: str, token: str) -> None:
    """The feed's marker-like text is there as text, and no reader's token went into it."""
    assert "steal?t=__NL_UNSUBSCRIBE_URL__" in body.replace("&amp;", "&")
    assert "Hi __NL_GREETING__" in body
    assert not re.search(r"evil\.example/steal\?t=https?://", body)
    assert body.count(token) == body.count(f"/unsubscribe/{token}")  # only where the template put it


def test_feed_text_never_becomes_a_placeholder_outbox(hostile_site, tmp_path) -> None:
    edition_id = prepared(hostile_site)
    settings = hostile_site.settings
    Sender(settings, hostile_site.factory, OutboxProvider(settings.outbox_dir), FAST).send(edition_id)
    [path] = (settings.outbox_dir / f"edition-{edition_id}").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text, html = (part.get_content() for part in message.iter_parts())
    token = message["List-Unsubscribe"].split("/unsubscribe/")[1].split(">")[0]
    for body in (text, html):
        no_placeholder_from_feed_text(body, token)
    assert "Hello Ann," in text and text.count("Ann") == 1  # the greeting, and only there


def test_feed_text_never_becomes_a_placeholder_smtp(hostile_site, utf8_sink) -> None:
    handler, port = utf8_sink
    edition_id = prepared(hostile_site)
    assert smtp_send(hostile_site, port, edition_id).status == "complete"
    [(_tos, data)] = handler.messages
    message = email.message_from_bytes(data, policy=email.policy.default)
    token = message["List-Unsubscribe"].split("/unsubscribe/")[1].split(">")[0]
    for part in message.iter_parts():
        no_placeholder_from_feed_text(part.get_content(), token)


def test_feed_text_never_becomes_a_placeholder_sendgrid(hostile_site, mail_api) -> None:
    edition_id = prepared(hostile_site)
    settings = sendgrid_settings(hostile_site, mail_api)
    Sender(settings, hostile_site.factory, SendGridProvider(settings), FAST, sleep=Sleeps()).send(edition_id)
    [payload] = mail_api.payloads
    [personalization] = payload["personalizations"]
    keys = personalization["substitutions"]
    for part in payload["content"]:
        assert "steal?t=__NL_UNSUBSCRIBE_URL__" in part["value"].replace("&amp;", "&")
        for key in keys:  # SendGrid substitutes only where the template put a marker
            assert key not in HOSTILE and part["value"].count(key) <= 2


# --- headers -------------------------------------------------------------------------------------


def template(site_name: str = "The European Times") -> tuple[MessageTemplate, Markers]:
    markers = Markers.fresh()
    return (
        MessageTemplate(
            subject="=?utf-8?q?Hi=0D=0ABcc:_x@y?= \u202eevil\u202c \x85next",
            html=f"<p>{markers.token('greeting')}</p><a href='{markers.token('unsubscribe_url')}'>u</a>",
            text=f"{markers.token('greeting')}\n",
            from_name=site_name,
            from_address="n@europeantimes.example",
            reply_to="e@europeantimes.example",
            list_name=f"{site_name} Weekly",
            list_id="weekly.europeantimes.example",
            unsubscribe_mailto="editors-with-a-long-address@europeantimes.example",
            markers=markers,
        ),
        markers,
    )


def test_headers_are_clean_folded_and_dated_with_a_numeric_zone() -> None:
    made, _markers = template("Évropská Tribuna")
    reader = Reader(
        "=?utf-8?b?QmNjOiB4QHk=?= \u2066Ann\u2069",
        "https://newsletter.europeantimes.example/unsubscribe/" + "T" * 30,
        "https://newsletter.europeantimes.example/preferences/P",
    )
    envelope = made.render("ann@example.com", reader.name, reader, "7.9")
    head = envelope.data.split(b"\r\n\r\n", 1)[0]
    long = [line for line in head.split(b"\r\n") if len(line) > 78]
    assert all(b" " not in line.strip() for line in long)  # only a URL too long to fold stands alone
    message = email.message_from_bytes(envelope.data, policy=email.policy.default)
    assert message["Subject"] == "=?utf-8?q?Hi=0D=0ABcc:_x@y?=  evil   next"  # as text, not decoded
    assert message["Bcc"] is None
    assert message["To"].addresses[0].display_name == "=?utf-8?b?QmNjOiB4QHk=?= Ann"
    assert message["Date"].endswith("+0000")
    assert b"<weekly.europeantimes.example>" in head  # the list id readable beside an encoded name
    assert message["List-Id"] == "Évropská Tribuna Weekly <weekly.europeantimes.example>"
    unfolded = message["List-Unsubscribe"].strip()  # Python keeps the fold's space; the RFC ignores it
    assert unfolded.startswith("<https://newsletter.europeantimes.example/unsubscribe/")


def test_outcomes_are_written_within_their_window_even_when_no_more_come() -> None:
    written: list[float] = []
    record = Recorder(lambda outcomes: written.append(time.monotonic()), seconds=0.05)
    began = time.monotonic()
    record([Outcome(1, OutcomeStatus.SENT, "m1")])
    time.sleep(0.3)  # a slow server: the next outcome is long in coming
    assert written and written[0] - began < 0.25


# --- any outside text, any message ---------------------------------------------------------------

OUTSIDE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120) | st.sampled_from(
    ["__NL_GREETING__", "__NL_UNSUBSCRIBE_URL__", "=?utf-8?q?a=0D=0ABcc:_x@y?=", "\r\nBcc: x@y"]
)
HEADERS = {
    "to",
    "date",
    "message-id",
    "list-unsubscribe",
    "from",
    "reply-to",
    "subject",
    "list-id",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
}


@pytest.fixture(scope="module")
def composer():
    from newsletter.editions.compose import Composer
    from newsletter.settings import Settings

    return Composer(Settings().templates_path())


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    title=OUTSIDE,
    summary=OUTSIDE,
    link=OUTSIDE,
    author=OUTSIDE,
    category=OUTSIDE,
    name=st.none() | OUTSIDE,
    address=st.emails(),
)
def test_no_outside_text_adds_a_header_or_makes_a_placeholder(
    composer, title, summary, link, author, category, name, address
) -> None:
    from newsletter.editions.compose import Card, DigestView
    from newsletter.settings import Settings

    settings = Settings()
    card = Card(link, title, author, "1 January 2027", summary, link, category, 3, None)
    view = DigestView(
        settings.newsletter("weekly"), settings.site, "en", "label", [card], [(category, [card])], [category]
    )
    composed = composer.compose(view)
    made = MessageTemplate(
        subject=composed.subject,
        html=composed.html,
        text=composed.text,
        from_name=settings.site.from_name,
        from_address=settings.site.from_address,
        reply_to=settings.site.reply_to,
        list_name=f"{settings.site.name} {title}",
        list_id="weekly.example.com",
        unsubscribe_mailto=settings.site.reply_to,
        markers=composed.markers,
    )
    secret = f"T{time.monotonic_ns()}Z"  # a token no generated text can contain
    reader = Reader(
        name, f"https://n.example/unsubscribe/{secret}", f"https://n.example/preferences/{secret}P"
    )
    envelope = made.render(address, name, reader, "1.2")
    assert all(len(line) <= 998 for line in envelope.data.split(b"\r\n"))
    message = email.message_from_bytes(envelope.data, policy=email.policy.default)
    assert {key.lower() for key in message} == HEADERS and len(message.keys()) == len(HEADERS)
    text, html = (part.get_content() for part in message.iter_parts())
    for body in (text, html):
        assert composed.markers.nonce not in body  # every marker filled
        # the reader's links stand only where the template put them: once each in the footer
        assert body.count(f"/unsubscribe/{secret}") == BASELINE[body is html]
        assert body.count(f"/preferences/{secret}P") == BASELINE[body is html]


def _baseline() -> dict[bool, int]:
    """How often the footer carries each personal link, in the text part and in the HTML."""
    from newsletter.editions.compose import Card, Composer, DigestView
    from newsletter.settings import Settings

    settings = Settings()
    card = Card("https://x.example/a", "A", None, "1 January 2027", "S", None, "C", None, None)
    view = DigestView(settings.newsletter("weekly"), settings.site, "en", "l", [card], [("C", [card])], ["C"])
    composed = Composer(settings.templates_path()).compose(view)
    return {
        False: composed.text.count(composed.markers.token("unsubscribe_url")),
        True: composed.html.count(composed.markers.token("unsubscribe_url")),
    }


BASELINE = _baseline()
