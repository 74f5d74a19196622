import math
import random
from pathlib import Path

import pytest
import vowpalwabbit

from bandit.costs import Costs
from bandit.features import adf_example
from bandit.model import LearnExample, Model, ModelError
from bandit.vw_args import parse
from policies.registry import BUILTIN

ARGS = "--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::"
CONTEXT = [{"u": {"mood": "low"}}]
LINES = ["|a id=x", "|a id=y", "|a id=z"]
EXAMPLE = adf_example(CONTEXT, LINES)


def test_predict_gives_a_pmf_in_action_order() -> None:
    pmf = Model(ARGS).predict(CONTEXT, LINES)
    assert len(pmf) == 3
    assert math.isclose(sum(pmf), 1.0, abs_tol=1e-12)


def test_learning_moves_mass_to_the_rewarded_action_and_counts_versions() -> None:
    model = Model(ARGS)
    examples = [LearnExample(EXAMPLE, 2, 1 / 3, 1.0) for _ in range(30)]
    assert model.learn(examples) == 30
    pmf = model.predict(CONTEXT, LINES)
    # epsilon-greedy: the greedy action gets 1 - eps + eps/K, the others eps/K.
    assert pmf[2] == pytest.approx(0.8 + 0.2 / 3, abs=1e-6)
    assert pmf[0] == pytest.approx(0.2 / 3, abs=1e-6)


def test_serialize_round_trip_predicts_the_same() -> None:
    model = Model(ARGS)
    model.learn([LearnExample(EXAMPLE, 1, 1 / 3, 1.0) for _ in range(10)])
    data, version = model.serialize()
    clone = Model(ARGS, data=data, version=version)
    assert clone.version == 10
    assert clone.predict(CONTEXT, LINES) == model.predict(CONTEXT, LINES)


@pytest.mark.parametrize("extra", ["--l1 0.001", "--l2 0.01"])
def test_a_loaded_model_keeps_its_regularization(extra: str) -> None:
    # Neither is in VW's model file either: loaded with -i alone the model learns unregularized.
    args = f"--cb_explore_adf --squarecb --cb_type mtr -q :: {extra}"
    model = Model(args)
    examples = [LearnExample(EXAMPLE, i % 3, 1 / 3, float(i % 4 == 0)) for i in range(80)]
    model.learn(examples[:40])
    data, version = model.serialize()
    loaded = Model(args, data=data, version=version)
    model.learn(examples[40:])
    loaded.learn(examples[40:])
    assert loaded.scores(EXAMPLE) == model.scores(EXAMPLE)


def test_bad_arguments_and_bytes_are_refused() -> None:
    with pytest.raises(ModelError, match="unrecognised option '--no_such_option'") as gated:
        Model("--cb_explore_adf --no_such_option 3")
    assert gated.value.target == "--no_such_option"
    with pytest.raises(ModelError, match="VW refused the arguments"):  # allowed, but not together
        Model("--cb_explore_adf --squarecb --cb_type ips")
    with pytest.raises(ModelError, match="not a VW model"):
        Model(ARGS, data=b"not a model")


def test_the_label_goes_on_the_chosen_action_as_a_cost() -> None:
    example = LearnExample(["shared |u a", "|x 1", "|x 2"], 1, 0.25, 0.5)
    assert example.labeled(Costs.NEGATED) == ["shared |u a", "|x 1", "0:-0.5:0.25 |x 2"]


def test_replay_scores_a_logged_example_before_learning_it() -> None:
    model, twin = Model(ARGS), Model(ARGS)
    rewarded = LearnExample(EXAMPLE, 2, 1 / 3, 1.0)
    # `scores` leaves the model as it was: the same example scores the same, version unchanged.
    assert model.scores(EXAMPLE) == model.scores(EXAMPLE) == [pytest.approx(1 / 3)] * 3
    assert model.version == 0
    for _ in range(30):
        before = twin.scores(EXAMPLE)
        twin.learn([rewarded])
        assert model.replay(rewarded) == before  # predicted, then learned, as `twin` did
    assert model.version == twin.version == 30
    assert model.scores(EXAMPLE) == twin.scores(EXAMPLE)
    assert model.greedy(EXAMPLE) == 2


def test_a_regressor_scores_each_action_with_its_cost() -> None:
    regressor = Model("--cb_adf --cb_type mtr")
    for _ in range(50):
        regressor.replay(LearnExample(EXAMPLE, 1, 1 / 3, 1.0))
    costs = regressor.scores(EXAMPLE)
    assert len(costs) == 3
    assert costs[1] == pytest.approx(-1.0, abs=0.1)  # the reward 1 is learned as cost -1


def _pyvw_learned(args: str, examples: list[LearnExample]) -> vowpalwabbit.Workspace:
    """`examples` learned through pyvw's public text API: the reference `Model` must match."""
    vw = vowpalwabbit.Workspace(f"{args} --quiet")
    costs = Costs.of(parse(args))
    for example in examples:
        vw.learn(example.labeled(costs))
    return vw


