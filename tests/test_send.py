"""Sending: SMTP into aiosmtpd, SendGrid into a local v3 server, the ledger's guarantees. What the
ledger must hold across a crash, a race or a refusal runs on both databases; what goes to the
provider (the messages, the requests, the pacing) on SQLite."""

from __future__ import annotations

import email
import email.policy
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, update

from newsletter.sending.batches import BatchBuilder
from newsletter.sending.pace import Pace
from newsletter.sending.providers import ProviderRefused
from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.sending.providers.sendgrid import SendGridProvider
from newsletter.sending.providers.smtp import SMTPProvider
from newsletter.sending.report import SendError
from newsletter.sending.sender import Sender
from newsletter.store.db import unit_of_work
from newsletter.store.models import (
    Article,
    Delivery,
    Edition,
    Publication,
    Subscriber,
    SubscriberNewsletter,
    Suppression,
    Variant,
)
from newsletter.subscribers.links import Links
from tests.sendgrid_server import API_KEY, Scripted
from tests.support.crash import Doomed, Killed
from tests.support.sending import (
    Sleeps,
    add_readers,
    fast,
    newsletter_on,
    prepared,
    recipients_of,
    send_process,
    send_with_sendgrid,
    senders_at_once,
    sendgrid_env,
    sendgrid_settings,
    smtp_settings,
    statuses,
    with_settings,
)
from tests.support.waiting import until

# --- SMTP -------------------------------------------------------------------------------------


def test_smtp_delivers_every_message_with_short_crlf_lines(newsroom, smtp_sink) -> None:
    sink, port = smtp_sink
    add_readers(newsroom, 30)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    settings = smtp_settings(newsroom, port)
    sink.drop_at = {5, 17}  # the connection drops twice mid-batch
    provider = SMTPProvider(settings)
    try:
        report = Sender(settings, newsroom.factory, provider).send(edition_id)
    finally:
        provider.close()
    assert report.status == "complete"
    assert sorted(sink.recipients()) == expected  # every reader exactly once
    for _tos, data in sink.messages:
        assert max(len(line) for line in data.split(b"\r\n")) <= 998
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["List-Unsubscribe"].strip().startswith("<http")  # folded after the colon when long
        assert message["Message-ID"] and message["Date"] and message["List-Id"]
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_the_sink_really_refuses_long_lines(smtp_sink) -> None:
    """The check above is real: a line past 1,000 octets is refused by the server."""
    import smtplib

    _sink, port = smtp_sink
    with smtplib.SMTP("127.0.0.1", port) as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\n" + b"y" * 1200 + b"\r\n")
    assert refused.value.smtp_code == 500 and b"too long" in refused.value.smtp_error.lower()


@pytest.mark.both_databases
def test_smtp_refused_address_fails_alone_and_retry_failed_resends_it(newsroom, smtp_sink) -> None:
    sink, port = smtp_sink
    edition_id = prepared(newsroom)
    # A policy refusal (5.7.x) is not about the address: the reader stays, and is tried again.
    sink.refuse["tom.obrien@example.ie"] = "550 5.7.1 <tom.obrien@example.ie>: mailbox unavailable"
    settings = smtp_settings(newsroom, port)
    provider = SMTPProvider(settings)
    report = Sender(settings, newsroom.factory, provider).send(edition_id)
    assert report.status == "partial" and (report.sent, report.failed) == (8, 1)
    with newsroom.factory() as session:
        failed = session.scalars(select(Delivery).where(Delivery.status == "failed")).one()
        assert "550 5.7.1" in failed.detail and "mailbox unavailable" in failed.detail
    sink.refuse.clear()
    again = Sender(settings, newsroom.factory, provider).send(edition_id, retry_failed=True)
    provider.close()
    assert again.status == "complete" and (again.sent, again.failed) == (1, 0)
    assert sorted(sink.recipients()) == recipients_of(newsroom, edition_id)


# --- SendGrid ---------------------------------------------------------------------------------


