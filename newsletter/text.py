"""Outside text (a server's answer, a feed's title, an imported name) made safe to show, and
URLs shown without their credentials.

Wherever such text reaches a terminal, a log line or a mail header, a control character could
move the cursor, retitle the terminal, start a new header, or reorder what a person reads.
"""

from __future__ import annotations

import re
import unicodedata

# C0, DEL and C1 controls (ESC among them), line and paragraph separators, zero-width and bidi
# marks, overrides and isolates, the byte-order mark.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+")
# A URL's user information (a password, or a user name that is often a token).
_USERINFO = re.compile(r"\A(?P<scheme>[a-z][a-z0-9+.-]*://)[^/?#]*@", re.I)


def printable(text: str) -> str:
    """Each run of control or invisible characters becomes one space; the ends are trimmed."""
    return _UNSAFE.sub(" ", text).strip()


def display_url(url: str) -> str:
    """A feed URL fit to show or log: its user information (a password, or a user name that is
    often a token) becomes ***."""
    return _USERINFO.sub(r"\g<scheme>***@", url)


def slugify(name: str) -> str:
    """WordPress-like slug, the key of a section: 'Health & Science' -> 'health-science'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "uncategorized"
