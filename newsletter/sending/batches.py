"""Turning a claimed batch of deliveries into outgoing messages: each variant's message is built
once per sender, each reader's copy carries their own signed links, and readers who left since
the edition was prepared are dropped from the ledger rather than mailed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.editions.compose import Markers
from newsletter.editions.personalize import PREVIEW_CLICK, Reader
from newsletter.editions.variants import click_links
from newsletter.sending.messages import Mailto, MessageTemplate, list_id
from newsletter.sending.providers import Outgoing, VariantContent
from newsletter.sending.report import SendError
from newsletter.settings import Settings
from newsletter.store import ledger
from newsletter.store.db import among, reading, unit_of_work
from newsletter.store.ledger import Mark
from newsletter.store.models import DELIVERIES, Subscriber, Suppression, Variant
from newsletter.store.statuses import DeliveryStatus, SubscriberStatus
from newsletter.subscribers.addresses import InvalidAddress, envelope_address
from newsletter.subscribers.links import Links

SUBSCRIBERS = Subscriber.__table__
SUPPRESSIONS = Suppression.__table__


@dataclass
class Batch:
    messages: list[Outgoing]
    left: int  # readers who left since the edition was prepared: suppressed, not mailed
    unsendable: int  # addresses that cannot be sent to: failed with the reason


class BatchBuilder:
    """One sender's view of one edition: the variants it has built, the links it signs."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        links: Links,
        edition_id: int,
        newsletter: str,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.links = links
        self.edition_id = edition_id
        self.newsletter = newsletter
        self.variants: dict[int, VariantContent] = {}
        self.clicks = click_links(settings)

    def build(self, ids: list[int]) -> Batch:
        """The messages for these claimed deliveries; readers who left are suppressed, and an
        address that cannot be sent to fails at once with the reason."""
        subscribers, suppressions = SUBSCRIBERS.c, SUPPRESSIONS.c
        with reading(self.factory) as session:
            rows = session.execute(
                select(
                    DELIVERIES.c.id,
                    DELIVERIES.c.variant_id,
                    DELIVERIES.c.attempts,
                    subscribers.id,
                    subscribers.email,
                    subscribers.name,
                    # Still a reader to mail: active, not suppressed, with a variant.
                    (subscribers.status == SubscriberStatus.ACTIVE)
                    & suppressions.id.is_(None)
                    & DELIVERIES.c.variant_id.is_not(None),
                )
                .join(SUBSCRIBERS, subscribers.id == DELIVERIES.c.subscriber_id)
                .outerjoin(SUPPRESSIONS, suppressions.email == subscribers.email)
                .where(among(DELIVERIES.c.id, session.get_bind().dialect.name == "postgresql", ids))
                .order_by(DELIVERIES.c.id)
            ).all()
            needed = {row[1] for row in rows if row[1] is not None}
            # Only this batch's digests are kept (its messages hold theirs while in flight): a
            # sender claims digest by digest, so one passed is seldom needed again, and is read
            # again then; keeping all 200 of a million readers' held ~20 MB to the end.
            self.variants = {i: v for i, v in self.variants.items() if i in needed}
            for missing in needed - self.variants.keys():
                self.variants[missing] = self._variant(session, missing)
        gone: list[int] = []
        unsendable: list[Mark] = []
        messages: list[Outgoing] = []
        variants, edition_id, newsletter = self.variants, self.edition_id, self.newsletter
        reader = self.readers()
        for delivery_id, variant_id, attempts, subscriber_id, email, name, staying in rows:
            if not staying:
                gone.append(delivery_id)
                continue
            try:
                address = envelope_address(email)
            except InvalidAddress as exc:
                unsendable.append(Mark(delivery_id, DeliveryStatus.FAILED, None, str(exc)))
                continue
            variant = variants[variant_id]
            messages.append(
                Outgoing(
                    delivery_id,
                    subscriber_id,
                    edition_id,
                    newsletter,
                    address.address,
                    name,
                    variant,
                    reader(subscriber_id, name, variant.language),
                    attempts,
                )
            )
        batch = Batch(messages, left=0, unsendable=len(unsendable))
        if gone or unsendable:
            with unit_of_work(self.factory) as session:
                batch.left = ledger.suppress_claimed(session, gone) if gone else 0
                ledger.record(session, unsendable)
        return batch

    def readers(self) -> Callable[[int, str | None, str], Reader]:
        """What a reader's copy needs, made per reader with today's signers, set up once per batch."""
        unsubscribe = self.links.urls("unsubscribe", self.newsletter)
        preferences = self.links.urls("preferences")
        click = self.clicks.readers(self.edition_id) if self.clicks else None

        def reader(subscriber_id: int, name: str | None, language: str) -> Reader:
            return Reader(
                name,
                unsubscribe(subscriber_id),
                preferences(subscriber_id),
                language,
                click(subscriber_id) if click else PREVIEW_CLICK,
            )

        return reader

    def _variant(self, session: Session, variant_id: int) -> VariantContent:
        row = session.get(Variant, variant_id)
        if row is None:
            raise SendError(f"variant {variant_id} is missing from the store")
        settings, newsletter = self.settings, self.newsletter
        return VariantContent(
            row.id,
            row.subject,
            row.html,
            row.text,
            Markers(row.marker),
            lambda: variant_template(settings, newsletter, row),  # SMTP's and the outbox's
            row.language,
        )


def variant_template(settings: Settings, newsletter: str, row: Variant) -> MessageTemplate:
    """A stored variant's message as it goes out: what the sender copies for each reader, and
    what the checks before it goes look at."""
    site = settings.site
    return MessageTemplate(
        subject=row.subject,
        html=row.html,
        text=row.text,
        from_name=site.from_name,
        from_address=site.from_address,
        reply_to=site.reply_to,
        list_name=f"{site.name} {settings.newsletter(newsletter).title}",
        list_id=list_id(newsletter, str(site.url)),
        unsubscribe_mailto=Mailto.from_settings(settings),
        markers=Markers(row.marker),
    )
