"""SendGrid v3 mail send: one request per variant and up to 1,000 readers, each a
personalization with its own substitutions and List-Unsubscribe header.

Posted with the standard library's HTTP client, a fresh connection per request as the official
client (sendgrid-python over python_http_client and urllib) made it, with the same JSON body:
that client formatted every request's whole body for a debug line, even with debugging off
(about 1.3 ms a 1,000-reader request), and built a urllib opener per request.

A batch holds up to `concurrency` requests' worth of readers, posted from a thread pool of that
size which all of a sender's batches share (a real API takes a few hundred milliseconds to
answer; one request at a time would cap a sender at 1,000 readers per round trip). Each request
reports its outcomes as its answer comes; each request passes the gate (`handing`: noted in the
ledger as handed over, readers who left since taken out) just before it is posted, so a crash
leaves uncertain only the readers of requests that went, and a request whose hand-over cannot
be written is not posted.
The first request of a send, and the first after trouble, goes alone: a refusal meant for
everyone (a wrong key, content the API will not take) then costs one request, not a volley.
When one request is refused or told to wait, those not yet posted are not posted (the sender
gets them back); those already posted are waited for and recorded.

A 400 splits the request in halves until the bad address is alone (it fails, the rest go);
a 413 splits too; 429 and 5xx are busy (Retry-After / X-RateLimit-Reset honoured); 401/403
stop the send. A request that timed out after it was sent may have been accepted: those
messages fail as "uncertain" rather than being sent again blindly (there is no idempotency key).
"""

from __future__ import annotations

import base64
import html
import http.client
import json
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from email.message import Message
from json.encoder import encode_basestring_ascii as quoted  # json.dumps's own, in C
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies, proxy_bypass

from newsletter.editions.personalize import PREVIEW_CLICK
from newsletter.sending.messages import Mailto, list_id, list_unsubscribe
from newsletter.sending.providers import (
    Handing,
    Outcome,
    OutcomeStatus,
    Outgoing,
    ProviderBusy,
    ProviderRefused,
    Report,
    VariantContent,
)
from newsletter.settings import Settings
from newsletter.text import printable


class HTTPError(Exception):
    """The API answered something else than 2xx: its status, body and headers."""

    def __init__(self, status_code: int, body: bytes, headers: Message) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.body = body
        self.headers = headers


class Unreachable(Exception):
    """The request could not be sent (no connection, or it broke while the request went): the API
    never had all of it."""


# The longest wait an API's answer may ask of a send; asked again after it, within max_retries.
MAX_TOLD = 3600.0


