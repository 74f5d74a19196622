"""`oo serve` names the database it runs on by the URL's dialect, whatever variable set it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import database_banner
from tests.conftest import Backend, free_port


def _first_line_of_serve(env: dict[str, str]) -> str:
    """The banner `oo serve` prints once the database is ready; the server is stopped after."""
    child = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        return child.stdout.readline().strip()
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def test_the_banner_names_the_backend_of_oo_database_url(backend: Backend, tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OO_DATABASE_URL", "OO_REDIS_URL")
    }
    env.update(
        OO_DATABASE_URL=backend.database_url,
        OO_DATA_DIR=str(tmp_path / "data"),
        OO_PORT=str(free_port()),
        OO_LOG_LEVEL="WARNING",
    )
    if backend.redis_url:
        env["OO_REDIS_URL"] = backend.redis_url
    expected = {
        "embedded": f"oO all: SQLite at {tmp_path / 'oo.sqlite3'}, the in-process bus",
        "postgres": "oO all: PostgreSQL, Redis Streams",
    }[backend.name]
    assert _first_line_of_serve(env) == expected


@pytest.mark.parametrize(
    ("url", "banner"),
    [
        ("sqlite:///data/oo.sqlite3", "SQLite at data/oo.sqlite3"),
        ("sqlite:////var/lib/oo/oo.sqlite3", "SQLite at /var/lib/oo/oo.sqlite3"),
        ("sqlite://", "SQLite at :memory:"),
        ("postgresql+psycopg://oo:s3cret@db.internal:5432/oo", "PostgreSQL"),
        ("postgresql://oo@/oo?host=/run/postgresql", "PostgreSQL"),
    ],
)
def test_database_banner_reads_the_dialect_and_never_shows_a_password(
    url: str, banner: str
) -> None:
    assert database_banner(url) == banner
