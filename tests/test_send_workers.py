"""`send --workers N` of the next edition: its other senders start up while it prepares the
edition, are told it, and share it; when no edition goes, they leave without a word."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import func, select

from newsletter.store.models import Delivery, Edition, Publication
from tests.conftest import ROOT
from tests.support.cli import newsletter
from tests.support.sending import add_readers, cli_env, recipients_of, sendgrid_env

pytestmark = pytest.mark.both_databases

# The weekly edition of 23 November is due then; the one of the week before is long sent.
DUE = "2026-11-23T07:00"
AHEAD = "2026-11-20T07:00"


def send_next(runtime, *options: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`newsletter send OPTIONS...` of the next edition, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "send", *options],
        env=cli_env(runtime, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_senders_started_while_the_edition_is_prepared_share_it(newsroom, mail_api) -> None:
    add_readers(newsroom, 200)
    mail_api.latency = 0.25  # the send outlasts a batch or two: both senders hold some
    # batches of ten, one request each
    env = sendgrid_env(mail_api, NEWSLETTER_SENDING__SENDGRID_BATCH="10", NEWSLETTER_SENDING__CONCURRENCY="1")
    done = send_next(newsroom, "--at", DUE, "--force", "--workers", "2", "--verbose", **env)
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout
    with newsroom.factory() as session:
        edition_id = session.scalars(select(Edition.id)).one()
        claims = session.scalars(select(Delivery.claimed_by).where(Delivery.edition_id == edition_id)).all()
        assert session.get(Publication, edition_id) is not None
    assert sorted(mail_api.recipients()) == recipients_of(newsroom, edition_id)  # each once
    assert len({claim.partition("#")[0] for claim in claims}) == 2
    assert done.stderr.count(f"edition {edition_id} archived") == 1


def test_the_senders_started_early_leave_when_no_edition_goes(newsroom, mail_api) -> None:
    """Its slot still ahead, the edition is refused: the other senders, started up meanwhile,
    exit at once and say nothing; the command says why, as with one sender."""
    add_readers(newsroom, 5)
    env = sendgrid_env(mail_api)
    alone = send_next(newsroom, "--at", AHEAD, **env)
    done = send_next(newsroom, "--at", AHEAD, "--workers", "3", **env)
    assert done.returncode == alone.returncode == 1
    assert done.stderr == alone.stderr
    assert "not due yet" in done.stderr
    assert mail_api.recipients() == []
    with newsroom.factory() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_a_sender_waiting_for_its_edition_reads_only_an_id(newsroom, mail_api) -> None:
    env = {
        k: v for k, v in cli_env(newsroom, **sendgrid_env(mail_api)).items() if k.startswith("NEWSLETTER_")
    }
    superscript = newsletter("send", "--edition-on-stdin", "--no-archive", env=env, input="\u00b2\n")
    assert superscript.returncode == 2, superscript.stderr  # a digit to Python, no id
    told = newsletter("send", "--edition-on-stdin", "--no-archive", env=env, input="1; DROP TABLE x\n")
    assert told.returncode == 2
    assert (
        told.stderr.strip()
        == "newsletter: --edition-on-stdin: expected an edition id on stdin, not '1; DROP TABLE x'"
    )
    nothing = newsletter("send", "--edition-on-stdin", "--no-archive", env=env, input="")
    assert (nothing.returncode, nothing.stdout, nothing.stderr) == (0, "", "")
    assert mail_api.recipients() == []
