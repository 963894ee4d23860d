"""The store's tables, one typed SQLAlchemy model each; the same schema on SQLite and PostgreSQL.

Alembic migrations in `newsletter/store/migrations` create these; a test checks they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from newsletter.store.statuses import (
    BounceKind,
    DeliveryStatus,
    EditionStatus,
    FeedStatus,
    PickAction,
    StatusType,
    SubscriberStatus,
    SubscriptionStatus,
    SuppressionReason,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the database keeps (SQLite keeps naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


article_categories = Table(
    "article_categories",
    Base.metadata,
    Column("article_id", ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("category_id", ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True),
)

subscriber_categories = Table(
    "subscriber_categories",
    Base.metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("category_id", ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True),
)


class Feed(Base):
    """A configured feed and what its last fetch found; failures stay visible here."""

    __tablename__ = "feeds"
    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_http_status: Mapped[int | None] = mapped_column(Integer)
    last_status: Mapped[FeedStatus | None] = mapped_column(StatusType(FeedStatus))
    last_error: Mapped[str | None] = mapped_column(Text)
    entries_seen: Mapped[int] = mapped_column(Integer, default=0)
    # SHA-256 of the body last read in full: the same bytes again are neither parsed nor stored.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # How long the last fetch took, reading and storing included (the metrics show it).
    last_fetch_seconds: Mapped[float | None] = mapped_column(Float)


class Category(Base):
    """A site section (is_section) or a tag; WordPress mixes both in <category>."""

    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    is_section: Mapped[bool] = mapped_column(Boolean, default=False)


class Article(Base):
    """One article in one language, stored once whichever feeds list it.

    `key` is the feed's guid (else its link); a translation shares the original's key.
    """

    __tablename__ = "articles"
    __table_args__ = (UniqueConstraint("key", "language", name="uq_articles_key_language"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(1000))
    language: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2000), index=True)
    title: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(300))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary_html: Mapped[str] = mapped_column(Text, default="")
    content_html: Mapped[str] = mapped_column(Text, default="")
    image_url: Mapped[str | None] = mapped_column(String(2000))
    comment_count: Mapped[int | None] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Position in the site's Trending list as last fetched (1 = top); None when not listed.
    trending_rank: Mapped[int | None] = mapped_column(Integer)
    categories: Mapped[list[Category]] = relationship(
        secondary=article_categories, lazy="selectin", order_by=Category.slug
    )


class Subscriber(Base):
    """A reader; pending until the double opt-in, then active (see `SubscriberStatus`)."""

    __tablename__ = "subscribers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[SubscriberStatus] = mapped_column(
        StatusType(SubscriberStatus), default=SubscriberStatus.PENDING, index=True
    )
    language: Mapped[str] = mapped_column(String(16), default="en")
    # An IANA name (subscribers/zones.py); None: the site's zone, whatever it is at the time.
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the last confirmation link went out: asking again resends at most once an hour.
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    categories: Mapped[list[Category]] = relationship(
        secondary=subscriber_categories, lazy="selectin", order_by=Category.slug
    )
    newsletters: Mapped[list[SubscriberNewsletter]] = relationship(
        lazy="selectin", cascade="all, delete-orphan"
    )


class SubscriberNewsletter(Base):
    """One of a reader's newsletters (weekly, daily, ...), with its own standing: leaving one
    keeps the others, and a newsletter left stays left whatever a later import says."""

    __tablename__ = "subscriber_newsletters"
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    newsletter: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[SubscriptionStatus] = mapped_column(
        StatusType(SubscriptionStatus), default=SubscriptionStatus.ACTIVE, server_default="active"
    )
    subscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How it was last changed: signup, import, cli, one-click, page, preferences.
    source: Mapped[str | None] = mapped_column(String(40))
    # A pause: no edition of this newsletter before this time.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Consent(Base):
    """What a reader agreed to, when, and where: the record the law asks for."""

    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(20))  # subscribe, confirm, change, unsubscribe, resubscribe
    source: Mapped[str] = mapped_column(Text)  # the page, or import, cli, one-click
    wording: Mapped[str | None] = mapped_column(Text)  # the text the reader agreed to
    detail: Mapped[str | None] = mapped_column(Text)  # what changed (JSON)


class Suppression(Base):
    """An address never to be mailed again (bounce, complaint, unsubscribe, manual)."""

    __tablename__ = "suppressions"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(StatusType(SuppressionReason, 40))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Bounce(Base):
    """A bounce `newsletter bounces` matched to its delivery, once per message read (its hash):
    what soft bounces in a row are counted from, and what an operator can look back on."""

    __tablename__ = "bounces"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the bounce
    delivery_id: Mapped[int] = mapped_column(Integer, index=True)  # no key: rows outlive pruning
    subscriber_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[BounceKind] = mapped_column(StatusType(BounceKind, 10))
    status: Mapped[str | None] = mapped_column(String(20))  # RFC 3463 code, e.g. 5.1.1
    detail: Mapped[str | None] = mapped_column(Text)  # the DSN's words
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Edition(Base):
    """One newsletter for one period; (newsletter, slot) is unique so a slot is sent once."""

    __tablename__ = "editions"
    __table_args__ = (
        UniqueConstraint("newsletter", "slot", name="uq_editions_newsletter_slot"),
        # An article is alerted once per newsletter, whoever asks and however often (an index:
        # the migration adds it in place).
        Index("uq_editions_newsletter_article", "newsletter", "article_id", unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter: Mapped[str] = mapped_column(String(64))
    slot: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[EditionStatus] = mapped_column(StatusType(EditionStatus), default=EditionStatus.DRAFT)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Deliveries per status, kept as JSON when the delivery rows are pruned.
    tallies: Mapped[str | None] = mapped_column(Text)
    # An editor's hold: the edition does not go until released (or, past its newsletter's next
    # slot, it is skipped). With `approval = "required"` it goes only once approved.
    held_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    held_by: Mapped[str | None] = mapped_column(String(320))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # goes at once, grace or not
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(320))
    note: Mapped[str | None] = mapped_column(Text)  # why it was skipped, when it was
    # An editor's subject and preheader for this edition only, per language, as JSON:
    # {"en": {"subject": "...", "preheader": "..."}}; plain text, never a template.
    overrides: Mapped[str | None] = mapped_column(Text)
    # When the editors were mailed a link to review it (`review_minutes` before its slot).
    review_mailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last checks before it goes (links, images, size, spam score), as JSON, and when.
    checks: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An alert's article (an alert newsletter's edition): None for a digest. No key: the
    # migration adds it in place (see 0018); no article is ever deleted.
    article_id: Mapped[int | None] = mapped_column(Integer)
    # An alert opened in its newsletter's quiet hours waits until then (None: it goes at once).
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The alert's article's title, read with the edition (a key lookup; None for a digest): what
    # every list of editions shows of an alert.
    article_title: Mapped[str | None] = column_property(
        select(Article.title).where(Article.id == article_id).correlate_except(Article).scalar_subquery()
    )

    def waiting(self, approval: str) -> str | None:
        """Why the edition may not go now (held, or not approved), else None."""
        if self.held_at is not None and (self.released_at is None or self.released_at < self.held_at):
            return f"held by {self.held_by or 'an editor'}"
        if approval == "required" and self.approved_at is None:
            return "waiting for an editor's approval"
        return None


class EditionPick(Base):
    """An editor's pin or exclusion of an article for one edition."""

    __tablename__ = "edition_picks"
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    action: Mapped[PickAction] = mapped_column(StatusType(PickAction, 10))
    # Where a pinned article goes among the pins of its section (lowest first); None: by date.
    position: Mapped[int | None] = mapped_column(Integer)


