"""Databases for the migration tests: empty ones (not migrated) on each backend, and whole
PostgreSQL databases for SQL dumps."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.api.db.helpers import needs_postgres
from tests.schema import schema_url


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """An empty PostgreSQL schema (not migrated), and the URL that works in it."""
    server = needs_postgres()
    schema = f"m_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield schema_url(server, schema)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with nothing in it, on each backend (the harness's `backend` comes migrated)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    url: str = request.getfixturevalue("pg_schema")
    return url


@pytest.fixture
def pg_database() -> Iterator[Callable[[], str]]:
    """Make whole PostgreSQL databases (a dump names its schema `public`); dropped afterwards."""
    server = needs_postgres()
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"oo_m_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()
