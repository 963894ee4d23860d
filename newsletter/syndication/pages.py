"""The archive's pages (`templates/web/archive/`), its sitemap and robots.txt, rendered from
publications: the same input gives the same bytes, so a page is rewritten only when it changes.

Templates are editors' files: they render in Jinja's sandbox with autoescaping, like the
readers' pages, and share their base and stylesheet.
"""

from __future__ import annotations

import json
from datetime import datetime
from xml.sax.saxutils import escape

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from newsletter import i18n, published
from newsletter.i18n import N_
from newsletter.ingest.sanitize import safe_url
from newsletter.published import MEDIA_TYPES
from newsletter.settings import Settings
from newsletter.syndication.content import Digest, Published
from newsletter.syndication.documents import Rendered

# The pages search engines are kept out of: every one carries a reader's token, or is private.
PRIVATE = ("/unsubscribe/", "/preferences/", "/confirm/", "/address/", "/c/", "/editor/", "/webhooks/")
FEED_TITLES = (("atom", "Atom"), ("rss", "RSS"), ("json", "JSON Feed"))


class Renderer:
    """One sandboxed environment per language over `templates/web/`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loader = jinja2.FileSystemLoader(str(settings.templates_path() / "web"))
        self._environments: dict[str, SandboxedEnvironment] = {}

    def render(self, name: str, language: str, **values: object) -> str:
        catalog = i18n.catalog_language(language)
        if catalog not in self._environments:
            environment = SandboxedEnvironment(
                loader=self.loader,
                autoescape=True,
                undefined=jinja2.StrictUndefined,
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            i18n.install(environment, catalog)
            # Links from the store are http(s) already (ingest keeps no other); a page a CDN
            # serves without our CSP stays safe should one ever not be.
            environment.filters["web_link"] = lambda url: safe_url(url, str(self.settings.site.url)) or ""
            self._environments[catalog] = environment
        return (
            self._environments[catalog]
            .get_template(name)
            .render(
                values,
                site=self.settings.site,
                # Absolute links to the app's own pages: an export may be hosted anywhere.
                root=str(self.settings.public_url).rstrip("/"),
                lang=catalog,  # the chrome's: a language with no catalog reads English around its articles
                language=language,
                language_name=lambda code: i18n.language_name(code, language),
                # A language switch names each language in its own words, marked with its lang.
                endonym=i18n.endonym,
            )
        )

    def url(self, path: str) -> str:
        return published.url(str(self.settings.public_url), path)


def json_ld(data: dict[str, object]) -> Markup:
    """Structured data for a <script> block: no '<', '>' or '&' can end it early."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _feeds(renderer: Renderer, newsletter: str, language: str) -> list[tuple[str, str, str]]:
    return [
        (
            MEDIA_TYPES[kind].split(";")[0],
            title,
            renderer.url(published.feed_path(newsletter, language, kind)),
        )
        for kind, title in FEED_TITLES
    ]


def _description(digest: Digest) -> str:
    return " · ".join(card.title for card in digest.cards[:3])


def edition_pages(renderer: Renderer, publication: Published) -> list[Rendered]:
    """The edition's page in each of its languages."""
    site_language = renderer.settings.site.language
    newsletter = publication.newsletter

    def path(code: str) -> str:
        return published.edition_path(newsletter, publication.slot, code, site_language)

    languages = [(code, renderer.url(path(code))) for code in publication.digests]
    pages = []
    for language, digest in publication.digests.items():
        title = f"{digest.title}, {digest.label}"
        canonical = renderer.url(path(language))
        cards = digest.cards
        body = renderer.render(
            "archive/edition.html",
            language,
            digest=digest,
            page_title=title,
            canonical=canonical,
            alternates=languages,
            languages=languages,
            feeds=_feeds(renderer, newsletter, language),
            section_feeds={
                s.slug: renderer.url(published.feed_path(newsletter, language, "atom", s.slug))
                for s in digest.sections
            },
            index=renderer.url(published.index_path(newsletter, language, site_language)),
            description=_description(digest),
            og_type="article",
            og_locale=language,
            image=next((c.image_url for c in cards if c.image_url), None),
            json_ld=json_ld(
                {
                    "@context": "https://schema.org",
                    "@type": "CollectionPage",
                    "name": title,
                    "url": canonical,
                    "inLanguage": language,
                    "datePublished": publication.published_at.isoformat(),
                    "isPartOf": {"@type": "Periodical", "name": digest.title},
                    "publisher": {
                        "@type": "Organization",
                        "name": renderer.settings.site.name,
                        "url": str(renderer.settings.site.url),
                    },
                    "mainEntity": {
                        "@type": "ItemList",
                        "itemListElement": [
                            {"@type": "ListItem", "position": i, "url": link, "name": c.title}
                            for i, (c, link) in enumerate(
                                ((c, safe_url(c.url, str(renderer.settings.site.url))) for c in cards),
                                start=1,
                            )
                            if link
                        ],
                    },
                }
            ),
        )
        pages.append(Rendered(path(language), MEDIA_TYPES["html"], body))
    return pages


