"""The experiment lifecycle on both backends: transitions, refusals, and shipping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.services.surfaces import SURFACES
from bandit.store import Store
from experiments.lifecycle import (
    ArmSpec,
    ExperimentConflict,
    ExperimentError,
    ExperimentNotFound,
    Experiments,
)
from tests.conftest import Backend

POLICIES = {"random", "vw-epsilon", "vw-softmax"}
ARMS = [ArmSpec("control", "vw-epsilon", 1), ArmSpec("softmax", "vw-softmax", 1)]


@pytest.fixture
def experiments(backend: Backend) -> Iterator[Experiments]:
    store = Store.connect(backend.database_url)
    yield Experiments(store.engine, SURFACES, POLICIES.__contains__)
    store.engine.dispose()


def test_a_draft_runs_pauses_resumes_stops_and_ships(experiments: Experiments) -> None:
    created = experiments.create("exp-1", "tips", ARMS, salt="s1")
    assert (created.status, created.control, created.started_at) == ("draft", "control", None)
    started = experiments.start("exp-1")
    assert started.status == "running" and started.started_at is not None
    assert experiments.running()["tips"].name == "exp-1"
    assert experiments.pause("exp-1").status == "paused"
    assert experiments.running() == {}
    resumed = experiments.start("exp-1")
    assert resumed.status == "running" and resumed.started_at == started.started_at
    stopped = experiments.stop("exp-1")
    assert stopped.status == "stopped" and stopped.stopped_at is not None
    shipped = experiments.ship("exp-1", "softmax")
    assert (shipped.status, shipped.shipped_arm) == ("shipped", "softmax")
    assert experiments.default_policies() == {"tips": "vw-softmax"}


@pytest.mark.parametrize(
    ("arms", "target", "message"),
    [
        ([ArmSpec("only", "random", 1)], "arms", "at least one treatment"),
        ([ARMS[0], ArmSpec("b", "random", 0)], "arms[1].weight", "must be a positive integer"),
        ([ARMS[0], ArmSpec("b", "random", -2)], "arms[1].weight", "must be a positive integer"),
        ([ARMS[0], ArmSpec("control", "random", 1)], "arms[1].name", "duplicate arm name"),
        ([ARMS[0], ArmSpec("b", "nope", 1)], "arms[1].policy", "not a registered policy"),
        ([ARMS[0], ArmSpec("B C", "random", 1)], "arms[1].name", "lowercase letters"),
    ],
)
def test_bad_arms_are_refused_naming_the_field(
    experiments: Experiments, arms: list[ArmSpec], target: str, message: str
) -> None:
    with pytest.raises(ExperimentError, match=message) as caught:
        experiments.create("exp-bad", "tips", arms)
    assert caught.value.target == target


def test_refusals_that_conflict_with_the_state(experiments: Experiments) -> None:
    experiments.create("exp-1", "tips", ARMS)
    experiments.create("exp-2", "tips", ARMS)
    experiments.create("exp-3", "personalizer", ARMS)
    with pytest.raises(ExperimentConflict, match="`name` 'exp-1' is already an experiment"):
        experiments.create("exp-1", "tips", ARMS)
    experiments.start("exp-1")
    with pytest.raises(ExperimentConflict, match="already running") as running:
        experiments.start("exp-1")
    assert running.value.target == "status"
    with pytest.raises(ExperimentConflict, match="'exp-1' is already running on surface 'tips'"):
        experiments.start("exp-2")
    experiments.start("exp-3")  # another surface is independent
    with pytest.raises(ExperimentConflict, match="cannot change once started") as edit:
        experiments.update_arms("exp-1", ARMS[::-1])
    assert edit.value.target == "arms"
    with pytest.raises(ExperimentConflict, match="must be one of \\['running'\\]"):
        experiments.pause("exp-2")
    experiments.stop("exp-1")
    with pytest.raises(ExperimentConflict, match="is stopped and cannot start again"):
        experiments.start("exp-1")
    with pytest.raises(ExperimentNotFound, match="no experiment is called 'nope'"):
        experiments.start("nope")
    with pytest.raises(ExperimentError, match="`arm` 'nope' is not an arm"):
        experiments.ship("exp-1", "nope")


def test_a_drafts_arms_can_change(experiments: Experiments) -> None:
    experiments.create("exp-1", "tips", ARMS)
    updated = experiments.update_arms("exp-1", [ARMS[1], ArmSpec("rand", "random", 3)])
    assert [a.name for a in updated.arms] == ["softmax", "rand"]
    assert updated.control == "softmax"


def test_assignment_is_the_pure_hash_of_unit_and_salt(experiments: Experiments) -> None:
    from experiments.assignment import assign

    experiment = experiments.create("exp-1", "tips", ARMS, salt="fixed-salt")
    for unit in ("alice", "bob", "carol", "dave"):
        expected = assign(unit, "fixed-salt", [("control", 1), ("softmax", 1)])
        assert experiment.assign(unit).name == expected
