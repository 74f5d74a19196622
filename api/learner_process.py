"""The standalone learner process: the learning loop, plus /health and /metrics over HTTP."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.db import prepare
from api.services.surfaces import SURFACES, surface_configs
from api.settings import Settings
from bandit import heap, model_keys
from bandit.apprentice import Imitation
from bandit.bus import make_bus
from bandit.hub import ModelHub
from bandit.learner import Learner
from bandit.settings import LearnerSettings
from bandit.store import Store
from integrations.signal_stream import SignalWorker, make_signal_bus
from integrations.signals import SignalStore
from policies.registry import Registry
from policies.store import PolicyStore

log = logging.getLogger(__name__)


def health_app(learner: Learner, settings: Settings) -> FastAPI:
    app = FastAPI(title="oO learner", docs_url=None, redoc_url=None)

    @app.get("/health")
    def health() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            learner.store.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"failing: {type(exc).__name__}"
        if settings.redis_url:
            try:
                learner.bus.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"failing: {type(exc).__name__}"
        checks["learner"] = "ok" if learner.healthy else "failing"
        ok = checks["database"] == "ok" and learner.healthy
        body = {
            "status": "ok" if ok else "failing",
            "role": "learner",
            "checks": checks,
            "learned": learner.learned,
            "models": {k: m.version for k in learner.hub.model_keys() if (m := learner.hub.get(k))},
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def run_learner(stop: threading.Event, *, host: str, port: int) -> None:
    settings = Settings()
    learner_settings = LearnerSettings()
    prepare(settings.database)  # refuses a PostgreSQL behind the code: `oo db upgrade` first
    store = Store.connect(settings.database, pool_size=4)
    registry = Registry(loader=PolicyStore(store.engine).get)
    hub = ModelHub(store, registry.args_for, replay=True)
    for name in [settings.surface_policy(surface) for surface in SURFACES.values()]:
        spec = registry.get(name)
        for surface in SURFACES:
            if spec.kind == "vw":
                hub.get(model_keys.build(surface, spec.id))
    configs = surface_configs(store, learner_settings)  # Personalizer admin (issue 6)
    learner = Learner(
        store,
        hub,
        make_bus(settings.redis_url),
        learner_settings,
        configs=configs,
        watchers=[Imitation(configs)],  # apprentice-mode metrics
    )
    server = uvicorn.Server(
        uvicorn.Config(health_app(learner, settings), host=host, port=port, log_level="warning")
    )
    http = threading.Thread(target=server.run, name="learner-health", daemon=True)
    http.start()
    # signals (issue 4): consume the signals stream and prune past the retention period
    signal_store = SignalStore(store.engine)
    signal_bus = make_signal_bus(settings.redis_url)
    signal_worker = SignalWorker(
        signal_store,
        signal_bus,
        retention=timedelta(days=settings.signal_retention_days),
        prune_seconds=settings.signal_prune_seconds,
    )
    signals = threading.Thread(target=signal_worker.run, args=(stop,), name="signals", daemon=True)
    signals.start()
    log.info("learner running; /health on http://%s:%d/health", host, port)
    heap.settle()  # the models and services are built: ADR 0019
    try:
        learner.run(stop)
    finally:
        server.should_exit = True
        http.join(timeout=5)
        signals.join(timeout=5)
        signal_bus.close()
