"""A reader's click on an article link (`/c/ARTICLE/READER`, when `[links] track_clicks` is on):
counted once per reader, edition and article for the trending ranking, then sent on to the
article. The link's article part is signed: it leads to that article and nowhere else."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite

from newsletter.editions.variants import tagged, utm
from newsletter.store.db import unit_of_work
from newsletter.store.models import Article, Click, Edition, Subscriber
from newsletter.store.runtime import Runtime
from newsletter.subscribers.tokens import TokenError, read


def follow(runtime: Runtime, article_token: str, reader_token: str, now: datetime) -> str:
    """Where the link leads (the article, tagged as the edition tags it); TokenError for a link
    we did not sign. A reader part that is not valid (a preview's, a test send's) counts nothing."""
    settings = runtime.settings
    key = settings.signing_key()
    signed = read(key, "article", article_token)
    edition_id = int(signed.scope) if signed.scope.isdigit() else None
    with unit_of_work(runtime.factory) as session:
        article = session.get(Article, signed.subscriber_id)
        edition = session.get(Edition, edition_id) if edition_id is not None else None
        if article is None or edition is None:
            raise TokenError("this link's article or edition is gone")
        target = tagged(article.url, utm(settings, edition.newsletter, edition.slot))
        if not settings.links.track_clicks:
            return target
        try:
            reader = read(key, "click", reader_token)
        except TokenError:
            return target
        if reader.scope != str(edition.id) or session.get(Subscriber, reader.subscriber_id) is None:
            return target
        # One row per reader, edition and article: a click that arrives with another (a double
        # click, a link scanner's burst) meets the constraint and is dropped, on either database.
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        session.execute(
            insert(Click)
            .values(
                article_id=article.id,
                edition_id=edition.id,
                subscriber_id=reader.subscriber_id,
                clicked_at=now,
            )
            .on_conflict_do_nothing(index_elements=["edition_id", "article_id", "subscriber_id"])
        )
        return target