def test_sendgrid_202_posts_personalizations(newsroom, mail_api) -> None:
    edition_id = prepared(newsroom)
    report = send_with_sendgrid(newsroom, mail_api, edition_id)
    assert report.status == "complete" and report.sent == 9
    assert sorted(mail_api.recipients()) == recipients_of(newsroom, edition_id)
    payload = mail_api.payloads[0]
    assert payload["categories"] == ["weekly"]
    assert payload["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    for item in mail_api.accepted:
        assert item["headers"]["List-Unsubscribe"].startswith("<http://localhost:8000/unsubscribe/")
        assert set(item["custom_args"]) == {"edition_id", "subscriber_id", "delivery_id"}
        assert item["custom_args"]["edition_id"] == str(edition_id)
        unsubscribe = next(
            v for k, v in item["substitutions"].items() if k.startswith("__NL_UNSUBSCRIBE_URL_")
        )
        assert unsubscribe in item["headers"]["List-Unsubscribe"]
    with newsroom.factory() as session:
        ids = session.scalars(select(Delivery.provider_message_id).where(Delivery.status == "sent")).all()
    assert all(ids)


def test_sendgrid_400_isolates_the_bad_address(newsroom, mail_api) -> None:
    add_readers(newsroom, 20)
    edition_id = prepared(newsroom)
    mail_api.bad_addresses = {"reader007@example.com"}
    report = send_with_sendgrid(newsroom, mail_api, edition_id)
    assert report.status == "partial" and report.failed == 1 and report.sent == 28
    with newsroom.factory() as session:
        failed = session.execute(
            select(Subscriber.email, Delivery.detail)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.status == "failed")
        ).one()
    assert failed[0] == "reader007@example.com" and "HTTP 400: Does not contain a valid address" in failed[1]
    assert "reader007@example.com" not in mail_api.recipients() and len(set(mail_api.recipients())) == 28


def test_sendgrid_401_stops_with_nothing_marked_sent(newsroom, mail_api) -> None:
    edition_id = prepared(newsroom)
    settings = with_settings(
        newsroom, provider="sendgrid", sendgrid_api_key="SG.wrong", sendgrid_host=mail_api.host
    )
    with pytest.raises(SendError, match="refused the send: HTTP 401"):
        Sender(settings, newsroom.factory, SendGridProvider(settings)).send(edition_id)
    assert statuses(newsroom, edition_id) == {"pending": 9} and mail_api.accepted == []
    with newsroom.factory() as session:
        assert session.get(Edition, edition_id).status == "sending"  # explicit: not complete


def test_sendgrid_413_splits_the_request(newsroom, mail_api) -> None:
    add_readers(newsroom, 20)
    edition_id = prepared(newsroom)
    mail_api.max_personalizations = 4
    report = send_with_sendgrid(newsroom, mail_api, edition_id)
    assert report.status == "complete" and report.sent == 29
    assert sorted(mail_api.recipients()) == recipients_of(newsroom, edition_id)


def test_a_wait_of_years_or_infinity_asked_by_the_api_is_an_hour_at_most(newsroom, mail_api) -> None:
    """`Retry-After: 1e12` or `inf` once crashed the sender (the sleep overflowed); a year asked
    would have stalled it for a year: the send waits at most an hour, then asks again."""
    edition_id = prepared(newsroom)
    mail_api.script = [
        Scripted(429, {"errors": [{"message": "slow down"}]}, {"Retry-After": "1e12"}),
        Scripted(429, {"errors": [{"message": "slow down"}]}, {"Retry-After": "inf"}),
    ]
    sleeps = Sleeps()
    report = send_with_sendgrid(newsroom, mail_api, edition_id, sleeps=sleeps)
    assert report.status == "complete" and report.sent == 9
    assert len(sleeps) == 2 and sleeps[0] == 3600 and sleeps[1] <= 60
    assert sorted(mail_api.recipients()) == recipients_of(newsroom, edition_id)


def test_sendgrid_429_and_500_slow_down_and_retry(newsroom, mail_api) -> None:
    edition_id = prepared(newsroom)
    mail_api.script = [
        Scripted(429, {"errors": [{"message": "too many requests"}]}, {"Retry-After": "7"}),
        Scripted(500, {"errors": [{"message": "internal error"}]}),
        Scripted(503, None),
    ]
    sleeps = Sleeps()
    report = send_with_sendgrid(newsroom, mail_api, edition_id, sleeps=sleeps)
    assert report.status == "complete" and report.sent == 9 and report.failed == 0
    assert len(sleeps) == 3 and sleeps[0] >= 7  # Retry-After honoured
    assert sleeps[1] <= 60 and sleeps[2] <= 60
    assert sorted(mail_api.recipients()) == recipients_of(newsroom, edition_id)


