"""What is trending: one score per article from explainable signals. Pure, no I/O.

Each signal adds `weight x strength` to the score, and every part is kept so an editor can
see why an article ranks where it does:

- trending: listed in the site's Trending feed; 1st place has strength 1, Nth place 1/N.
- comments: log(1 + comment count): the first comments matter most.
- clicks: log(1 + clicks from earlier editions), same diminishing returns.
- recency: 0.5 ** (age / half-life): 1 when just published, 0.5 one half-life later.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from newsletter.settings import RankingSettings

SIGNALS = ("trending", "comments", "clicks", "recency")


@dataclass(frozen=True)
class Signals:
    article_id: int
    published_at: datetime
    trending_rank: int | None = None
    comments: int | None = None
    clicks: int = 0


@dataclass(frozen=True)
class Score:
    article_id: int
    total: float
    parts: dict[str, float]
    published_at: datetime

    def shares(self) -> dict[str, float]:
        """Each signal's share of the total, 0..1 (all zero when the total is zero)."""
        if self.total <= 0:
            return dict.fromkeys(self.parts, 0.0)
        return {name: part / self.total for name, part in self.parts.items()}


def score(signals: Signals, weights: RankingSettings, now: datetime) -> Score:
    age_hours = max((now - signals.published_at).total_seconds() / 3600, 0.0)
    parts = {
        "trending": weights.trending_weight / signals.trending_rank
        if signals.trending_rank and signals.trending_rank > 0
        else 0.0,
        "comments": weights.comments_weight * math.log1p(max(signals.comments or 0, 0)),
        "clicks": weights.clicks_weight * math.log1p(max(signals.clicks, 0)),
        "recency": weights.recency_weight * 0.5 ** (age_hours / weights.half_life_hours),
    }
    return Score(signals.article_id, sum(parts.values()), parts, signals.published_at)


def rank(signals: Iterable[Signals], weights: RankingSettings, now: datetime) -> list[Score]:
    """Highest score first; ties go to the newer article, then the lower id (stable output)."""
    scores = [score(s, weights, now) for s in signals]
    return sorted(scores, key=lambda s: (-s.total, -s.published_at.timestamp(), s.article_id))
