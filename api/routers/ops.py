"""Operations: health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from api.deps import ServicesDep
from api.schemas.ops import Health, HealthCheck

router = APIRouter(tags=["operations"])

HEALTH = Gauge(
    "oo_health_check",
    "1 when a /health check passes, 0 when it fails (refreshed per scrape)",
    ["check"],
)


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(services: ServicesDep) -> JSONResponse:
    """Database reachable, Redis reachable when configured, serving models loaded."""
    checks: dict[str, HealthCheck] = {}
    try:
        services.store.ping()
        checks["database"] = HealthCheck(status="ok")
    except Exception as exc:
        checks["database"] = HealthCheck(status="failing", detail=type(exc).__name__)
    if services.settings.redis_url:
        try:
            services.bus.ping()
            checks["redis"] = HealthCheck(status="ok")
        except Exception as exc:
            checks["redis"] = HealthCheck(status="failing", detail=type(exc).__name__)
    models: dict[str, int] = {}
    for policy in services.defaults.values():
        try:
            models[policy.model_key] = policy.model_version
        except Exception as exc:
            checks["model"] = HealthCheck(status="failing", detail=type(exc).__name__)
    checks.setdefault("model", HealthCheck(status="ok"))
    if services.learner is not None:
        ok = services.learner.healthy
        checks["learner"] = HealthCheck(status="ok" if ok else "failing")
    for name, check in checks.items():
        HEALTH.labels(name).set(1 if check.status == "ok" else 0)
    failing = [name for name, check in checks.items() if check.status != "ok"]
    # Redis down only delays learning (decisions stay durable): degraded, still serving.
    if not failing:
        state = "ok"
    elif failing == ["redis"] or failing == ["learner"]:
        state = "degraded"
    else:
        state = "failing"
    body = Health(status=state, role=services.settings.role, checks=checks, models=models)
    return JSONResponse(body.model_dump(), status_code=503 if state == "failing" else 200)


@router.get("/metrics", include_in_schema=False)
def metrics(services: ServicesDep) -> Response:
    health(services)  # so that alerts see `oo_health_check` without probing /health themselves
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
