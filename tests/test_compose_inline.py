"""The inliner that keeps its work per stylesheet gives, byte for byte, what premailer's own
`transform()` gave for the same HTML: varied digests (languages, sections, images or none,
hostile and CSS-looking titles) through one Composer, and stylesheets of an editor's own."""

from __future__ import annotations

import logging
from dataclasses import replace

import premailer
import pytest

from newsletter import i18n
from newsletter.editions.compose import Card, Composer, DigestView
from newsletter.editions.inline import Inliner
from newsletter.settings import Settings

HOSTILE = [
    "Tax < 5% & rates > 3 \"quoted\" 'single'",
    ".card-title { color: red !important } a:hover { x: y }",
    "</style><style>body { display: none }</style>",
    "<b>bold</b> &amp; &lt;entity&gt; &#x27; &nbsp;",
    "@media screen { .x { color: red } } /* comment */ }",
    "Ümlaut — “curly” 🗳️ בחירות",
]


def premailer_inline(html: str) -> str:
    """What `inline_css` gave before the inliner: a fresh premailer for each document."""
    return premailer.Premailer(
        html,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        remove_classes=False,
        strip_important=False,
        keep_style_tags=False,
    ).transform(pretty_print=False)


class Recording:
    """The composer's inliner, noting each document it was given and what it gave back."""

    def __init__(self, inliner: Inliner) -> None:
        self.inliner = inliner
        self.seen: list[tuple[str, str]] = []

    def inline(self, html: str) -> str:
        inlined = self.inliner.inline(html)
        self.seen.append((html, inlined))
        return inlined


def card(n: int, title: str, image: bool, **changes: object) -> Card:
    made = Card(
        url=f'https://news.example/{n}?a=1&b="2"',
        title=title,
        author=None if n % 3 == 0 else f"Writer <{n}> & Co",
        published="23 November 2026",
        excerpt="" if n % 4 == 0 else f"An excerpt with {title} in it " * (n % 5 + 1),
        image_url=f'https://img.example/{n}.jpg?w=600&h="1"' if image else None,
        category=None if n % 5 == 0 else f"Section {n % 3}",
        comments=n % 4 or None,
        note=None if n % 2 else "Machine translation",
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def views(settings: Settings) -> list[DigestView]:
    """Digests as an editor's week makes them: few or many cards, images or none, in English and
    German, a reader of some sections or all, trending with or without images, an override."""
    made = []
    for index in range(12):
        language = ("en", "de", "fr")[index % 3]
        images = index % 2 == 0
        newsletter = settings.newsletter("weekly").model_copy(update={"trending_images": index % 4 != 1})
        titles = [HOSTILE[(index + k) % len(HOSTILE)] for k in range(index % 5 + 1)]
        trending = [card(k, t, images) for k, t in enumerate(titles[:2])] if index % 3 != 2 else []
        sections = [
            (
                i18n.Name(f"Politics {index}", "en" if language == "de" else None),
                [
                    card(10 + k, t, images and k % 2 == 0, language="en" if k % 2 else None)
                    for k, t in enumerate(titles)
                ],
            ),
        ]
        if index % 2:
            sections.append(
                (i18n.Name("Health & <Care>"), [card(20 + k, t, not images) for k, t in enumerate(titles)])
            )
        made.append(
            DigestView(
                newsletter=newsletter,
                site=settings.site,
                language=language,
                edition_label="23 November 2026",
                trending=trending,
                sections=sections,
                category_names=[] if index % 4 == 0 else [name for name, _cards in sections],
                subject=HOSTILE[index % len(HOSTILE)] if index % 5 == 0 else None,
                preheader="Pre & <header>" if index % 6 == 0 else None,
                archive_url=None if index % 2 else 'https://news.example/archive/1?lang=de&x="y"',
                feed_url=None if index % 3 else "https://news.example/feed.atom",
            )
        )
    return made


def test_composed_digests_are_inlined_as_premailer_inlined_them() -> None:
    settings = Settings()
    composer = Composer(settings.templates_path())
    recording = Recording(composer.inliner)
    composer.inliner = recording  # type: ignore[assignment]
    for view in views(settings) * 2:  # the second round on warm caches
        composer.compose(view)
    assert len(recording.seen) == 24
    assert len({html for html, _inlined in recording.seen}) >= 12  # distinct documents
    for html, inlined in recording.seen:
        assert inlined == premailer_inline(html)
        assert 'style="' in inlined and "@media" in inlined  # inlined, the media queries kept


EDITOR_CSS = """
body { margin: 0; color: #123; }
* { box-sizing: border-box; }
a { color: blue; text-decoration: underline; }
a:hover { color: red; }
td:first-child { padding-left: 2px; }
img { float: right; width: 100px; height: 50px; }
.card-image img { float: left !important; }
.card { background-color: #abc; text-align: center; vertical-align: top; padding: 4px !important; }
.card-title { color: unset; font-weight: bold; }
#masthead, .masthead > a { margin: 0 auto; }
@media screen and (max-width: 600px) { .card { padding: 0 !important; } }
@font-face { font-family: X; src: url(x.woff); }
"""


@pytest.mark.parametrize("doctype", ["<!DOCTYPE html>\n", ""])
def test_an_editors_stylesheet_is_inlined_as_premailer_inlined_it(doctype: str) -> None:
    """Pseudo-classes, !important, 'unset', floated images (aligned), a star, ids, media and
    font-face rules, an ignored block, inline styles already there, with and without a doctype."""
    body = """
<div id="masthead" class="masthead"><a href="/">Home & <em>more</em></a></div>
<table><tr><td class="card" style="color: green; width: 10px">
  <div class="card-image"><img src="a.jpg" style="border: 1px solid red"></div>
  <img src="b.jpg"><a class="card-title" href="x?a=1&amp;b=2">{title}</a>
</td><td>second</td></tr></table>
"""
    inliner = Inliner()
    for title in HOSTILE:
        html = (
            f"{doctype}<html><head><style>{EDITOR_CSS}</style>"
            '<style data-premailer="ignore">.x { color: red }</style>'
            '<style media="print">.card { color: black }</style></head>'
            f"<body>{body.replace('{title}', title)}</body></html>"
        )
        assert inliner.inline(html) == premailer_inline(html)


def test_each_stylesheet_keeps_its_own_rules() -> None:
    """One inliner over documents with other stylesheets, in turn: each gets its own rules."""
    inliner = Inliner()
    documents = [
        (
            n,
            f"<html><head><style>.card {{ letter-spacing: {n}px; }} {EDITOR_CSS if n % 2 else ''}</style>"
            f'</head><body><div class="card">{n}</div><img src="x.jpg"></body></html>',
        )
        for n in range(1, 5)
    ]
    for n, html in documents * 2:
        inlined = inliner.inline(html)
        assert inlined == premailer_inline(html)
        assert f"letter-spacing:{n}px" in inlined
