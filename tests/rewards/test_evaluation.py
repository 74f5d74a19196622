"""Counterfactual evaluation over a seeded synthetic log with known truth, in a real store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import vowpalwabbit

from api.evaluation_wire import evaluation_of, evaluation_result, stored_evaluation
from bandit.store import Store
from policies.registry import Registry
from policies.spec import PolicySpec
from rewards.estimators import Interval
from rewards.ope.errors import EvaluationCancelled, EvaluationError
from rewards.ope.logged import Batch, LoggedEvent
from rewards.ope.results import EstimatorResult, Evaluation, Verdict, verdict
from rewards.ope.reward_models import ActionMean
from rewards.ope.runs import evaluate, run
from rewards.ope.targets import Baseline, Online, Replay, Target, Uniform, resolve
from tests.rewards.synthetic import START, events, truth, write_log
from tests.schema import migrated

LEARNER = PolicySpec("greedy-learner", "vw", "--cb_explore_adf --epsilon 0.05 -q ::")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.connect(migrated(f"sqlite:///{tmp_path / 'log.sqlite3'}"), pool_size=2)
    yield store
    store.engine.dispose()


@pytest.fixture(scope="module")
def uniform_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, list[float]]]:
    path = tmp_path_factory.mktemp("uniform") / "log.sqlite3"
    store = Store.connect(migrated(f"sqlite:///{path}"), pool_size=2)
    rewards = write_log(store, 3000, seed=11)
    yield store, rewards
    store.engine.dispose()


@pytest.fixture(scope="module")
def result(uniform_log: tuple[Store, list[float]]) -> Evaluation:
    store, _ = uniform_log
    registry = Registry([*Registry(), LEARNER])
    targets = resolve(["baseline", "random", LEARNER.name], registry)
    return evaluate(store, targets, surface="personalizer", batch=500)


@pytest.mark.parametrize("epsilon", [1.0, 0.5])
def test_baseline_and_random_estimates_cover_their_true_values(epsilon: float) -> None:
    world = truth(epsilon)
    replications = 60
    covered: dict[tuple[str, str, str], int] = {}
    for seed in range(replications):
        log = events(400, seed=seed, epsilon=epsilon)
        targets: list[Target] = [
            Online(),
            Baseline(),
            Uniform(),
        ]
        result = run(
            [log[:200], log[200:]],
            targets,
            total=len(log),
            reward_range=(0.0, 1.0),
            max_weight=3.0 / epsilon,
        )
        values = {"online": world.logging, "baseline": world.baseline, "random": world.random}
        for name, value in values.items():
            for e in result.policy(name).estimates:
                for kind, interval in (("gaussian", e.gaussian), (e.second_method, e.second)):
                    key = (name, e.estimator, kind)
                    covered[key] = covered.get(key, 0) + (value in interval)
    short = {k: v / replications for k, v in covered.items() if v / replications < 0.88}
    assert not short, short


def test_online_ips_is_the_mean_logged_reward(
    uniform_log: tuple[Store, list[float]], result: Evaluation
) -> None:
    _, rewards = uniform_log
    online = result.policy("online")
    assert result.n == len(rewards) == 3000
    assert online.estimate("ips").value == pytest.approx(np.mean(rewards), abs=1e-12)
    assert online.estimate("snips").value == pytest.approx(np.mean(rewards), abs=1e-12)
    weights = online.diagnostics.weights
    assert (weights.min, weights.max, weights.ess) == (1.0, 1.0, pytest.approx(3000.0))
    assert online.verdict.recommended is None


def test_a_learning_candidate_is_recommended_over_a_uniform_online_log(
    result: Evaluation,
) -> None:
    learner = result.policy(LEARNER.name)
    assert learner.kind == "vw"
    assert learner.verdict.recommended is True, learner.verdict.reason
    assert learner.estimate("ips").value > truth().random + 0.2
    assert result.policy("random").verdict.recommended is False
    assert result.recommended[0] == LEARNER.name
    assert 0.0 < learner.diagnostics.weights.ess < result.n
    assert learner.diagnostics.low_overlap_share == 0.0


def test_the_result_is_json_ready(result: Evaluation) -> None:
    body = evaluation_result(result)
    assert [p["name"] for p in body["policies"]] == ["online", "baseline", "random", LEARNER.name]
    first = body["policies"][1]["estimates"]
    assert [e["estimator"] for e in first] == ["ips", "snips", "dr"]
    assert [i["method"] for i in first[0]["intervals"]] == ["gaussian", "cressie_read"]
    assert [i["method"] for i in first[2]["intervals"]] == ["gaussian", "bernstein"]
    assert set(body["policies"][1]["diagnostics"]) >= {"ess", "min_weight", "low_overlap_share"}


def test_the_verdict_needs_both_a_better_mean_and_a_higher_lower_bound() -> None:
    online = EstimatorResult("ips", 0.5, Interval(0.45, 0.55), Interval(0.4, 0.6), "cressie_read")

    def candidate(value: float, low: float) -> Verdict:
        mine = EstimatorResult("ips", value, Interval(low, 0.9), Interval(low, 0.9), "x")
        return verdict(mine, online)

    assert candidate(0.6, 0.5).recommended is True
    assert candidate(0.6, 0.4).recommended is False  # wider interval: lower bound below
    assert candidate(0.49, 0.46).recommended is False  # lower bound above, mean not
    assert "lower bound" in candidate(0.6, 0.4).reason


def _event(i: int, chosen: int, reward: float) -> LoggedEvent:
    return LoggedEvent(
        event_id=f"e{i}",
        created_at=None,
        pmf=(0.5, 0.5),
        chosen_index=chosen,
        reward=reward,
        example=("shared |u x", "|a first", "|a second"),
    )


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_replay_predicts_every_event_before_learning_it(batch: int) -> None:
    # The same context every time and a strong reward on the second candidate: a model that
    # had seen event i would already prefer "second" at event i.
    events = [_event(i, 1, 1.0) for i in range(5)]
    args = "--cb_explore_adf --epsilon 0.1"
    replay = Replay("r", args)
    got = np.vstack(
        [replay.pmfs(Batch.of(events[i : i + batch])) for i in range(0, len(events), batch)]
    )
    replay.close()
    for i in range(len(events)):
        before = vowpalwabbit.Workspace(f"{args} --quiet")
        for seen in events[:i]:
            before.learn(seen.labeled())
        expected = np.asarray(before.predict(list(events[i].example)), dtype=np.float64)
        before.learn(events[i].labeled())
        after = np.asarray(before.predict(list(events[i].example)), dtype=np.float64)
        before.finish()
        np.testing.assert_allclose(got[i], expected / expected.sum(), atol=1e-6)
        if i == 0:
            # The untrained model ties; after one event it prefers the rewarded candidate.
            assert not np.allclose(got[i], after / after.sum())


def test_the_reward_model_predicts_before_it_learns() -> None:
    events = [_event(0, 1, 1.0), _event(1, 1, 1.0), _event(2, 0, 0.0)]
    r_hat = ActionMean().predict_learn(Batch.of(events))
    np.testing.assert_allclose(r_hat[0], [0.0, 0.0])  # nothing seen yet
    np.testing.assert_allclose(r_hat[1], [1.0, 1.0])  # "second" seen once; "first" the mean
    np.testing.assert_allclose(r_hat[2], [1.0, 1.0])


def test_cancellation_stops_between_batches(store: Store) -> None:
    write_log(store, 400, seed=3)
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 100:
            cancel.set()

    targets = resolve(["random", "vw-epsilon"], Registry())
    with pytest.raises(EvaluationCancelled, match="after 100 of 400") as caught:
        evaluate(store, targets, batch=100, on_progress=progress, cancel=cancel)
    assert caught.value.done == 100
    assert seen == [(0, 400), (100, 400)]


def test_the_time_range_and_surface_select_the_events(store: Store) -> None:
    write_log(store, 50, seed=1)
    write_log(store, 30, seed=2, surface="tips", model_key="tips:synthetic", seq=2_000_000)
    write_log(store, 20, seed=4, learned=False, seq=3_000_000)  # not learned: never evaluated
    targets = resolve([], Registry())
    assert evaluate(store, targets, surface="personalizer").n == 50
    targets = resolve([], Registry())
    assert evaluate(store, targets, surface="tips").n == 30
    targets = resolve([], Registry())
    window = evaluate(
        store,
        targets,
        surface="personalizer",
        start=START + timedelta(seconds=10),
        end=START + timedelta(seconds=20),
        batch=3,
    )
    assert window.n == 10


def test_the_dr_vw_reward_model_runs(store: Store) -> None:
    write_log(store, 200, seed=5)
    targets = resolve(["baseline"], Registry())
    result = evaluate(store, targets, reward_model_name="vw")
    dr = result.policy("baseline").estimate("dr")
    assert 0.0 <= dr.value <= 1.0
    assert result.reward_model == "vw"


def test_bad_requests_name_the_argument(store: Store) -> None:
    registry = Registry()
    with pytest.raises(EvaluationError, match="unknown policy 'nope'"):
        resolve(["nope"], registry)
    with pytest.raises(EvaluationError, match="'most-urgent-todo' is a rule policy"):
        resolve(["most-urgent-todo"], registry)
    with pytest.raises(EvaluationError, match="names 'baseline' twice"):
        resolve(["baseline", "baseline"], registry)
    with pytest.raises(EvaluationError, match="`start`") as caught:
        evaluate(store, [Online()], start=START, end=START)
    assert caught.value.target == "start"


def test_an_empty_range_gives_nan_estimates(store: Store) -> None:
    result = evaluate(store, resolve(["baseline"], Registry()))
    assert result.n == 0
    assert evaluation_result(result)["policies"][0]["estimates"][0]["value"] is None


def test_a_stored_result_rebuilds_the_run(result: Evaluation) -> None:
    # What any api process reads back from the jobs table (JSON through the database).
    stored = json.loads(json.dumps(stored_evaluation(result)))
    assert evaluation_of(stored) == result
