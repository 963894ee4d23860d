"""A counting SMTP sink on loopback (aiosmtpd), in its own process, for benchmarks.

`python -m tests.smtp_sink`: prints its port; on "count" from standard input prints how many
messages it took, from how many distinct recipients, and its CPU seconds.
"""

from __future__ import annotations

import resource
import socket
import sys

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.recipients: set[str] = set()

    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        self.recipients.update(envelope.rcpt_tos)
        return "250 OK"


def main() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Counter()
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
