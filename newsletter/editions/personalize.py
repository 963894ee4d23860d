"""Per-recipient substitution into a composed variant: the only per-reader work on content.

A variant is split at its markers once; a reader's copy is a join of the pieces with their
values, so a million readers cost a million joins, not a million renderings.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache

from newsletter import i18n
from newsletter.editions.compose import Markers

# The reader's part of a tracked link in a preview or a test send: it counts nothing.
PREVIEW_CLICK = "preview"


@dataclass(frozen=True, slots=True)  # a sender holds one per reader of its batches in flight
class Reader:
    """What personalization knows of a recipient; `language` is their variant's."""

    name: str | None
    unsubscribe_url: str
    preferences_url: str
    language: str = i18n.SOURCE
    click: str = PREVIEW_CLICK  # the reader's part of a tracked link (a dummy counts nothing)

    @property
    def greeting(self) -> str:
        named, anonymous = greetings(self.language)
        return named % {"name": self.name} if self.name else anonymous

    def values(self) -> dict[str, str]:
        return {
            "unsubscribe_url": self.unsubscribe_url,
            "preferences_url": self.preferences_url,
            "greeting": self.greeting,
            "click": self.click,
        }


@lru_cache(maxsize=64)
def greetings(language: str) -> tuple[str, str]:
    """The greeting with a name and without, in `language`: looked up once, formatted per reader."""
    gettext = i18n.gettext_for(language)
    return gettext("Hello %(name)s,"), gettext("Hello,")


class Personalizable:
    """A text cut at its markers; `fill` joins it with one reader's values."""

    def __init__(self, text: str, escape: bool, markers: Markers) -> None:
        names = {token: name for name, token in markers.tokens().items()}
        pieces = re.split("(" + "|".join(map(re.escape, names)) + ")", text)
        self.literals = pieces[0::2]
        self.names = [names[token] for token in pieces[1::2]]
        self.escape = escape

    def fill(self, values: dict[str, str]) -> str:
        """Each value escaped once, however often its marker comes (a tracked link per article)."""
        quoted = {name: html.escape(value) for name, value in values.items()} if self.escape else values
        out = [self.literals[0]]
        for name, literal in zip(self.names, self.literals[1:], strict=True):
            out.append(quoted[name])
            out.append(literal)
        return "".join(out)
