"""A PostgreSQL outage: the api answers 503 (never 500) and recovers by itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.conftest import PG_URL, wait_until

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@contextmanager
def database_down() -> Iterator[None]:
    """Refuse new connections to the test database and cut the open ones, then restore."""
    assert PG_URL is not None
    admin = sa.create_engine(PG_URL.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = PG_URL.rsplit("/", 1)[1].split("?")[0]
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_outage_gives_503_and_recovery_needs_no_restart(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    assert client.post("/v1/recommend").status_code == 200
    rank = {"actions": [{"id": "a"}, {"id": "b"}]}
    with database_down():
        for method, path, body in (
            ("POST", "/v1/recommend", None),
            ("POST", "/personalizer/v1.0/rank", rank),
            ("POST", "/v1/feedback", {"event_id": "e", "reaction": "done"}),
        ):
            reply = client.request(method, path, json=body)
            assert reply.status_code == 503, (path, reply.text)
            assert reply.json()["error"]["code"] == "ServiceUnavailable"
            assert reply.headers["retry-after"] == "1"
        assert client.get("/health").status_code == 503
    wait_until(lambda: client.post("/v1/recommend").status_code == 200, timeout=30)
    assert client.post("/personalizer/v1.0/rank", json=rank).status_code == 201
    assert client.get("/health").status_code == 200
