"""What the alert tests share: the sample newsroom with an alert newsletter, readers who opted in
to it, the article of ?p=1045 (stored in English and German), and what an alert sent."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlalchemy import select

from newsletter.store.db import unit_of_work
from newsletter.store.models import Article, Delivery, Subscriber, SubscriberNewsletter
from newsletter.store.runtime import Runtime
from tests.conftest import ROOT
from tests.support.sending import cli_env

# In the sample's English and German feeds: its alert has a German message.
TRANSLATED = "https://www.europeantimes.example/?p=1045"
OTHER = "https://www.europeantimes.example/?p=1044"


def newsletters(**breaking: object) -> dict[str, dict[str, object]]:
    """The weekly, and the alert newsletter `breaking` with these settings."""
    return {"weekly": {}, "breaking": {"kind": "alert", **breaking}}


def opt_in(runtime: Runtime, count: int, first: int = 0, language: str = "en") -> list[str]:
    """`count` active readers of the alerts only (alert000@example.com, ...); their addresses."""
    numbers = range(first, first + count)
    with unit_of_work(runtime.factory) as session:
        for i in numbers:
            subscriber = Subscriber(email=f"alert{i:03d}@example.com", status="active", language=language)
            subscriber.newsletters = [SubscriberNewsletter(newsletter="breaking")]
            session.add(subscriber)
    return [f"alert{i:03d}@example.com" for i in numbers]


def article_id(runtime: Runtime, key: str = TRANSLATED, language: str = "en") -> int:
    with runtime.factory() as session:
        return session.scalars(
            select(Article.id).where(Article.key == key, Article.language == language)
        ).one()


def ledger_of(runtime: Runtime, edition_id: int) -> dict[str, tuple[str, str | None]]:
    """Each reader's delivery of the edition, (status, detail) by address."""
    with runtime.factory() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.detail)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition_id)
        ).all()
    return {address: (status, detail) for address, status, detail in rows}


def alert_process(runtime: Runtime, reference: str, *options: str, **env: str) -> subprocess.Popen[str]:
    """`newsletter alert REFERENCE OPTIONS...` in a process of its own on the runtime's store, its
    alert newsletter as the runtime's, with `env` settings (`sendgrid_env`): for a kill -9."""
    alerts = {
        name: config.model_dump(exclude_defaults=True)
        for name, config in runtime.settings.newsletters.items()
    }
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "alert", reference, *options],
        env=cli_env(runtime, NEWSLETTER_NEWSLETTERS=json.dumps(alerts), **env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
