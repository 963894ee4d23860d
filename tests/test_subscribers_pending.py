"""An import ends in a state the operator chose: active (`--confirmed`), mailed the double opt-in
(`--send-confirmation`: once per reader, paced, one failure never stopping the rest), or told
plainly that its readers wait for a confirmation nobody sent; and `status` lists readers pending
longer than their link lives."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from newsletter.services import confirmations, readers, subscribers
from newsletter.services.overview import overview
from newsletter.services.readers import SignUp
from newsletter.store.db import unit_of_work
from newsletter.store.models import Subscriber
from newsletter.store.statuses import SubscriberStatus
from tests.conftest import free_port
from tests.support.cli import Ran, newsletter
from tests.support.sending import ScriptedSink, smtp_server
from tests.support.settings_files import settings_file

SECRET = "test-secret-key-0123456789"  # the newsroom's: links mailed by a command open here
# The clock these tests hold: the commands and the links they run on read it (a fixed day).
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LIST = "email,name\nerin@example.org,Erin O'Neil\nfinn@example.org,Finn\n"


def command(runtime, folder, extra: str = ""):
    """`newsletter ARGS --config FILE` on the runtime's store and outbox."""
    config = settings_file(runtime, folder, extra)

    def run(*args: str) -> Ran:
        return newsletter(*args, "--config", str(config), env={"NEWSLETTER_SECRET_KEY": SECRET}, cwd=folder)

    return run


def notices(runtime) -> list[email.message.EmailMessage]:
    folder = runtime.settings.outbox_dir / "outside-ledger"
    paths = sorted(folder.glob("*.eml")) if folder.is_dir() else []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]


def confirm_token(message: email.message.EmailMessage) -> str:
    return re.search(r"/confirm/(\S+)", message.get_body(("plain",)).get_content()).group(1)


def stored(runtime, address: str) -> Subscriber:
    with runtime.factory() as session:
        return session.scalars(select(Subscriber).where(Subscriber.email == address)).one()


