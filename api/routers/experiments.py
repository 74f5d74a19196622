"""Experiments: create, edit a draft's arms, start, pause, stop, ship, and read results.

The operations are `api.services.experiments`, shared with `oo experiments`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.auth.principal import Role
from api.deps import ExperimentDep, ServicesDep, requires
from api.schemas.experiments import (
    ExperimentCreate,
    ExperimentPublic,
    ExperimentResultsPublic,
    ExperimentUpdate,
    ShipRequest,
)
from api.services.experiments import arms_of, create, public, results, serve_transition

router = APIRouter(
    prefix="/v1/experiments",
    tags=["experiments"],
    dependencies=[Depends(requires(Role.EXPERIMENTER))],
)


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
    return public(services.experiments.update_arms(experiment.name, arms_of(body.arms)))


@router.post("/{experiment_id}/start", response_model=ExperimentPublic)
def start_experiment(experiment: ExperimentDep, services: ServicesDep) -> ExperimentPublic:
    """Start (or resume) assigning units; 409 when it or another on its surface is running."""
    return public(serve_transition(services, experiment.name, "start"))


@router.post("/{experiment_id}/pause", response_model=ExperimentPublic)
def pause_experiment(experiment: ExperimentDep, services: ServicesDep) -> ExperimentPublic:
    """Stop assigning for now: the surface serves its default policy until started again."""
    return public(serve_transition(services, experiment.name, "pause"))


@router.post("/{experiment_id}/stop", response_model=ExperimentPublic)
def stop_experiment(experiment: ExperimentDep, services: ServicesDep) -> ExperimentPublic:
    return public(serve_transition(services, experiment.name, "stop"))


@router.post("/{experiment_id}/ship", response_model=ExperimentPublic)
def ship_experiment(
    experiment: ExperimentDep, services: ServicesDep, body: ShipRequest | None = None
) -> ExperimentPublic:
    """Make an arm's policy (by default the winner's) the surface's default policy."""
    return public(serve_transition(services, experiment.name, "ship", body.arm if body else None))


@router.get("/{experiment_id}/results", response_model=ExperimentResultsPublic)
def experiment_results_route(
    experiment: ExperimentDep, services: ServicesDep
) -> ExperimentResultsPublic:
    """Per arm: units, decisions, mean reward with its 95% CI, lift and Welch test against
    control, the always-valid (mSPRT) result, guardrails, SRM and the minimum-data verdict.
    Only learned decisions count."""
    return results(services.store, experiment)
