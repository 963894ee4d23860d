"""A counting SMTP sink on loopback (aiosmtpd), in its own process, for benchmarks.

`python -m tests.smtp_sink [--latency SECONDS]`: prints its port; on "count" from standard input
prints how many messages it took, from how many distinct recipients, and its CPU seconds. With a
latency it answers MAIL, RCPT and the end of DATA that much later, as a distant relay does.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import sys

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self, latency: float = 0.0) -> None:
        self.messages = 0
        self.recipients: set[str] = set()
        self.latency = latency
        self.busy = 0  # transactions between MAIL and the end of DATA, now
        self.most = 0  # and at most

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.busy += 1  # one event loop: no lock needed
        self.most = max(self.most, self.busy)
        if self.latency:
            await asyncio.sleep(self.latency)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.latency:
            await asyncio.sleep(self.latency)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.latency:
            await asyncio.sleep(self.latency)
        self.busy -= 1
        self.messages += 1
        self.recipients.update(envelope.rcpt_tos)
        return "250 OK"


def main() -> None:
    arguments = argparse.ArgumentParser(description="A counting SMTP sink on loopback.")
    arguments.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    given = arguments.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Counter(given.latency)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    print(port, flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "count":
                cpu = resource.getrusage(resource.RUSAGE_SELF)
                print(
                    handler.messages,
                    len(handler.recipients),
                    f"{cpu.ru_utime + cpu.ru_stime:.1f}",
                    flush=True,
                )
            elif line.strip() == "reset":
                handler.messages, handler.recipients = 0, set()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
