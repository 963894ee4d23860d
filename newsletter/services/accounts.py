"""Editors' accounts and their sessions: what `newsletter editors ...` and the editors' pages share.

A session is a random token in the editor's cookie; the store keeps only its SHA-256, so a copy
of the store signs nobody in, and deleting the row ends the session at once: at logout, after
the idle time, when the password changes, when the editor is removed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.errors import InputError, NewsletterError
from newsletter.services import audit, passwords
from newsletter.services.audit import COMMAND_LINE
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Editor, EditorSession
from newsletter.store.runtime import Runtime
from newsletter.subscribers.addresses import InvalidAddress, normalize_email

# A session's last use is written at most this often (and at least four times per idle time).
TOUCH_SECONDS = 60.0
# A cookie's token is this long (token_urlsafe(32)); anything much longer is not one of ours.
MAX_TOKEN = 100


@dataclass(frozen=True)
class Account:
    email: str
    created_at: datetime
    password_changed_at: datetime
    last_sign_in_at: datetime | None
    sessions: int  # signed in now, on this many browsers


@dataclass(frozen=True)
class SignedIn:
    """Who is signed in; `token` is the cookie's value (given once, at sign-in: never stored)."""

    email: str
    token: str


class NoSuchEditor(NewsletterError):
    def __init__(self, email: str) -> None:
        super().__init__(f"no editor {email} (`newsletter editors list` shows them)")
        self.email = email


def editor_address(email: str) -> str:
    """An editor's address as stored: normalized like a reader's (one mailbox, one account)."""
    try:
        return normalize_email(email)
    except InvalidAddress as exc:
        raise InputError("EMAIL", str(exc)) from None


def asked_address(email: str) -> str | None:
    """The account a sign-in asks for, as the lookup finds it: one for every spelling of the
    mailbox (case, full-width letters, an ideographic full stop); None when it is no address."""
    try:
        return normalize_email(email)
    except InvalidAddress:
        return None


def add(runtime: Runtime, email: str, password: str, now: datetime) -> str:
    """A new editor; the password is checked (`passwords.problem`) and kept hashed."""
    address = editor_address(email)
    passwords.check(password, address)
    hashed = passwords.hashed(password)  # before the unit of work: 0.1 s not spent holding a lock
    try:
        with unit_of_work(runtime.factory) as session:
            if session.scalar(select(Editor.id).where(Editor.email == address)) is not None:
                raise _exists(address)
            session.add(Editor(email=address, password_hash=hashed, created_at=now, password_changed_at=now))
            audit.record(session, "editor-added", now, target=address, client=COMMAND_LINE)
    except IntegrityError:  # added by another command at the same moment
        raise _exists(address) from None
    return address


def _exists(address: str) -> NewsletterError:
    return NewsletterError(
        f"{address} is already an editor (`newsletter editors passwd` changes the password)"
    )


def remove(runtime: Runtime, email: str, now: datetime) -> int:
    """Remove an editor and end their sessions; how many sessions were ended."""
    address = editor_address(email)
    with unit_of_work(runtime.factory) as session:
        editor = session.scalar(select(Editor).where(Editor.email == address))
        if editor is None:
            raise NoSuchEditor(address)
        ended = _end_sessions(session, editor.id)
        session.delete(editor)
        audit.record(
            session,
            "editor-removed",
            now,
            target=address,
            detail={"sessions_ended": ended},
            client=COMMAND_LINE,
        )
        return ended


def change_password(runtime: Runtime, email: str, password: str, now: datetime) -> int:
    """A new password; every session of the editor ends (a stolen cookie with it). How many."""
    address = editor_address(email)
    passwords.check(password, address)
    hashed = passwords.hashed(password)
    with unit_of_work(runtime.factory) as session:
        editor = session.scalar(select(Editor).where(Editor.email == address))
        if editor is None:
            raise NoSuchEditor(address)
        editor.password_hash = hashed
        editor.password_changed_at = now
        ended = _end_sessions(session, editor.id)
        audit.record(
            session,
            "password-changed",
            now,
            target=address,
            detail={"sessions_ended": ended},
            client=COMMAND_LINE,
        )
        return ended


