"""The footer reads well whatever a newsletter is called."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from newsletter.editions.compose import Card, Composer, DigestView
from newsletter.settings import NewsletterSettings, SiteSettings
from tests.conftest import ROOT


class Paragraphs(HTMLParser):
    """The text of each <p>, tags dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p":
            self.depth += 1
            self.found.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.found[-1] += data


def footer_lines(title: str) -> tuple[str, str]:
    """The sentence saying why the reader gets this, in the HTML and in the text part."""
    card = Card("https://x.example/a", "A title", None, "22 Nov 2026", "", None, "Health", None, None)
    view = DigestView(
        NewsletterSettings(title=title),
        SiteSettings(name="Riverside Gazette"),
        "en",
        "22 November 2026",
        [],
        [("Health", [card])],
        ["Health", "Politics"],
    )
    composed = Composer(ROOT / "templates").compose(view)
    parser = Paragraphs()
    parser.feed(composed.html)
    html = next(" ".join(p.split()) for p in parser.found if "because you subscribed" in p)
    text = next(line for line in composed.text.splitlines() if "because you subscribed" in line)
    return html, text


@pytest.mark.parametrize(
    "title", ["The Riverside Week", "Weekly digest", "THE DAILY BRIEFING", "Riverside AM"]
)
def test_the_footer_names_the_newsletter_as_titled(title) -> None:
    for line in footer_lines(title):
        assert f"“{title}”" in line and "Riverside Gazette" in line
        assert not re.search(r"\b(\w+) \1\b", line, re.IGNORECASE), line
        assert line.endswith("because you subscribed to Health, Politics.")
