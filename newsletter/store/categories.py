"""Category slugs: the one key by which feeds, readers, editions and editors name a section."""

from __future__ import annotations

import re
import unicodedata


def slugify(name: str) -> str:
    """WordPress-like slug: 'Health & Science' -> 'health-science'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "uncategorized"
