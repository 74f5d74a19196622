"""Shared fixtures: the service on both backends, real servers, and small waiting helpers.

`make test` starts PostgreSQL and Redis and exports OO_TEST_DATABASE_URL / OO_TEST_REDIS_URL;
every test that takes the `backend` fixture runs once on the embedded default (SQLite file,
in-process bus) and once on PostgreSQL + Redis. Each PostgreSQL test gets its own schema and a
flushed Redis, so tests never see each other's rows. Both databases come at head, made by the
migrations (tests/schema.py), as `oo db upgrade` makes them in production.

Property tests run under the `ci` Hypothesis profile unless `--hypothesis-profile` names
another: the same examples on every run, wherever it runs, so a red CI run replays as is.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import redis
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from bandit.settings import LearnerSettings
from tests.browser import chromium, open_page, screenshot  # noqa: F401 - shared browser fixtures
from tests.schema import migrated, schema_url

PG_URL = os.environ.get("OO_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("OO_TEST_REDIS_URL")

if os.environ.get("CI") and not (PG_URL and REDIS_URL):
    raise RuntimeError("CI must run the suite through `make test` (PostgreSQL + Redis)")

# `derandomize`: each test draws from a seed fixed by the test itself, not by the run. No example
# database: a stale local `.hypothesis/` must not change what runs. No deadline: the machine is
# shared, and a slow example is not a wrong one. `explore` draws afresh on each run; a failure
# prints the blob that replays it (`@reproduce_failure`), and `--hypothesis-seed` fixes a run.
hypothesis.settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True
)
hypothesis.settings.register_profile(
    "explore", derandomize=False, database=None, deadline=None, print_blob=True
)
hypothesis.settings.load_profile("ci")


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str
    redis_url: str | None

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "host": "127.0.0.1",
        }
        values.update(overrides)
        return Settings(**values)


def _pg_schema_url(schema: str) -> str:
    """A new schema at head, and the URL that works in it."""
    assert PG_URL is not None
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return migrated(schema_url(PG_URL, schema), server_url=PG_URL)


@pytest.fixture(params=["embedded", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "embedded":
        yield Backend("embedded", migrated(f"sqlite:///{tmp_path / 'oo.sqlite3'}"), None)
        return
    if not (PG_URL and REDIS_URL):
        pytest.skip("PostgreSQL + Redis not configured (run through `make test`)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    redis.Redis.from_url(REDIS_URL).flushdb()
    yield Backend("postgres", _pg_schema_url(schema), REDIS_URL)
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def fast_learner(**overrides: Any) -> LearnerSettings:
    values: dict[str, Any] = {
        "reward_wait_seconds": 600,
        "sweep_seconds": 0.1,
        "missed_seconds": 0.1,
        "sweep_grace_seconds": 0.0,
        "snapshot_seconds": 0.3,
    }
    values.update(overrides)
    return LearnerSettings(**values)


@pytest.fixture
def make_client(backend: Backend) -> Iterator[Callable[..., TestClient]]:
    """Build a started app on the current backend; closed at teardown."""
    clients: list[TestClient] = []

    def make(learner: LearnerSettings | None = None, **settings: Any) -> TestClient:
        app = create_app(backend.settings(**settings), learner or fast_learner())
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail with a clear message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    app: Any
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def services(self) -> Any:
        return self.app.state.services


@pytest.fixture
def live_server(backend: Backend) -> Iterator[Callable[..., LiveServer]]:
    """A real uvicorn server on a loopback port, for SDKs and other HTTP clients."""
    servers: list[LiveServer] = []

    def start(learner: LearnerSettings | None = None, **settings: Any) -> LiveServer:
        port = free_port()
        app = create_app(backend.settings(port=port, **settings), learner or fast_learner())
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, timeout=20)
        live = LiveServer(f"http://127.0.0.1:{port}", app, server, thread)
        servers.append(live)
        return live

    yield start
    for live in servers:
        live.server.should_exit = True
        live.thread.join(timeout=15)