@pytest.mark.both_databases
def test_sendgrid_timeout_after_sending_is_uncertain_not_resent(newsroom, mail_api) -> None:
    edition_id = prepared(newsroom)
    gave_up = threading.Event()

    def late(_number: int) -> bool:
        gave_up.wait(30)  # answers once the client gave up; the request was still taken
        return True

    mail_api.on_request = late
    report = send_with_sendgrid(newsroom, mail_api, edition_id, timeout_seconds=0.3)
    gave_up.set()
    assert report.status == "partial" and report.failed == 9 and report.sent == 0
    until(lambda: len(mail_api.accepted) == 9)  # it did go: resending blindly would have doubled it
    with newsroom.factory() as session:
        details = set(session.scalars(select(Delivery.detail).where(Delivery.edition_id == edition_id)))
    assert len(details) == 1 and next(iter(details)).startswith("uncertain:")


def test_rate_limit_paces_the_send(newsroom, mail_api) -> None:
    add_readers(newsroom, 11)
    edition_id = prepared(newsroom)
    settings = sendgrid_settings(newsroom, mail_api, sendgrid_batch=5)
    sleeps = Sleeps()
    Sender(settings, newsroom.factory, SendGridProvider(settings), Pace(rate=10), sleep=sleeps).send(
        edition_id
    )
    assert sum(sleeps) >= 20 / 10 - 0.5  # 20 messages at 10/s take about two seconds


@pytest.mark.both_databases
def test_readers_who_leave_mid_send_are_not_mailed(newsroom, mail_api) -> None:
    edition_id = prepared(newsroom)
    with unit_of_work(newsroom.factory) as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == "tom.obrien@example.ie")
            .values(status="unsubscribed")
        )
        session.add(Suppression(email="sofia.rossi@example.net", reason="bounce"))
        late = Subscriber(email="late@example.com", status="active", language="en")
        late.newsletters = [SubscriberNewsletter(newsletter="weekly")]
        session.add(late)
    report = send_with_sendgrid(newsroom, mail_api, edition_id)
    assert report.status == "complete" and report.sent == 7 and report.suppressed == 2
    assert {"tom.obrien@example.ie", "sofia.rossi@example.net", "late@example.com"}.isdisjoint(
        mail_api.recipients()
    )


def test_no_header_injection_from_titles_or_names(newsroom, tmp_path) -> None:
    with unit_of_work(newsroom.factory) as session:
        article = session.scalars(select(Article).where(Article.trending_rank == 1)).first()
        session.execute(
            update(Article)
            .where(Article.key == article.key)
            .values(title="Breaking\r\nBcc: victim@example.com\r\nX-Injected: yes")
        )
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == "tom.obrien@example.ie")
            .values(name="Tom\r\nBcc: evil@example.com")
        )
    edition_id = prepared(newsroom)
    settings = with_settings(newsroom, outbox_dir=tmp_path / "outbox")
    Sender(settings, newsroom.factory, OutboxProvider(settings.outbox_dir)).send(edition_id)
    files = sorted((tmp_path / "outbox").glob("*/*.eml"))
    assert len(files) == 9
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message["Bcc"] is None and message["X-Injected"] is None
        assert "\n" not in str(message["Subject"]) and "\n" not in str(message["To"])
        assert len(message.get_all("To")) == 1


# --- crashes and several senders ---------------------------------------------------------------


@pytest.mark.both_databases
def test_a_killed_sender_resumes_exactly_once_sendgrid(newsroom, mail_api) -> None:
    """The sender dies (in process: tests/support/crash.py) while its fourth request is in
    flight, never answered; the next sender resumes, and everyone is mailed exactly once."""
    add_readers(newsroom, 40)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    # The request died before the API took it; "resend" sends the uncertain batch again at once.
    # One request in flight: with several, those the API took before the kill would go twice,
    # which is what "resend" accepts (test_send_concurrency covers several with the events).
    settings = sendgrid_settings(newsroom, mail_api, sendgrid_batch=5, in_flight="resend", concurrency=1)
    doomed = Doomed(settings)

    def kill_on_fourth(number: int) -> bool:
        if number == 4:  # mid-edition, while this request is in flight: it is never answered
            doomed.kill()
            return False
        return True

    mail_api.on_request = kill_on_fourth
    doomed.send(edition_id)
    assert 0 < len(mail_api.accepted) < len(expected)
    assert statuses(newsroom, edition_id).get("sending", 0) > 0  # the dead sender's claim
    mail_api.on_request = None
    again = Sender(settings, newsroom.factory, SendGridProvider(settings), fast(settings)).send(edition_id)
    assert again.status == "complete"
    assert sorted(mail_api.recipients()) == expected  # everyone, exactly once
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}


