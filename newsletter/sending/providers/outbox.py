"""The default provider: one complete .eml file per message, in a folder per edition.

A file is written under a temporary name and renamed into place, so it is either whole or
absent; a delivery whose file exists was sent, which makes resuming after a crash exact.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from newsletter.sending.providers import (
    OUTSIDE_LEDGER,
    Handing,
    Outcome,
    OutcomeStatus,
    Outgoing,
    ProviderRefused,
    Report,
)

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")


class OutboxProvider:
    name = "outbox"
    batch_size = 500
    marks_in_flight = False  # a written file is a sent message: nothing is ever in flight

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, message: Outgoing) -> Path:
        address = _UNSAFE.sub("_", message.email)[:80]
        if message.delivery_id == OUTSIDE_LEDGER:  # a test send, an alert: each its own file
            return self.folder / "outside-ledger" / f"{time.time_ns()}-{address}.eml"
        return self.folder / f"edition-{message.edition_id}" / f"{message.delivery_id:09d}-{address}.eml"

    def send(self, batch: Sequence[Outgoing], report: Report, handing: Handing | None = None) -> None:
        for message in batch:
            path = self.path(message)
            if path.exists():  # written before a crash: sent already
                report([Outcome(message.delivery_id, OutcomeStatus.SENT, path.name, "already in the outbox")])
                continue
            try:
                envelope = message.variant.template.render(
                    message.email,
                    message.name,
                    message.reader,
                    f"{message.edition_id}.{message.subscriber_id}",
                )
            except Exception as exc:  # this reader's message alone cannot be built
                report([Outcome(message.delivery_id, OutcomeStatus.FAILED, None, f"cannot build: {exc!r}")])
                continue
            partial = path.with_suffix(".part")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(partial, "wb") as handle:
                    handle.write(envelope.data)
                os.replace(partial, path)
            except OSError as exc:  # a full disk or a missing permission stops everyone
                raise ProviderRefused(f"cannot write to the outbox {self.folder}: {exc}") from None
            report([Outcome(message.delivery_id, OutcomeStatus.SENT, envelope.message_id)])

    def close(self) -> None:
        pass
