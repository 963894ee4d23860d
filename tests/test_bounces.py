"""Bounces and mailto unsubscribes for SMTP sites (#12 part 3): each delivery's envelope sender
names it (VERP, signed), `newsletter bounces` reads the bounce mailbox, suppresses exactly the
hard bounces, counts soft ones, honours mail to unsubscribe+TOKEN@…, and never acts twice."""

from __future__ import annotations

import email
import email.policy
import imaplib
import json
import mailbox
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from newsletter.scheduler.runner import Runner
from newsletter.sending.bounces import Verdict, parse, read_bounce
from newsletter.sending.mailboxes import MaildirBox
from newsletter.sending.messages import Mailto
from newsletter.sending.pace import Pace
from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.sending.providers.sendgrid import SendGridProvider
from newsletter.sending.providers.smtp import SMTPProvider
from newsletter.sending.sender import Sender
from newsletter.sending.verp import envelope_sender
from newsletter.services import bounces as service
from newsletter.services import timetable
from newsletter.settings import Settings
from newsletter.store.db import unit_of_work
from newsletter.store.models import (
    Bounce,
    Delivery,
    Edition,
    Subscriber,
    SubscriberNewsletter,
    Suppression,
)
from newsletter.subscribers.links import Links
from newsletter.subscribers.tokens import sign_for_address
from tests.support.bounces import dsn, personal, qmail, vague
from tests.support.cli import newsletter
from tests.support.sending import prepared, sendgrid_settings, smtp_settings
from tests.support.settings_files import SECRET_ENV, settings_file

KEY = b"test-secret-key-0123456789"
RETURN_PATH = "bounces@news.example"
UNSUBSCRIBE = "unsubscribe@news.example"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


# --- the site ------------------------------------------------------------------------------------


@pytest.fixture
def site(newsroom):
    """The sample site with a bounce address and an unsubscribe address of its own."""
    settings = Settings(
        **{
            **newsroom.settings.model_dump(),
            "sending": {
                **newsroom.settings.sending.model_dump(),
                "return_path": RETURN_PATH,
                "unsubscribe_address": UNSUBSCRIBE,
            },
        }
    )
    return replace(newsroom, settings=settings)


def verp(delivery_id: int) -> str:
    return envelope_sender(RETURN_PATH, KEY, delivery_id)


def deliveries_by_email(runtime, edition_id: int) -> dict[str, Delivery]:
    with runtime.factory() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition_id)
        ).all()
        return {email: delivery for email, delivery in rows}