class KilledAtTheFortieth(OutboxProvider):
    """The outbox, whose sender dies once its 40th file is in place, before the ledger hears of it."""

    def __init__(self, folder: Path, doomed: Doomed) -> None:
        super().__init__(folder)
        self.doomed = doomed
        self.written = 0

    def send(self, batch, report, handing=None) -> None:
        def told(outcomes) -> None:
            report(outcomes)
            self.written += len(outcomes)
            if self.written >= 40:
                self.doomed.kill()
                raise Killed

        super().send(batch, told, handing)


@pytest.mark.both_databases
def test_a_killed_sender_resumes_exactly_once_outbox(newsroom, tmp_path) -> None:
    add_readers(newsroom, 300)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    outbox = tmp_path / "outbox"
    settings = with_settings(newsroom, provider="outbox", outbox_dir=outbox)
    doomed = Doomed(settings)
    doomed.send(edition_id, KilledAtTheFortieth(outbox, doomed))
    written = len(list(outbox.glob("*/*.eml")))
    assert 40 <= written < len(expected)
    assert statuses(newsroom, edition_id).get("sending", 0) > 0  # the dead sender's claims
    again = Sender(settings, newsroom.factory, OutboxProvider(outbox), fast(settings)).send(edition_id)
    assert again.status == "complete"
    files = sorted(outbox.glob("*/*.eml"))
    addresses = [path.name.split("-", 1)[1].removesuffix(".eml") for path in files]
    assert sorted(addresses) == expected  # one complete file per reader
    assert not list(outbox.glob("*/*.part"))
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}


@pytest.mark.e2e
def test_a_sender_process_killed_anywhere_leaves_no_part_file_and_resumes_exactly_once(
    newsroom, tmp_path
) -> None:
    """End to end: SIGKILL lands wherever the `newsletter send` process is, a half-written
    outbox file included, which the in-process kill (at a statement) cannot reach; the next
    sender writes one complete file per reader and no `.part` stays behind."""
    add_readers(newsroom, 300)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    outbox = tmp_path / "outbox"
    env = {"NEWSLETTER_PROVIDER": "outbox", "NEWSLETTER_OUTBOX_DIR": str(outbox)}
    # paced, so the kill lands mid-send however fast the outbox writes (all 309 went between two looks)
    process = send_process(newsroom, edition_id, **env, NEWSLETTER_SENDING__RATE="60")
    until(lambda: len(list(outbox.glob("*/*.eml"))) >= 40, seconds=60)
    process.kill()  # SIGKILL, wherever it is
    process.wait(timeout=30)
    assert 40 <= len(list(outbox.glob("*/*.eml"))) < len(expected)
    again = send_process(newsroom, edition_id, **env)
    _out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    addresses = [path.name.split("-", 1)[1].removesuffix(".eml") for path in outbox.glob("*/*.eml")]
    assert sorted(addresses) == expected  # one complete file per reader
    assert not list(outbox.glob("*/*.part"))
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}


@pytest.mark.both_databases
def test_two_senders_share_an_edition(newsroom, mail_api) -> None:
    """Two senders at once, each a thread with a store connection of its own as a process has:
    they claim batches in turn (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: its write lock),
    both do part of the work, and nobody is mailed twice."""
    add_readers(newsroom, 200)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    mail_api.latency = 0.02  # both senders hold batches at once
    # batches of ten, one request each, so that both senders have some
    settings = sendgrid_settings(newsroom, mail_api, sendgrid_batch=10, concurrency=1)
    reports = senders_at_once(settings, settings, edition_id=edition_id)
    assert {report.status for report in reports} == {"complete"}
    assert sorted(mail_api.recipients()) == expected  # exactly once
    with newsroom.factory() as session:
        claims = session.scalars(select(Delivery.claimed_by).where(Delivery.edition_id == edition_id)).all()
    assert len({claim.partition("#")[0] for claim in claims}) == 2  # both did part of the work


