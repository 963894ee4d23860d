"""Mail that comes back to a site's bounce and unsubscribe addresses, as mail systems and people
write it: a DSN (RFC 3464), qmail's plain-text bounce, a vague notice that names nobody, a
person's message."""

from __future__ import annotations

import uuid


def dsn(
    to: str,
    recipient: str,
    status: str,
    diagnostic: str,
    action: str = "failed",
    original_id: str | None = None,
) -> bytes:
    """An RFC 3464 delivery status notification, Postfix style, with the returned headers."""
    original = f"Message-ID: {original_id}\n" if original_id else ""
    return f"""Return-Path: <>
Delivered-To: {to.lower()}
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-ID: <{uuid.uuid4().hex}@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Mon, 23 Nov 2026 07:10:00 +0100 (CET)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mail.example.com
Diagnostic-Code: smtp; {diagnostic}

--B1
Content-Type: text/rfc822-headers

From: The European Times <newsletter@example.com>
To: {recipient}
Subject: Weekly digest
{original}
--B1--
""".encode()


def qmail(to: str, recipient: str) -> bytes:
    """qmail's plain-text bounce (QSBMF): no DSN, found by flufl.bounce's detector."""
    return f"""Return-Path: <>
From: MAILER-DAEMON@mx.example.net
To: {to}
Subject: failure notice
Message-ID: <{uuid.uuid4().hex}@mx.example.net>

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{recipient}>:
192.0.2.1 does not like recipient.
Remote host said: 550 5.1.1 <{recipient}>... User unknown
Giving up on 192.0.2.1.

--- Below this line is a copy of the message.

From: newsletter@example.com
To: {recipient}
Subject: Weekly digest

Version 4.2.2 of our app is out, 4.4.7 too.
""".encode()


def vague(to: str) -> bytes:
    """A mail system's notice that names nobody: only the VERP address says whose it is."""
    return f"""From: Mail Delivery Subsystem <mailer-daemon@mx.example.net>
To: {to}
Subject: Returned mail
Message-ID: <{uuid.uuid4().hex}@mx.example.net>

Your message could not be delivered. Please do not reply to this message.
""".encode()


def personal(to: str, sender: str, subject: str, body: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\n" for h in headers)
    return (
        f"From: {sender}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{uuid.uuid4().hex}@example.org>\n"
        f"{extra}\n{body}\n"
    ).encode()
