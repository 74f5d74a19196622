"""Policy search: the grid, the budget, and finding a configuration the log rewards."""

from __future__ import annotations

import itertools

import pytest

from rewards.ope.errors import EvaluationCancelled
from rewards.ope.grid import Budget, Exploration, Grid, SearchError
from rewards.ope.logged import Log
from rewards.ope.search import Progress, search
from tests.rewards.synthetic import events, truth

# Rewards depend on the person's group *and* the candidate: only a model that crosses the
# context namespace with the action namespace can tell each group its favourite.
GRID = Grid(
    explorations=(Exploration("epsilon", 0.05),),
    interactions=((), ("::",)),
    learning_rates=(None,),
    cb_types=("mtr", "ips"),
)


@pytest.fixture(scope="module")
def log() -> Log:
    logged = events(3000, seed=11)
    return Log.of_events(lambda: logged, batch=500)


def test_search_finds_the_configuration_with_interactions(log: Log) -> None:
    result = search(log, GRID, seed=3)

    assert result.stopped == "exhausted"
    assert len(result.trials) == len(GRID) == 4
    assert {t.candidate.args for t in result.trials} == {
        "--cb_explore_adf --epsilon 0.05 --cb_type mtr",
        "--cb_explore_adf --epsilon 0.05 --cb_type ips",
        "--cb_explore_adf --epsilon 0.05 --cb_type mtr -q ::",
        "--cb_explore_adf --epsilon 0.05 --cb_type ips -q ::",
    }
    winner = result.winner
    assert winner is not None and winner.result is not None
    assert winner.candidate.interactions == ("::",)
    assert winner.result.verdict.recommended is True
    # Without interactions a candidate can at best learn the best marginal candidate (0.4);
    # with them, each group's favourite (0.7, less exploration).
    best = winner.result.estimate("ips")
    assert best.gaussian.low > 0.55
    assert result.online is not None
    online = result.online.estimate("ips")
    assert abs(online.value - truth().random) < 3 * (online.gaussian.high - online.value)
    flat = [t for t in result.trials if not t.candidate.interactions]
    for trial in flat:
        assert trial.result is not None
        assert trial.result.estimate("ips").value < best.value
    assert result.ranked[0] is winner is result.leader


def test_the_order_is_seeded_and_the_candidate_budget_is_kept(log: Log) -> None:
    grid = Grid()
    assert [c.args for c in grid.candidates(1)] == [c.args for c in grid.candidates(1)]
    assert [c.args for c in grid.candidates(1)] != [c.args for c in grid.candidates(2)]
    # 4 explorations x 2 interactions x 2 learning rates x 2 cb_types, less squarecb with ips.
    assert len({c.args for c in grid.candidates(0)}) == len(grid) == 28
    assert all(
        c.cb_type == "mtr" for c in grid.candidates(0) if c.exploration.algorithm == "squarecb"
    )

    result = search(log, grid, budget=Budget(max_candidates=2), seed=1)
    assert result.stopped == "max_candidates"
    assert [t.candidate.args for t in result.trials] == [c.args for c in grid.candidates(1)[:2]]


def test_the_seconds_budget_abandons_the_running_candidate(log: Log) -> None:
    # A clock that advances one second per reading: the deadline passes inside the second pass.
    ticks = itertools.count()

    def clock() -> float:
        return float(next(ticks))

    budget = Budget(max_seconds=12)
    result = search(log, GRID, budget=budget, clock=clock)
    assert result.stopped == "max_seconds"
    assert 0 < len(result.trials) < len(GRID)
    assert all(t.result is not None for t in result.trials)


def test_progress_counts_events_over_all_candidates(log: Log) -> None:
    seen: list[Progress] = []
    search(log, GRID, budget=Budget(max_candidates=2), on_progress=seen.append)
    assert seen[0].events_done == 0 and seen[0].events_total == 2 * 3000
    assert seen[-1].candidates_done == 2 and seen[-1].events_done == 6000
    assert all(a.events_done <= b.events_done for a, b in itertools.pairwise(seen))


def test_cancel_stops_the_search(log: Log) -> None:
    class After:
        def __init__(self, n: int) -> None:
            self.n = n

        def is_set(self) -> bool:
            self.n -= 1
            return self.n < 0

    with pytest.raises(EvaluationCancelled):
        search(log, GRID, cancel=After(3))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Exploration.parse("greedy"), "`explorations`: algorithm must be one of"),
        (lambda: Exploration.parse("epsilon=x"), "`explorations`: value of epsilon"),
        (lambda: Exploration("epsilon", 1.5), r"epsilon must be in \[0, 1\]"),
        (lambda: Exploration("bag"), "needs a number of policies"),
        (lambda: Exploration("regcb", 2.0), "takes no value"),
        (lambda: Grid(interactions=(("-f /tmp/x",),)), "`interactions` holds pairs"),
        (lambda: Grid(learning_rates=(0.0,)), r"`learning_rates` must be in \(0, 10\]"),
        (lambda: Grid(cb_types=()), "`cb_types` must hold at least one value"),
        (lambda: Grid(cb_types=("mtr", "mtr")), "`cb_types` holds a value twice"),
        (lambda: Budget(max_candidates=0), "`max_candidates` must be at least 1"),
        (
            lambda: Grid(explorations=(Exploration("squarecb"),), cb_types=("ips",)),
            r"`cb_types` \['ips'\] fit none of the explorations",
        ),
        (lambda: Budget(max_seconds=-1), "`max_seconds` must be positive"),
    ],
)
def test_bad_grids_and_budgets_name_the_field(make: object, match: str) -> None:
    with pytest.raises(SearchError, match=match):
        make()  # type: ignore[operator]


def test_exploration_spellings_become_vw_arguments() -> None:
    assert Exploration.parse("epsilon=0.1").args == "--epsilon 0.1"
    assert Exploration.parse("softmax=10").args == "--softmax --lambda 10"
    assert Exploration.parse("squarecb").args == "--squarecb"
    assert Exploration.parse("bag=4").args == "--bag 4"
    assert str(Exploration.parse("cover=3")) == "cover=3"