def test_without_either_option_the_import_says_who_waits_and_how_to_mail_them(newsroom, tmp_path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(LIST)
    result = command(newsroom, tmp_path)("subscribers", "import", str(path))
    assert result.returncode == 0 and "2 added" in result.stdout, result.stderr
    told = " ".join(result.stdout.split())
    assert (
        "2 readers are pending: they get nothing until they confirm, and this import mailed nobody." in told
    )
    assert "--send-confirmation to mail each one the confirmation link" in told and "--confirmed" in told
    assert notices(newsroom) == [] and stored(newsroom, "erin@example.org").status == SubscriberStatus.PENDING
    confirmed = command(newsroom, tmp_path)("subscribers", "import", str(path), "--confirmed")
    assert confirmed.returncode == 0 and "pending:" not in confirmed.stdout
    assert stored(newsroom, "erin@example.org").status == SubscriberStatus.ACTIVE


@time_machine.travel(NOW, tick=True)
def test_send_confirmation_mails_each_pending_reader_once(newsroom, tmp_path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(LIST)
    run = command(newsroom, tmp_path)
    first = run("subscribers", "import", str(path), "--send-confirmation")
    assert first.returncode == 0, first.stderr
    assert (
        "confirmation emails: 2 sent, 0 may not have arrived (the relay did not answer), 0 not sent again (a link went to them in the last 7 days), 0 failed"
        in first.stdout
    )
    mailed = notices(newsroom)
    assert sorted(m["To"] for m in mailed) == ["erin@example.org", "finn@example.org"]
    again = run("subscribers", "import", str(path), "--send-confirmation")
    assert (
        again.returncode == 0
        and "confirmation emails: 0 sent, 0 may not have arrived (the relay did not answer), 2 not sent again"
        in again.stdout
    )
    assert len(notices(newsroom)) == 2  # a re-run mails nobody twice
    erin = next(m for m in mailed if m["To"] == "erin@example.org")
    view = readers.confirm(newsroom, confirm_token(erin), datetime.now(UTC))  # the held clock's
    assert view.status == SubscriberStatus.ACTIVE and view.name == "Erin O'Neil"
    # The file names no newsletter: every one the site sends, as the confirmation listed
    assert [s.newsletter for s in view.subscriptions if s.active] == ["daily", "weekly"]


@time_machine.travel(NOW, tick=True)
def test_a_reader_the_sign_up_page_mailed_is_not_mailed_again(newsroom, tmp_path) -> None:
    """The sign-up page's one notice an hour, and its link, stand: the import adds none."""
    now = datetime.now(UTC)
    assert readers.sign_up(newsroom, SignUp("erin@example.org", ["weekly"]), now) == "confirm"
    path = tmp_path / "list.csv"
    path.write_text(LIST)
    result = command(newsroom, tmp_path)("subscribers", "import", str(path), "--send-confirmation")
    assert (
        "confirmation emails: 1 sent, 0 may not have arrived (the relay did not answer), 1 not sent again"
        in result.stdout
    )
    assert sorted(m["To"] for m in notices(newsroom)) == ["erin@example.org", "finn@example.org"]


def test_one_refused_address_never_stops_the_rest_and_is_tried_again(newsroom, tmp_path, smtp_sink) -> None:
    sink, port = smtp_sink
    sink.refuse["bad@example.org"] = "550 5.1.1 no such user"
    path = tmp_path / "list.csv"
    path.write_text("email\nann@example.org\nbad@example.org\ncarl@example.org\n")
    smtp = f'provider = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_tls = "none"\n'
    run = command(newsroom, tmp_path, smtp)
    result = run("subscribers", "import", str(path), "--send-confirmation")
    assert result.returncode == 1
    assert (
        "confirmation emails: 2 sent, 0 may not have arrived (the relay did not answer), 0 not sent again (a link went to them in the last 7 days), 1 failed"
        in result.stdout
    )
    assert "import the same file again with --send-confirmation" in result.stderr
    assert sorted(sink.recipients()) == ["ann@example.org", "carl@example.org"]
    assert stored(newsroom, "bad@example.org").confirm_sent_at is None  # its claim given back
    del sink.refuse["bad@example.org"]
    again = run("subscribers", "import", str(path), "--send-confirmation")
    assert (
        again.returncode == 0
        and "confirmation emails: 1 sent, 0 may not have arrived (the relay did not answer), 2 not sent again"
        in again.stdout
    )
    assert sorted(sink.recipients()) == ["ann@example.org", "bad@example.org", "carl@example.org"]


def test_a_provider_refusing_everything_stops_and_leaves_everyone_for_the_next_run(
    newsroom, tmp_path
) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email\nann@example.org\nbad@example.org\ncarl@example.org\n")
    nobody = f'provider = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {free_port()}\nsmtp_tls = "none"\n'
    result = command(newsroom, tmp_path, nobody)("subscribers", "import", str(path), "--send-confirmation")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "0 sent, 0 may not have arrived (the relay did not answer), 0 not sent again (a link went to them in the last 7 days), 1 failed"
        in result.stdout
    )
    assert "the provider refuses to send" in result.stderr and "2 readers were not tried" in result.stderr
    for address in ("ann@example.org", "bad@example.org", "carl@example.org"):
        assert stored(newsroom, address).confirm_sent_at is None


@pytest.mark.parametrize(("sending", "waits"), [({"rate": 2.0}, [0.5, 1.0]), ({}, [0.2, 0.4])])
def test_confirmations_are_paced(make_runtime, tmp_path, sending, waits) -> None:
    """At `[sending] rate`, else five a second: the third waits until a second has passed."""
    runtime = make_runtime(sending=sending)
    path = tmp_path / "list.csv"
    path.write_text("email\na@example.org\nb@example.org\nc@example.org\n")
    report = subscribers.import_file(runtime, path)
    slept: list[float] = []
    done = confirmations.send_confirmations(
        runtime, report.pending, NOW, sleep=slept.append, clock=lambda: 0.0
    )
    assert (done.sent, slept) == (3, waits)


def test_a_run_stopped_while_it_paces_marks_nobody_it_did_not_mail(make_runtime, tmp_path) -> None:
    """Ctrl-C lands most likely in the pause between two sends: the reader waiting for it is
    not marked as mailed, so the next run mails them (and not the one already mailed)."""
    runtime = make_runtime(sending={"rate": 1.0})
    path = tmp_path / "list.csv"
    path.write_text("email\na@example.org\nb@example.org\n")
    report = subscribers.import_file(runtime, path)
    pauses: list[float] = []

    def interrupted(wait: float) -> None:
        pauses.append(wait)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        confirmations.send_confirmations(runtime, report.pending, NOW, sleep=interrupted, clock=lambda: 0.0)
    assert pauses == [1.0] and [m["To"] for m in notices(runtime)] == ["a@example.org"]
    assert stored(runtime, "b@example.org").confirm_sent_at is None
    again = confirmations.send_confirmations(runtime, report.pending, NOW, sleep=lambda _wait: None)
    assert (again.sent, again.already) == (1, 1)
    assert sorted(m["To"] for m in notices(runtime)) == ["a@example.org", "b@example.org"]


@pytest.mark.both_databases
def test_status_lists_readers_pending_longer_than_their_link_lives(make_runtime, tmp_path) -> None:
    runtime = make_runtime(timezone="Europe/Brussels")
    day = timedelta(days=1)
    waiting = {  # address: (status, joined, last link sent)
        "imported@example.org": ("pending", NOW - 10 * day, None),  # nobody ever mailed them
        "ignored@example.org": ("pending", NOW - 20 * day, NOW - 9 * day),  # their link expired
        "fresh@example.org": ("pending", NOW - 1 * day, None),
        "asked.again@example.org": ("pending", NOW - 30 * day, NOW - 2 * day),  # a live link
        "active@example.org": ("active", NOW - 40 * day, None),
    }
    with unit_of_work(runtime.factory) as session:
        for address, (status, joined, sent) in waiting.items():
            session.add(Subscriber(email=address, status=status, created_at=joined, confirm_sent_at=sent))
    seen = overview(runtime, NOW)
    assert seen.unconfirmed == subscribers.Unconfirmed(2, 1, NOW - 20 * day)
    [problem] = [p for p in seen.problems if "confirmation link" in p]
    assert problem.startswith(
        "1 pending reader has waited over 7 days and never been sent a confirmation link"
    )
    run = command(runtime, tmp_path)
    with time_machine.travel(NOW, tick=False):
        checked, shown = run("status", "--check"), run("status")
    assert checked.returncode == 1 and problem in " ".join(checked.stdout.split())
    assert (
        "pending past their confirmation link (7 days): 2, the oldest since 2026-10-31 13:00 CET; "
        "1 of them never sent one" in " ".join(shown.stdout.split())
    )


class VanishingSink(ScriptedSink):
    """Takes the message for these addresses, then drops the connection before its answer."""

    def __init__(self, vanish: set[str]) -> None:
        super().__init__()
        self.vanish = vanish

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        if set(envelope.rcpt_tos) & self.vanish:
            server.transport.close()
        return answer


def test_a_confirmation_the_relay_took_without_answering_is_told_apart_and_logged(newsroom, tmp_path) -> None:
    sink = VanishingSink({"lost@example.org"})
    with smtp_server(sink) as port:
        path = tmp_path / "list.csv"
        path.write_text("email\nann@example.org\nlost@example.org\n")
        smtp = f'provider = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_tls = "none"\n'
        run = command(newsroom, tmp_path, smtp)
        result = run("subscribers", "import", str(path), "--send-confirmation")
        told = " ".join(result.stdout.split())
        assert result.returncode == 0, result.stderr
        assert (
            "confirmation emails: 1 sent, 1 may not have arrived (the relay did not answer), "
            "0 not sent again (a link went to them in the last 7 days), 0 failed" in told
        )
        assert "once 7 days have passed to mail a new link" in " ".join(result.stderr.split())
        lost = stored(newsroom, "lost@example.org")
        assert lost.confirm_sent_at is not None  # it may have arrived: never mailed twice meanwhile
        logged = [line for line in result.stderr.splitlines() if "may not have arrived:" in line]
        assert f"confirmation to subscriber {lost.id} may not have arrived" in logged[0]
        assert "lost@example.org" not in result.stderr  # by id, never the address
        again = run("subscribers", "import", str(path), "--send-confirmation")
        assert "0 sent, 0 may not have arrived (the relay did not answer), 2 not sent again" in again.stdout
        assert sorted(sink.recipients()) == ["ann@example.org", "lost@example.org"]


def test_a_pending_reader_whose_link_expired_may_be_sent_a_new_one(make_runtime, tmp_path) -> None:
    """At most once per link lifetime: not while the link works, once it has expired; and
    `status` tells of them, with what to run, meanwhile."""
    runtime = make_runtime()
    path = tmp_path / "list.csv"
    path.write_text("email\nann@example.org\n")
    pending = subscribers.import_file(runtime, path).pending
    quick = {"sleep": lambda _wait: None}
    assert confirmations.send_confirmations(runtime, pending, NOW, **quick).sent == 1
    week = timedelta(days=7)
    still_live = confirmations.send_confirmations(runtime, pending, NOW + week, **quick)
    assert (still_live.sent, still_live.already) == (0, 1) and len(notices(runtime)) == 1
    later = NOW + week + timedelta(hours=1)
    waiting = overview(runtime, later).unconfirmed
    assert (waiting.count, waiting.never_sent) == (1, 0)
    assert "--send-confirmation" in waiting.advice() and "over 7 days old" in waiting.advice()
    renewed = confirmations.send_confirmations(runtime, pending, later, **quick)
    assert (renewed.sent, renewed.already) == (1, 0) and len(notices(runtime)) == 2
    assert stored(runtime, "ann@example.org").confirm_sent_at == later
    assert overview(runtime, later).unconfirmed.count == 0  # a live link again
    twice = confirmations.send_confirmations(runtime, pending, later + timedelta(days=1), **quick)
    assert twice.already == 1 and len(notices(runtime)) == 2


def test_confirmed_says_which_pending_readers_it_made_active(newsroom, tmp_path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,name\nerin@example.org,Erin\nfinn@example.org,Finn\ngus@example.org,Gus\n")
    run = command(newsroom, tmp_path)
    mailed = run("subscribers", "import", str(path), "--send-confirmation")
    assert mailed.returncode == 0 and "3 sent" in mailed.stdout, mailed.stderr
    path.write_text(path.read_text().replace("Gus", "Gus Grant") + "hal@example.org,Hal\n")
    fixed = run("subscribers", "import", str(path), "--confirmed")
    told = " ".join(fixed.stdout.split())
    assert "1 added, 3 updated" in told
    assert "3 readers who had not confirmed are now active (--confirmed: they opted in elsewhere)" in told
    assert stored(newsroom, "erin@example.org").status == SubscriberStatus.ACTIVE
    again = run("subscribers", "import", str(path), "--confirmed")
    assert "now active" not in again.stdout  # active already: nobody newly made so
