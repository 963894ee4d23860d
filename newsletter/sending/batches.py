"""Turning a claimed batch of deliveries into outgoing messages: each variant's message is built
once per sender, each reader's copy carries their own signed links, and readers who left since
the edition was prepared are dropped from the ledger rather than mailed."""

from __future__ import annotations

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
from newsletter.store.db import reading, unit_of_work
from newsletter.store.ledger import Mark
from newsletter.store.models import Delivery, Subscriber, Suppression, Variant
from newsletter.store.statuses import DeliveryStatus, SubscriberStatus
from newsletter.subscribers.addresses import InvalidAddress, envelope_address
from newsletter.subscribers.links import Links


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
        with reading(self.factory) as session:
            rows = session.execute(
                select(
                    Delivery.id,
                    Delivery.variant_id,
                    Delivery.attempts,
                    Subscriber.id,
                    Subscriber.email,
                    Subscriber.name,
                    Subscriber.status,
                    Suppression.id,
                )
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .outerjoin(Suppression, Suppression.email == Subscriber.email)
                .where(Delivery.id.in_(ids))
                .order_by(Delivery.id)
            ).all()
            for missing in {
                row.variant_id for row in rows if row.variant_id is not None
            } - self.variants.keys():
                self.variants[missing] = self._variant(session, missing)
        gone: list[int] = []
        unsendable: list[Mark] = []
        messages: list[Outgoing] = []
        for delivery_id, variant_id, attempts, subscriber_id, email, name, status, suppressed in rows:
            if status != SubscriberStatus.ACTIVE or suppressed is not None or variant_id is None:
                gone.append(delivery_id)
                continue
            try:
                address = envelope_address(email)
            except InvalidAddress as exc:
                unsendable.append(Mark(delivery_id, DeliveryStatus.FAILED, None, str(exc)))
                continue
            messages.append(
                Outgoing(
                    delivery_id=delivery_id,
                    subscriber_id=subscriber_id,
                    edition_id=self.edition_id,
                    newsletter=self.newsletter,
                    email=address.address,
                    name=name,
                    variant=self.variants[variant_id],
                    reader=self.reader(subscriber_id, name, self.variants[variant_id].language),
                    attempt=attempts,
                )
            )
        batch = Batch(messages, left=0, unsendable=len(unsendable))
        if gone or unsendable:
            with unit_of_work(self.factory) as session:
                batch.left = ledger.suppress_claimed(session, gone) if gone else 0
                ledger.record(session, unsendable)
        return batch

    def reader(self, subscriber_id: int, name: str | None, language: str) -> Reader:
        links = self.links
        return Reader(
            name,
            links.unsubscribe(subscriber_id, self.newsletter),
            links.preferences(subscriber_id),
            language,
            self.clicks.reader(subscriber_id, self.edition_id) if self.clicks else PREVIEW_CLICK,
        )

    def _variant(self, session: Session, variant_id: int) -> VariantContent:
        row = session.get(Variant, variant_id)
        if row is None:
            raise SendError(f"variant {variant_id} is missing from the store")
        template = variant_template(self.settings, self.newsletter, row)
        return VariantContent(
            row.id, row.subject, row.html, row.text, Markers(row.marker), template, row.language
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
