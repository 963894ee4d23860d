"""The audit log: who signed in or failed to, and who did what to an edition or an account.

Actions so far: `sign-in`, `sign-in-failed`, `sign-out`, `editor-added`, `editor-removed`,
`password-changed`. An entry names the editor by address (the log outlives the account), and
never carries a password or a session token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.store.db import reading
from newsletter.store.models import AuditEntry
from newsletter.store.runtime import Runtime

# Where an action came from when no browser asked.
COMMAND_LINE = "command line"
MAX_CLIENT = 100


@dataclass(frozen=True)
class Entry:
    at: datetime
    editor: str | None
    action: str
    target: str | None
    detail: dict[str, Any]
    client: str | None


def record(
    session: Session,
    action: str,
    at: datetime,
    editor: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    client: str | None = None,
) -> None:
    """Add an entry in the caller's unit of work: it is kept exactly when the action is."""
    session.add(
        AuditEntry(
            at=at,
            editor=editor,
            action=action,
            target=target,
            detail=json.dumps(detail, sort_keys=True, ensure_ascii=False) if detail else None,
            client=client[:MAX_CLIENT] if client else None,
        )
    )


def entries(runtime: Runtime, limit: int = 100) -> list[Entry]:
    """The newest `limit` entries, newest first."""
    with reading(runtime.factory) as session:
        rows = session.scalars(
            select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
        )
        return [
            Entry(
                row.at,
                row.editor,
                row.action,
                row.target,
                json.loads(row.detail) if row.detail else {},
                row.client,
            )
            for row in rows
        ]
