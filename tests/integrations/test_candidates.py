"""The tips surface's candidates: the frequency cap and its fallback, and the subset drawn by
the event id (the same for the same id, every subset equally likely)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import combinations

from scipy.stats import chisquare

from integrations.catalog import load_catalog, time_of_day
from integrations.context import TODO_CATEGORY, TipSource, _subset
from integrations.profiles import Profile

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)  # morning in UTC


def test_the_same_event_id_draws_the_same_subset_in_catalog_order() -> None:
    tips = [f"t{i:03d}" for i in range(150)]
    first = _subset(tips, 30, "0190f3a2-0000-7000-8000-000000000001")
    assert first == _subset(tips, 30, "0190f3a2-0000-7000-8000-000000000001")
    assert len(first) == len(set(first)) == 30
    assert first == sorted(first)  # the catalog's order is kept
    assert first != _subset(tips, 30, "0190f3a2-0000-7000-8000-000000000002")
    assert _subset(tips[:12], 30, "any") == tips[:12]


def test_every_subset_is_equally_likely() -> None:
    """Five tips, two drawn, over 50,000 event ids: each of the ten pairs about 5,000 times.
    The event ids are fixed, so the statistic is the same on every run."""
    tips = list("abcde")
    drawn = Counter(tuple(_subset(tips, 2, f"event-{i}")) for i in range(50_000))
    pairs = list(combinations(tips, 2))
    assert set(drawn) == set(pairs)
    assert chisquare([drawn[pair] for pair in pairs]).pvalue > 0.001
    # and each tip of a larger catalog is drawn as often as any other
    tips = [f"t{i}" for i in range(40)]
    seen = Counter(tip for i in range(20_000) for tip in _subset(tips, 10, f"id-{i}"))
    assert chisquare([seen[tip] for tip in tips]).pvalue > 0.001


def test_tips_shown_recently_are_left_out_until_too_few_are_left() -> None:
    source = TipSource(load_catalog(), max_candidates=500, min_candidates=5)
    profile = Profile("p")
    suited = [t.id for t in load_catalog().suited(time_of_day(NOW.hour), ["advice", "todo"])]
    everyone = source.candidates(profile, NOW, {}, "e1")
    assert [a.id for a in everyone.actions] == suited

    recent = {suited[0]: NOW - timedelta(hours=1), "not-a-suited-tip": NOW}
    assert [a.id for a in source.candidates(profile, NOW, recent, "e2").actions] == suited[1:]

    # Every suited tip shown recently: the five shown longest ago come back, oldest first.
    all_recent = {tip: NOW - timedelta(minutes=i) for i, tip in enumerate(suited)}
    fallback = source.candidates(profile, NOW, all_recent, "e3")
    assert [a.id for a in fallback.actions] == sorted(suited, key=lambda t: all_recent[t])[:5]
    # ... and the fallback changed nothing the next request sees
    assert [a.id for a in source.candidates(profile, NOW, {}, "e4").actions] == suited


def test_a_candidates_category_is_its_tips_or_the_todos() -> None:
    catalog = load_catalog()
    source = TipSource(catalog)
    tip = catalog.tips[0]
    assert source.category(tip.id) == tip.category
    assert source.category("todoist-12345") == TODO_CATEGORY
