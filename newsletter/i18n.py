"""The readers' languages: gettext catalogs for the chrome of emails and pages, and dates and
language names in a reader's locale.

English is the source language: messages are written in it, and a language without a catalog
reads English, dates included, so a page or an email never mixes two languages of chrome.
Catalogs are the translators' .po files (`newsletter/locale/<lang>/LC_MESSAGES/messages.po`),
compiled in memory at first use: adding a language is adding a catalog (`make messages`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, tzinfo
from functools import cache, lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.support import Translations
from jinja2 import Environment

SOURCE = "en"
DOMAIN = "messages"
CATALOGS = Path(__file__).resolve().parent / "locale"
# The site's English is Europe's: "23 November 2026", not "November 23, 2026".
LOCALES = {"en": "en_150"}


def N_(message: str) -> str:
    """Marks a message for extraction where it is only translated later (a default setting)."""
    return message


class Name(str):
    """Words in a language of their own inside a page or an email (the site's English section
    name in a German email): `language` is theirs where it is not the page's, for a `lang`
    attribute, else None. A str, so a template that prints it, upper-cases it or measures it
    keeps working."""

    language: str | None

    def __new__(cls, text: str, language: str | None = None) -> Name:
        name = super().__new__(cls, text)
        name.language = language
        return name


def named(text: str, text_language: str, page_language: str) -> Name:
    """`text`, written in `text_language`, as shown in a page or email whose lang is `page_language`."""
    return Name(text, text_language if text_language != page_language else None)


def languages() -> list[str]:
    """The languages with a catalog, English among them."""
    found = {path.parents[1].name for path in CATALOGS.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    return sorted(found | {SOURCE})


def language_tag(tag: str) -> str:
    """A language tag as written anywhere ('pt_BR ', 'DE-at') in one spelling: 'pt-br', 'de-at'."""
    return tag.strip().lower().replace("_", "-")


def primary_language(tag: str) -> str:
    """A language tag's primary subtag ('de' of 'de-AT', 'pt_BR' gives 'pt'): how languages are
    kept and compared."""
    return language_tag(tag).split("-")[0]


def catalog_language(language: str) -> str:
    """The language a reader of `language` ('de', 'de-AT', 'DE') gets the chrome in: its own
    catalog's, else English."""
    primary = primary_language(language)
    return primary if primary in _available() else SOURCE


def translations(language: str) -> Translations:
    """`language`'s gettext (its catalog's, else English), compiled once per process."""
    return _compiled(catalog_language(language))


def gettext_for(language: str) -> Callable[[str], str]:
    return translations(language).gettext


def install(environment: Environment, language: str) -> None:
    """Give a Jinja environment (made with the `jinja2.ext.i18n` extension) `language`'s
    `_`, `gettext` and `ngettext`. They live in the environment's globals: keep one
    environment per language, never switch a shared one between renders."""
    environment.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]


def format_date(moment: datetime, language: str, zone: tzinfo | None = None) -> str:
    """The day of `moment` (in `zone`, else its own) as a reader of `language` writes it:
    '23 November 2026', '23. November 2026'."""
    local = moment.astimezone(zone) if zone is not None else moment
    return babel_format_date(local.date(), "long", locale=locale(language))


def language_name(code: str, language: str) -> str:
    """The name of the language `code` in a reader's language: 'en' for 'de' is 'Englisch'."""
    try:
        name = Locale.parse(code.replace("-", "_")).get_display_name(locale(language))
    except (UnknownLocaleError, ValueError):
        name = None
    return name or code


def endonym(code: str) -> str:
    """The name of the language `code` in that language: 'de' is 'Deutsch', 'fr' 'Français'."""
    try:
        name = Locale.parse(code.replace("-", "_")).get_display_name(code.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        name = None
    return name[:1].upper() + name[1:] if name else code


def locale(language: str) -> Locale:
    """Babel's locale for a reader of `language`: the one of their catalog's language."""
    code = catalog_language(language)
    return Locale.parse(LOCALES.get(code, code))


@lru_cache(maxsize=1)
def _available() -> frozenset[str]:
    return frozenset(languages())


@cache
def _compiled(language: str) -> Translations:
    from babel.messages.mofile import write_mo  # only where a catalog is read: not for every command
    from babel.messages.pofile import read_po

    path = CATALOGS / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # untranslated and fuzzy entries are left out: they read English
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)
