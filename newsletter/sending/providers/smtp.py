"""SMTP: a pool of persistent connections (plain, STARTTLS or SSL, with authentication).

Each connection runs in its own thread, takes the batch's next message whenever it is free (a
slow answer on one connection holds up no other), and reports every message the moment the
server answers for it: one message in flight per connection, so `smtp_connections` is how many
the relay works on at once. A reader's own refusal is that message's outcome: 45x deferred (tried later in
the same send), 5xx failed, with the server's words. The server's trouble is the send's: a
connection that cannot be made stops it at once (nothing is lost), 421 or a connection dropped
twice makes it wait and try again. A non-ASCII mailbox goes with SMTPUTF8 where the server
offers it, and otherwise fails with that reason.

Each message passes the gate (`handing`) with all of it sent but the final dot, which is what
makes a server deliver it: the ledger notes it handed over, or says its reader left (then the
message is abandoned with its connection), and a message whose hand-over cannot be written is not
sent: that connection stops, and the others after their message in hand. A kill before the gate
leaves nothing delivered; after it, the message is uncertain until its answer is recorded.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from newsletter.sending.providers import (
    Handing,
    Outcome,
    OutcomeStatus,
    Outgoing,
    ProviderBusy,
    ProviderRefused,
    Report,
)
from newsletter.sending.verp import envelope_sender
from newsletter.settings import Settings
from newsletter.text import printable

log = logging.getLogger("newsletter.send")
NO_SMTPUTF8 = "the server does not offer SMTPUTF8, which this non-ASCII mailbox needs"
# A permanent refusal of the address itself: 5xx with an enhanced status 5.1.x (no such mailbox,
# no such domain, bad syntax); policy (5.7.x), full mailboxes (5.2.x) and the like are not.
_BAD_MAILBOX = re.compile(r"5\d\d 5\.1\.\d{1,3}\b")
# A line starting with a dot gets a second one, so the message cannot end early (RFC 5321 4.5.2).
_DOT = re.compile(rb"(?m)^\.")


class _Unanswered(Exception):
    """The whole message was sent but no answer came: it may have been delivered."""


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(printable(text).split())}"


def _refusal(code: int) -> OutcomeStatus:
    """A reader's refusal: 4xx for now, 5xx for good (421 is the server's, raised before this)."""
    return OutcomeStatus.DEFERRED if 400 <= code < 500 else OutcomeStatus.FAILED


class SMTPProvider:
    name = "smtp"

    def __init__(self, settings: Settings, stop: threading.Event | None = None) -> None:
        # Set (a scheduler shutting down): each connection finishes the message it is on and takes
        # no other; what none took gets no outcome, and the sender gives it back.
        self.stop = stop or threading.Event()
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.tls = settings.smtp_tls
        self.context = ssl.create_default_context()
        if settings.smtp_ca_file:
            self.context.load_verify_locations(cafile=str(settings.smtp_ca_file))
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.timeout = settings.sending.timeout_seconds
        self.sender = settings.sending.return_path or settings.site.from_address
        # With a return path, each delivery's MAIL FROM names it (VERP), signed: see sending/verp.py.
        self.verp_key = settings.signing_key() if settings.sending.return_path else None
        self.size = settings.sending.smtp_connections
        self.batch_size = 100 * self.size
        # Outcomes are known message by message: only the one on each connection is ever in
        # flight, and a connection's next hand-over writes its last outcome along.
        self.marks_in_flight = False
        self.connections: list[smtplib.SMTP | None] = [None] * self.size
        self.pool = ThreadPoolExecutor(self.size, thread_name_prefix="smtp")
        self.turn = threading.Lock()  # one batch at a time on the connections (each is one slot's)

    def _connect(self) -> smtplib.SMTP:
        where = f"{self.host}:{self.port}"
        try:
            if self.tls == "ssl":
                connection: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self.context
                )
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.tls == "starttls":
                    connection.ehlo_or_helo_if_needed()
                    if not connection.has_extn("starttls"):
                        connection.close()
                        raise ProviderRefused(
                            f'{where} does not offer STARTTLS: set smtp_tls = "ssl" for a server that '
                            'speaks TLS from the start (port 465), or "none" for a relay on this machine'
                        )
                    connection.starttls(context=self.context)
            if self.username:
                password = self.password.get_secret_value() if self.password else ""
                connection.login(self.username, password)
            connection.ehlo_or_helo_if_needed()
            # The final dot goes after the gate, alone: Nagle's algorithm would hold it until the
            # relay acknowledged the body, which a relay may delay by up to 40 ms: a message each time.
            if connection.sock is not None:
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except smtplib.SMTPAuthenticationError as exc:
            raise ProviderRefused(f"authentication failed: {_reply(exc.smtp_code, exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ProviderRefused(f"{where}: {exc}") from None
        except ssl.SSLError as exc:  # an untrusted certificate will not fix itself
            raise ProviderRefused(f"TLS with {where} failed: {exc}") from None
        except smtplib.SMTPConnectError as exc:
            if exc.smtp_code == 421:  # busy right now: try again later
                raise ProviderBusy(f"{where} busy: {_reply(exc.smtp_code, exc.smtp_error)}") from None
            raise ProviderRefused(f"{where} refused: {_reply(exc.smtp_code, exc.smtp_error)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderRefused(f"cannot connect to {where}: {exc}") from None
        return connection

    def send(self, batch: Sequence[Outgoing], report: Report, handing: Handing | None = None) -> None:
        """Keep every connection busy until the batch is done; the first trouble of one stops
        them all taking more (what none took is the sender's to retry or give back)."""
        waiting = deque(batch)  # popleft is atomic: each message goes to one connection
        trouble = threading.Event()
        with self.turn:
            futures = [
                self.pool.submit(self._send_from, slot, waiting, trouble, report, handing)
                for slot in range(min(self.size, len(batch)))
            ]
            errors = [future.exception() for future in futures]
        for kind in (ProviderRefused, ProviderBusy, BaseException):
            found = next((e for e in errors if isinstance(e, kind)), None)
            if found is not None:
                raise found

    def _send_from(
        self,
        slot: int,
        waiting: deque[Outgoing],
        trouble: threading.Event,
        report: Report,
        handing: Handing | None,
    ) -> None:
        """This connection's share: the next waiting message each time it is free."""
        while not trouble.is_set() and not self.stop.is_set():
            try:
                message = waiting.popleft()
            except IndexError:
                return
            try:
                self._send_one(slot, message, report, handing)
            except BaseException:
                trouble.set()
                raise

    def _send_one(self, slot: int, message: Outgoing, report: Report, handing: Handing | None) -> None:
        """One message over this slot's connection, made again once if it dropped before the
        message was taken; abandoned if the gate says its reader left."""
        try:
            envelope = message.variant.template.render(
                message.email,
                message.name,
                message.reader,
                f"{message.edition_id}.{message.subscriber_id}",
            )
        except Exception as exc:  # this reader's message alone cannot be built
            report([Outcome(message.delivery_id, OutcomeStatus.FAILED, None, f"cannot build: {exc!r}")])
            return
        for attempt in (1, 2):
            connection = self.connections[slot] or self._connect()
            self.connections[slot] = connection
            try:
                outcome = self._transfer(connection, message, envelope.data, envelope.message_id, handing)
            except _Unanswered as exc:  # the whole message went: it may have been delivered
                self.connections[slot] = None
                outcome = Outcome(message.delivery_id, OutcomeStatus.UNCERTAIN, None, str(exc))
            except (smtplib.SMTPServerDisconnected, OSError) as exc:  # before the end: not taken
                self.connections[slot] = None
                if attempt == 1:
                    log.info("SMTP connection dropped; reconnecting")
                    continue
                # Dropped again on this very message over a fresh connection: this reader's trouble.
                words = f"the connection dropped twice while sending to this reader: {printable(str(exc))}"
                outcome = Outcome(message.delivery_id, OutcomeStatus.DEFERRED, None, words)
            if outcome is None:  # the reader left: the ledger says so, the message was abandoned
                self.connections[slot] = None
                break
            report([outcome])
            if outcome.status != OutcomeStatus.SENT:
                self._reset(slot)
            break

    def _transfer(
        self,
        connection: smtplib.SMTP,
        message: Outgoing,
        data: bytes,
        message_id: str,
        handing: Handing | None,
    ) -> Outcome | None:
        """One message over one connection, command by command, so that a failure after the whole
        message was sent is told apart (`_Unanswered`) from one before it (nothing delivered).
        The gate comes last, with all but the final dot sent: only what it hands over can be
        delivered, and a kill before that dot leaves nothing delivered and nothing in doubt.
        None: the gate says the reader left (the message is abandoned with its connection)."""
        refused = partial(Outcome, message.delivery_id)
        options: list[str] = []
        if message.needs_smtputf8:
            if not connection.has_extn("smtputf8"):
                return refused(OutcomeStatus.FAILED, None, NO_SMTPUTF8)
            options.append("SMTPUTF8")
        if connection.has_extn("size"):
            options.append(f"SIZE={len(data)}")
        try:
            sender = envelope_sender(self.sender, self.verp_key, message.delivery_id)
            code, text = connection.mail(sender, options)
            if code != 250:
                return self._sender_refused(message, code, text)
            code, text = connection.rcpt(message.email)
            if code not in (250, 251):
                self._busy_if_closing(code, text)
                answer = _reply(code, text)
                return refused(
                    _refusal(code), None, answer, bad_address=_BAD_MAILBOX.match(answer) is not None
                )
            code, text = connection.docmd("DATA")
            if code != 354:
                self._busy_if_closing(code, text)
                return refused(_refusal(code), None, _reply(code, text))
        except UnicodeError as exc:  # a mailbox smtplib cannot put on the wire
            return refused(OutcomeStatus.FAILED, None, f"cannot send to this address: {exc}")
        connection.send(_DOT.sub(b"..", data))  # nothing is delivered before the final dot
        if handing is not None and not self._handed(connection, message, handing):
            return None
        try:
            connection.send(b".\r\n")
            code, text = connection.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Unanswered(
                f"uncertain: no answer after the message was sent ({exc}); may have been delivered"
            ) from None
        if code != 250:
            self._busy_if_closing(code, text)
            return refused(_refusal(code), None, _reply(code, text))
        return refused(OutcomeStatus.SENT, message_id)

    @staticmethod
    def _handed(connection: smtplib.SMTP, message: Outgoing, handing: Handing) -> bool:
        """The gate, mid-DATA: when it refuses, or cannot be written, the message is abandoned by
        closing its connection (a message without its final dot is never delivered)."""
        try:
            handed = message.delivery_id in handing([message])
        except BaseException:
            connection.close()
            raise
        if not handed:
            connection.close()
        return handed

    def _sender_refused(self, message: Outgoing, code: int, text: bytes) -> Outcome:
        """MAIL FROM refused: the message's own fault when about its size or its parameters,
        the server's otherwise (busy for now, or a sender it will not take)."""
        answer = _reply(code, text)
        if code in (552, 555):  # too big for this server, or a parameter it will not take
            return Outcome(message.delivery_id, OutcomeStatus.FAILED, None, answer)
        if 400 <= code < 500:
            raise ProviderBusy(f"the server defers the sender {self.sender}: {answer}")
        raise ProviderRefused(f"the server refuses the sender {self.sender}: {answer}")

    def _busy_if_closing(self, code: int, text: bytes) -> None:
        """421: the server is shutting the connection for everyone, not refusing this reader."""
        if code == 421:
            raise ProviderBusy(f"{self.host} is closing: {_reply(code, text)}")

    def _reset(self, slot: int) -> None:
        """After a refused message, make the connection clean for the next one."""
        connection = self.connections[slot]
        if connection is None:
            return
        try:
            connection.rset()
        except (OSError, smtplib.SMTPException):
            self.connections[slot] = None

    def close(self) -> None:
        for connection in self.connections:
            if connection is not None:
                try:
                    connection.quit()
                except (OSError, smtplib.SMTPException):
                    connection.close()
        self.connections = [None] * self.size
        self.pool.shutdown(wait=True)
