"""One message outside the ledger (a test send, an alert to the operators): built like an
edition's, sent through the configured provider to one address, counted nowhere."""

from __future__ import annotations

from newsletter.editions.compose import Markers
from newsletter.editions.personalize import Reader
from newsletter.sending.messages import Mailto, MessageTemplate, list_id
from newsletter.sending.providers import OUTSIDE_LEDGER, Outcome, Outgoing, VariantContent, make_provider
from newsletter.settings import Settings
from newsletter.subscribers.addresses import envelope_address, normalize_email
from newsletter.subscribers.links import Links


def send_one(
    settings: Settings,
    to: str,
    subject: str,
    html: str,
    text: str,
    markers: Markers,
    list_name: str,
    list_key: str,
    headers: dict[str, str],
    list_headers: bool = True,
) -> tuple[str, Outcome]:
    """The address it went to (normalized, IDN in ASCII) and the provider's outcome. The links
    are dummies: a click on this message's unsubscribe link unsubscribes nobody."""
    address = envelope_address(normalize_email(to))
    site = settings.site
    template = MessageTemplate(
        subject=subject,
        html=html,
        text=text,
        from_name=site.from_name,
        from_address=site.from_address,
        reply_to=site.reply_to,
        list_name=list_name,
        list_id=list_id(list_key, str(site.url)),
        unsubscribe_mailto=Mailto.from_settings(settings),
        markers=markers,
        extra_headers=headers,
        list_headers=list_headers,
    )
    links = Links(str(settings.public_url), None)
    message = Outgoing(
        delivery_id=OUTSIDE_LEDGER,
        subscriber_id=OUTSIDE_LEDGER,
        edition_id=OUTSIDE_LEDGER,
        newsletter=list_key,
        email=address.address,
        name=None,
        variant=VariantContent(
            OUTSIDE_LEDGER, subject, html, text, markers, lambda: template, list_headers=list_headers
        ),
        reader=Reader(None, links.unsubscribe(0, list_key), links.preferences(0)),
    )
    outcomes: list[Outcome] = []
    provider = make_provider(settings)
    try:
        provider.send([message], outcomes.extend)
    finally:
        provider.close()
    return address.address, outcomes[0]