class MailSend:
    """POST /v3/mail/send as the official client posted it (its Authorization, Accept and
    Content-Type headers), on a connection of its own per request, through the proxy that
    HTTPS_PROXY / HTTP_PROXY name unless NO_PROXY spares the host (as urllib, which it used,
    did)."""

    def __init__(self, host: str, api_key: str, timeout: float) -> None:
        parts = urlsplit(host)
        secure = parts.scheme == "https"
        self.connection = http.client.HTTPSConnection if secure else http.client.HTTPConnection
        self.address = parts.netloc
        self.path = f"{parts.path.rstrip('/')}/v3/mail/send"
        self.timeout = timeout
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": "newsletter (sendgrid v3 mail send)",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.proxy: tuple[str, dict[str, str]] | None = None  # the proxy's address, its headers
        proxy = getproxies().get(parts.scheme)
        if proxy and not proxy_bypass(parts.hostname or ""):
            where = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            told = {}
            if where.username is not None:
                login = f"{unquote(where.username)}:{unquote(where.password or '')}"
                told["Proxy-Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
            self.proxy = (f"{where.hostname}:{where.port or 80}", told)
            if not secure:  # a plain request goes to the proxy, naming the whole URL
                self.path = f"http://{self.address}{self.path}"
                self.headers.update(told)

    def _connect(self) -> http.client.HTTPConnection:
        if self.proxy is None:
            return self.connection(self.address, timeout=self.timeout)
        address, told = self.proxy
        if self.connection is http.client.HTTPConnection:
            return http.client.HTTPConnection(address, timeout=self.timeout)
        tunnelled = http.client.HTTPSConnection(address, timeout=self.timeout)
        tunnelled.set_tunnel(self.address, headers=told)  # CONNECT, then TLS with the API
        return tunnelled

    def post(self, body: bytes) -> http.client.HTTPResponse:
        """The API's 2xx answer; `HTTPError` for any other, `Unreachable` when the request could
        not be sent whole; anything else (a timeout, a cut answer) after it was sent."""
        connection = self._connect()
        try:
            try:
                connection.request("POST", self.path, body, self.headers)
            except OSError as error:
                raise Unreachable(str(error)) from None
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise HTTPError(response.status, data, response.headers)
        return response


def _errors(error: HTTPError) -> list[dict[str, Any]]:
    """The API's error objects ({"message", "field"}), or none when the body is not that."""
    body = error.body.decode("utf-8", "replace") if isinstance(error.body, bytes) else str(error.body)
    try:
        found = json.loads(body).get("errors", [])
    except (ValueError, AttributeError):
        return []
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def _problem(error: HTTPError, errors: list[dict[str, Any]] | None = None) -> str:
    body = error.body.decode("utf-8", "replace") if isinstance(error.body, bytes) else str(error.body)
    messages = [str(e.get("message") or "") for e in (errors if errors is not None else _errors(error))]
    body = "; ".join(m for m in messages if m) or body
    return f"HTTP {error.status_code}: {' '.join(printable(body).split())[:500]}"


def _refused_personalizations(errors: list[dict[str, Any]]) -> dict[int, tuple[str, bool]]:
    """The personalizations a 400 names (`personalizations.N...`): the API's words for each, and
    whether it refuses the address itself (`personalizations.N.to...`)."""
    found: dict[int, tuple[str, bool]] = {}
    for item in errors:
        parts = str(item.get("field") or "").split(".")
        if len(parts) > 1 and parts[0] == "personalizations" and parts[1].isdigit():
            bad_address = len(parts) > 2 and parts[2] == "to"
            found.setdefault(int(parts[1]), (str(item.get("message") or "refused"), bad_address))
    return found


def _retry_after(error: HTTPError) -> float | None:
    """The wait the API asked for, in seconds: at most MAX_TOLD (a year's or an infinite one
    asked would stall the send, or overflow the sleep); None when it asked nothing usable."""
    headers = error.headers
    try:
        if value := headers.get("Retry-After"):
            told = float(value)
        elif value := headers.get("X-RateLimit-Reset"):
            told = float(value) - time.time()
        else:
            return None
    except ValueError:
        return None
    return min(max(told, 0.0), MAX_TOLD) if math.isfinite(told) else None


def _text_greeting(variant: VariantContent) -> str:
    """Substitutions apply to both parts, but only the HTML part wants its values escaped: the
    text part's greeting gets a marker of its own."""
    return variant.markers.token("text_greeting")


class SendGridProvider:
    name = "sendgrid"

    def __init__(self, settings: Settings, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        if settings.sendgrid_api_key is None:
            raise ProviderRefused("NEWSLETTER_SENDGRID_API_KEY is not set")
        self.host = str(settings.sendgrid_host).rstrip("/")
        self.timeout = settings.sending.timeout_seconds
        self.api = MailSend(self.host, settings.sendgrid_api_key.get_secret_value(), self.timeout)
        self.request_size = settings.sending.sendgrid_batch
        self.concurrency = settings.sending.concurrency
        self.batch_size = self.request_size * self.concurrency
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="sendgrid")
        self.proven = False  # a request of this send was answered without trouble
        self.marks_in_flight = True  # a request's answer can be lost after the API took it
        self.site = settings.site
        self.titles = {name: n.title for name, n in settings.newsletters.items()}
        self.mailto = Mailto.from_settings(settings)
        self._keys: dict[int, dict[str, str]] = {}

    def _head(self, message: Outgoing) -> str:
        """The request body up to its personalizations (what every reader of a variant shares),
        as `json.dumps` writes it: made per request (a fraction of a millisecond), not kept for
        each of hundreds of variants (the content twice over, in memory)."""
        variant: VariantContent = message.variant
        site = self.site
        greeting = variant.markers.token("greeting")
        shared = {
            "from": {"email": site.from_address, "name": printable(site.from_name)},
            "reply_to": {"email": site.reply_to},
            "subject": printable(variant.subject),
            "content": [
                {"type": "text/plain", "value": variant.text.replace(greeting, _text_greeting(variant))},
                {"type": "text/html", "value": variant.html},
            ],
            "headers": {
                "List-Id": f"{printable(site.name)} {self.titles.get(message.newsletter, '')} "
                f"<{list_id(message.newsletter, str(site.url))}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
            if variant.list_headers
            else {},
            "categories": [message.newsletter],
            "custom_args": {"newsletter": message.newsletter},
            "personalizations": [],
        }
        return json.dumps(shared).removesuffix("]}")

    def _personalization(self, message: Outgoing) -> str:
        """This reader's personalization (address, substitutions, List-Unsubscribe, custom_args)
        written as `json.dumps` writes it, without building the dict first: the body is the
        same, byte for byte, at a fraction of the cost per reader."""
        reader = message.reader
        keys = self._markers(message.variant)
        to = f'{{"email": {quoted(message.email)}'
        if message.name:
            to += f', "name": {quoted(printable(message.name))}'
        greeting = reader.greeting
        substitutions = (
            f"{keys['unsubscribe_url']}{quoted(reader.unsubscribe_url)}, "
            f"{keys['preferences_url']}{quoted(reader.preferences_url)}, "
            f"{keys['greeting']}{quoted(html.escape(greeting))}, "
            f"{keys['text_greeting']}{quoted(greeting)}"
        )
        if reader.click != PREVIEW_CLICK:  # tracked links: the reader's part of each
            substitutions += f", {keys['click']}{quoted(reader.click)}"
        headers = (
            f'{{"List-Unsubscribe": {quoted(list_unsubscribe(reader.unsubscribe_url, self.mailto))}}}'
            if message.variant.list_headers
            else "{}"
        )
        return (
            f'{{"to": [{to}}}], "substitutions": {{{substitutions}}}, "headers": {headers}, '
            f'"custom_args": {{"edition_id": "{message.edition_id:d}", '
            f'"subscriber_id": "{message.subscriber_id:d}", "delivery_id": "{message.delivery_id:d}"}}}}'
        )

    def _markers(self, variant: VariantContent) -> dict[str, str]:
        """The variant's marker tokens as JSON keys (`"TOKEN": `), made once per variant rather
        than once per reader."""
        if variant.id not in self._keys:
            tokens = {**variant.markers.tokens(), "text_greeting": _text_greeting(variant)}
            self._keys[variant.id] = {name: f"{quoted(token)}: " for name, token in tokens.items()}
        return self._keys[variant.id]

    def requests(self, batch: Sequence[Outgoing]) -> list[list[Outgoing]]:
        """The batch as requests: one content (variant) each, at most `request_size` readers."""
        groups: dict[int, list[Outgoing]] = {}
        for message in batch:
            groups.setdefault(message.variant.id, []).append(message)
        size = self.request_size
        return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]

    def send(self, batch: Sequence[Outgoing], report: Report, handing: Handing | None = None) -> None:
        """Post the batch's requests from the pool, which all of a sender's batches share: at
        most `concurrency` requests are in flight, whatever the number of batches. Each request
        is handed over (`handing`) when it is about to be posted."""
        requests = self.requests(batch)
        try:
            if requests and not self.proven:
                self._gather([self.pool.submit(self._post, requests.pop(0), report, handing)])  # alone
                self.proven = True
            if requests:
                self._gather([self.pool.submit(self._post, group, report, handing) for group in requests])
        except Exception:
            self.proven = False
            raise

    @staticmethod
    def _gather(futures: list[Future[None]]) -> None:
        """Wait for every request posted; on the first trouble, post no more (cancel those not
        started). Raise the gravest trouble: a refusal stops the send, a fault of our own too;
        busy only asks to wait (the longest Retry-After told)."""
        errors: list[BaseException] = []
        for future in as_completed(futures):
            error = None if future.cancelled() else future.exception()
            if error is not None:
                errors.append(error)
                for other in futures:
                    other.cancel()
        if not errors:
            return
        busy = [e for e in errors if isinstance(e, ProviderBusy)]
        worse = [e for e in errors if not isinstance(e, ProviderBusy)]
        refused = [e for e in worse if isinstance(e, ProviderRefused)]
        if refused or worse:
            raise (refused or worse)[0]
        raise max(busy, key=lambda e: e.retry_after or 0.0)

    def _post(self, group: list[Outgoing], report: Report, handing: Handing | None = None) -> None:
        """One request for the group; a 400 naming some readers fails them and the rest are
        posted again (a loop, not a recursion: a thousand bad addresses in one request)."""
        while group:
            group = self._post_once(group, report, handing)

    def _post_once(self, group: list[Outgoing], report: Report, handing: Handing | None) -> list[Outgoing]:
        """Post the group; what is left to post again (after a 400 that named some readers)."""
        personalizations, sendable = [], []
        for message in group:
            try:
                personalizations.append(self._personalization(message))
                sendable.append(message)
            except Exception as exc:  # this reader's part alone cannot be built
                report([Outcome(message.delivery_id, OutcomeStatus.FAILED, None, f"cannot build: {exc!r}")])
        if self.stop.is_set():  # stopping: a request not yet handed over is given back
            return []
        if sendable and handing is not None:  # the gate: readers who left are taken out
            handed = handing(sendable)
            going = [m.delivery_id in handed for m in sendable]
            personalizations = [p for p, go in zip(personalizations, going, strict=True) if go]
            sendable = [m for m, go in zip(sendable, going, strict=True) if go]
        if not sendable:
            return []
        body = f"{self._head(sendable[0])}{', '.join(personalizations)}]}}".encode()
        # Only the bytes wait for the answer: the parts and the text held 2 MB more per request
        # in flight (16 requests at a slow API's pace: over 30 MB of a sender's peak).
        personalizations.clear()
        try:
            response = self.api.post(body)
        except HTTPError as error:
            if error.status_code == 400:
                return self._refused(sendable, error, report)
            if error.status_code == 413:
                if len(sendable) == 1:
                    report([Outcome(sendable[0].delivery_id, OutcomeStatus.FAILED, None, _problem(error))])
                    return []
                middle = len(sendable) // 2
                self._post(sendable[:middle], report, handing)
                return sendable[middle:]
            if error.status_code in (401, 403):
                raise ProviderRefused(_problem(error)) from None
            if error.status_code == 429 or error.status_code >= 500:
                raise ProviderBusy(_problem(error), _retry_after(error)) from None
            report([Outcome(m.delivery_id, OutcomeStatus.FAILED, None, _problem(error)) for m in sendable])
            return []
        except Unreachable as error:  # not connected: nothing was sent, and waiting won't help
            raise ProviderRefused(f"cannot reach the API at {self.host}: {error}") from None
        except Exception as error:  # a timeout, a cut answer, TLS trouble: it may have gone
            detail = f"uncertain: {type(error).__name__} after the request was sent; may have been delivered"
            report([Outcome(m.delivery_id, OutcomeStatus.UNCERTAIN, None, detail) for m in sendable])
            return []
        message_id = response.headers.get("X-Message-Id")
        report([Outcome(m.delivery_id, OutcomeStatus.SENT, message_id) for m in sendable])
        return []

    def _refused(self, group: list[Outgoing], error: HTTPError, report: Report) -> list[Outgoing]:
        """A 400 that names personalizations fails those readers, the rest to be posted again;
        one that names none is about the request itself (sender, content): the same for everyone."""
        errors = _errors(error)
        named = {i: words for i, words in _refused_personalizations(errors).items() if i < len(group)}
        if not named:
            raise ProviderRefused(f"the API refused the request: {_problem(error, errors)}")
        report(
            [
                Outcome(
                    group[i].delivery_id,
                    OutcomeStatus.FAILED,
                    None,
                    f"HTTP 400: {printable(words)}",
                    bad_address=bad,
                )
                for i, (words, bad) in named.items()
            ]
        )
        return [m for i, m in enumerate(group) if i not in named]

    def close(self) -> None:
        self.pool.shutdown(wait=True)
