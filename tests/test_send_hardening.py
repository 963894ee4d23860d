"""Hardening the send: one reader never stops an edition, outside text never becomes a
placeholder, the provider's trouble is told from the readers', headers stay clean."""

from __future__ import annotations

import email
import email.policy
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import select

from newsletter.editions.compose import Composer, Markers, TemplateProblem
from newsletter.editions.edition import open_edition
from newsletter.editions.personalize import Reader
from newsletter.editions.prepare import prepare
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
from newsletter.store.models import Delivery, Subscriber
from tests.conftest import WEEKLY_NOV_23, free_port
from tests.support.readers import add_reader
from tests.support.sending import (
    FAST,
    ScriptedSink,
    Sleeps,
    add_readers,
    failures,
    fast,
    prepared,
    recipients_of,
    scripted,
    sender_of_its_own,
    sendgrid_settings,
    smtp_send,
    smtp_settings,
    statuses,
    with_settings,
)
from tests.support.waiting import until


@pytest.fixture
def sink() -> Iterator[tuple[ScriptedSink, int]]:
    yield from scripted(smtputf8=False)


@pytest.fixture
def utf8_sink() -> Iterator[tuple[ScriptedSink, int]]:
    yield from scripted(smtputf8=True)


# --- one reader never stops an edition ----------------------------------------------------------


def test_an_edition_of_several_batches_ends_partial_with_exactly_the_two_bad_mailboxes(
    newsroom, sink
) -> None:
    """Batches of 20 readers (an SMTP sender claims 100 a connection; the size is the provider's
    to say): the bad mailboxes in different batches, the full one tried again in a later one. An
    edition of thousands is only more batches."""
    handler, port = sink
    add_reader(newsroom, "jörg@example.com", name="Jörg")  # needs SMTPUTF8, which this server lacks
    add_readers(newsroom, 25)
    add_reader(newsroom, "full@example.com")
    add_readers(newsroom, 25, first=25)
    add_reader(newsroom, "gone@example.com")
    handler.tries["full@example.com"] = ["452 4.2.2 mailbox full", "452 4.2.2 mailbox full"]
    handler.always["gone@example.com"] = "550 5.1.1 <gone@example.com>: no such user"
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    settings = smtp_settings(newsroom, port)
    provider = SMTPProvider(settings)
    provider.batch_size = 20
    try:
        report = Sender(settings, newsroom.factory, provider, fast(settings)).send(edition_id)
    finally:
        provider.close()
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
    with newsroom.factory() as session:
        claims = set(session.scalars(select(Delivery.claimed_by).where(Delivery.status == "sent")))
    assert len(claims) >= 4, claims  # batch after batch, the full mailbox's retry in one of its own


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
    add_reader(newsroom, "jörg@example.com", name="Jörg Müller")
    add_reader(newsroom, "anna@exämple.de", name="Anna")
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
    add_reader(runtime, "ann@example.com", name="Ann")
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
    record([Outcome(1, OutcomeStatus.SENT, "m1")])  # a slow server: the next outcome is long in coming
    until(lambda: written, 5)
    assert written[0] - began < 0.25
    record.close()


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


# --- found by trying it as an adversary would -----------------------------------------------------


class HostileSink(ScriptedSink):
    """Also: drops the connection on some readers' RCPT, takes a message and then closes without
    answering, refuses the n-th MAIL FROM as too big."""

    def __init__(self) -> None:
        super().__init__()
        self.drop_on_rcpt: set[str] = set()
        self.vanish_after_data: set[str] = set()
        self.too_big: set[int] = set()
        self.mail_commands = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.mail_commands += 1
            if self.mail_commands in self.too_big:
                return "552 5.3.4 message too big for this server"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.drop_on_rcpt:
            server.transport.close()
            return "421 bye"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        if set(envelope.rcpt_tos) & self.vanish_after_data:
            server.transport.close()  # taken, then the connection is gone before the 250
        return answer


@pytest.fixture
def hostile_sink() -> Iterator[tuple[HostileSink, int]]:
    handler = HostileSink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def test_a_message_taken_without_an_answer_is_uncertain_and_never_sent_twice(newsroom, hostile_sink) -> None:
    handler, port = hostile_sink
    add_reader(newsroom, "vanish@example.com")
    handler.vanish_after_data.add("vanish@example.com")
    edition_id = prepared(newsroom)
    report = smtp_send(newsroom, port, edition_id)
    assert report.status == "partial"
    assert failures(newsroom, edition_id)["vanish@example.com"].startswith("uncertain:")
    smtp_send(newsroom, port, edition_id)  # a rerun leaves it to the operator
    assert handler.recipients().count("vanish@example.com") == 1
    assert sorted(handler.recipients()) == sorted(
        [*recipients_of(newsroom, edition_id), "vanish@example.com"]
    )


def test_a_reader_whose_rcpt_drops_the_connection_ends_failed_not_stuck(newsroom, hostile_sink) -> None:
    handler, port = hostile_sink
    add_reader(newsroom, "dropper@example.com")
    handler.drop_on_rcpt.add("dropper@example.com")
    edition_id = prepared(newsroom)
    report = smtp_send(newsroom, port, edition_id, max_attempts=2)
    assert report.status == "partial"
    assert "dropped twice" in failures(newsroom, edition_id)["dropper@example.com"]
    assert len(handler.recipients()) == 9


