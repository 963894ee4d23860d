"""The SendGrid request body, written per reader without building a dict, is what `json.dumps`
made of the dict the provider built before: byte for byte, whatever the readers' names hold."""

from __future__ import annotations

import html
import json

from sqlalchemy import select

from newsletter.store.db import unit_of_work
from newsletter.store.models import Subscriber, SubscriberNewsletter
from newsletter.text import printable
from tests.support.editions import tracked
from tests.support.sending import prepared, send_with_sendgrid

ODD_NAME = 'Zoë "Z" <b>&amp;</b> \\ O\'Brien \u2028 終'


def test_each_request_body_is_what_json_dumps_writes_of_its_content(newsroom, mail_api) -> None:
    tracked(newsroom)
    with unit_of_work(newsroom.factory) as session:
        for email, name in (("odd@example.com", ODD_NAME), ("nameless@example.com", None)):
            subscriber = Subscriber(email=email, name=name, status="active", language="en")
            subscriber.newsletters = [SubscriberNewsletter(newsletter="weekly")]
            session.add(subscriber)
    edition_id = prepared(newsroom)
    report = send_with_sendgrid(newsroom, mail_api, edition_id)
    assert report.status == "complete" and mail_api.bodies
    for body in mail_api.bodies:
        assert body == json.dumps(json.loads(body)).encode()  # keys, order, spacing, escapes
    with newsroom.factory() as session:
        ids = {email: number for email, number in session.execute(select(Subscriber.email, Subscriber.id))}
    people = {item["to"][0]["email"]: item for item in mail_api.accepted}
    odd, nameless = people["odd@example.com"], people["nameless@example.com"]
    assert odd["to"] == [{"email": "odd@example.com", "name": printable(ODD_NAME)}]
    assert nameless["to"] == [{"email": "nameless@example.com"}]
    values = {key.rstrip("_").rsplit("_", 1)[0]: value for key, value in odd["substitutions"].items()}
    assert html.escape(f"Hello {ODD_NAME},") in odd["substitutions"].values()  # the HTML part's
    assert f"Hello {ODD_NAME}," in odd["substitutions"].values()  # the text part's, as it is
    assert values["__NL_UNSUBSCRIBE_URL"] in odd["headers"]["List-Unsubscribe"]
    assert values["__NL_CLICK"] and values["__NL_PREFERENCES_URL"].startswith("http")
    assert odd["custom_args"] == {
        "edition_id": str(edition_id),
        "subscriber_id": str(ids["odd@example.com"]),
        "delivery_id": odd["custom_args"]["delivery_id"],
    }
    assert list(odd) == ["to", "substitutions", "headers", "custom_args"]
    assert list(values) == [
        "__NL_UNSUBSCRIBE_URL",
        "__NL_PREFERENCES_URL",
        "__NL_GREETING",
        "__NL_TEXT_GREETING",
        "__NL_CLICK",
    ]
    shared = ["from", "reply_to", "subject", "content", "headers", "categories", "custom_args"]
    assert all(list(payload) == [*shared, "personalizations"] for payload in mail_api.payloads)
