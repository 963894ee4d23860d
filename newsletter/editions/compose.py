"""Rendering a digest variant: Jinja2 templates, CSS inlined by premailer, a text part,
subject and preheader. Pure: data in, strings out.

Personal bits (unsubscribe and preference links, the greeting) are left as markers so one
rendering, and one premailer pass, serves every reader of the variant. Templates, the files and
the subject and preheader lines of the settings, render in Jinja's sandbox, with the variant's
language installed (`_()`, `{% trans %}`).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from newsletter import i18n, notes
from newsletter.errors import NewsletterError
from newsletter.settings import NewsletterSettings, SiteSettings

log = logging.getLogger("newsletter.compose")

# Gmail clips HTML near 102 KB, hiding what follows: the unsubscribe link included.
CLIP_WARNING_BYTES = 100_000
# Where Gmail clips: a message whose HTML passes 102 KB shows only its beginning.
CLIP_BYTES = 102 * 1024
PERSONAL = ("unsubscribe_url", "preferences_url", "greeting", "click")


@dataclass(frozen=True)
class Markers:
    """The tokens a composed variant carries where each reader's values go.

    Each token holds a random nonce made when the variant is composed and stored with it, so
    no feed title, link or imported name can spell one: outside text never becomes a placeholder.
    A variant composed before nonces existed has none and uses the fixed tokens.
    """

    nonce: str | None

    @classmethod
    def fresh(cls) -> Markers:
        return cls(secrets.token_hex(8))

    def token(self, name: str) -> str:
        suffix = f"_{self.nonce}" if self.nonce else ""
        return f"__NL_{name.upper()}{suffix}__"

    def tokens(self) -> dict[str, str]:
        return {name: self.token(name) for name in PERSONAL}


class TemplateProblem(NewsletterError):
    """A template (an editor's file, or a subject or preheader line) fails on real data."""


@dataclass(frozen=True)
class Card:
    """An article as a reader sees it, in the reader's language where a translation exists."""

    url: str
    title: str
    author: str | None
    published: str
    excerpt: str
    image_url: str | None
    category: str | None
    comments: int | None
    note: str | None  # "Machine translation" or "In English" where the language differs
    # The article's language where it is not the email's (an original in a German email), so
    # screen readers switch; None where they match.
    language: str | None = None
    # The section's name's language where it is not the email's (the site's English name in a
    # German email, where the settings give none in German).
    category_language: str | None = None


@dataclass(frozen=True)
class DigestView:
    newsletter: NewsletterSettings
    site: SiteSettings
    language: str
    edition_label: str
    trending: list[Card]
    # Each section's name (with its language where it is not the email's) and its cards.
    sections: list[tuple[i18n.Name, list[Card]]]
    # The sections the reader chose, named; empty for a reader of every section.
    category_names: list[i18n.Name]
    # An editor's subject and preheader for this edition: plain text, used as written.
    subject: str | None = None
    preheader: str | None = None
    # The editor's note for this edition and language: Markdown source, rendered here.
    note: str | None = None
    # The edition's public page in the reader's language, and the feed of the reader's sections
    # (None where the newsletter keeps no archive): the same for every reader of the variant.
    archive_url: str | None = None
    feed_url: str | None = None
    # The templates it renders: email/digest.html and .txt, or email/alert.* (one article).
    template: str | None = None  # None: "digest"

    @property
    def cards(self) -> list[Card]:
        return self.trending + [card for _name, cards in self.sections for card in cards]


@dataclass(frozen=True)
class Composed:
    subject: str
    preheader: str
    html: str
    text: str
    markers: Markers
    warnings: list[str] = field(default_factory=list)


class Composer:
    """Templates loaded once per language; `compose` is called once per variant, never per
    recipient."""

    def __init__(self, templates: Path) -> None:
        self.templates = templates
        self.loader = jinja2.FileSystemLoader(str(templates))
        self.stylesheet = (templates / "email" / "digest.css").read_text(encoding="utf-8")
        self.responsive = (templates / "email" / "responsive.css").read_text(encoding="utf-8")
        self._environments: dict[str, tuple[SandboxedEnvironment, SandboxedEnvironment]] = {}
        # premailer imported here: a sender process, which only sends what was composed, never loads it.
        from newsletter.editions.inline import Inliner

        self.inliner = Inliner()
        # Subject and preheader lines compiled once per environment, not once per variant.
        self._lines: dict[tuple[SandboxedEnvironment, str], jinja2.Template] = {}

    def environments(self, language: str) -> tuple[SandboxedEnvironment, SandboxedEnvironment]:
        """The HTML and the text environment speaking `language`'s catalog. Gettext lives in an
        environment's globals, so each language has its own: no variant speaks another's."""
        if language not in self._environments:
            html = SandboxedEnvironment(
                loader=self.loader,
                autoescape=True,
                undefined=jinja2.StrictUndefined,
                extensions=["jinja2.ext.i18n"],
            )
            # Text and subject lines are not HTML: escaping would show '&amp;' to the reader.
            text = SandboxedEnvironment(
                loader=self.loader,
                autoescape=False,
                undefined=jinja2.StrictUndefined,
                keep_trailing_newline=True,
                extensions=["jinja2.ext.i18n"],
            )
            for environment in (html, text):
                i18n.install(environment, language)
            self._environments[language] = (html, text)
        return self._environments[language]

    def compose(self, view: DigestView, markers: Markers | None = None) -> Composed:
        """The variant's subject, preheader, inlined HTML and text in its language, with
        `markers` (fresh ones by default) where each reader's values go."""
        markers = markers or Markers.fresh()
        cards = view.cards
        if not cards:
            raise ValueError("an empty digest is never composed")
        language = i18n.catalog_language(view.language)
        html_env, text_env = self.environments(language)
        more = len(cards) - 1
        lines = {
            "newsletter": view.newsletter,
            "top": cards[0],
            "count": len(cards),
            "and_more": i18n.translations(language).ngettext("and %(num)d more", "and %(num)d more", more)
            % {"num": more},
            "headlines": [card.title for card in cards[:3]],
            "site": view.site,
        }
        subject = _one_line(view.subject or self._line(text_env, "subject", view.newsletter.subject, lines))
        preheader = _one_line(
            view.preheader or self._line(text_env, "preheader", view.newsletter.preheader, lines)
        )
        context = {
            "newsletter": view.newsletter,
            "site": view.site,
            "site_url": str(view.site.url),
            "language": language,
            "edition_label": view.edition_label,
            "trending": view.trending,
            "sections": [(_named(name), cards) for name, cards in view.sections],
            "category_names": [_named(name) for name in view.category_names],
            "subject": subject,
            "preheader": preheader,
            "archive_url": view.archive_url,
            "feed_url": view.feed_url,
            "note_html": notes.to_html(view.note) if view.note else None,
            "note_text": notes.to_text(view.note) if view.note else None,
            "article": cards[0],
            **markers.tokens(),
        }
        try:
            html = html_env.get_template(f"email/{view.template or 'digest'}.html").render(
                context, stylesheet=self.stylesheet, responsive=self.responsive
            )
            text = text_env.get_template(f"email/{view.template or 'digest'}.txt").render(context)
        except Exception as exc:  # a template may fail on data (None + 1): name it, never a traceback
            raise TemplateProblem(
                f"a template in {self.templates / 'email'} cannot render: {exc!r}"
            ) from None
        inlined = self.inliner.inline(html)
        warnings = []
        size = len(inlined.encode("utf-8"))
        if size > CLIP_WARNING_BYTES:
            warning = (
                f"digest HTML is {size / 1000:.0f} KB: Gmail clips near 102 KB and would hide "
                "the unsubscribe link; lower per_category or trending"
            )
            log.warning(warning)
            warnings.append(warning)
        return Composed(subject, preheader, inlined, _tidy_text(text), markers, warnings)

    def _line(
        self, environment: SandboxedEnvironment, key: str, source: str, values: dict[str, object]
    ) -> str:
        """A subject or preheader line from the settings, rendered in the sandbox."""
        try:
            if (environment, source) not in self._lines:
                self._lines[environment, source] = environment.from_string(source)
            return self._lines[environment, source].render(values)
        except Exception as exc:  # a template may fail on data (None + 1): name it, never a traceback
            raise TemplateProblem(f"the newsletter's {key} template cannot render: {exc}") from None


def _named(name: str) -> i18n.Name:
    """A section's name as templates use it; a plain str is in the email's language."""
    return name if isinstance(name, i18n.Name) else i18n.Name(name)


def _one_line(text: str) -> str:
    """Subjects and preheaders come from feed titles: no line break may reach a header."""
    return " ".join(text.split())


def _tidy_text(text: str) -> str:
    """Collapse the blank runs template logic leaves behind; keep paragraphs apart."""
    lines = [line.rstrip() for line in text.splitlines()]
    tidy: list[str] = []
    for line in lines:
        if line or (tidy and tidy[-1]):
            tidy.append(line)
    return "\n".join(tidy).strip() + "\n"
