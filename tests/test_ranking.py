"""Trending ranking on fixed data: each signal moves the order as its documentation says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.editions.ranking import Signals, rank, score
from newsletter.settings import RankingSettings

NOW = datetime(2026, 11, 23, 7, tzinfo=UTC)
W = RankingSettings()


def order(*signals: Signals, weights: RankingSettings = W) -> list[int]:
    return [s.article_id for s in rank(signals, weights, NOW)]


def at(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def test_equal_signals_rank_the_newer_first() -> None:
    assert order(Signals(1, at(10)), Signals(2, at(5))) == [2, 1]
    assert order(Signals(2, at(5)), Signals(1, at(5))) == [1, 2]  # then the lower id


def test_trending_list_lifts_an_article_and_first_place_counts_most() -> None:
    assert order(Signals(1, at(5)), Signals(2, at(6), trending_rank=3)) == [2, 1]
    assert order(Signals(1, at(5), trending_rank=3), Signals(2, at(5), trending_rank=1)) == [2, 1]
    first = score(Signals(1, at(0), trending_rank=1), W, NOW).parts["trending"]
    third = score(Signals(1, at(0), trending_rank=3), W, NOW).parts["trending"]
    assert first == pytest.approx(W.trending_weight) and third == pytest.approx(W.trending_weight / 3)


def test_comments_lift_with_diminishing_returns() -> None:
    assert order(Signals(1, at(5)), Signals(2, at(6), comments=10)) == [2, 1]
    parts = [score(Signals(1, at(0), comments=c), W, NOW).parts["comments"] for c in (0, 10, 20, 1000)]
    assert parts[0] == 0 and parts[1] < parts[2] < parts[3]
    assert parts[2] - parts[1] < parts[1] - parts[0]  # the first comments matter most


def test_clicks_from_earlier_editions_lift() -> None:
    assert order(Signals(1, at(5)), Signals(2, at(6), clicks=25)) == [2, 1]


def test_recency_halves_every_half_life() -> None:
    fresh = score(Signals(1, at(0)), W, NOW).parts["recency"]
    older = score(Signals(1, at(W.half_life_hours)), W, NOW).parts["recency"]
    oldest = score(Signals(1, at(2 * W.half_life_hours)), W, NOW).parts["recency"]
    assert older == pytest.approx(fresh / 2) and oldest == pytest.approx(fresh / 4)
    # a much older article with the same comments falls behind
    assert order(Signals(1, at(200), comments=5), Signals(2, at(1), comments=5)) == [2, 1]


def test_a_zero_weight_turns_a_signal_off() -> None:
    off = RankingSettings(comments_weight=0)
    assert order(Signals(1, at(5)), Signals(2, at(6), comments=500), weights=off) == [1, 2]


def test_shares_explain_the_whole_score() -> None:
    result = score(Signals(1, at(30), trending_rank=2, comments=7, clicks=3), W, NOW)
    assert sum(result.shares().values()) == pytest.approx(1.0)
    assert result.total == pytest.approx(sum(result.parts.values()))
    assert set(result.parts) == {"trending", "comments", "clicks", "recency"}
