"""Upgrading the databases of earlier releases (release 0: made before migrations; each with rows
in every table) on SQLite and PostgreSQL, and the partial or hand-altered ones operators have."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import db
from api.app import create_app
from api.cli import app as cli
from api.db.schema import metadata
from api.settings import Settings
from tests.api.db.helpers import (
    FIXTURES,
    RELEASE_0,
    RELEASES,
    describe,
    load_dump,
    release_counts,
    row_counts,
)
from tests.conftest import fast_learner

RANK = "/personalizer/v1.0/rank"
ADDED_SINCE_RELEASE_0 = {
    "push_subscriptions",  # 0002, Web Push
    "push_messages",
    "push_deliveries",
    "timing_people",  # 0003, the timing surface
    "timing_points",
}
"""Tables revisions after the baseline created: release 0's databases cannot hold them."""


def _release_database(
    release: str, backend: str, tmp_path: Path, pg_database: Callable[[], str]
) -> str:
    if backend == "sqlite":
        target = tmp_path / "oo.sqlite3"
        shutil.copyfile(FIXTURES / f"{release}.sqlite3", target)
        return f"sqlite:///{target}"
    url = pg_database()
    load_dump(url, FIXTURES / f"{release}.sql")
    return url


def _reference(backend: str, tmp_path: Path, pg_database: Callable[[], str]) -> str:
    """A fresh database at head, made by the migrations, to compare the upgraded one with."""
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}" if backend == "sqlite" else pg_database()
    db.upgrade(url)
    return url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("release", RELEASES)
def test_a_release_s_database_is_upgraded_and_keeps_every_row(
    release: str, backend: str, tmp_path: Path, pg_database: Callable[[], str]
) -> None:
    url = _release_database(release, backend, tmp_path, pg_database)
    counts = release_counts(backend, release)
    assert row_counts(url) == counts
    tables = set(metadata().tables)
    assert all(counts.get(table, 0) > 0 for table in tables & set(counts)), counts
    found = db.status(url)
    if release == RELEASE_0:
        # every table of today, with rows, but those made by later revisions
        assert set(counts) == tables - ADDED_SINCE_RELEASE_0
        assert (found.state, found.current) == ("unversioned", None)
    if backend == "postgresql" and found.state != "current":  # refused until upgraded
        with pytest.raises(db.SchemaNotReady, match="run `oo db upgrade`"):
            db.prepare(url)

    reply = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url, "--json"])
    assert reply.exit_code == 0, reply.output
    outcome = json.loads(reply.stdout)
    assert outcome["adopted"] is (found.state == "unversioned")
    assert outcome["drift"] == []
    assert (outcome["before"], outcome["after"]) == (found.current, db.head())
    assert [r["id"] for r in outcome["applied"]] == [r.id for r in found.pending]

    after = row_counts(url)
    assert {table: after[table] for table in counts} == counts
    assert all(after[table] == 0 for table in set(after) - set(counts))  # new tables, empty
    assert db.status(url).state == "current"
    assert describe(url) == describe(_reference(backend, tmp_path, pg_database))
    again = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_service_runs_on_an_upgraded_release_0(
    backend: str, tmp_path: Path, pg_database: Callable[[], str]
) -> None:
    url = _release_database(RELEASE_0, backend, tmp_path, pg_database)
    db.upgrade(url)
    settings = Settings(database_url=url, data_dir=tmp_path)
    with TestClient(create_app(settings, fast_learner())) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        old = services.store.get("rank-0")
        assert old is not None and old.reward is not None  # release 0's decision and reward
        assert services.registry.find("vw-fixture") is not None  # its registered policy
        assert services.experiments.get("shipped").status == "shipped"
        actions = [{"id": "a", "features": [{"x": 1}]}, {"id": "b", "features": [{"x": 2}]}]
        reply = client.post(RANK, json={"eventId": "after-upgrade", "actions": actions})
        assert reply.status_code == 201, reply.text
        reward = client.post("/personalizer/v1.0/events/after-upgrade/reward", json={"value": 1})
        assert reward.status_code == 204, reward.text
    assert row_counts(url)["decisions"] == release_counts(backend)["decisions"] + 1


def test_embedded_start_adopts_a_release_0_file(tmp_path: Path) -> None:
    # `oo serve` on the data folder of release 0: the file is upgraded in place at start.
    target = tmp_path / "oo.sqlite3"
    shutil.copyfile(FIXTURES / f"{RELEASE_0}.sqlite3", target)
    with TestClient(create_app(Settings(data_dir=tmp_path), fast_learner())) as client:
        assert client.get("/health").status_code == 200
    assert db.status(f"sqlite:///{target}").state == "current"
    counts = row_counts(f"sqlite:///{target}")
    assert counts["decisions"] >= release_counts("sqlite")["decisions"]


def test_a_partial_pre_migration_database_gets_what_it_lacks(
    empty_url: str, tmp_path: Path
) -> None:
    # What `oo keys create` left before any `oo serve` ran, and a signals table made before
    # its indexes were declared (SignalStore.ensure_indexes added them at start until now).
    engine = sa.create_engine(empty_url)
    tables = metadata().tables
    with engine.begin() as conn:
        for name in ("auth_people", "auth_api_keys", "signals"):
            tables[name].create(conn)
        for index in tables["signals"].indexes:
            index.drop(conn)
        conn.execute(
            sa.text(
                "INSERT INTO auth_api_keys (key_id, secret_hash, name, roles, created_at) "
                "VALUES ('k1', 'h', 'ci', '[\"analyst\"]', '2026-11-01 00:00:00+00:00')"
            )
        )
    engine.dispose()
    assert db.status(empty_url).state == "unversioned"

    outcome = db.upgrade(empty_url)
    assert outcome.adopted and outcome.drift == ()
    assert row_counts(empty_url)["auth_api_keys"] == 1
    indexes = {ix["name"] for ix in sa.inspect(sa.create_engine(empty_url)).get_indexes("signals")}
    assert indexes == {"ix_signals_principal_occurred", "ix_signals_occurred"}
    assert set(describe(empty_url)) == set(tables)


def test_adopting_a_database_that_differs_from_the_code_says_what_to_fix(tmp_path: Path) -> None:
    # A policies table from before versions: `create_all` never altered it.
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE policies (name VARCHAR(64) NOT NULL PRIMARY KEY, "
                "kind VARCHAR(16) NOT NULL, args TEXT NOT NULL, description TEXT NOT NULL, "
                "created_at DATETIME NOT NULL)"
            )
        )
    engine.dispose()
    reply = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert reply.exit_code == 1
    assert "adopted a database made before migrations" in reply.stdout
    assert "still differs from this oO's tables" in reply.stderr
    assert "'policies', Column('version'" in reply.stderr  # alembic's words for what is missing
    assert db.status(url).state == "current"  # versioned; the drift is the operator's to fix
