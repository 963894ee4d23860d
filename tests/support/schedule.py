"""The scheduled job as a test drives it: its runner on a clock the test holds, and the mail it
sends outside the ledger (alerts, the editors' review, the readers' notices)."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime

from newsletter.scheduler.runner import Runner
from newsletter.store.runtime import Runtime
from tests.support.clock import FixedClock


def runner(runtime: Runtime, at: datetime, **scheduler: object) -> Runner:
    """The job at `at` (its clock stands still there), with [scheduler] settings changed."""
    if scheduler:
        runtime.settings = runtime.settings.model_copy(
            update={"scheduler": runtime.settings.scheduler.model_copy(update=scheduler)}
        )
    return Runner(runtime, FixedClock(at))


def mails(runtime: Runtime) -> list[email.message.EmailMessage]:
    """The outbox's messages outside the ledger, in the order they were written."""
    folder = runtime.settings.outbox_dir / "outside-ledger"
    return (
        [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(folder.glob("*.eml"))
        ]
        if folder.is_dir()
        else []
    )
