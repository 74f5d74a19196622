"""What every decision reads but rarely changes — running experiments, shipped defaults, the
surface configuration — is served from memory, and a change made through one replica reaches
the others through their refresh thread (issue 14)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.services.process import Services
from api.services.surfaces import PERSONALIZER, TIPS
from tests.conftest import wait_until

ARMS = [
    {"name": "control", "policy": "vw-epsilon", "weight": 1},
    {"name": "softmax", "policy": "vw-softmax", "weight": 1},
]


def _services(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def test_a_change_through_one_replica_reaches_another(
    make_client: Callable[..., TestClient],
) -> None:
    first = make_client(model_refresh_seconds=0.2)
    second = make_client(role="api", model_refresh_seconds=0.2)
    other = _services(second)
    assert other.running() == {}

    experiment = {"name": "spread", "surface": PERSONALIZER, "arms": ARMS}
    assert first.post("/v1/experiments", json=experiment).status_code == 201
    assert first.post("/v1/experiments/spread/start").json()["status"] == "running"
    assert PERSONALIZER in _services(first).running()  # at once, through the same process
    wait_until(lambda: PERSONALIZER in other.running())
    assert other.policy_for(PERSONALIZER, "unit")[1] == "spread"

    configs = _services(first).surface_configs
    configs.put(TIPS, replace(configs.get(TIPS), exploration=0.4))
    wait_until(lambda: other.surface_configs.get(TIPS).exploration == 0.4)


def _refreshed_since(services: Services, mark: float) -> bool:
    cached = services.surface_configs._cache
    return services._running_at > mark and all(
        surface in cached and cached[surface].read_at > mark for surface in (PERSONALIZER, TIPS)
    )


def test_requests_read_no_configuration_while_the_refresh_thread_keeps_it(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(model_refresh_seconds=0.2)
    services = _services(client)
    here = threading.get_ident()
    statements: list[str] = []

    def record(*args: Any) -> None:
        if threading.get_ident() == here:  # the refresh thread reads; requests must not
            statements.append(str(args[2]))

    sa.event.listen(services.store.engine, "before_cursor_execute", record)
    try:
        for i in range(10):
            # Let the refresh thread run a whole pass more (experiments, then every surface's
            # configuration): every earlier read is now stale by age, the refreshed ones are not.
            mark = time.monotonic()
            wait_until(lambda mark=mark: _refreshed_since(services, mark))
            services.serving_policy(PERSONALIZER, f"unit-{i}")
            services.serving_policy(TIPS, f"person-{i}")
            services.surface_configs.generation(PERSONALIZER)
    finally:
        sa.event.remove(services.store.engine, "before_cursor_execute", record)
    assert statements == []
