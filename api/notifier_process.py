"""`oo notifier`: the sending loop as its own process, with /health and /metrics over HTTP.

One per deployment, like the learner (it takes over what a dead one held at start); it also
runs the timing surface's decision points. A front door, so it lives in `api`: it builds the
services an api process holds (policies, models kept fresh, integrations, the tips decision)
and hands the `notifier` package's loop the timing pass made of them.
"""

from __future__ import annotations

import logging
import threading

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.services.process import start
from api.settings import Settings
from bandit import heap
from bandit.store import Store
from notifier.settings import PushSettings
from notifier.worker import Notifier

log = logging.getLogger(__name__)


def health_app(store: Store, notifier: Notifier) -> FastAPI:
    app = FastAPI(title="oO notifier", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    def health() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            store.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"failing: {type(exc).__name__}"
        checks["notifier"] = "ok" if notifier.healthy else "failing"
        ok = all(value == "ok" for value in checks.values())
        body = {"status": "ok" if ok else "failing", "role": "notifier", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def run_notifier(
    stop: threading.Event,
    *,
    settings: Settings,
    push_settings: PushSettings,
    host: str,
    port: int,
) -> None:
    """Decide the timing surface's points and send pushes until `stop` is set; the VAPID key
    must be loadable (`PushNotConfigured` before anything runs)."""
    services = start(settings, push_settings=push_settings)
    try:
        services.push.key()  # PushNotConfigured before the loop starts, not at the first push
        notifier = services.push.loop(timing=services.timing.run_once)
        server = uvicorn.Server(
            uvicorn.Config(
                health_app(services.store, notifier), host=host, port=port, log_level="warning"
            )
        )
        http = threading.Thread(target=server.run, name="notifier-health", daemon=True)
        http.start()
        log.info("notifier running; /health on http://%s:%d/health", host, port)
        heap.settle()  # its services are built: ADR 0019
        try:
            notifier.run(stop)
        finally:
            server.should_exit = True
            http.join(timeout=5)
            notifier.close()
    finally:
        services.close()
