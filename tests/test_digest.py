"""Choosing a reader's articles and drawing their digest: pure, on fixed data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsletter.editions import checks
from newsletter.editions.checks import Copy
from newsletter.editions.compose import Card, Composer, DigestView
from newsletter.editions.plan import Candidate, Rules, plan_digest
from newsletter.editions.ranking import Signals, rank
from newsletter.settings import NewsletterSettings, RankingSettings, SiteSettings
from tests.conftest import ROOT

END = datetime(2026, 11, 23, 6, tzinfo=UTC)
START = END - timedelta(days=7)
NAMES = {"politics": "Politics", "health": "Health", "europe": "Europe"}


def make(
    n: int, cats: tuple[str, ...], days_ago: float, trending: int | None = None
) -> tuple[Candidate, Signals]:
    when = END - timedelta(days=days_ago)
    return Candidate(n, f"Article {n}", when, frozenset(cats)), Signals(n, when, trending_rank=trending)


POOL = [
    make(1, ("politics",), 1, trending=1),
    make(2, ("politics",), 2),
    make(3, ("politics",), 3),
    make(4, ("politics", "europe"), 4),
    make(5, ("health",), 1),
    make(6, ("health",), 2),
    make(7, ("europe",), 5),
    make(8, ("politics",), 9),  # before the window
    make(9, ("health",), 3),
]
CANDIDATES = [c for c, _s in POOL]
SCORES = {s.article_id: s for s in rank([s for _c, s in POOL], RankingSettings(), END)}


def plan(categories, received=frozenset(), **rules):
    values = {"window_start": START, "window_end": END, "per_category": 2, "trending": 2} | rules
    return plan_digest(CANDIDATES, SCORES, categories, received, Rules(**values), NAMES)


def test_sections_hold_only_their_category_and_no_article_twice() -> None:
    result = plan(["politics", "health"], trending=0)
    sections = dict(result.sections)
    assert set(sections) == {"politics", "health"}
    by_id = {c.id: c for c in CANDIDATES}
    for slug, ids in result.sections:
        assert all(slug in by_id[i].categories for i in ids)
    assert len(result.article_ids) == len(set(result.article_ids))
    assert sections["politics"] == [1, 2]  # newest first, capped at 2
    with_trending = plan(["politics", "health"])
    assert with_trending.trending and not set(with_trending.trending) & {
        i for _s, ids in with_trending.sections for i in ids
    }


def test_every_dropped_article_has_its_reason() -> None:
    result = plan(["politics", "europe"], received=frozenset({2}), excluded=frozenset({3}), trending=0)
    reasons = {d.article_id: d.reason for d in result.decisions if not d.kept}
    assert reasons[2] == "already sent in an earlier edition"
    assert reasons[3] == "excluded by an editor"
    assert reasons[8].startswith("outside the window")
    assert "over the cap of 2" in reasons.get(7, "") or 7 in result.article_ids
    kept = {d.article_id for d in result.decisions if d.kept}
    assert kept == set(result.article_ids)
    assert 5 not in {d.article_id for d in result.decisions}  # health is not this reader's


def test_cap_reason_names_the_section() -> None:
    result = plan(["politics"], per_category=1, trending=0)
    reasons = {d.article_id: d.reason for d in result.decisions if not d.kept}
    assert reasons[2] == "over the cap of 1 in Politics"


def test_pinned_articles_come_first_even_from_before_the_window() -> None:
    result = plan(["politics"], pinned=frozenset({8}), trending=0)
    assert dict(result.sections)["politics"][0] == 8
    assert "(pinned)" in next(d.reason for d in result.decisions if d.article_id == 8)


def test_trending_takes_the_top_scores_but_never_more_than_half() -> None:
    result = plan(["politics", "health", "europe"], trending=5, per_category=5)
    eligible = 8  # all but article 8, which is outside the window
    assert len(result.trending) == eligible // 2
    assert result.trending[0] == 1  # first in the site's Trending list


def test_nothing_new_is_an_empty_plan() -> None:
    result = plan(["health"], received=frozenset({5, 6, 9}))
    assert result.empty and all(not d.kept for d in result.decisions)


def test_a_trending_item_carries_its_image_unless_the_newsletter_says_not() -> None:
    """An article goes to Trending instead of its section, so its image shows there or nowhere:
    `trending_images` (on by default) decides; the sections' cards always carry theirs."""
    trending = Card(
        "https://x.example/t",
        "Top story",
        None,
        "22 Nov 2026",
        "",
        "https://x.example/t.jpg",
        "Health",
        3,
        None,
    )
    other = Card(
        "https://x.example/h",
        "Health story",
        None,
        "21 Nov 2026",
        "",
        "https://x.example/h.jpg",
        "Health",
        None,
        None,
    )

    def html(newsletter: NewsletterSettings) -> str:
        view = DigestView(
            newsletter,
            SiteSettings(),
            "en",
            "22 November 2026",
            [trending],
            [("Health", [other])],
            ["Health"],
        )
        return Composer(ROOT / "templates").compose(view).html

    shown = html(NewsletterSettings())
    assert NewsletterSettings().trending_images
    assert 'src="https://x.example/t.jpg"' in shown and 'src="https://x.example/h.jpg"' in shown
    compact = html(NewsletterSettings(trending_images=False))
    assert 'src="https://x.example/t.jpg"' not in compact and 'src="https://x.example/h.jpg"' in compact
    assert checks.images([Copy("en", shown, {})]).summary.startswith("2 images")


def test_check_says_when_an_edition_carries_no_image_at_all() -> None:
    bare = '<table><tr><td><a href="https://x.example/t">Top story</a></td></tr></table>'
    found = checks.images([Copy("en: Health", bare, {}), Copy("de: Health", bare, {})], pictured=2)
    assert (
        found.status == "pass" and found.summary == "no image at all: no variant of this edition carries one"
    )
    assert found.details == [
        "2 of its articles have an image, and no variant shows one (Trending items show none while "
        "the newsletter's trending_images is off)"
    ]
    assert checks.images([Copy("en", bare, {})]).details == []