def accounts(runtime: Runtime, now: datetime) -> list[Account]:
    """Every editor by address, with the sessions still live."""
    since = now - _idle(runtime)
    with reading(runtime.factory) as session:
        live = dict(
            session.execute(
                select(EditorSession.editor_id, func.count())
                .where(EditorSession.last_seen_at > since)
                .group_by(EditorSession.editor_id)
            ).all()
        )
        return [
            Account(e.email, e.created_at, e.password_changed_at, e.last_sign_in_at, live.get(e.id, 0))
            for e in session.scalars(select(Editor).order_by(Editor.email))
        ]


def sign_in(runtime: Runtime, email: str, password: str, client: str, now: datetime) -> SignedIn | None:
    """A new session when the password is the editor's; None otherwise, after the same work
    whether the account exists or not. Both outcomes go to the audit log (never the password)."""
    address = asked_address(email)  # None: perhaps a password typed in the wrong field, not logged
    with reading(runtime.factory) as session:
        found = session.execute(
            select(Editor.id, Editor.password_hash).where(Editor.email == (address or ""))
        ).first()
    stored = found.password_hash if found else None
    matches, fresher = passwords.verify(password[: passwords.MAX_LENGTH * 4], stored)
    with unit_of_work(runtime.factory) as session:
        editor = session.get(Editor, found.id) if found and matches else None
        if editor is None or editor.password_hash != stored:  # wrong, or changed meanwhile
            detail = None if address else {"given": "not an email address"}
            audit.record(session, "sign-in-failed", now, target=address, detail=detail, client=client)
            return None
        if fresher:
            editor.password_hash = fresher
        editor.last_sign_in_at = now
        session.execute(delete(EditorSession).where(EditorSession.last_seen_at <= now - _idle(runtime)))
        token = secrets.token_urlsafe(32)
        session.add(
            EditorSession(
                token_hash=_digest(token),
                editor_id=editor.id,
                created_at=now,
                last_seen_at=now,
                client=client[: audit.MAX_CLIENT],
            )
        )
        audit.record(session, "sign-in", now, editor=editor.email, client=client)
        return SignedIn(editor.email, token)


def signed_in(runtime: Runtime, token: str | None, now: datetime) -> str | None:
    """The editor whose live session this token is, its use noted; None when there is none
    (never was, signed out, idle too long, password changed, editor removed)."""
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        return None
    digest = _digest(token)
    idle = _idle(runtime)
    with reading(runtime.factory) as session:
        found = session.execute(
            select(EditorSession.id, EditorSession.last_seen_at, Editor.email)
            .join(Editor, Editor.id == EditorSession.editor_id)
            .where(EditorSession.token_hash == digest)
        ).first()
    if found is None:
        return None
    if found.last_seen_at <= now - idle:
        with unit_of_work(runtime.factory) as session:
            session.execute(delete(EditorSession).where(EditorSession.id == found.id))
        return None
    if now - found.last_seen_at >= min(timedelta(seconds=TOUCH_SECONDS), idle / 4):
        with unit_of_work(runtime.factory) as session:
            live = session.get(EditorSession, found.id)
            if live is None:  # signed out meanwhile
                return None
            live.last_seen_at = now
    return str(found.email)


def sign_out(runtime: Runtime, token: str | None, client: str, now: datetime) -> str | None:
    """End this session; the editor it was, or None when it was not live."""
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        return None
    with unit_of_work(runtime.factory) as session:
        found = session.execute(
            select(EditorSession.id, Editor.email)
            .join(Editor, Editor.id == EditorSession.editor_id)
            .where(EditorSession.token_hash == _digest(token))
        ).first()
        if found is None:
            return None
        session.execute(delete(EditorSession).where(EditorSession.id == found.id))
        audit.record(session, "sign-out", now, editor=found.email, client=client)
        return str(found.email)


def _end_sessions(session: Session, editor_id: int) -> int:
    result = session.execute(delete(EditorSession).where(EditorSession.editor_id == editor_id))
    return int(getattr(result, "rowcount", 0) or 0)


def _idle(runtime: Runtime) -> timedelta:
    return timedelta(minutes=runtime.settings.editors.idle_minutes)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