def make_maildir(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(path, create=True)
    for data in messages:
        box.add(data)
    box.close()
    return path


def snapshot(runtime) -> tuple:
    """Everything a run of `newsletter bounces` may change."""
    with runtime.factory() as session:
        return (
            sorted(session.execute(select(Suppression.email, Suppression.reason)).all()),
            sorted(session.execute(select(Subscriber.email, Subscriber.status)).all()),
            sorted(session.execute(select(Delivery.id, Delivery.status, Delivery.detail)).all()),
            sorted(
                session.execute(
                    select(
                        SubscriberNewsletter.subscriber_id,
                        SubscriberNewsletter.newsletter,
                        SubscriberNewsletter.status,
                    )
                ).all()
            ),
            session.scalar(select(func.count()).select_from(Bounce)),
            sorted(session.execute(select(Edition.id, Edition.status)).all()),
        )


def send_over_smtp(runtime, port: int) -> int:
    edition_id = prepared(runtime)
    settings = smtp_settings(runtime, port)
    provider = SMTPProvider(settings)
    try:
        report = Sender(settings, runtime.factory, provider).send(edition_id)
    finally:
        provider.close()
    assert report.status == "complete"
    return edition_id


# --- the tests ---------------------------------------------------------------------------------


def test_each_smtp_delivery_has_its_own_signed_envelope_sender_and_unsubscribe_address(
    site, smtp_sink
) -> None:
    sink, port = smtp_sink
    edition_id = send_over_smtp(site, port)
    sent = deliveries_by_email(site, edition_id)
    assert len(sink.messages) == 9 and len(set(sink.senders)) == 9
    for (tos, data), sender in zip(sink.messages, sink.senders, strict=True):
        [to] = tos
        assert sender == verp(sent[to].id)  # bounces+ID-MAC@news.example, this delivery's
        assert re.fullmatch(r"bounces\+[0-9a-f]+-[a-z2-7]{24}@news\.example", sender)
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert message["Return-Path"] is None  # the receiving system adds it from MAIL FROM
        header = " ".join(str(message["List-Unsubscribe"]).split())
        link, mailto = re.fullmatch(r"<(https?://\S+)>, <mailto:(\S+)\?subject=unsubscribe>", header).groups()
        token = link.rsplit("/", 1)[1]
        assert mailto == f"unsubscribe+{token}@news.example" and len(mailto.split("@")[0]) <= 64


def test_without_the_settings_the_envelope_sender_is_the_from_address(newsroom, smtp_sink) -> None:
    sink, port = smtp_sink
    send_over_smtp(newsroom, port)
    assert set(sink.senders) == {"newsletter@example.com"}
    message = email.message_from_bytes(sink.messages[0][1], policy=email.policy.default)
    assert "<mailto:editors@example.com?subject=unsubscribe>" in " ".join(
        str(message["List-Unsubscribe"]).split()
    )


def test_messages_outside_the_ledger_use_the_plain_return_path() -> None:
    assert envelope_sender(RETURN_PATH, KEY, 0) == RETURN_PATH  # a test send, a notice
    assert envelope_sender(RETURN_PATH, None, 7) == RETURN_PATH


@pytest.mark.both_databases
def test_the_bounce_mailbox_suppresses_exactly_the_hard_bounces(site, smtp_sink, tmp_path) -> None:
    sink, port = smtp_sink
    edition_id = send_over_smtp(site, port)
    sent = deliveries_by_email(site, edition_id)
    # Marc's weekly message carries his unsubscribe address: his mail client writes to it.
    marc = next(data for (tos, data) in sink.messages if tos == ["marc.dubois@example.org"])
    header = " ".join(
        str(email.message_from_bytes(marc, policy=email.policy.default)["List-Unsubscribe"]).split()
    )
    unsubscribe_to = re.search(r"mailto:([^?>]+)", header).group(1)
    tom_message_id = sent["tom.obrien@example.ie"].provider_message_id
    forged = f"bounces+{sent['pieter.devries@example.nl'].id:x}-{'a' * 24}@news.example"
    box = make_maildir(
        tmp_path / "bounces",
        [
            # hard: a standard DSN, 5.1.1
            dsn(
                verp(sent["anna.keller@example.com"].id),
                "anna.keller@example.com",
                "5.1.1",
                "550 5.1.1 <anna.keller@example.com>: Recipient address rejected: User unknown",
            ),
            # soft: mailbox full, the remote system gave up for now
            dsn(
                verp(sent["sofia.rossi@example.net"].id),
                "sofia.rossi@example.net",
                "4.2.2",
                "452 4.2.2 <sofia.rossi@example.net>: Mailbox full",
            ),
            # hard: qmail's own format, found by flufl.bounce (the 4.2.2 in the returned copy is ignored)
            qmail(verp(sent["jan.novak@example.com"].id), "jan.novak@example.com"),
            # soft: a vague notice with no code, matched only by its VERP address (a postmaster's
            # auto-reply looks the same: only a 5.x.x code, or a DSN, makes a bounce hard)
            vague(verp(sent["lena.schmidt@example.de"].id)),
            # hard, without VERP: matched by the Message-ID of the message it returns
            dsn(
                RETURN_PATH,
                "tom.obrien@example.ie",
                "5.1.1",
                "550 5.1.1 no such user",
                original_id=tom_message_id,
            ),
            # a forged VERP address: changes nothing
            dsn(forged, "pieter.devries@example.nl", "5.1.1", "550 5.1.1 user unknown"),
            # a delay warning: still being tried
            dsn(
                verp(sent["klaus.weber@example.de"].id),
                "klaus.weber@example.de",
                "4.4.7",
                "421 4.4.7 connection timed out",
                action="delayed",
            ),
            # an out-of-office reply to the return path, quoting an address: no bounce
            personal(
                verp(sent["maria.garcia@example.es"].id),
                "maria.garcia@example.es",
                "Out of office",
                "Hi, maria.garcia@example.es, is away until Monday.",
                "Auto-Submitted: auto-replied",
            ),
            # a person writing to the bounce address
            personal(RETURN_PATH, "someone@example.org", "Re: Weekly digest", "Thanks for the digest!"),
            # Marc leaves the weekly by mail
            personal(unsubscribe_to, "marc.dubois@example.org", "unsubscribe", ""),
        ],
    )
    report = service.read_mailboxes(site, [MaildirBox(box)], NOW)
    assert report.counts() == {
        "hard": 3,
        "soft": 2,
        "delayed": 1,
        "unsubscribed": 1,
        "unmatched": 1,
        "not a bounce": 2,
    }
    hard = {h.email for h in report.handled if h.outcome == "hard"}
    assert hard == {
        "anna.keller@example.com",
        "jan.novak@example.com",
        "tom.obrien@example.ie",
    }
    [forged_one] = [h for h in report.handled if h.outcome == "unmatched"]
    assert "forged" in forged_one.detail
    with site.factory() as session:
        suppressed = dict(session.execute(select(Suppression.email, Suppression.reason)).all())
        assert suppressed == dict.fromkeys(hard, "bounce")
        statuses = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
        assert {email for email, status in statuses.items() if status == "bounced"} == hard
        anna = session.get(Delivery, sent["anna.keller@example.com"].id)
        assert anna.status == "sent"  # it went; her mailbox refused it
        assert (
            anna.detail
            == "bounced: 5.1.1 550 5.1.1 <anna.keller@example.com>: Recipient address rejected: User unknown"
        )
        sofia = session.get(Delivery, sent["sofia.rossi@example.net"].id)
        assert sofia.status == "sent" and sofia.detail.startswith("soft bounce: 4.2.2 452 4.2.2")
        assert statuses["sofia.rossi@example.net"] == statuses["pieter.devries@example.nl"] == "active"
        assert (
            session.get(Edition, edition_id).status == "complete"
        )  # bounces are the readers', not the send's
        marc = session.scalars(select(Subscriber).where(Subscriber.email == "marc.dubois@example.org")).one()
        assert {n.newsletter: n.status for n in marc.newsletters} == {
            "weekly": "unsubscribed",
            "daily": "active",
        }
        assert {n.newsletter: n.source for n in marc.newsletters}["weekly"] == "mailto"
        assert marc.status == "active"
    # Everything was filed away: the inbox is empty, and a second run does nothing.
    maildir = mailbox.Maildir(box, create=False)
    assert len(maildir) == 0
    assert len(maildir.get_folder("processed")) == 7 and len(maildir.get_folder("unmatched")) == 3
    before = snapshot(site)
    assert service.read_mailboxes(site, [MaildirBox(box)], NOW).handled == []
    # A run that stopped after recording but before filing: the copy is recognized, not counted again.
    processed = maildir.get_folder("processed")
    for key in processed.iterkeys():
        maildir.add(processed.get_bytes(key))
    again = service.read_mailboxes(site, [MaildirBox(box)], NOW)
    assert again.counts() == {"already read": 5, "delayed": 1, "unsubscribed": 1}
    assert snapshot(site) == before


@pytest.mark.both_databases
def test_soft_bounces_suppress_after_the_limit_in_a_row(make_runtime, tmp_path) -> None:
    runtime = make_runtime(sending={"return_path": RETURN_PATH, "soft_bounce_limit": 3})
    with unit_of_work(runtime.factory) as session:
        reader = Subscriber(email="full@example.com", status="active", language="en")
        reader.newsletters = [SubscriberNewsletter(newsletter="weekly")]
        session.add(reader)
        session.flush()
        ids = []
        for week in range(6):
            start = datetime(2026, 10, 5, 7, tzinfo=UTC) + timedelta(weeks=week)
            edition = Edition(
                newsletter="weekly",
                slot=f"2026-w{week}",
                window_start=start,
                window_end=start + timedelta(weeks=1),
                status="complete",
            )
            session.add(edition)
            session.flush()
            delivery = Delivery(edition_id=edition.id, subscriber_id=reader.id, status="sent", attempts=1)
            session.add(delivery)
            session.flush()
            ids.append(delivery.id)

    def soft(delivery_id: int) -> service.Handled:
        data = dsn(verp(delivery_id), "full@example.com", "4.2.2", f"452 4.2.2 mailbox full ({delivery_id})")
        return service.handle(runtime, "test", str(delivery_id), data, NOW)

    # Weeks 1 and 2 bounce; week 3 is delivered (no bounce): the count starts again at week 4.
    runs = [soft(ids[0]), soft(ids[1]), soft(ids[3]), soft(ids[4])]
    assert [r.detail[-17:] for r in runs] == [f"({n} in a row of 3)" for n in (1, 2, 1, 2)]
    assert not any(r.suppressed for r in runs)
    with runtime.factory() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0
    last = soft(ids[5])
    assert last.suppressed and last.detail.endswith("(3 in a row of 3)")
    with runtime.factory() as session:
        suppression = session.scalars(select(Suppression)).one()
        assert suppression.email == "full@example.com" and suppression.reason == "bounce"
        assert "3 soft bounces in a row" in suppression.detail
        assert session.scalars(select(Subscriber.status)).one() == "bounced"
        assert session.scalar(select(func.count()).where(Delivery.status == "failed")) == 0


def test_a_forged_or_foreign_mailto_unsubscribes_nobody(site, tmp_path) -> None:
    with site.factory() as session:
        reader = session.scalars(
            select(Subscriber).where(Subscriber.email == "anna.keller@example.com")
        ).one()
    forged = f"unsubscribe+{reader.id:x}-4fb-d2Vla2x5.{'A' * 24}@news.example"
    box = make_maildir(tmp_path / "u", [personal(forged, "x@example.org", "unsubscribe", "")])
    before = snapshot(site)
    report = service.read_mailboxes(site, [MaildirBox(box)], NOW)
    assert report.counts() == {"unmatched": 1} and "bad token" in report.handled[0].detail
    assert snapshot(site) == before


def test_one_unreadable_message_is_left_and_the_rest_go_on(site, tmp_path, monkeypatch) -> None:
    real = service.read_bounce

    def fragile(message):
        if "boom" in str(message["subject"]):
            raise ValueError("a detector choked")
        return real(message)

    monkeypatch.setattr(service, "read_bounce", fragile)
    box = make_maildir(
        tmp_path / "b",
        [
            personal(RETURN_PATH, "a@example.org", "boom", "x"),
            personal(RETURN_PATH, "b@example.org", "hello", "x"),
        ],
    )
    report = service.read_mailboxes(site, [MaildirBox(box)], NOW)
    assert report.counts() == {"not a bounce": 1, "unreadable": 1}
    assert "a detector choked" in report.unreadable[0].detail
    assert len(mailbox.Maildir(box, create=False)) == 1  # left where it was, for a person


def test_the_parser_reads_status_and_words() -> None:
    hard = read_bounce(
        parse(dsn("bounces@x.example", "a@example.com", "5.1.1", "550 5.1.1 <a@example.com>: no such user"))
    )
    assert (hard.verdict, hard.status, hard.recipients) == (
        Verdict.HARD,
        "5.1.1",
        frozenset({"a@example.com"}),
    )
    assert hard.words == "5.1.1 550 5.1.1 <a@example.com>: no such user"
    soft = read_bounce(parse(dsn("bounces@x.example", "a@example.com", "4.2.2", "452 mailbox full")))
    assert (soft.verdict, soft.status) == (Verdict.SOFT, "4.2.2")
    returned = read_bounce(parse(qmail("bounces@x.example", "b@example.com")))
    assert (returned.verdict, returned.status) == (Verdict.HARD, "5.1.1")
    assert returned.recipients == frozenset({"b@example.com"})
    notice = read_bounce(parse(vague("bounces@x.example")))
    assert notice.verdict == Verdict.SOFT and notice.vague and not notice.recipients
    success = read_bounce(
        parse(dsn("bounces@x.example", "a@example.com", "2.0.0", "250 ok", action="delivered"))
    )
    assert success.verdict == Verdict.NONE


class FakeIMAP:
    """Just enough of an IMAP server's answers (imaplib's shapes) for the IMAP mailbox."""

    folders: ClassVar[dict[str, dict[str, tuple[bytes, set[str]]]]] = {}
    logins: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, host: str, port: int, ssl_context=None, timeout=None) -> None:
        assert (host, port) == ("imap.example.com", 993) and ssl_context is not None

    def login(self, user: str, password: str):
        self.logins.append((user, password))
        return "OK", [b"logged in"]

    def select(self, folder: str):
        self.messages = self.folders[folder.strip('"')]
        return "OK", [str(len(self.messages)).encode()]

    def uid(self, command: str, *args):
        if command == "SEARCH":
            unseen = [uid for uid, (_d, flags) in self.messages.items() if "\\Seen" not in flags]
            return "OK", [" ".join(unseen).encode()]
        if command == "FETCH":
            uid, what = args
            assert what == "(BODY.PEEK[])"
            return "OK", [(f"{uid} (UID {uid} BODY[] {{1}}".encode(), self.messages[uid][0]), b")"]
        if command == "STORE":
            uid, _op, flags = args
            self.messages[uid][1].update(flags.strip("()").split())
            return "OK", [b"stored"]
        raise AssertionError(command)

    def close(self):
        return "OK", []

    def logout(self):
        return "BYE", []