@pytest.mark.parametrize(
    "args",
    [spec.args for spec in BUILTIN if spec.kind == "vw"] + ["--cb_adf --cb_type mtr -q ::"],
)
def test_the_model_learns_and_predicts_bit_for_bit_as_pyvw(args: str, tmp_path: Path) -> None:
    # `Model` drives VW's native example calls without pyvw's wrappers; nothing may differ.
    rng = random.Random(7)
    worlds = [
        (
            [{"u": {"mood": rng.choice("abc"), "hour": rng.randrange(24)}}],
            [f"|a id=t{j} kind={rng.choice('xy')} w:{rng.random():.3f}" for j in range(k)],
        )
        for k in (2, 5, 11)
    ]
    examples = []
    for i in range(300):
        context, lines = worlds[i % 3]
        k = len(lines)
        examples.append(
            LearnExample(adf_example(context, lines), rng.randrange(k), 1 / k, rng.random())
        )
    model = Model(args)
    model.learn(examples)
    reference = _pyvw_learned(args, examples)
    for context, lines in worlds:
        assert model.scores(adf_example(context, lines)) == [
            float(p) for p in reference.predict(adf_example(context, lines))
        ]
    data, _ = model.serialize()
    reference.save(str(tmp_path / "reference"))
    assert data == (tmp_path / "reference").read_bytes()


EVERY_EXPLORATION = [
    "--cb_explore_adf --epsilon 0.1 --cb_type ips",
    "--cb_explore_adf --epsilon 0.1 --cb_type dr -q ::",
    "--cb_explore_adf --epsilon 0.1 --cb_type dm --cubic :::",
    "--cb_explore_adf --epsilon 0.1 --cb_type sm",
    "--cb_explore_adf --first 50 -q ::",
    "--cb_explore_adf --bag 4 --greedify -q ::",
    "--cb_explore_adf --cover 3 --psi 0.5 --nounif -q ::",
    "--cb_explore_adf --softmax --lambda 5 --first_only",
    "--cb_explore_adf --squarecb --gamma_exponent 0.5 --cb_min_cost -1 --cb_max_cost 1",
    "--cb_explore_adf --regcb --mellowness 0.1 -q ::",
    "--cb_explore_adf --regcbopt -q ::",
    "--cb_explore_adf --synthcover --synthcoversize 5 --synthcoverpsi 0.2",
    "--cb_explore_adf --rnd 3 --rnd_alpha 0.1 --rnd_invlambda 0.1",
    "--cb_explore_adf --epsilon 0.2 --keep ua --ignore_linear u -q ua --noconstant --hash all",
    "--cb_explore_adf --epsilon 0.2 --interactions ua --coin --ignore b",
]
"""Every exploration, estimator and feature option the allow-list (`bandit.vw_options`) lets a
policy ask for, a few at a time."""


@pytest.mark.parametrize(
    "args", [spec.args for spec in BUILTIN if spec.kind == "vw"] + EVERY_EXPLORATION
)
def test_predictions_on_kept_actions_are_those_of_a_fresh_parse(
    args: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The decision path keeps the actions' parsed examples between predictions; a twin model
    # parses every line afresh. Calls draw from a pool larger than what is kept (so examples
    # are evicted and parsed again), repeat a line within a call, and learn in between.
    monkeypatch.setattr("bandit.model.ACTIONS_KEPT", 12)
    rng = random.Random(11)
    pool = [
        f"|a id=t{j} kind={rng.choice('xyz')} w:{rng.random():.3f} |b z{j % 3}" for j in range(40)
    ]
    keeping, fresh = Model(args), Model(args)
    for step in range(400):
        context = [{"u": {"mood": rng.choice("abc"), "hour": rng.randrange(24)}}]
        lines = rng.sample(pool, rng.randrange(1, 16))
        if step % 7 == 0:
            lines.append(lines[0])
        parsed = fresh.scores(adf_example(context, lines))  # every line parsed afresh
        assert keeping.predict(context, lines) == [p / sum(parsed) for p in parsed], step
        assert len(keeping._actions) <= 12
        if step % 3 == 0:
            example = LearnExample(
                adf_example(context, lines), rng.randrange(len(lines)), 0.5, rng.random()
            )
            keeping.learn([example])
            fresh.learn([example])
    keeping.close()


def test_a_line_vw_reads_as_other_than_one_example_is_predicted_as_before() -> None:
    # Lines built by `bandit.features` never hold a newline; one given straight to `predict`
    # falls back to the plain parse of the whole example, and nothing of it is kept.
    keeping, fresh = Model(ARGS), Model(ARGS)
    for lines in (["|a id=x", "|a id=y\n|a id=z"], ["|a id=x", "", "|a id=y"]):
        parsed = fresh.scores(adf_example(CONTEXT, lines))
        assert keeping.predict(CONTEXT, lines) == [p / sum(parsed) for p in parsed]
        assert not keeping._actions
    assert keeping.predict(CONTEXT, LINES) == fresh.predict(CONTEXT, LINES)
    assert list(keeping._actions) == LINES
