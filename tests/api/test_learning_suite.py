"""The learning suite's worlds and figures, and the exploration default it chose (ADR 0011).

The full suite runs in `make bench` (`bench/bench_learning.py`); here, the worlds' truths, the
ceiling arithmetic by hand, and one small seeded run of each default through the server.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.simulate import RouteLoop, Trace, run
from api.simulate.suite import (
    MEDIAN,
    OLD_DEFAULT,
    TUNING,
    Candidate,
    Result,
    Spread,
    configure,
    embedded_app,
    logistic,
    medians,
    model_loop,
    settle_on,
    squarecb,
    summarize,
)
from api.simulate.worlds import SUITE, TIPS6, WORLDS, Feature, World, WorldSpec, expected
from bandit.events import Action
from bandit.surface_config import DEFAULT_EXPLORATION
from policies import serving
from policies.registry import DEFAULT_POLICY, Registry
from tests.policies.test_serving import Fixed

ACTIONS = [Action("a"), Action("b"), Action("c")]


def _sample(spec: WorldSpec, n: int = 2000, seed: int = 1) -> tuple[World, np.ndarray]:
    world = World(spec, seed)
    truth = np.array([world.probabilities(world.context(), 0) for _ in range(n)])
    return world, truth


def test_a_world_is_reproducible_and_its_best_action_depends_on_the_context() -> None:
    a, b = World(TIPS6, 3), World(TIPS6, 3)
    contexts = [a.context() for _ in range(50)]
    assert contexts == [b.context() for _ in range(50)]
    assert all(np.array_equal(a.probabilities(c), b.probabilities(c)) for c in contexts)
    for spec in SUITE:
        _, truth = _sample(spec, 500)
        assert len(np.unique(truth.argmax(axis=1))) > 1, spec.name  # no single best action


def test_the_suite_spans_what_a_default_must_cope_with() -> None:
    sizes = [len(spec.actions) for spec in SUITE]
    assert min(sizes) == 2 and max(sizes) == 50
    assert max(len(spec.features) for spec in SUITE) >= 16
    _, sparse = _sample(WORLDS["sparse"])
    assert 0.005 < sparse.mean() < 0.02  # clicks around 1%, like real click logs
    assert WORLDS["delayed"].delay > 0 and WORLDS["drift"].drift > 0


def test_drift_moves_the_best_action() -> None:
    world = World(WORLDS["drift"], 0)
    contexts = [world.context() for _ in range(200)]
    end = WORLDS["drift"].decisions
    moved = [
        world.probabilities(c, 0).argmax() != world.probabilities(c, end).argmax() for c in contexts
    ]
    assert 0.3 < np.mean(moved) < 1.0


def test_context_features_follow_personalizers_shape() -> None:
    world = World(WORLDS["catalog30"], 0)
    features = world.features(world.context())
    assert [list(f) for f in features] == [["user"]]
    assert len(features[0]["user"]) == 6  # type: ignore[arg-type]
    assert world.actions[7] == {
        "id": "tip7",
        "features": [{"item": {"id": "tip7", "category": "cat1"}}],
    }


def test_a_uniform_share_caps_even_a_perfect_policy_at_one_minus_the_share() -> None:
    """The ceiling, by hand: on a world of two contexts and three actions, the oracle's pmf
    re-mixed with a uniform share delta earns (1 - delta) best + delta mean, so it captures
    exactly 1 - delta of the lift over random, whether the share is epsilon-greedy's or a
    floor under an adaptive explorer."""
    truth = [np.array([0.1, 0.5, 0.3]), np.array([0.6, 0.2, 0.1])]
    # oracle 0.5 + 0.6 = 1.1, random 0.3 + 0.3 = 0.6: a lift of 0.5 to capture.
    for delta, by_hand in ((0.2, [0.46, 0.54]), (0.05, [0.49, 0.585]), (0.02, [0.496, 0.594])):
        for shape in (serving.Explore, serving.Floor):
            trace = Trace()
            for probabilities, earned in zip(truth, by_hand, strict=True):
                perfect = Fixed([1.0 if p == probabilities.max() else 0.0 for p in probabilities])
                pmf = shape(perfect, delta).pmf([], ACTIONS, ["|x a", "|x b", "|x c"])
                exact = expected(pmf, probabilities)
                assert exact.policy == pytest.approx(earned)
                trace.policy.append(exact.policy)
                trace.random.append(exact.random)
                trace.oracle.append(exact.oracle)
            assert trace.share() == pytest.approx(1.0 - delta)


def test_the_default_is_the_tuning_grids_choice_and_the_untuned_squarecb_stays() -> None:
    """The default a new surface serves is one candidate of the grid it was tuned on (arguments
    and floor), so the suite's tables describe what ships; `vw-squarecb` keeps VW's defaults,
    so a deployment that chose it by name keeps serving the model it learned."""
    registry = Registry()
    default = registry.get(DEFAULT_POLICY)
    chosen = [
        c for c in TUNING if (c.arguments, c.exploration) == (default.args, DEFAULT_EXPLORATION)
    ]
    assert len(chosen) == 1, "the default must be a candidate of TUNING"
    assert not serving.is_epsilon_greedy(default.args)  # so the floor applies, >= delta / K
    assert 0.02 <= DEFAULT_EXPLORATION <= 0.05
    assert (
        registry.get("vw-squarecb").args
        == squarecb(0.05).arguments
        == ("--cb_explore_adf --squarecb --cb_type mtr -q ::")
    )


SMALL = WorldSpec(
    name="small",
    description="3 actions, 2 context features: a cold start measured in seconds",
    actions=("a", "b", "c"),
    features=(
        Feature("user", "group", ("g0", "g1", "g2")),
        Feature("clock", "part", ("morning", "evening")),
    ),
    relevant=2,
    offset=0.0,
    spread=2.0,
    decisions=150,
)


def _cold_start(tmp_path: Path, candidate: Candidate | None, seed: int) -> tuple[Trace, list[Any]]:
    """The small world's first decisions through the rank and reward routes of a started app
    (`RouteLoop`: the ASGI client gives the same figures at a few times the cost), with the
    logged decisions."""
    with embedded_app(tmp_path) as client:
        if candidate is not None:
            configure(client, candidate)
        report = run(
            RouteLoop(client.app.state.services),  # type: ignore[attr-defined]
            World(SMALL, seed),
            run_id=f"cold-{seed}",
            settle=settle_on(client),
        )
        store = client.app.state.services.store  # type: ignore[attr-defined]
        logged = [store.get(f"sim-cold-{seed}-{i}").decision for i in range(len(report.trace))]
    return report.trace, logged


def test_the_new_default_learns_faster_from_a_cold_start_and_keeps_its_floor(
    tmp_path: Path,
) -> None:
    """Seeded, through the server: the untouched default of a new surface against the old
    default (epsilon-greedy 0.2), four seeds of a small world. The old default spends a fifth
    of its traffic uniformly; the new one explores where it is unsure. Every probability the
    new default logged stays >= delta / K."""
    new, old = Trace(), Trace()
    for seed in (1, 2, 3, 4):
        fresh, logged = _cold_start(tmp_path / f"new-{seed}", None, seed)
        before, _ = _cold_start(tmp_path / f"old-{seed}", OLD_DEFAULT, seed)
        print(f"seed {seed}: new default {fresh.share():.2f}, old default {before.share():.2f}")
        assert fresh.share() > before.share()

        floor = DEFAULT_EXPLORATION / len(SMALL.actions)
        assert all(d.policy == DEFAULT_POLICY for d in logged)
        assert min(min(d.pmf) for d in logged) >= floor - 1e-12
        assert fresh.propensity == [d.propensity for d in logged]  # logged as drawn
        for pooled, trace in ((new, fresh), (old, before)):
            pooled.policy += trace.policy
            pooled.random += trace.random
            pooled.oracle += trace.oracle
    # 0.69 against 0.55 when this was written
    assert new.share() > old.share() + 0.1


@pytest.mark.parametrize(
    "candidate", [None, OLD_DEFAULT, logistic(30)], ids=["default", "old-default", "logistic"]
)
def test_the_model_path_gives_the_routes_figures(
    tmp_path: Path, candidate: Candidate | None
) -> None:
    """The pilots' path (`ModelLoop`: predict, shape, draw, learn, without the app) is the
    server's decision and learning steps: on the same seed it serves the very pmfs the routes
    serve, decision by decision, so a search over candidates can run on it."""
    routes, _ = _cold_start(tmp_path, candidate, 5)
    loop = model_loop(candidate)
    try:
        report = run(loop, World(SMALL, 5), run_id="cold-5")
    finally:
        loop.close()
    assert report.trace.policy == routes.policy
    assert report.trace.propensity == routes.propensity
    assert report.trace.reward == routes.reward


def test_the_model_path_refuses_a_pmf_the_server_would_refuse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pilot must not score what the routes cannot serve: a pmf that is not a distribution
    (VW's `--squarecb --elim` returns negative probabilities on some examples) stops the run,
    as the decision log stops the route."""
    monkeypatch.setattr(
        "api.simulate._ModelPolicy.pmf", lambda self, context, actions, lines: [-4.0, 5.0]
    )
    loop = model_loop(Candidate("any", "--cb_explore_adf --squarecb --cb_type mtr -q ::", 0.0))
    try:
        with pytest.raises(ValueError, match=r"`pmf\[0\]` must be a probability"):
            run(loop, World(WORLDS["two-actions"], 0), decisions=1, run_id="invalid")
    finally:
        loop.close()


