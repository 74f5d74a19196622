"""What operators and processes see: `oo db` itself, `oo api` and `oo learner` refusing a
PostgreSQL behind the code, and the embedded default making its own file by migrations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import db
from api.app import create_app
from api.cli import app as cli
from api.settings import Settings
from tests.api.db.helpers import FIXTURES, RELEASE_0, load_dump
from tests.conftest import fast_learner, free_port

ROOT = Path(__file__).resolve().parents[3]


def _oo(args: list[str], tmp_path: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OO_")}
    environ |= {
        "PYTHONPATH": str(ROOT),
        "OO_DATA_DIR": str(tmp_path / "data"),
        "OO_DATABASE_URL": database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=environ,
        cwd=tmp_path,  # no developer's .env.local
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_oo_api_refuses_an_empty_postgresql_in_one_line(pg_schema: str, tmp_path: Path) -> None:
    run = _oo(["api", "--port", str(free_port())], tmp_path, pg_schema)
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines() == [
        "error: the database has no oO tables yet; run `oo db upgrade` to create them"
    ]
    assert db.status(pg_schema).state == "empty"  # it did not migrate


def test_oo_learner_refuses_a_pre_migration_postgresql_in_one_line(
    pg_database: Callable[[], str], tmp_path: Path
) -> None:
    url = pg_database()
    load_dump(url, FIXTURES / f"{RELEASE_0}.sql")
    run = _oo(["learner", "--port", str(free_port())], tmp_path, url)
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines() == [
        "error: the database was made before schema migrations (no alembic_version); "
        "run `oo db upgrade` to adopt it"
    ]
    assert db.status(url).state == "unversioned"


def test_the_app_does_not_start_on_a_postgresql_behind_the_code(pg_schema: str) -> None:
    app = create_app(Settings(database_url=pg_schema), fast_learner())
    with pytest.raises(db.SchemaNotReady, match="run `oo db upgrade`"), TestClient(app):
        pass


def test_the_embedded_default_makes_its_file_by_migrations(tmp_path: Path) -> None:
    path = tmp_path / "data" / "oo.sqlite3"
    assert not path.exists()
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"), fast_learner())) as client:
        assert client.get("/health").status_code == 200
    found = db.status(f"sqlite:///{path}")
    assert (found.state, found.current) == ("current", db.head())


def test_oo_db_reports_upgrades_and_refuses_in_text_and_json(empty_url: str) -> None:
    runner = CliRunner()
    common = ["--database-url", empty_url]

    current = runner.invoke(cli, ["db", "current", *common, "--json"])
    assert current.exit_code == 0, current.output
    body = json.loads(current.stdout)
    assert (body["state"], body["current"], body["head"]) == ("empty", None, db.head())
    assert [r["id"] for r in body["pending"]] == [r.id for r in db.history()]
    assert "oo:" not in body["database"] or "***" in body["database"]  # no password shown

    waited = runner.invoke(cli, ["db", "wait", "--timeout", "0", *common])
    assert waited.exit_code == 1
    assert waited.stderr.strip().splitlines()[-1] == (
        "error: the database has no oO tables yet; run `oo db upgrade` to create them"
    )

    upgraded = runner.invoke(cli, ["db", "upgrade", *common])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"from - to {db.head()}:" in upgraded.stdout
    assert f"  {db.history()[0]}" in upgraded.stdout

    text = runner.invoke(cli, ["db", "current", *common])
    assert text.exit_code == 0, text.output
    assert f"revision  {db.head()}" in text.stdout
    assert "status    up to date" in text.stdout
    ready = runner.invoke(cli, ["db", "wait", "--timeout", "0", *common])
    assert ready.exit_code == 0, ready.output

    same = runner.invoke(cli, ["db", "downgrade", db.head(), *common, "--json"])
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["reverted"] == []
    refused = runner.invoke(cli, ["db", "downgrade", "base", *common])
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"error: revision {db.history()[0]} cannot go down: ")
    assert "nothing was changed" in refused.stderr
    unknown = runner.invoke(cli, ["db", "upgrade", "nope", *common])
    assert unknown.exit_code == 1
    assert "`revision` 'nope' is not a known revision" in unknown.stderr

    history = runner.invoke(cli, ["db", "history", "--json"])
    assert history.exit_code == 0, history.output
    listed = json.loads(history.stdout)
    assert listed["head"] == db.head()
    assert listed["revisions"][0]["reversible"] is False


def test_oo_db_says_when_the_database_cannot_be_reached(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://oo@127.0.0.1:{free_port()}/oo"  # nothing listens there
    reply = CliRunner().invoke(cli, ["db", "current", "--database-url", url])
    assert reply.exit_code == 1
    assert reply.stderr.startswith("error: ")
    assert len(reply.stderr.strip().splitlines()) == 1