def test_a_message_too_big_for_the_server_fails_alone(newsroom, hostile_sink) -> None:
    handler, port = hostile_sink
    handler.too_big = {3}
    edition_id = prepared(newsroom)
    report = smtp_send(newsroom, port, edition_id)
    assert report.status == "partial" and report.failed == 1 and len(handler.recipients()) == 8
    assert "552 5.3.4" in next(iter(failures(newsroom, edition_id).values()))


def test_a_few_readers_refusing_for_now_are_theirs_not_the_providers(newsroom, sink) -> None:
    """A retry batch holds only readers refused before: refusing alike, it still blames nobody else."""
    handler, port = sink
    full = [f"full{i}@example.com" for i in range(3)]
    for address in full:
        add_reader(newsroom, address)
        handler.tries[address] = ["452 4.2.2 mailbox full", "452 4.2.2 mailbox full"]
    edition_id = prepared(newsroom)
    report = smtp_send(newsroom, port, edition_id)
    assert report.status == "complete"
    assert sorted(handler.recipients()) == recipients_of(newsroom, edition_id)


def test_retrying_failed_readers_keeps_their_words_and_ends(newsroom, sink) -> None:
    handler, port = sink
    gone = [f"gone{i}@example.com" for i in range(3)]
    for address in gone:
        add_reader(newsroom, address)
        handler.always[address] = f"550 5.7.1 <{address}>: not accepted here"
    edition_id = prepared(newsroom)
    assert smtp_send(newsroom, port, edition_id).status == "partial"
    settings = smtp_settings(newsroom, port)
    provider = SMTPProvider(settings)
    again = Sender(settings, newsroom.factory, provider, FAST).send(edition_id, retry_failed=True)
    provider.close()
    assert again.status == "partial" and again.failed == 3
    assert all("not accepted here" in words for words in failures(newsroom, edition_id).values())


@pytest.mark.both_databases
def test_a_slow_sender_keeps_its_claims_and_a_second_sender_sends_nobody_twice(newsroom, sink) -> None:
    """The heartbeat: a sender pacing itself holds its batch far past the lease; a second sender
    (a thread with a store connection of its own) starting meanwhile waits for it."""
    handler, port = sink
    add_readers(newsroom, 100)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    # 0.6 s: the whole edition, one batch, takes the first sender 2 s to pace at 60 a second.
    settings = smtp_settings(newsroom, port, rate=60, lease_minutes=0.01)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(sender_of_its_own, settings, edition_id)
        until(lambda: len(handler.recipients()) >= 50 or first.done())  # its claims are past the lease
        assert not first.done()
        second = pool.submit(sender_of_its_own, settings, edition_id)
        reports = [first.result(timeout=120), second.result(timeout=120)]
    assert reports[0].status == "complete" and reports[0].recovered == 0
    assert reports[1].recovered == 0 and reports[1].uncertain == 0  # nothing taken over
    assert sorted(handler.recipients()) == expected  # everyone exactly once
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}


def test_a_refusal_for_the_whole_request_is_one_request_not_thousands(newsroom, mail_api) -> None:
    from tests.sendgrid_server import Scripted

    add_readers(newsroom, 40)
    edition_id = prepared(newsroom)
    bad = {"errors": [{"message": "The content value must be a string.", "field": "content.0.value"}]}
    mail_api.script = [Scripted(400, bad)] * 100
    settings = sendgrid_settings(newsroom, mail_api)
    with pytest.raises(SendError, match="refused the request"):
        Sender(settings, newsroom.factory, SendGridProvider(settings), FAST, sleep=Sleeps()).send(edition_id)
    assert mail_api.requests == 1 and statuses(newsroom, edition_id) == {
        "pending": len(recipients_of(newsroom, edition_id))
    }


def test_a_servers_words_reach_the_operator_without_terminal_escapes(newsroom, sink) -> None:
    handler, port = sink
    handler.everyone = "554 5.7.1 \x1b]0;PWNED\x07\x1b[2J denied"
    edition_id = prepared(newsroom)
    with pytest.raises(SendError) as stopped:
        smtp_send(newsroom, port, edition_id)
    assert "\x1b" not in str(stopped.value) and "\x07" not in str(stopped.value)
    assert "denied" in str(stopped.value)


def test_a_subject_template_failing_on_data_is_one_clear_error(newsroom) -> None:
    weekly = newsroom.settings.newsletter("weekly").model_copy(update={"subject": "{{ top.author + 1 }}"})
    settings = with_settings(newsroom, newsletters={"weekly": weekly.model_dump()})
    with (
        pytest.raises(TemplateProblem, match="subject template cannot render"),
        unit_of_work(newsroom.factory) as session,
    ):
        edition = open_edition(session, settings, "weekly", WEEKLY_NOV_23)
        prepare(session, settings, edition, Composer(settings.templates_path()))
