"""SendGrid v3 mail send through the official client: one request per variant and up to 1,000
readers, each a personalization with its own substitutions and List-Unsubscribe header.

A 400 splits the request in halves until the bad address is alone (it fails, the rest go);
a 413 splits too; 429 and 5xx are busy (Retry-After / X-RateLimit-Reset honoured); 401/403
stop the send. A request that timed out after it was sent may have been accepted: those
messages fail as "uncertain" rather than being sent again blindly (there is no idempotency key).
"""

from __future__ import annotations

import html
import json
import time
import urllib.error
from collections.abc import Sequence
from typing import Any

from python_http_client import exceptions as http
from sendgrid import SendGridAPIClient

from newsletter.sending.messages import header_safe, list_id, list_unsubscribe
from newsletter.sending.providers import (
    Outcome,
    OutcomeStatus,
    Outgoing,
    ProviderBusy,
    ProviderRefused,
    Report,
    VariantContent,
)
from newsletter.settings import Settings


def _problem(error: http.HTTPError) -> str:
    body = error.body.decode("utf-8", "replace") if isinstance(error.body, bytes) else str(error.body)
    try:
        messages = [e.get("message", "") for e in json.loads(body).get("errors", [])]
        body = "; ".join(m for m in messages if m) or body
    except (ValueError, AttributeError):
        pass
    return f"HTTP {error.status_code}: {' '.join(body.split())[:500]}"


def _retry_after(error: http.HTTPError) -> float | None:
    headers = error.headers or {}
    if value := headers.get("Retry-After"):
        try:
            return float(value)
        except ValueError:
            return None
    if value := headers.get("X-RateLimit-Reset"):
        try:
            return max(float(value) - time.time(), 0.0)
        except ValueError:
            return None
    return None


def _text_greeting(variant: VariantContent) -> str:
    """Substitutions apply to both parts, but only the HTML part wants its values escaped: the
    text part's greeting gets a marker of its own."""
    return variant.markers.token("text_greeting")


class SendGridProvider:
    name = "sendgrid"

    def __init__(self, settings: Settings) -> None:
        if settings.sendgrid_api_key is None:
            raise ProviderRefused("NEWSLETTER_SENDGRID_API_KEY is not set")
        self.client = SendGridAPIClient(
            settings.sendgrid_api_key.get_secret_value(), host=str(settings.sendgrid_host).rstrip("/")
        )
        self.host = str(settings.sendgrid_host).rstrip("/")
        self.timeout = settings.sending.timeout_seconds
        self.batch_size = settings.sending.sendgrid_batch
        self.site = settings.site
        self.titles = {name: n.title for name, n in settings.newsletters.items()}
        self.mailto = settings.site.unsubscribe_mailto or settings.site.reply_to
        self._bases: dict[int, dict[str, Any]] = {}

    def _base(self, message: Outgoing) -> dict[str, Any]:
        """What every reader of a variant shares, built once per variant."""
        variant: VariantContent = message.variant
        if variant.id not in self._bases:
            site = self.site
            greeting = variant.markers.token("greeting")
            self._bases[variant.id] = {
                "from": {"email": site.from_address, "name": header_safe(site.from_name)},
                "reply_to": {"email": site.reply_to},
                "subject": header_safe(variant.subject),
                "content": [
                    {"type": "text/plain", "value": variant.text.replace(greeting, _text_greeting(variant))},
                    {"type": "text/html", "value": variant.html},
                ],
                "headers": {
                    "List-Id": f"{header_safe(site.name)} {self.titles.get(message.newsletter, '')} "
                    f"<{list_id(message.newsletter, str(site.url))}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
                "categories": [message.newsletter],
                "custom_args": {"newsletter": message.newsletter},
            }
        return self._bases[variant.id]

    def _personalization(self, message: Outgoing) -> dict[str, Any]:
        values = message.reader.values()
        to: dict[str, str] = {"email": message.email}
        if message.name:
            to["name"] = header_safe(message.name)
        greeting = values["greeting"]
        tokens = message.variant.markers.tokens()
        return {
            "to": [to],
            "substitutions": {
                tokens["unsubscribe_url"]: values["unsubscribe_url"],
                tokens["preferences_url"]: values["preferences_url"],
                tokens["greeting"]: html.escape(greeting),
                _text_greeting(message.variant): greeting,
            },
            "headers": {"List-Unsubscribe": list_unsubscribe(values["unsubscribe_url"], self.mailto)},
            "custom_args": {
                "edition_id": str(message.edition_id),
                "subscriber_id": str(message.subscriber_id),
                "delivery_id": str(message.delivery_id),
            },
        }

    def send(self, batch: Sequence[Outgoing], report: Report) -> None:
        groups: dict[int, list[Outgoing]] = {}
        for message in batch:
            groups.setdefault(message.variant.id, []).append(message)
        for group in groups.values():
            self._post(group, report)

    def _post(self, group: list[Outgoing], report: Report) -> None:
        personalizations = []
        for message in list(group):
            try:
                personalizations.append(self._personalization(message))
            except Exception as exc:  # this reader's part alone cannot be built
                report([Outcome(message.delivery_id, OutcomeStatus.FAILED, None, f"cannot build: {exc!r}")])
                group.remove(message)
        if not group:
            return
        payload = dict(self._base(group[0]))
        payload["personalizations"] = personalizations
        try:
            response = self.client.client.mail.send.post(request_body=payload, timeout=self.timeout)
        except (http.BadRequestsError, http.PayloadTooLargeError) as error:
            if len(group) == 1:
                report([Outcome(group[0].delivery_id, OutcomeStatus.FAILED, None, _problem(error))])
                return
            middle = len(group) // 2
            self._post(group[:middle], report)
            self._post(group[middle:], report)
            return
        except (http.UnauthorizedError, http.ForbiddenError) as error:
            raise ProviderRefused(_problem(error)) from None
        except http.TooManyRequestsError as error:
            raise ProviderBusy(_problem(error), _retry_after(error)) from None
        except http.HTTPError as error:
            if error.status_code >= 500:
                raise ProviderBusy(_problem(error), _retry_after(error)) from None
            report([Outcome(m.delivery_id, OutcomeStatus.FAILED, None, _problem(error)) for m in group])
            return
        except urllib.error.URLError as error:  # not connected: nothing was sent, and waiting won't help
            raise ProviderRefused(f"cannot reach the API at {self.host}: {error.reason}") from None
        except (TimeoutError, ConnectionError) as error:
            detail = f"uncertain: {type(error).__name__} after the request was sent; may have been delivered"
            report([Outcome(m.delivery_id, OutcomeStatus.UNCERTAIN, None, detail) for m in group])
            return
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        report([Outcome(m.delivery_id, OutcomeStatus.SENT, message_id) for m in group])

    def close(self) -> None:
        pass