class EditionNote(Base):
    """An editor's note for one edition and one language: the Markdown source, as checked by
    newsletter/notes.py (rendered when the edition's digests are composed)."""

    __tablename__ = "edition_notes"
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class Variant(Base):
    """One composed digest of an edition, shared by every subscriber with the same content."""

    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("edition_id", "key", name="uq_variants_edition_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16))
    categories: Mapped[str] = mapped_column(Text)  # comma-separated slugs
    subject: Mapped[str] = mapped_column(Text)
    preheader: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    # The secret part of this variant's personalization markers (see editions.compose.Markers);
    # None for variants composed before markers had one.
    marker: Mapped[str | None] = mapped_column(String(32))


class VariantArticle(Base):
    """What a variant carried: how 'never the same article twice' is checked."""

    __tablename__ = "variant_articles"
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"), primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)


class Delivery(Base):
    """The ledger: one row per (edition, subscriber); its status makes sending resumable."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id", name="uq_deliveries_edition_subscriber"),
        Index("ix_deliveries_claim", "edition_id", "status", "variant_id", "id"),
        # A fifth of each page free: a row's hand-over is written beside it (see migration 0016).
        {"postgresql_with": {"fillfactor": 80}},
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="SET NULL"))
    status: Mapped[DeliveryStatus] = mapped_column(StatusType(DeliveryStatus), default=DeliveryStatus.PENDING)
    detail: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A pending delivery deferred by the reader's mailbox (SMTP 45x) is not claimed before this.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A local-time edition's wave: not claimed before this, the reader's hour in their zone.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When its claim's request went to a provider whose answer may be lost (an API): a sender
    # that dies after this leaves the delivery uncertain, for the provider's events to settle.
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The provider's word on it (an Event Webhook event: processed, delivered, bounce, dropped, ...)
    # and when it was said: it took the message (a drop: it will not send it), whatever a sender
    # recorded or failed to record. The first word is kept; a drop of the same message replaces it.
    provider_event: Mapped[str | None] = mapped_column(String(40))
    provider_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


DELIVERIES = cast(Table, Delivery.__table__)  # the ledger's table, for set-based statements


class WebhookBatch(Base):
    """A provider's signed POST of events, stored as it came and answered at once; its events
    are read from it afterwards. The signature is unique: a replayed POST is refused."""

    __tablename__ = "webhook_batches"
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    signature: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the signature
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[str] = mapped_column(Text)  # emptied once read: it holds addresses
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    problem: Mapped[str | None] = mapped_column(Text)


class ProviderEvent(Base):
    """One event a provider told of a message (processed, delivered, bounce, ...), once each,
    and what it did to the ledger, the reader or the suppression list."""

    __tablename__ = "provider_events"
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_provider_events_event"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(40))
    delivery_id: Mapped[int | None] = mapped_column(Integer, index=True)  # no key: rows outlive pruning
    edition_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subscriber_id: Mapped[int | None] = mapped_column(Integer)
    happened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    outcome: Mapped[str] = mapped_column(String(40))  # what it did: confirmed, suppressed, recorded, ...
    detail: Mapped[str | None] = mapped_column(Text)  # the provider's words (reason, type)


class Click(Base):
    """A click on an article link in an edition; a trending signal."""

    __tablename__ = "clicks"
    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    edition_id: Mapped[int | None] = mapped_column(ForeignKey("editions.id", ondelete="SET NULL"))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="SET NULL"))
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # One per reader, edition and article, however many requests arrive at once; its index also
    # serves the clicks per article of an edition (the past editions' page). Rows whose reader or
    # edition is gone (NULL) are distinct, as SQL has it.
    __table_args__ = (
        UniqueConstraint(
            "edition_id", "article_id", "subscriber_id", name="uq_clicks_edition_article_reader"
        ),
    )


class Editor(Base):
    """A person who may sign in to the editors' pages; the password kept only as an Argon2 hash."""

    __tablename__ = "editors"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EditorSession(Base):
    """A signed-in browser: only the SHA-256 of its cookie's token is kept, so a copy of the store
    signs nobody in. Deleting the row (logout, idle time, a new password, the editor removed)
    ends it at once."""

    __tablename__ = "editor_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    client: Mapped[str | None] = mapped_column(String(100))


class AuditEntry(Base):
    """Who did what to which edition or account, and when: sign-ins (failed ones too), picks,
    holds, approvals, test sends. The editor is kept by address, so the log outlives the account."""

    __tablename__ = "audit_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    editor: Mapped[str | None] = mapped_column(String(320))  # None: the command line, or nobody known
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(Text)  # an edition, an article, an account
    detail: Mapped[str | None] = mapped_column(Text)  # JSON
    client: Mapped[str | None] = mapped_column(String(100))  # the client's address, or "command line"


class Publication(Base):
    """A sent edition as the public archive shows it: its generic digest per language (no
    reader's data at all), kept as JSON so pages and feeds render the same bytes every time."""

    __tablename__ = "publications"
    __table_args__ = (UniqueConstraint("newsletter", "slug", name="uq_publications_newsletter_slug"),)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True)
    newsletter: Mapped[str] = mapped_column(String(64))
    slug: Mapped[str] = mapped_column(String(64))  # the slot's date: /archive/NEWSLETTER/SLUG
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # {language: {"title", "subject", "summary", "label", "trending": [card], "sections": [...]}}
    content: Mapped[str] = mapped_column(Text)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Document(Base):
    """A rendered page, feed, sitemap or robots.txt, kept until its content changes: what the
    web app serves (with its ETag) and `archive export` writes. A withdrawn page stays as 410."""

    __tablename__ = "documents"
    path: Mapped[str] = mapped_column(String(300), primary_key=True)  # the URL path: /feeds/...
    media_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    gone: Mapped[bool] = mapped_column(default=False)  # withdrawn: answered 410, not exported


class HubPush(Base):
    """A WebSub hub to be told that a feed changed; retried with backoff until it answers 2xx."""

    __tablename__ = "hub_pushes"
    __table_args__ = (UniqueConstraint("hub", "topic", name="uq_hub_pushes_hub_topic"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    hub: Mapped[str] = mapped_column(String(500))
    topic: Mapped[str] = mapped_column(String(500))  # the feed's URL
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)


class LimitHit(Base):
    """One request a rate limit counted, kept until its window has passed: every worker process
    of the pages counts in the same place. The key is a digest of the limit and what it counts
    (a client, an address), so no address is kept here."""

    __tablename__ = "limit_hits"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    # The hits of one key still in their window (the count each request makes).
    __table_args__ = (Index("ix_limit_hits_key_expires_at", "key", "expires_at"),)
