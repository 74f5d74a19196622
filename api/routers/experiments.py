"""Experiments: create, edit a draft's arms, start, pause, stop, ship, and read results.

Role checks (experimenter) come with sign-in (issue 4); until then these routes serve the local
single-user mode like every other route.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends

from api.auth.principal import Role
from api.deps import ServicesDep, requires
from api.errors import BadRequest, Conflict, NotFound
from api.schemas import (
    ArmIn,
    ArmModel,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentResultsPublic,
    ExperimentUpdate,
    ShipRequest,
)
from api.services import Services
from bandit.store import Store
from experiments.lifecycle import (
    ArmSpec,
    Experiment,
    ExperimentConflict,
    ExperimentError,
    ExperimentNotFound,
    Experiments,
)
from experiments.results import days_running, experiment_results, winner
from policies.registry import model_key

router = APIRouter(
    prefix="/v1/experiments",
    tags=["experiments"],
    dependencies=[Depends(requires(Role.EXPERIMENTER))],
)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Experiment errors as API errors: 404, 409, else 400; each names its field."""
    try:
        yield
    except ExperimentNotFound as exc:
        raise NotFound(str(exc), target=exc.target) from None
    except ExperimentConflict as exc:
        raise Conflict(str(exc), target=exc.target) from None
    except ExperimentError as exc:
        raise BadRequest(str(exc), target=exc.target) from None


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


def valid_experiment(experiment_id: str, services: ServicesDep) -> Experiment:
    with domain_errors():
        return services.experiments.get(experiment_id)


ExperimentDep = Annotated[Experiment, Depends(valid_experiment)]


# The operations, shared by the routes and `oo experiments` (api/cli_experiments.py).


def create(experiments: Experiments, body: ExperimentCreate) -> Experiment:
    with domain_errors():
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
    experiments: Experiments, store: Store, name: str, action: str, arm: str | None = None
) -> Experiment:
    """start, pause, stop or ship `name`; shipping without `arm` ships the results' winner."""
    with domain_errors():
        if action == "start":
            return experiments.start(name)
        if action == "pause":
            return experiments.pause(name)
        if action == "stop":
            return experiments.stop(name)
        if action != "ship":  # pragma: no cover - callers pass one of the four
            raise ValueError(f"`action` {action!r} is not a lifecycle action")
        if arm is None:
            arm = winner(experiment_results(store, experiments.get(name)))
            if arm is None:
                raise Conflict(
                    f"experiment {name!r} has no winner yet: no treatment is better than "
                    "control without a guardrail breach; name the `arm` to ship",
                    target="arm",
                )
        return experiments.ship(name, arm)


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
                model_key=model_key(experiment.surface, a.policy, experiment.name, a.name),
            )
            for a in experiment.arms
        ],
        winner=winner(outcome),
        results=outcome,
    )


def _transition(services: Services, name: str, action: str, arm: str | None = None) -> Experiment:
    changed = transition(services.experiments, services.store, name, action, arm)
    services.refresh_experiments()
    return changed


# Routes.


@router.post("", response_model=ExperimentPublic, status_code=201)
def create_experiment(body: ExperimentCreate, services: ServicesDep) -> ExperimentPublic:
    """Create a draft experiment; the first arm is the control."""
    return public(create(services.experiments, body))


@router.get("", response_model=list[ExperimentPublic])
def list_experiments(services: ServicesDep) -> list[ExperimentPublic]:
    return [public(e) for e in services.experiments.list()]


@router.get("/{experiment_id}", response_model=ExperimentPublic)
def read_experiment(experiment: ExperimentDep) -> ExperimentPublic:
    return public(experiment)


@router.patch("/{experiment_id}", response_model=ExperimentPublic)
def update_experiment(
    experiment: ExperimentDep, body: ExperimentUpdate, services: ServicesDep
) -> ExperimentPublic:
    """Replace a draft's arms (409 once started)."""
    with domain_errors():
        return public(services.experiments.update_arms(experiment.name, arms_of(body.arms)))


@router.post("/{experiment_id}/start", response_model=ExperimentPublic)
def start_experiment(experiment: ExperimentDep, services: ServicesDep) -> ExperimentPublic:
    """Start (or resume) assigning units; 409 when it or another on its surface is running."""
    return public(_transition(services, experiment.name, "start"))


@router.post("/{experiment_id}/pause", response_model=ExperimentPublic)
def pause_experiment(experiment: ExperimentDep, services: ServicesDep) -> ExperimentPublic:
    """Stop assigning for now: the surface serves its default policy until started again."""
    return public(_transition(services, experiment.name, "pause"))


@router.post("/{experiment_id}/stop", response_model=ExperimentPublic)
def stop_experiment(experiment: ExperimentDep, services: ServicesDep) -> ExperimentPublic:
    return public(_transition(services, experiment.name, "stop"))


@router.post("/{experiment_id}/ship", response_model=ExperimentPublic)
def ship_experiment(
    experiment: ExperimentDep, services: ServicesDep, body: ShipRequest | None = None
) -> ExperimentPublic:
    """Make an arm's policy (by default the winner's) the surface's default policy."""
    return public(_transition(services, experiment.name, "ship", body.arm if body else None))


@router.get("/{experiment_id}/results", response_model=ExperimentResultsPublic)
def experiment_results_route(
    experiment: ExperimentDep, services: ServicesDep
) -> ExperimentResultsPublic:
    """Per arm: units, decisions, mean reward with its 95% CI, lift and Welch test against
    control, the always-valid (mSPRT) result, guardrails, SRM and the minimum-data verdict.
    Only learned decisions count."""
    return results(services.store, experiment)
