"""A store filled like the live site's, for the benchmarks and the fault-injection run: the
bundled sample's articles and thousands of readers over many variants, inserted in bulk."""

from __future__ import annotations

import itertools
from pathlib import Path

from pydantic import SecretStr

from newsletter.settings import Settings, load_settings
from newsletter.store.runtime import Runtime, open_runtime

ROOT = Path(__file__).resolve().parent.parent.parent
CATEGORIES = ["Politics", "Health", "Europe", "Business", "Technology", "Culture", "Human Rights"]


def store(workdir: Path, feeds: list[dict], database_url: str | None = None) -> Runtime:
    """A runtime on `database_url` (a SQLite file in `workdir` by default) reading `feeds`."""
    settings = Settings(
        database_url=database_url or f"sqlite:///{workdir / 'bench.db'}",
        feeds=feeds,
        fetch={"allow_private": True},  # the feed servers here are on loopback
        site={"categories": CATEGORIES},
    )
    return open_runtime(settings)


def sample_store(workdir: Path, database_url: str | None = None) -> Runtime:
    """`store` reading the bundled sample's feeds, in the sample's time zone, with a key."""
    sample = load_settings(ROOT / "config" / "demo.toml")
    runtime = store(workdir, [f.model_dump() for f in sample.feeds], database_url)
    runtime.settings.secret_key = sample.secret_key or SecretStr("benchmark-secret-key-0123")
    runtime.settings.timezone = "Europe/Brussels"
    return runtime


def populate(runtime: Runtime, subscribers: int, variants: int = 200) -> None:
    """The sample site's articles and `subscribers` readers (reader{i}@example.com, ids 1..n,
    all taking the weekly) over `variants` distinct (categories, language) choices."""
    from sqlalchemy import insert, select

    from newsletter.ingest.run import fetch_feeds
    from newsletter.store.models import Category, Subscriber, SubscriberNewsletter, subscriber_categories

    fetch_feeds(runtime.settings, runtime.factory)
    with runtime.factory() as session, session.begin():
        sections = [c.id for c in session.scalars(select(Category).where(Category.is_section))]
        choices = [
            (combo, language)
            for size in range(1, len(sections) + 1)
            for combo in itertools.combinations(sections, size)
            for language in ("en", "de")
        ][:variants]
        chunk = 50_000
        for first in range(1, subscribers + 1, chunk):
            ids = range(first, min(first + chunk, subscribers + 1))
            session.execute(
                insert(Subscriber),
                [
                    {
                        "id": i,
                        "email": f"reader{i}@example.com",
                        "name": f"Reader {i}",
                        "status": "active",
                        "language": choices[i % len(choices)][1],
                    }
                    for i in ids
                ],
            )
            session.execute(
                insert(SubscriberNewsletter), [{"subscriber_id": i, "newsletter": "weekly"} for i in ids]
            )
            session.execute(
                insert(subscriber_categories),
                [{"subscriber_id": i, "category_id": c} for i in ids for c in choices[i % len(choices)][0]],
            )
