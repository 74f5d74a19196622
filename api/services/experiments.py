"""Experiments: the operations the `/v1/experiments` routes and `oo experiments` share.

They take only what they use (the experiments table, the decision log), so the command line
runs them on a database without starting a process, and cannot disagree with the routes. The
public shapes are the API's, so `--json` prints what the API answers.
"""

from __future__ import annotations

from typing import Literal

from api.schemas.experiments import (
    ArmIn,
    ArmModel,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentResultsPublic,
)
from api.services.process import Services
from bandit import model_keys
from bandit.store import Store
from experiments.lifecycle import ArmSpec, Experiment, ExperimentConflict, Experiments
from experiments.results import days_running, experiment_results, winner

Action = Literal["start", "pause", "stop", "ship"]


def public(experiment: Experiment) -> ExperimentPublic:
    return ExperimentPublic(
        name=experiment.name,
        surface=experiment.surface,
        description=experiment.description,
        status=experiment.status,
        arms=[ArmIn(name=a.name, policy=a.policy, weight=a.weight) for a in experiment.arms],
        control=experiment.control,
        salt=experiment.salt,
        min_units_per_arm=experiment.min_units_per_arm,
        min_decisions_per_arm=experiment.min_decisions_per_arm,
        created_at=experiment.created_at,
        started_at=experiment.started_at,
        stopped_at=experiment.stopped_at,
        shipped_arm=experiment.shipped_arm,
    )


def arms_of(arms: list[ArmIn]) -> list[ArmSpec]:
    return [ArmSpec(a.name, a.policy, a.weight) for a in arms]


def create(experiments: Experiments, body: ExperimentCreate) -> Experiment:
    return experiments.create(
        body.name,
        body.surface,
        arms_of(body.arms),
        salt=body.salt,
        description=body.description,
        min_units_per_arm=body.min_units_per_arm,
        min_decisions_per_arm=body.min_decisions_per_arm,
    )


def transition(
    experiments: Experiments, store: Store, name: str, action: Action, arm: str | None = None
) -> Experiment:
    """start, pause, stop or ship `name`; shipping without `arm` ships the results' winner."""
    if action == "start":
        return experiments.start(name)
    if action == "pause":
        return experiments.pause(name)
    if action == "stop":
        return experiments.stop(name)
    if arm is None:
        arm = winner(experiment_results(store, experiments.get(name)))
        if arm is None:
            raise ExperimentConflict(
                f"experiment {name!r} has no winner yet: no treatment is better than "
                "control without a guardrail breach; name the `arm` to ship",
                target="arm",
            )
    return experiments.ship(name, arm)


def serve_transition(
    services: Services, name: str, action: Action, arm: str | None = None
) -> Experiment:
    """`transition`, served by this process at once (by the others within
    `OO_MODEL_REFRESH_SECONDS`)."""
    changed = transition(services.experiments, services.store, name, action, arm)
    services.refresh_experiments()
    return changed


def results(store: Store, experiment: Experiment) -> ExperimentResultsPublic:
    outcome = experiment_results(store, experiment)
    return ExperimentResultsPublic(
        experiment=experiment.name,
        status=experiment.status,
        days=days_running(experiment),
        arms=[
            ArmModel(
                name=a.name,
                policy=a.policy,
                model_key=model_keys.build(experiment.surface, a.policy, experiment.name, a.name),
            )
            for a in experiment.arms
        ],
        winner=winner(outcome),
        provisional=any(a.provisional for a in outcome.arms),
        min_units_per_arm=experiment.min_units_per_arm,
        min_decisions_per_arm=experiment.min_decisions_per_arm,
        results=outcome,
    )
