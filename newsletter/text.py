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
# C0 and C1 controls and DEL, but tab, CR and LF (whitespace a value may wrap): what no text
# from a form or a CSV may hold (PostgreSQL refuses NUL; a terminal or a log obeys the rest).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A URL's user information (a password, or a user name that is often a token).
_USERINFO = re.compile(r"\A(?P<scheme>[a-z][a-z0-9+.-]*://)[^/?#]*@", re.I)


def printable(text: str) -> str:
    """Each run of control or invisible characters becomes one space; the ends are trimmed."""
    return _UNSAFE.sub(" ", text).strip()


def control_character(text: str) -> str | None:
    """The first control character `text` holds, named (`U+0000`), so it can be refused
    without echoing the value; None when it holds none."""
    found = _CONTROL.search(text)
    return f"U+{ord(found[0]):04X}" if found else None


def display_url(url: str) -> str:
    """A feed URL fit to show or log: its user information (a password, or a user name that is
    often a token) becomes ***."""
    return _USERINFO.sub(r"\g<scheme>***@", url)


def slugify(name: str) -> str:
    """WordPress-like slug, the key of a section: 'Health & Science' -> 'health-science'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "uncategorized"