def test_the_imap_mailbox_is_read_over_tls_and_flagged(site, monkeypatch) -> None:
    FakeIMAP.folders = {
        "Bounces": {
            "7": (personal(RETURN_PATH, "a@example.org", "hello", "x"), set()),
            "8": (vague(RETURN_PATH), set()),
            "9": (b"old", {"\\Seen"}),
        }
    }
    FakeIMAP.logins = []
    monkeypatch.setattr(imaplib, "IMAP4_SSL", FakeIMAP)
    monkeypatch.setenv("NEWSLETTER_BOUNCE_IMAP_PASSWORD", "imap-password-from-env")
    settings = Settings(
        **{
            **site.settings.model_dump(),
            "bounce_imap_host": "imap.example.com",
            "bounce_imap_user": "bounces@news.example",
            "bounce_imap_folder": "Bounces",
            "bounce_imap_password": None,
        }
    )
    assert timetable.reads_bounces(settings)
    [box] = service.open_mailboxes(settings, None, imap=False)  # IMAP is what the settings name
    assert FakeIMAP.logins == [("bounces@news.example", "imap-password-from-env")]
    report = service.read_mailboxes(replace(site, settings=settings), [box], NOW)
    assert report.counts() == {"unmatched": 1, "not a bounce": 1}
    assert {uid: flags for uid, (_d, flags) in FakeIMAP.folders["Bounces"].items()} == {
        "7": {"\\Seen", "\\Flagged"},
        "8": {"\\Seen", "\\Flagged"},
        "9": {"\\Seen"},
    }


