"""The pages as readers see them: `templates/web/` rendered in the reader's language.

Templates are files an editor may change, so they render in Jinja's sandbox with autoescaping
on: every value from a reader, the store or the settings is escaped. gettext lives in an
environment's globals, so there is one environment per language, built on first use.

A message held in a variable (an error's title, the consent wording) is shown with
`translate(message)`, never `_(message)`: the i18n extension's `_` marks its result safe and
%-formats it, which is right for the templates' own literals but not for text that may carry a
reader's input.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from starlette.datastructures import Headers, QueryParams
from starlette.responses import HTMLResponse

from newsletter import i18n
from newsletter.editions.slots import slot_time, wall_clock
from newsletter.settings import Settings
from newsletter.store.categories import configured_sections, localized


class Pages:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder: Path = settings.templates_path() / "web"
        self._environments: dict[str, SandboxedEnvironment] = {}
        self._lock = threading.Lock()

    def environment(self, language: str) -> SandboxedEnvironment:
        language = i18n.catalog_language(language)
        with self._lock:
            if language not in self._environments:
                environment = SandboxedEnvironment(
                    loader=jinja2.FileSystemLoader(str(self.folder)),
                    autoescape=True,
                    undefined=jinja2.StrictUndefined,
                    extensions=["jinja2.ext.i18n"],
                    trim_blocks=True,
                    lstrip_blocks=True,
                )
                i18n.install(environment, language)
                self._environments[language] = environment
            return self._environments[language]

    def render(self, name: str, language: str, status: int = 200, **values: object) -> HTMLResponse:
        return HTMLResponse(self.html(name, language, **values), status_code=status)

    def html(self, name: str, language: str, **values: object) -> str:
        """`name` in `language` (the site's when the site does not offer it), with the site, the
        page's language, and helpers that put a language's name, a message, a newsletter's title
        and a date in the page's language, and a moment or a slot in the site's time zone, with
        its name."""
        language = self.settings.reader_language(language)
        environment = self.environment(language)
        return environment.get_template(name).render(
            values,
            site=self.settings.site,
            lang=i18n.catalog_language(language),
            language_name=lambda code: i18n.language_name(code, language),
            translate=lambda message: self.gettext(language, str(message)),
            newsletter_title=lambda newsletter, title: self.title(newsletter, language, title),
            format_date=lambda moment: i18n.format_date(moment, language, self.settings.zone),
            local_time=self.local,
            slot_time=self.slot,
            site_newsletters=self.settings.digests(),
            site_alerts=self.settings.alerts(),
        )

    def gettext(self, language: str, message: str) -> str:
        return i18n.translations(self.settings.reader_language(language)).gettext(message)

    def title(self, newsletter: str, language: str, fallback: str | None = None) -> str:
        """A newsletter's title for readers of `language`: the settings' own for that language,
        else the default title translated; `fallback` (else the name) for one not configured."""
        settings = self.settings.newsletters.get(newsletter)
        language = self.settings.reader_language(language)
        if settings is None:
            return self.gettext(language, fallback or newsletter)
        return self.gettext(language, settings.in_language(i18n.catalog_language(language)).title)

    def local(self, moment: datetime | None) -> str:
        """A moment in the site's time zone, the zone named: `2026-12-07 07:00 CET` ('' for none)."""
        return wall_clock(moment, self.settings.zone) if moment is not None else ""

    def slot(self, name: str) -> str:
        """An edition's slot (its stored name, `2026-12-07T07:00`) in the site's time zone, named."""
        return self.local(slot_time(name, self.settings.zone))

    def stylesheet(self) -> str:
        return (self.folder / "site.css").read_text(encoding="utf-8")

    # What the forms offer: the settings' newsletters, sections and content languages.

    def newsletters(self, language: str) -> list[tuple[str, str]]:
        """(name, title) of every newsletter, titled for readers of `language`."""
        return [(name, self.title(name, language)) for name in sorted(self.settings.newsletters)]

    def categories(self, language: str) -> list[tuple[str, i18n.Name]]:
        """(slug, name) of every section, named for readers of `language` where the settings
        say how, else by the site's name marked with the site's language."""
        language = self.settings.reader_language(language)
        page = i18n.catalog_language(language)
        names = localized(self.settings, configured_sections(self.settings), language, page)
        return sorted(names.items(), key=lambda item: item[1].lower())

    def languages(self) -> list[str]:
        """The languages the site offers (`Settings.languages`): its own, and those it has a
        feed or its newsletters have words in, unless `[site] languages` lists them."""
        return self.settings.languages()


def asked_language(query: QueryParams, headers: Headers, default: str, offered: Sequence[str]) -> str:
    """The page's language when no reader is known: `?lang=`, else the browser's first
    Accept-Language that the site offers and has a catalog for, else the site's (a German
    browser on an English-only site reads, and signs up, in English)."""
    available = set(offered) & set(i18n.languages())
    asked = query.get("lang")
    if asked and i18n.primary_language(asked) in available:
        return i18n.primary_language(asked)
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(headers.get("accept-language", "").split(",")[:20]):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            ranked.append((-quality, position, i18n.primary_language(tag)))
    for _quality, _position, language in sorted(ranked):
        if language in available:
            return language
    return i18n.catalog_language(default)
