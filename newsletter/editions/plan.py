"""Choosing a digest's articles for one kind of reader, with a reason for every choice. Pure.

Order of business: editor exclusions, then what the reader already got, then the window;
what is left fills a Trending block (top K by score, and never more than half of what is left,
so a thin week still has its sections), then one section per chosen category, newest first,
pinned articles first, at most N per section, no article twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from newsletter.editions.ranking import Score
from newsletter.editions.slots import wall_clock


@dataclass(frozen=True)
class Candidate:
    """An original article that could go in the edition."""

    id: int
    title: str
    published_at: datetime
    categories: frozenset[str]


@dataclass(frozen=True)
class Rules:
    """What the edition allows, the same for every reader of it."""

    window_start: datetime
    window_end: datetime
    per_category: int
    trending: int
    pinned: frozenset[int] = frozenset()
    excluded: frozenset[int] = frozenset()
    zone: tzinfo = UTC  # the site's: how reasons show times
    # Where an editor put a pinned article among the pins (lowest first); unranked pins follow, newest first.
    pin_rank: Mapping[int, int] = field(default_factory=dict)

    def local(self, moment: datetime) -> str:
        """A time as reasons print it: in the site's zone, with the zone's name."""
        return wall_clock(moment, self.zone)


@dataclass(frozen=True)
class Decision:
    article_id: int
    title: str
    kept: bool
    reason: str


@dataclass
class Plan:
    chosen: tuple[str, ...] = ()  # the reader's sections, in site order
    trending: list[int] = field(default_factory=list)
    sections: list[tuple[str, list[int]]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    @property
    def article_ids(self) -> list[int]:
        return self.trending + [i for _slug, ids in self.sections for i in ids]

    @property
    def empty(self) -> bool:
        return not self.article_ids

    def key(self) -> tuple[object, ...]:
        """Two readers whose plans share this key get the same digest."""
        return self.chosen, tuple(self.trending), tuple((slug, tuple(ids)) for slug, ids in self.sections)


def plan_digest(
    candidates: Sequence[Candidate],
    scores: Mapping[int, Score],
    categories: Sequence[str],
    received: frozenset[int],
    rules: Rules,
    names: Mapping[str, str],
) -> Plan:
    """The digest for a reader of `categories` (slugs, in section order) who already got `received`."""
    plan = Plan(chosen=tuple(categories))
    wanted = set(categories)
    reasons: dict[int, str] = {}
    eligible: list[Candidate] = []
    newest_first = sorted(candidates, key=lambda c: (c.published_at, c.id), reverse=True)
    mine = [c for c in newest_first if c.categories & wanted]
    for c in mine:
        if c.id in rules.excluded:
            reasons[c.id] = "excluded by an editor"
        elif c.id in received:
            reasons[c.id] = "already sent in an earlier edition"
        elif c.id not in rules.pinned and not (rules.window_start <= c.published_at < rules.window_end):
            reasons[c.id] = (
                f"outside the window (published {rules.local(c.published_at)}; window "
                f"{rules.local(rules.window_start)} to {rules.local(rules.window_end)})"
            )
        else:
            eligible.append(c)
    placed: dict[int, str] = {}
    # A pinned article goes at the head of its section, where the editor put it, never to Trending.
    by_score = sorted(
        (c for c in eligible if c.id not in rules.pinned),
        key=lambda c: (-scores[c.id].total, -c.published_at.timestamp()),
    )
    for position, c in enumerate(by_score[: min(rules.trending, len(eligible) // 2)], start=1):
        plan.trending.append(c.id)
        placed[c.id] = f"Trending #{position} (score {scores[c.id].total:.2f})"
    for slug in categories:
        pool = [c for c in eligible if slug in c.categories and c.id not in placed]
        pool.sort(key=lambda c: _pin_order(c.id, rules))  # stable: pins in the editor's order, then newest
        taken = [c for c in pool if c.id in rules.pinned]
        taken += [c for c in pool if c.id not in rules.pinned][: max(rules.per_category - len(taken), 0)]
        for c in pool:
            if c in taken:
                placed[c.id] = f"in {names.get(slug, slug)}" + (" (pinned)" if c.id in rules.pinned else "")
            else:
                reasons.setdefault(c.id, f"over the cap of {rules.per_category} in {names.get(slug, slug)}")
        if taken:
            plan.sections.append((slug, [c.id for c in taken]))
    for c in mine:
        if c.id in placed:
            plan.decisions.append(Decision(c.id, c.title, True, placed[c.id]))
        else:
            plan.decisions.append(Decision(c.id, c.title, False, reasons[c.id]))
    return plan


def _pin_order(article_id: int, rules: Rules) -> tuple[int, int]:
    """Pins first (those an editor ordered, in that order), then the rest."""
    if article_id not in rules.pinned:
        return (2, 0)
    rank = rules.pin_rank.get(article_id)
    return (0, rank) if rank is not None else (1, 0)