def test_the_command_reads_a_maildir_and_says_what_it_did(site, tmp_path) -> None:
    edition_id = prepared(site)
    report = Sender(site.settings, site.factory, OutboxProvider(site.settings.outbox_dir)).send(edition_id)
    assert report.status == "complete"
    sent = deliveries_by_email(site, edition_id)
    box = make_maildir(
        tmp_path / "bounces",
        [
            dsn(
                verp(sent["anna.keller@example.com"].id),
                "anna.keller@example.com",
                "5.1.1",
                "550 5.1.1 user unknown",
            ),
            personal(RETURN_PATH, "someone@example.org", "hello", "x"),
        ],
    )
    config = settings_file(site, tmp_path, f'[sending]\nreturn_path = "{RETURN_PATH}"\n')
    env = {**SECRET_ENV, "NEWSLETTER_CONFIG": str(config), "COLUMNS": "250"}
    result = newsletter("bounces", "--maildir", str(box), "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["counts"] == {"hard": 1, "not a bounce": 1}
    [hard] = [m for m in found["messages"] if m["outcome"] == "hard"]
    assert hard["email"] == "anna.keller@example.com" and hard["suppressed"] is True
    assert hard["delivery_id"] == sent["anna.keller@example.com"].id
    again = newsletter("bounces", "--maildir", str(box), env=env, cwd=tmp_path)
    assert again.returncode == 0 and "nothing to read" in again.stdout
    none = newsletter("bounces", env=env, cwd=tmp_path)
    assert none.returncode == 2 and "no bounce mailbox" in none.stderr and len(none.stderr.splitlines()) == 1
    both = newsletter("bounces", "--maildir", str(box), "--imap", env=env, cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr
    missing = newsletter("bounces", "--maildir", str(tmp_path / "nowhere"), env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "not a Maildir" in missing.stderr


def test_address_tokens_survive_a_mail_system_folding_case() -> None:
    token = sign_for_address(KEY, "bounce", 12345)
    address = envelope_sender(RETURN_PATH, KEY, 12345)
    assert address == f"bounces+{token}@news.example"
    from newsletter.sending.verp import bounced_delivery
    from newsletter.subscribers.tokens import TokenError

    assert bounced_delivery(KEY, RETURN_PATH, address.upper()) == 12345
    assert bounced_delivery(KEY, RETURN_PATH, "someone@news.example") is None
    with pytest.raises(TokenError):
        bounced_delivery(b"another-key-0123456789", RETURN_PATH, address)
    with pytest.raises(TokenError):
        bounced_delivery(KEY, RETURN_PATH, address.replace(token[:4], "ffff"))


def test_a_token_too_long_for_an_address_goes_in_the_subject(site, tmp_path) -> None:
    long_base = "unsubscribe-the-european-times@news.example"
    settings = Settings(
        **{
            **site.settings.model_dump(),
            "sending": {**site.settings.sending.model_dump(), "unsubscribe_address": long_base},
        }
    )
    with site.factory() as session:
        anna = session.scalars(select(Subscriber).where(Subscriber.email == "anna.keller@example.com")).one()
    link = Links.from_settings(settings).unsubscribe(anna.id, "weekly")
    uri = Mailto.from_settings(settings).uri(link)
    address, subject = re.fullmatch(r"mailto:([^?]+)\?subject=(.+)", uri).groups()
    assert address == long_base and unquote(subject) == f"unsubscribe {link.rsplit('/', 1)[1]}"
    box = make_maildir(tmp_path / "u", [personal(address, anna.email, unquote(subject), "")])
    report = service.read_mailboxes(replace(site, settings=settings), [MaildirBox(box)], NOW)
    assert report.counts() == {"unsubscribed": 1}
    with site.factory() as session:
        subscription = session.get(SubscriberNewsletter, (anna.id, "weekly"))
        assert subscription.status == "unsubscribed" and subscription.source == "mailto"


def test_the_scheduled_job_reads_the_configured_mailbox(site, tmp_path) -> None:
    box = make_maildir(tmp_path / "bounces", [personal(RETURN_PATH, "someone@example.org", "hi", "x")])
    settings = Settings(**{**site.settings.model_dump(), "bounce_maildir": box})
    runtime = replace(site, settings=settings)
    jobs = {job.job_id: job.what for job in timetable.jobs(runtime, NOW)}
    assert "read the bounce mailbox" in jobs["feeds"]
    Runner(runtime, clock=lambda: NOW).read_bounces()
    maildir = mailbox.Maildir(box, create=False)
    assert len(maildir) == 0 and len(maildir.get_folder("unmatched")) == 1


def test_sendgrid_personalizations_carry_the_tagged_mailto(site, mail_api) -> None:
    edition_id = prepared(site)
    settings = sendgrid_settings(site, mail_api)
    sender = Sender(
        settings,
        site.factory,
        SendGridProvider(settings),
        Pace.from_settings(settings.sending),
        sleep=lambda _seconds: None,
    )
    report = sender.send(edition_id)
    assert report.status == "complete"
    for item in mail_api.accepted:
        header = item["headers"]["List-Unsubscribe"]
        link, mailto = re.fullmatch(r"<(\S+)>, <mailto:(\S+)\?subject=unsubscribe>", header).groups()
        assert mailto == f"unsubscribe+{link.rsplit('/', 1)[1]}@news.example"
