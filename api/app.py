"""The FastAPI application factory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace

from api import errors, flat, personalizer, security
from api.auth import routes as signin
from api.deps import document_key_header
from api.integration_setup import redact_access_log
from api.limits import BodyLimit, InFlightLimit
from api.personalizer import schedule as schedules
from api.ratelimit import Bucket, limited, rate_limiter
from api.routers import (
    analysis,
    dashboards,
    diagnostics,
    evaluations,
    experiments,
    integrations,
    logs,
    me,
    ops,
    policies,
    policy_searches,
    push,
    tips,
)
from api.services.process import start
from api.settings import Settings
from api.web import mount_web
from bandit import heap
from bandit.settings import LearnerSettings
from notifier.settings import PushSettings

DESCRIPTION = """
oO decides: every call builds a context, a Vowpal Wabbit `--cb_explore_adf` policy gives a
probability to every candidate, one is drawn and the decision is logged with the whole pmf.
Rewards flow back by event id and the policy learns online. The `/personalizer` routes are
compatible with Azure AI Personalizer's REST API.
"""


def telemetry() -> TelemetryConfig | None:
    """FastAPI's OpenTelemetry instrumentation: FastAPI's defaults when the process starts with
    OpenTelemetry set up (`opentelemetry-instrument`, `OTEL_*` variables), off otherwise.

    oO sets up no OpenTelemetry itself. Left on without it, FastAPI looks for a provider on
    every request (environment lookups), about a sixth of the event loop's work on a rank.
    """
    provider_set = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    if provider_set or any(name.startswith(("OTEL_", "FASTAPI_OTEL_")) for name in os.environ):
        return None
    return {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def create_app(
    settings: Settings | None = None,
    learner_settings: LearnerSettings | None = None,
    push_settings: PushSettings | None = None,
    *,
    settle_heap: bool = False,
) -> FastAPI:
    """The app. `settle_heap` is for a process that serves it: once its services have started,
    the garbage collector is tuned for serving (`bandit.heap`, ADR 0019). Tests leave it off,
    since it changes the collector of the whole process."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = start(settings, learner_settings, push_settings)
        schedules.start(app.state.services)  # auto-optimization, model export (ADR 0015)
        if settle_heap:
            heap.settle()
        try:
            yield
        finally:
            await app.state.services.close_on_loop()
            app.state.services.close()
            app.state.rate_limiter.close()

    app = FastAPI(
        title="oO",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=telemetry(),
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(InFlightLimit, max_in_flight=settings.max_in_flight)
    security.install(app, settings)
    app.state.rate_limiter = rate_limiter(settings)
    per_principal = [Depends(limited(Bucket.DEFAULT))]
    per_key = [Depends(limited(Bucket.PERSONALIZER))]
    errors.install(app)
    redact_access_log()  # OAuth codes travel in callback query strings
    # Routes are tried in order, about 1 µs each: the decision routes go first, Personalizer's
    # and the tips' (recommend was 66 µs in, behind Personalizer's 40 administration routes).
    # They are the app's own routes (`api.flat`), matched once: FastAPI matches an included
    # router's routes twice, to choose the router and to enter it (in process, rank 9 -> 4 µs,
    # recommend 19 -> 10, signals 25 -> 12). A route for the decision path belongs in one of
    # these two routers; the others are included.
    personalizer.mount_decisions(app, dependencies=per_key)
    flat.include(app, tips.router, dependencies=per_principal)
    personalizer.mount_admin(app, dependencies=per_key)
    app.include_router(ops.router)
    app.include_router(me.router, dependencies=per_principal)
    app.include_router(integrations.router, dependencies=per_principal)
    app.include_router(push.router, dependencies=per_principal)
    app.include_router(policies.router, dependencies=per_principal)
    app.include_router(experiments.router, dependencies=per_principal)
    app.include_router(dashboards.router)
    app.include_router(logs.router, dependencies=per_principal)
    app.include_router(evaluations.router, dependencies=per_principal)
    app.include_router(diagnostics.router, dependencies=per_principal)
    app.include_router(policy_searches.router, dependencies=per_principal)
    app.include_router(analysis.router)
    signin.install(app, settings)
    mount_web(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_key_header(errors.document_errors(FastAPI.openapi(app)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def served_app() -> FastAPI:
    """The app as a server process runs it, settings from the environment: the factory each
    of `oo api --workers N`'s worker processes imports."""
    return create_app(settle_heap=True)
