"""The gate with real `newsletter send` processes: one killed -9 while a message's answer is
on its way, one whose PostgreSQL stops taking connections mid-send."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.sending import (
    Outage,
    Sink,
    add_readers,
    deliveries,
    prepared,
    send_process,
    smtp_env,
    smtp_server,
)

pytestmark = pytest.mark.e2e


@pytest.mark.both_databases
def test_a_sender_killed_while_a_message_is_answered_leaves_it_uncertain_not_sent_twice(newsroom) -> None:
    """End to end: a real `newsletter send` killed -9 as a message's DATA is in (the kernel drops
    its connections, its SQLite lock or its PostgreSQL session); in process, crash.py's sender."""
    add_readers(newsroom, 10)
    edition_id = prepared(newsroom)
    everyone = set(deliveries(newsroom, edition_id))
    victim: dict[str, object] = {}

    def kill(number: int, tos: list[str]) -> None:
        if number == 4:  # its DATA is in; the sender dies before it hears the answer
            process = victim["process"]
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            victim["wire"] = tos[0]

    sink = Sink(kill)
    with smtp_server(sink) as port:
        victim["process"] = send_process(
            newsroom, edition_id, **smtp_env(port, NEWSLETTER_SENDING__SMTP_CONNECTIONS="1")
        )
        victim["process"].communicate(timeout=120)
        assert victim["process"].returncode == -signal.SIGKILL
        again = send_process(newsroom, edition_id, **smtp_env(port, NEWSLETTER_SENDING__SMTP_CONNECTIONS="1"))
        _out, err = again.communicate(timeout=120)
    assert again.returncode == 1, err  # partial: one uncertain
    assert sorted(sink.recipients) == sorted(everyone)  # each once
    found = deliveries(newsroom, edition_id)
    assert found[victim["wire"]][0] == "uncertain"
    assert {status for address, (status, _d) in found.items() if address != victim["wire"]} == {"sent"}


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_send_whose_postgresql_stops_mid_send_stops_with_one_line_and_nothing_twice(newsroom) -> None:
    """End to end: the command's own last line when its PostgreSQL stops taking connections."""
    add_readers(newsroom, 30)
    edition_id = prepared(newsroom)
    everyone = set(deliveries(newsroom, edition_id))
    outage = Outage(newsroom)

    def cut(number: int, _tos: list[str]) -> None:
        if number == 5:
            outage.begin()

    sink = Sink(cut)
    env = {"NEWSLETTER_SENDING__SMTP_CONNECTIONS": "3", "NEWSLETTER_SENDING__STORE_RETRY_SECONDS": "2"}
    try:
        with smtp_server(sink) as port:
            first = send_process(newsroom, edition_id, **smtp_env(port, **env))
            _out, err = first.communicate(timeout=120)
            outage.end()
            got_during = list(sink.recipients)
            again = send_process(newsroom, edition_id, **smtp_env(port, **env))
            _out, err_again = again.communicate(timeout=120)
    finally:
        outage.end()
    assert first.returncode == 1
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "cannot write to the database" in last and "tried for 2 s" in last
    assert newsroom.settings.database_label() in last
    assert len(got_during) <= 5 + 2  # the other connections' messages in hand, no more
    assert sorted(sink.recipients) == sorted(everyone), err_again  # nobody twice, nobody missed
    found = deliveries(newsroom, edition_id)
    assert {found[address][0] for address in got_during} <= {"sent", "uncertain"}
    assert {status for address, (status, _d) in found.items() if address not in got_during} == {"sent"}