@pytest.mark.e2e
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_two_senders_share_an_edition_on_postgres(newsroom, mail_api) -> None:
    """End to end: two `newsletter send` processes, each with connections of its own, claim
    batches of one edition on PostgreSQL (FOR UPDATE SKIP LOCKED); in process, two threads do
    (test_two_senders_share_an_edition)."""
    add_readers(newsroom, 400)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    mail_api.latency = 0.05  # let both senders hold batches at once
    # batches of ten, one request each, so that both senders have some
    env = sendgrid_env(mail_api, NEWSLETTER_SENDING__SENDGRID_BATCH="10", NEWSLETTER_SENDING__CONCURRENCY="1")
    workers = [send_process(newsroom, edition_id, **env) for _ in range(2)]
    for worker in workers:
        _out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    assert sorted(mail_api.recipients()) == expected  # exactly once
    with newsroom.factory() as session:
        claims = session.scalars(select(Delivery.claimed_by).where(Delivery.edition_id == edition_id)).all()
    assert len({claim.partition("#")[0] for claim in claims}) == 2  # both did part of the work


# --- SMTP security ------------------------------------------------------------------------------


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, as a private CA would issue."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    # Valid whatever day the suite runs on: OpenSSL checks it against the system's clock, which
    # NEWSLETTER_TEST_WALL_CLOCK does not move.
    valid = (
        datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC),
        datetime.datetime(2049, 12, 31, tzinfo=datetime.UTC),
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_smtp_starttls_and_authentication(newsroom, tmp_path) -> None:
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from tests.conftest import SMTPSink, free_port

    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    logins: list[bytes] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append(auth_data.login)
        return AuthResult(success=auth_data.password == b"s3cret-password", handled=False)

    sink, port = SMTPSink(), free_port()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        edition_id = prepared(newsroom)
        wrong = smtp_settings(newsroom, port)
        wrong = with_settings(
            newsroom,
            **{
                **wrong.model_dump(),
                "smtp_tls": "starttls",
                "smtp_ca_file": cert_file,
                "smtp_username": "newsletter",
                "smtp_password": "wrong",
            },
        )
        with pytest.raises(SendError, match="authentication failed: 535"):
            Sender(wrong, newsroom.factory, SMTPProvider(wrong)).send(edition_id)
        assert statuses(newsroom, edition_id) == {"pending": 9} and sink.messages == []
        right = with_settings(newsroom, **{**wrong.model_dump(), "smtp_password": "s3cret-password"})
        provider = SMTPProvider(right)
        report = Sender(right, newsroom.factory, provider).send(edition_id)
        provider.close()
        assert report.status == "complete" and sorted(sink.recipients()) == recipients_of(
            newsroom, edition_id
        )
        assert {login.decode() for login in logins} == {"newsletter"}
        untrusted = with_settings(newsroom, **{**right.model_dump(), "smtp_ca_file": None})
        with pytest.raises(ProviderRefused, match="CERTIFICATE_VERIFY_FAILED"):
            SMTPProvider(untrusted)._connect()
    finally:
        controller.stop()


def test_a_relay_without_starttls_names_the_setting(newsroom) -> None:
    """smtplib's "STARTTLS extension not supported by server." leaves an operator guessing."""
    from aiosmtpd.controller import Controller

    from tests.conftest import SMTPSink, free_port

    sink, port = SMTPSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        plain = smtp_settings(newsroom, port)
        wanting_tls = with_settings(newsroom, **{**plain.model_dump(), "smtp_tls": "starttls"})
        with pytest.raises(ProviderRefused) as refused:
            SMTPProvider(wanting_tls)._connect()
        assert str(refused.value) == (
            f'127.0.0.1:{port} does not offer STARTTLS: set smtp_tls = "ssl" for a server that speaks '
            'TLS from the start (port 465), or "none" for a relay on this machine'
        )
    finally:
        controller.stop()


@pytest.mark.e2e
@pytest.mark.both_databases
def test_smtp_connections_send_the_final_dot_at_once(newsroom, smtp_sink) -> None:
    """The final dot goes alone, after the gate: Nagle's algorithm would hold it until the relay
    acknowledged the body (a delayed ACK: up to 40 ms a message). So no connection waits for it."""
    import socket

    _sink, port = smtp_sink
    connection = SMTPProvider(smtp_settings(newsroom, port))._connect()
    try:
        assert connection.sock is not None
        assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        connection.quit()


