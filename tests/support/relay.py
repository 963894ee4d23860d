"""A distant SMTP relay on loopback (aiosmtpd, in a thread of this process) that remembers when
each recipient's message came, and can act at the n-th message: kill the sender as its DATA
arrives (the answer lost), stop the store, start a burst of unsubscribes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from aiosmtpd.controller import Controller

from tests.conftest import free_port

# When, in a message's exchange, an action runs: as MAIL comes, as RCPT comes, or once its
# DATA is in and recorded, before the answer goes.
STAGES = ("mail", "rcpt", "data")


class Relay:
    """Answers MAIL, RCPT and the end of DATA `latency` seconds after each came."""

    def __init__(self, latency: float = 0.02) -> None:
        self.latency = latency
        self.received: dict[str, list[float]] = defaultdict(list)  # recipient: wall times
        self.messages = 0
        self.lock = threading.Lock()
        self._actions: list[tuple[str, int, Callable[[], None]]] = []
        self._mails = 0

    def at(self, stage: str, message: int, action: Callable[[], None]) -> None:
        """Run `action` once, at `stage` of the `message`-th message (1, 2, ...)."""
        assert stage in STAGES
        self._actions.append((stage, message, action))

    def clear(self) -> None:
        self._actions.clear()

    def _fire(self, stage: str, number: int) -> None:
        for entry in list(self._actions):
            if entry[0] == stage and number >= entry[1]:
                self._actions.remove(entry)
                entry[2]()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self._mails += 1
        session.number = self._mails
        self._fire("mail", session.number)
        await asyncio.sleep(self.latency)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self._fire("rcpt", getattr(session, "number", 0))
        await asyncio.sleep(self.latency)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        with self.lock:
            self.messages += 1
            number = self.messages
            for recipient in envelope.rcpt_tos:
                self.received[recipient.lower()].append(now)
        self._fire("data", number)
        await asyncio.sleep(self.latency)
        return "250 OK"

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {address: len(times) for address, times in self.received.items()}


def start_relay(latency: float = 0.02) -> tuple[Relay, Controller, int]:
    relay = Relay(latency)
    port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    return relay, controller, port