def gone_pages(renderer: Renderer, publication: Published) -> list[tuple[str, str]]:
    """(path, page) of a withdrawn edition's pages: each answers 410 Gone."""
    site_language = renderer.settings.site.language
    found = []
    for language in publication.digests:
        body = renderer.render(
            "archive/gone.html",
            language,
            index=renderer.url(published.index_path(publication.newsletter, language, site_language)),
        )
        found.append(
            (published.edition_path(publication.newsletter, publication.slot, language, site_language), body)
        )
    return found


def index_pages(
    renderer: Renderer, newsletter: str, publications: list[Published], languages: list[str]
) -> list[Rendered]:
    """The newsletter's index in each language, newest first, `per_page` editions a page."""
    settings = renderer.settings
    site_language = settings.site.language
    per_page = settings.syndication.per_page
    switch = [
        (code, renderer.url(published.index_path(newsletter, code, site_language))) for code in languages
    ]
    pages = []
    for language in languages:
        mine = [p for p in publications if language in p.digests]
        title = settings.newsletter(newsletter).in_language(language).title
        title = i18n.gettext_for(language)(title)
        # Whatever the title: "The Week in Riverside: every edition", "Weekly digest: every edition".
        heading = i18n.gettext_for(language)(N_("%(title)s: every edition")) % {"title": title}
        count = max(1, -(-len(mine) // per_page))
        for page in range(1, count + 1):
            shown = mine[(page - 1) * per_page : page * per_page]
            path = published.index_path(newsletter, language, site_language, page)
            canonical = renderer.url(path)
            entries = [
                (
                    renderer.url(published.edition_path(newsletter, p.slot, language, site_language)),
                    f"{p.digests[language].title}, {p.digests[language].label}",
                    [c.title for c in p.digests[language].cards[:3]],
                )
                for p in shown
            ]
            body = renderer.render(
                "archive/index.html",
                language,
                heading=heading,
                page_title=heading if page == 1 else f"{heading} ({page})",
                entries=entries,
                canonical=canonical,
                alternates=switch if page == 1 else [],
                languages=switch,
                feeds=_feeds(renderer, newsletter, language),
                newer=renderer.url(published.index_path(newsletter, language, site_language, page - 1))
                if page > 1
                else None,
                older=renderer.url(published.index_path(newsletter, language, site_language, page + 1))
                if page < count
                else None,
                description=heading,
                og_type="website",
                og_locale=language,
                image=None,
                json_ld=json_ld(
                    {
                        "@context": "https://schema.org",
                        "@type": "CollectionPage",
                        "name": heading,
                        "url": canonical,
                        "inLanguage": language,
                        "hasPart": [
                            {"@type": "WebPage", "url": href, "name": label} for href, label, _h in entries
                        ],
                    }
                ),
            )
            pages.append(Rendered(path, MEDIA_TYPES["html"], body))
    return pages


def sitemap(renderer: Renderer, newsletters: dict[str, list[Published]]) -> Rendered:
    """Every live edition page in every language, and each index's first page."""
    site_language = renderer.settings.site.language
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
    ]

    def entry(path: str, modified: datetime | None) -> None:
        lastmod = f"<lastmod>{modified.date().isoformat()}</lastmod>" if modified else ""
        lines.append(f"<url><loc>{escape(renderer.url(path))}</loc>{lastmod}</url>")

    for newsletter, publications in sorted(newsletters.items()):
        live = [p for p in publications if not p.withdrawn]
        languages = sorted(
            {code for p in live for code in p.digests}, key=lambda code: (code != site_language, code)
        )
        newest = live[0].published_at if live else None
        for language in languages:
            entry(published.index_path(newsletter, language, site_language), newest)
        for publication in live:
            for language in publication.digests:
                entry(
                    published.edition_path(newsletter, publication.slot, language, site_language),
                    publication.published_at,
                )
    lines.append("</urlset>")
    return Rendered("/sitemap.xml", MEDIA_TYPES["xml"], "\n".join(lines) + "\n")


def stylesheet(renderer: Renderer) -> Rendered:
    """The pages' stylesheet, exported beside them for a static host."""
    css = (renderer.settings.templates_path() / "web" / "site.css").read_text(encoding="utf-8")
    return Rendered("/site.css", MEDIA_TYPES["css"], css)


def robots(renderer: Renderer) -> Rendered:
    """Search engines may read the archive and the feeds, never a page carrying a token."""
    lines = ["User-agent: *", *(f"Disallow: {path}" for path in PRIVATE), "Allow: /", ""]
    lines.append(f"Sitemap: {renderer.url('/sitemap.xml')}")
    return Rendered("/robots.txt", MEDIA_TYPES["txt"], "\n".join(lines) + "\n")
