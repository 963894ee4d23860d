"""SMTP: a small pool of persistent connections (plain, STARTTLS or SSL, with authentication).

Each connection runs in its own thread and reports every message the moment the server
answers for it. A dropped connection is reopened once and the message tried again; 4xx
answers are retried later, 5xx answers fail that one message with the server's words.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from newsletter.sending.providers import (
    Outcome,
    OutcomeStatus,
    Outgoing,
    ProviderBusy,
    ProviderRefused,
    Report,
)
from newsletter.settings import Settings

log = logging.getLogger("newsletter.send")


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"


class SMTPProvider:
    name = "smtp"

    def __init__(self, settings: Settings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.tls = settings.smtp_tls
        self.context = ssl.create_default_context()
        if settings.smtp_ca_file:
            self.context.load_verify_locations(cafile=str(settings.smtp_ca_file))
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.timeout = settings.sending.timeout_seconds
        self.sender = settings.site.from_address
        self.size = settings.sending.smtp_connections
        self.batch_size = 100 * self.size
        self.connections: list[smtplib.SMTP | None] = [None] * self.size
        self.pool = ThreadPoolExecutor(self.size, thread_name_prefix="smtp")

    def _connect(self) -> smtplib.SMTP:
        try:
            if self.tls == "ssl":
                connection: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self.context
                )
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.tls == "starttls":
                    connection.starttls(context=self.context)
            if self.username:
                password = self.password.get_secret_value() if self.password else ""
                connection.login(self.username, password)
        except smtplib.SMTPAuthenticationError as exc:
            raise ProviderRefused(f"authentication failed: {_reply(exc.smtp_code, exc.smtp_error)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ProviderRefused(f"{self.host}:{self.port}: {exc}") from None
        except ssl.SSLError as exc:  # an untrusted certificate will not fix itself
            raise ProviderRefused(f"TLS with {self.host}:{self.port} failed: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderBusy(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return connection

    def send(self, batch: Sequence[Outgoing], report: Report) -> None:
        """Split the batch over the connections; each reports as it goes."""
        chunks = [batch[i :: self.size] for i in range(self.size)]
        futures = [
            self.pool.submit(self._send_chunk, slot, chunk, report)
            for slot, chunk in enumerate(chunks)
            if chunk
        ]
        errors = [future.exception() for future in futures]
        refused = next((e for e in errors if isinstance(e, ProviderRefused)), None)
        if refused:
            raise refused
        busy = next((e for e in errors if isinstance(e, ProviderBusy)), None)
        if busy:
            raise busy
        for error in errors:
            if error is not None:
                raise error

    def _send_chunk(self, slot: int, chunk: Sequence[Outgoing], report: Report) -> None:
        for message in chunk:
            envelope = message.variant.template.render(
                message.email,
                message.name,
                message.reader,
                f"{message.edition_id}.{message.subscriber_id}",
            )
            for attempt in (1, 2):
                connection = self.connections[slot] or self._connect()
                self.connections[slot] = connection
                try:
                    connection.sendmail(self.sender, [message.email], envelope.data)
                except smtplib.SMTPServerDisconnected as exc:
                    self.connections[slot] = None
                    if attempt == 2:
                        raise ProviderBusy(f"connection dropped twice: {exc}") from None
                    log.info("SMTP connection dropped; reconnecting")
                    continue
                except smtplib.SMTPRecipientsRefused as exc:
                    code, text = exc.recipients[message.email]
                    status = OutcomeStatus.RETRY if 400 <= code < 500 else OutcomeStatus.FAILED
                    report([Outcome(message.delivery_id, status, None, _reply(code, text))])
                    self._reset(slot)
                except smtplib.SMTPSenderRefused as exc:
                    answer = _reply(exc.smtp_code, exc.smtp_error)
                    raise ProviderRefused(f"the server refuses the sender {self.sender}: {answer}") from None
                except smtplib.SMTPResponseException as exc:
                    status = OutcomeStatus.RETRY if 400 <= exc.smtp_code < 500 else OutcomeStatus.FAILED
                    report(
                        [Outcome(message.delivery_id, status, None, _reply(exc.smtp_code, exc.smtp_error))]
                    )
                    self._reset(slot)
                except OSError as exc:
                    self.connections[slot] = None
                    raise ProviderBusy(f"{self.host}:{self.port}: {exc}") from None
                else:
                    report([Outcome(message.delivery_id, OutcomeStatus.SENT, envelope.message_id)])
                break

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
