"""The provider's word across a real kill: a `newsletter send` process killed with SIGKILL after
the loopback API accepted a request, its answer never read; the API's events POSTed to the
pages' Event Webhook (the app, in this process) while that request's deliveries are still
`sending`; then, `uncertain_minutes` later, `newsletter send` again: nobody is mailed twice and
the ledger says `sent` for everyone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import select

from newsletter.store.models import Delivery, WebhookBatch
from tests.conftest import ROOT
from tests.support.sending import (
    add_readers,
    cli_env,
    prepared,
    recipients_of,
    send_process,
    sendgrid_env,
    statuses,
)
from tests.support.web import serve
from tests.support.webhook import WebhookKeys

pytestmark = pytest.mark.e2e


def test_a_killed_senders_requests_confirmed_by_the_webhook_are_never_sent_again(
    newsroom, mail_api, tmp_path
) -> None:
    """End to end: a `newsletter send` process killed with SIGKILL while its requests are in
    flight, then the webhook's word on them; an in-process kill cannot stop a request the
    kernel already has."""
    keys = WebhookKeys.make()
    add_readers(newsroom, 40)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    victim: dict = {}

    def die_after_fourth(number: int) -> bool:
        if number == 4:
            os.kill(victim["process"].pid, signal.SIGKILL)
            return False  # the API took it; the sender never hears so
        return True

    mail_api.on_accepted = die_after_fourth
    env = sendgrid_env(
        mail_api,
        NEWSLETTER_SENDING__SENDGRID_BATCH="5",
        NEWSLETTER_SENDING__CONCURRENCY="1",
        NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY=keys.public,
    )
    victim["process"] = send_process(newsroom, edition_id, **env)
    victim["process"].wait(timeout=60)
    assert victim["process"].returncode == -signal.SIGKILL
    mail_api.on_accepted = None
    assert statuses(newsroom, edition_id)["sending"] >= 5  # the request in flight, and any batch claimed

    for site in serve(newsroom, tmp_path, env={"NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": keys.public}):
        # The server checks the signature's time against its own clock: sign with it.
        body, headers = keys.sign(mail_api.events, site.clock())
        answer = site.post("/webhooks/sendgrid", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert _read(newsroom)  # stored, then read once answered
    with newsroom.factory() as session:
        told = session.scalars(select(Delivery).where(Delivery.provider_event.is_not(None))).all()
    assert {d.provider_event for d in told} == {"processed"} and len(told) == len(mail_api.events)

    # A tiny window: it has passed by the time the process starts.
    again = send_process(newsroom, edition_id, **env, NEWSLETTER_SENDING__UNCERTAIN_MINUTES="0.0001")
    _out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    mailed = mail_api.recipients()
    assert len(mailed) == len(set(mailed)), "somebody was mailed twice"
    assert sorted(mailed) == expected
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}
    listed = subprocess.run(
        [sys.executable, "-m", "newsletter", "deliveries", str(edition_id), "--json"],
        env=cli_env(newsroom, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    settled = [d for d in json.loads(listed.stdout)["deliveries"] if d["provider_event"]]
    assert len(settled) == len(told) and {d["detail"] for d in settled} <= {
        "settled by the provider's processed event",
        None,  # a delivery the sender recorded, then confirmed by its event
    }
    assert all(d["provider_event_at"] and d["message_id"] for d in settled)


def _read(runtime) -> bool:
    with runtime.factory() as session:
        batches = session.scalars(select(WebhookBatch.processed_at)).all()
    return bool(batches) and all(at is not None for at in batches)