def test_send_with_two_worker_processes(newsroom, mail_api) -> None:
    """End to end: `newsletter send --workers 2` sends in its own process and starts a second
    sender process; they share the edition and mail each reader once."""
    add_readers(newsroom, 200)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    mail_api.latency = 0.25  # the send outlasts the second sender's start-up: both hold batches
    # batches of ten, one request each, so that both workers have some
    env = sendgrid_env(mail_api, NEWSLETTER_SENDING__SENDGRID_BATCH="10", NEWSLETTER_SENDING__CONCURRENCY="1")
    done = send_process(newsroom, edition_id, "--workers", "2", **env)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert "complete" in out
    assert sorted(mail_api.recipients()) == expected  # exactly once
    with newsroom.factory() as session:
        claims = session.scalars(select(Delivery.claimed_by).where(Delivery.edition_id == edition_id)).all()
    assert len({claim.partition("#")[0] for claim in claims}) == 2
    with newsroom.factory() as session:  # archived once, by the command, after its senders
        assert session.get(Publication, edition_id) is not None
    assert err.count(f"edition {edition_id} archived") == 1


def test_secrets_never_reach_the_output(newsroom, mail_api) -> None:
    edition_id = prepared(newsroom)
    secret = API_KEY
    mail_api.script = [Scripted(500, {"errors": [{"message": "internal error"}]})]
    env = sendgrid_env(mail_api, NEWSLETTER_SENDING__MAX_BACKOFF_SECONDS="0.1")
    done = newsletter_on(newsroom, "--verbose", "send", "--edition", str(edition_id), **env)
    assert done.returncode == 0, done.stderr
    assert "busy" in done.stderr  # the retry was logged...
    assert secret not in done.stdout + done.stderr  # ...and the key never was
    assert "test-secret-key" not in done.stdout + done.stderr


def test_a_plain_http_public_url_is_warned_about_in_a_whole_sentence(newsroom, caplog) -> None:
    """The warning says what goes wrong and what to set, not a sentence cut off at "not"; the
    dry run shows it among its warnings."""
    from newsletter.services import sending
    from newsletter.settings import plain_http
    from tests.conftest import WEEKLY_NOV_23

    assert newsroom.settings.public_url.scheme == "http" and not newsroom.settings.demo
    planned = sending.dry_run(newsroom, "weekly", WEEKLY_NOV_23, force=True)
    assert planned.warnings == [plain_http(newsroom.settings)]  # what `send` will say, said first
    with caplog.at_level("WARNING", logger="newsletter"):
        sending.prepare_next(newsroom, "weekly", WEEKLY_NOV_23, force=True)
    [warning] = [r.getMessage() for r in caplog.records if "public_url" in r.getMessage()]
    assert warning.endswith(
        "is not HTTPS: Gmail and Yahoo ignore a one-click unsubscribe link that is not HTTPS, and "
        "readers' mail may land in spam; set public_url to the site's https:// address"
    )


def test_a_digest_met_again_after_others_is_built_whole(newsroom) -> None:
    """A sender keeps only its batch's digests; one it meets again later (a reader tried again
    after the send moved on) is read from the store again, not lost."""
    edition_id = prepared(newsroom)
    with newsroom.factory() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.variant_id).where(Delivery.edition_id == edition_id)
        )
        by_digest: dict[int, list[int]] = {}
        for delivery_id, variant_id in rows:
            by_digest.setdefault(variant_id, []).append(delivery_id)
        stored = {v.id: (v.subject, v.html, v.text) for v in session.scalars(select(Variant))}
    # The newsroom's readers get several digests: two of them, the first met twice.
    (first, its), (_second, others), *_rest = sorted(by_digest.items())
    settings = newsroom.settings
    builder = BatchBuilder(settings, newsroom.factory, Links.from_settings(settings), edition_id, "weekly")
    before = builder.build(its).messages
    builder.build(others)
    again = builder.build(its).messages
    assert [m.delivery_id for m in again] == [m.delivery_id for m in before] == sorted(its)
    assert {(m.variant.id, m.variant.subject, m.variant.html, m.variant.text) for m in again} == {
        (first, *stored[first])
    }
