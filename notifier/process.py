"""`oo notifier`: the sending loop as its own process, with /health and /metrics over HTTP.

One per deployment, like the learner (it takes over what a dead one held at start); it also
runs the timing surface's decision points. The api's CLI builds the settings and the services
(policies, integrations, the tips decision), then hands over here (`notifier` never imports
`api`).
"""

from __future__ import annotations

import logging
import threading

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bandit.store import Store
from notifier.push import Push
from notifier.worker import Notifier, TimingPass

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
    store: Store,
    push: Push,
    timing: TimingPass | None,
    host: str,
    port: int,
) -> None:
    """Decide the timing surface's points (with `timing`) and send pushes until `stop` is
    set; the key must be loadable (checked before anything). The caller owns `store`."""
    push.key()  # PushNotConfigured before the loop starts, not at the first push
    notifier = push.loop(timing=timing)
    server = uvicorn.Server(
        uvicorn.Config(health_app(store, notifier), host=host, port=port, log_level="warning")
    )
    http = threading.Thread(target=server.run, name="notifier-health", daemon=True)
    http.start()
    log.info("notifier running; /health on http://%s:%d/health", host, port)
    try:
        notifier.run(stop)
    finally:
        server.should_exit = True
        http.join(timeout=5)
        notifier.close()
