"""The bounce mailbox, read with the standard library: a Maildir folder, or IMAP over TLS.

A message handled is filed out of the way, so the next run never reads it again: in a Maildir
it moves to the `processed` or `unmatched` subfolder; over IMAP it is marked seen (and flagged
when unmatched, for a person to look at). A message left alone is read again next time.
"""

from __future__ import annotations

import imaplib
import mailbox
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, Protocol

from newsletter.errors import NewsletterError

Folder = Literal["processed", "unmatched"]


class MailboxError(NewsletterError):
    """The mailbox cannot be read; carries where it is."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"cannot read the mailbox {where}: {problem}")
        self.where = where


class Mailbox(Protocol):
    name: str

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """Each message still to read: its key in this mailbox and its bytes."""
        ...

    def file(self, key: str, folder: Folder) -> None: ...

    def close(self) -> None: ...


class MaildirBox:
    """A Maildir folder (what Postfix, Exim or Dovecot deliver to)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        if not (path / "cur").is_dir() or not (path / "new").is_dir():
            raise MailboxError(self.name, "not a Maildir folder (no cur/ and new/)")
        self.box = mailbox.Maildir(path, factory=None, create=False)
        self.folders: dict[str, mailbox.Maildir] = {}

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for key in sorted(self.box.keys()):
            try:
                yield key, self.box.get_bytes(key)
            except KeyError:  # another reader moved it meanwhile
                continue

    def file(self, key: str, folder: Folder) -> None:
        """Into the subfolder, then out of the inbox: a crash between the two leaves a copy that
        the next run recognizes (the store remembers each bounce it recorded)."""
        try:
            if folder not in self.folders:
                known = self.box.list_folders()
                made = self.box.get_folder(folder) if folder in known else self.box.add_folder(folder)
                self.folders[folder] = made
            message = mailbox.MaildirMessage(self.box.get_bytes(key))
            message.set_subdir("cur")
            message.add_flag("S")
            self.folders[folder].add(message)
            self.box.remove(key)
        except OSError as exc:
            raise MailboxError(self.name, f"cannot file a message in {folder}/: {exc}") from None

    def close(self) -> None:
        self.box.close()


class ImapBox:
    """A folder on an IMAP server, over TLS; only unseen messages are read."""

    def __init__(self, host: str, port: int, user: str, password: str, folder: str, timeout: float) -> None:
        self.name = f"imaps://{user}@{host}:{port}/{folder}"
        try:
            self.imap = imaplib.IMAP4_SSL(
                host, port, ssl_context=ssl.create_default_context(), timeout=timeout
            )
            self.imap.login(user, password)
            status, answer = self.imap.select(_quoted(folder))
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(self.name, str(exc)) from None
        if status != "OK":
            raise MailboxError(self.name, _said(answer))

    def messages(self) -> Iterator[tuple[str, bytes]]:
        try:
            status, answer = self.imap.uid("SEARCH", "UNSEEN")
            if status != "OK":
                raise MailboxError(self.name, _said(answer))
            found = answer[0] if answer and isinstance(answer[0], bytes) else b""
            for uid in found.decode("ascii", "replace").split():
                status, parts = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")  # PEEK: unseen until filed
                data = next((p[1] for p in parts if isinstance(p, tuple)), None)
                if status == "OK" and isinstance(data, bytes):
                    yield uid, data
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(self.name, str(exc)) from None

    def file(self, key: str, folder: Folder) -> None:
        flags = r"(\Seen)" if folder == "processed" else r"(\Seen \Flagged)"
        try:
            status, answer = self.imap.uid("STORE", key, "+FLAGS", flags)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(self.name, str(exc)) from None
        if status != "OK":
            raise MailboxError(self.name, _said(answer))

    def close(self) -> None:
        try:
            self.imap.close()
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def _quoted(folder: str) -> str:
    """A folder name as an IMAP string (names may hold spaces)."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _said(answer: Sequence[object]) -> str:
    return " ".join(a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in answer if a)
