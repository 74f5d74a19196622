"""Personalizer's administration routes: service configuration, policy, model and logs.

Thin: each calls `api.personalizer.service.Personalizer`. Served under both path styles
(`api.personalizer.routing`); every route needs a key with the admin role.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import IntegratorAdminDep
from api.personalizer.deps import PersonalizerDep
from api.personalizer.routing import PathStyles
from api.personalizer.schemas import (
    LogsProperties,
    ModelProperties,
    PolicyContract,
    ServiceConfigurationPublic,
    ServiceConfigurationUpdate,
)

router = PathStyles(tags=["personalizer-admin"])

_OCTETS: dict[str, Any] = {"application/octet-stream": {}}


@router.get("/configurations/service", response_model=ServiceConfigurationPublic)
def get_service_configuration(
    personalizer: PersonalizerDep, admin: IntegratorAdminDep
) -> ServiceConfigurationPublic:
    """The service configuration, with the apprentice-mode metrics once apprentice mode ran."""
    return personalizer.configuration()


@router.put("/configurations/service", response_model=ServiceConfigurationPublic)
def update_service_configuration(
    body: ServiceConfigurationUpdate, personalizer: PersonalizerDep, admin: IntegratorAdminDep
) -> ServiceConfigurationPublic:
    """Change the configuration; it takes effect in every process within a second."""
    return personalizer.update_configuration(body)


@router.get("/configurations/policy", response_model=PolicyContract)
def get_policy(personalizer: PersonalizerDep, admin: IntegratorAdminDep) -> PolicyContract:
    """The serving policy's name and its VW arguments (with the configured exploration)."""
    return personalizer.policy()


@router.put("/configurations/policy", response_model=PolicyContract)
def update_policy(
    body: PolicyContract, personalizer: PersonalizerDep, admin: IntegratorAdminDep
) -> PolicyContract:
    """Serve new VW `--cb_explore_adf` arguments; they are built and probed first."""
    return personalizer.apply_policy(body.name, body.arguments)


@router.delete("/configurations/policy", response_model=PolicyContract)
def reset_policy(personalizer: PersonalizerDep, admin: IntegratorAdminDep) -> PolicyContract:
    """Back to the configured default policy and its own exploration."""
    return personalizer.reset_policy()


@router.get("/model", response_class=Response, responses={200: {"content": _OCTETS}})
def export_model(
    personalizer: PersonalizerDep, admin: IntegratorAdminDep, signed: bool = False
) -> Response:
    """The serving VW model (VW's binary format with `--save_resume` state).

    oO does not sign models: `signed=true` is a 400.
    """
    return Response(
        content=personalizer.export_model(signed=signed), media_type="application/octet-stream"
    )


@router.put(
    "/model",
    status_code=204,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def import_model(
    request: Request, personalizer: PersonalizerDep, admin: IntegratorAdminDep
) -> Response:
    """Replace the serving model with VW model bytes (`application/octet-stream`)."""
    await run_in_threadpool(personalizer.import_model, await request.body())
    return Response(status_code=204)


@router.delete("/model", status_code=204, response_class=Response)
def reset_model(personalizer: PersonalizerDep, admin: IntegratorAdminDep) -> Response:
    """Start the serving model over: a fresh model with the policy's arguments."""
    personalizer.reset_model()
    return Response(status_code=204)


@router.get("/model/properties", response_model=ModelProperties)
def get_model_properties(
    personalizer: PersonalizerDep, admin: IntegratorAdminDep
) -> ModelProperties:
    """When the serving model was created (or last imported or reset) and last modified."""
    return personalizer.model_properties()


@router.get("/logs/properties", response_model=LogsProperties)
def get_log_properties(personalizer: PersonalizerDep, admin: IntegratorAdminDep) -> LogsProperties:
    """The time span of the surface's logged decisions (both null when there are none)."""
    return personalizer.log_properties()


@router.delete("/logs", status_code=204, response_class=Response)
def delete_logs(personalizer: PersonalizerDep, admin: IntegratorAdminDep) -> Response:
    """Delete the surface's decisions and rewards; the models keep what they learned.

    Models are snapshotted first; decisions a model would still need to be rebuilt (learned
    after its newest snapshot, possible when the learner runs in another process and has not
    published yet) are kept until the next delete.
    """
    personalizer.delete_logs()
    return Response(status_code=204)