def test_seeds_summarize_into_a_mean_and_an_interval_per_world_and_for_the_median() -> None:
    """By hand: two worlds, three seeds; the median world is each seed's median over worlds
    (with two worlds, their mean), then the mean over seeds with a Student-t interval."""

    def result(world: str, seed: int, late: float) -> Result:
        return Result(world, "c", seed, 0.0, 0.0, late, 0.1, 10.0 * (seed + 1), 1.0)

    lates = {"w1": [0.6, 0.7, 0.8], "w2": [0.8, 0.9, 1.0]}
    results = [result(w, s, late) for w, values in lates.items() for s, late in enumerate(values)]
    per_world = {s.world: s for s in summarize(results)}
    assert per_world["w1"].late.mean == pytest.approx(0.7)
    # t_{0.975, 2} = 4.302653; s = 0.1; half-width = 4.302653 * 0.1 / sqrt(3)
    assert per_world["w1"].late.half_width == pytest.approx(0.248414, abs=1e-6)
    assert per_world["w1"].weight_bound == 30.0
    (median,) = medians(results)
    assert median.world == MEDIAN
    assert median.late.mean == pytest.approx(0.8)  # seeds' medians 0.7, 0.8, 0.9
    assert median.late.half_width == pytest.approx(0.248414, abs=1e-6)
    assert medians(results[:5])[0].late.seeds == 2  # seed 2 lacks w2: left out
    assert math.isnan(Spread.of([0.5]).half_width)
