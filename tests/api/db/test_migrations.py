"""The migrations against the code: no drift on either backend, every revision that claims to go
down does, refusals change nothing, and concurrent upgrades serialize."""

from __future__ import annotations

import itertools
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from api import db
from api.db.migrate import LOCK_KEY
from api.db.schema import TABLE_MODULES, metadata
from bandit.events import utcnow
from bandit.store import Store
from bandit.store.rows import rewards
from tests.api.db.helpers import describe, needs_postgres, row_counts
from tests.conftest import Backend, wait_until
from tests.rewards.synthetic import write_log
from tests.schema import schema_url

ROOT = Path(__file__).resolve().parents[3]
RUNTIME = (
    "api",
    "bandit",
    "policies",
    "experiments",
    "rewards",
    "integrations",
    "notifier",
    "dashboards",
)


def _drift(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata()))
    finally:
        engine.dispose()


@pytest.fixture
def reference_url(empty_url: str, tmp_path: Path) -> Iterator[str]:
    """The code's tables made by `create_all`, on the backend of `empty_url`: what the schema
    looked like before migrations, and what the migrations must still make at head."""
    if empty_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'reference.sqlite3'}"
        admin = None
    else:
        server = needs_postgres()
        schema = f"r_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(server)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = schema_url(server, schema)
    engine = sa.create_engine(url)
    metadata().create_all(engine)  # the one create_all left: the reference the tests hold
    engine.dispose()
    yield url
    if admin is not None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# ------------------------------------------------------------------------------------- drift


def test_the_migrations_make_exactly_the_code_s_tables(empty_url: str, reference_url: str) -> None:
    outcome = db.upgrade(empty_url)
    assert [r.id for r in outcome.applied] == [r.id for r in db.history()]
    assert (outcome.before, outcome.after, outcome.adopted) == (None, db.head(), False)
    assert _drift(empty_url) == []
    # Deeper than alembic compares: every column, index (partial predicates included),
    # primary and foreign key, as the database itself reports them.
    migrated, reference = describe(empty_url), describe(reference_url)
    assert set(migrated) == set(metadata().tables)
    assert migrated == reference
    assert db.status(empty_url).state == "current"


def test_the_harness_databases_are_the_migrations_own(backend: Backend) -> None:
    # tests/schema.py replays the statements the migrations ran: the result is at head and
    # matches the code just the same.
    found = db.status(backend.database_url)
    assert (found.state, found.current) == ("current", db.head())
    assert _drift(backend.database_url) == []


def test_every_table_module_is_in_the_metadata() -> None:
    # A package that declares a table outside these modules would escape the migrations.
    declared = set()
    for package in RUNTIME:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts and re.search(
                r"table=True|sa\.Table\(", path.read_text()
            ):
                declared.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    assert declared == {module.__name__ for module in TABLE_MODULES}


def test_no_process_makes_tables_with_create_all() -> None:
    for package in RUNTIME:
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"\bcreate_all\(|checkfirst=True", text), path
            assert "def create_schema" not in text and "def ensure_indexes" not in text, path


# ------------------------------------------------------------------------ going down and up

REVISIONS = db.history()


@pytest.mark.parametrize(
    "revision",
    [r for r in REVISIONS if r.down is not None and not r.irreversible],
    ids=lambda r: r.id,
)
def test_a_revision_goes_down_and_up_again(
    empty_url: str, reference_url: str, revision: db.Revision
) -> None:
    assert revision.down is not None
    db.upgrade(empty_url, revision.down)
    before = describe(empty_url)
    db.upgrade(empty_url, revision.id)
    reverted = db.downgrade(empty_url, revision.down)
    assert [r.id for r in reverted.applied] == [revision.id]
    assert describe(empty_url) == before
    db.upgrade(empty_url)
    assert _drift(empty_url) == []
    assert describe(empty_url) == describe(reference_url)


def test_the_first_revision_refuses_to_go_down_and_changes_nothing(empty_url: str) -> None:
    db.upgrade(empty_url)
    before = describe(empty_url)
    first = REVISIONS[0]
    assert first.irreversible
    with pytest.raises(db.MigrationError, match=rf"revision {first.id} .* cannot go down: .*"):
        db.downgrade(empty_url, "base")
    assert describe(empty_url) == before
    assert db.status(empty_url).current == db.head()


NOTE_REVISION = '''"""note: a free-text note on each decision (a test revision)"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{down}"
branch_labels = None
depends_on = None
irreversible = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("note", sa.String(64), nullable=True))
    op.create_index("ix_decisions_note", "decisions", ["note"])


def downgrade() -> None:
    op.drop_index("ix_decisions_note", table_name="decisions")
    # SQLite rebuilds the table (batch mode); `rewards` references it.
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("note")
'''


@pytest.fixture
def with_note(tmp_path: Path) -> Path:
    """The migrations plus one more revision that adds a column and an index."""
    location = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "9001_note.py").write_text(NOTE_REVISION.format(down=db.head()))
    return location


def _columns(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_a_release_s_revision_upgrades_goes_down_and_up_keeping_rows(
    empty_url: str, with_note: Path
) -> None:
    db.upgrade(empty_url)
    store = Store.connect(empty_url, pool_size=1)
    write_log(store, 40, seed=3, learned=False)
    with store.engine.begin() as conn:
        for row in conn.execute(sa.text("SELECT event_id FROM decisions LIMIT 25")):
            conn.execute(
                rewards.insert().values(
                    event_id=row.event_id, value=1.0, received_at=utcnow(), late=False
                )
            )
    store.engine.dispose()
    counts, at_first = row_counts(empty_url), describe(empty_url)
    assert counts["decisions"] == 40 and counts["rewards"] == 25

    # The code moved on: a PostgreSQL behind it is refused in one line; SQLite is upgraded.
    behind = db.status(empty_url, location=with_note)
    assert (behind.state, [r.id for r in behind.pending]) == ("behind", ["9001"])
    if empty_url.startswith("postgresql"):
        with pytest.raises(db.SchemaNotReady) as refused:
            db.prepare(empty_url, location=with_note)
        assert str(refused.value) == (
            f"the database is at revision {db.head()} and this oO needs 9001; "
            "run `oo db upgrade` first"
        )
        db.upgrade(empty_url, location=with_note)
    else:
        assert db.prepare(empty_url, location=with_note).state == "current"
    assert "note" in _columns(empty_url, "decisions")
    assert row_counts(empty_url) == counts

    down = db.downgrade(empty_url, db.head(), location=with_note)
    assert ([r.id for r in down.applied], down.after) == (["9001"], db.head())
    assert "note" not in _columns(empty_url, "decisions")
    assert describe(empty_url) == at_first  # the rebuilt table kept its keys and indexes
    assert row_counts(empty_url) == counts

    again = db.upgrade(empty_url, location=with_note)
    assert [r.id for r in again.applied] == ["9001"]
    assert row_counts(empty_url) == counts
    # Past the target is not an upgrade; below the first revision is refused, nothing changed.
    with pytest.raises(db.MigrationError, match="past"):
        db.upgrade(empty_url, db.head(), location=with_note)
    with pytest.raises(db.MigrationError, match="cannot go down"):
        db.downgrade(empty_url, "base", location=with_note)
    assert db.status(empty_url, location=with_note).current == "9001"
    assert "note" in _columns(empty_url, "decisions")


def test_unknown_revisions_are_refused_naming_the_known_ones(empty_url: str) -> None:
    with pytest.raises(db.MigrationError, match=r"`revision` 'nope' is not a known revision"):
        db.upgrade(empty_url, "nope")
    assert db.status(empty_url).state == "empty"


def test_a_database_ahead_of_the_code_may_run_but_not_be_migrated(
    empty_url: str, with_note: Path
) -> None:
    db.upgrade(empty_url, location=with_note)  # a newer release migrated it
    ahead = db.status(empty_url)
    assert (ahead.state, ahead.current) == ("ahead", "9001")
    assert ahead.refusal() is None
    assert db.prepare(empty_url).state == "ahead"  # the previous release keeps running
    with pytest.raises(db.MigrationError, match="which this oO does not know"):
        db.upgrade(empty_url)
    with pytest.raises(db.MigrationError, match="which this oO does not know"):
        db.downgrade(empty_url, db.head())


# ----------------------------------------------------------------------------- one at a time


def test_a_second_upgrade_waits_for_the_advisory_lock() -> None:
    server = needs_postgres()
    schema = f"l_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = schema_url(server, schema)
    holder = admin.connect()  # another `oo db upgrade`, mid-run
    holder.execute(sa.select(sa.func.pg_advisory_lock(LOCK_KEY)))
    waiting = threading.Event()
    outcomes: list[db.Outcome] = []
    runner = threading.Thread(target=lambda: outcomes.append(db.upgrade(url, on_wait=waiting.set)))
    try:
        runner.start()
        wait_until(waiting.is_set)
        assert runner.is_alive()
        assert db.status(url).state == "empty"  # it did nothing while the lock was held
    finally:
        holder.execute(sa.select(sa.func.pg_advisory_unlock(LOCK_KEY)))
        holder.close()
        runner.join(timeout=60)
        status = db.status(url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    assert [o.after for o in outcomes] == [db.head()]
    assert status.state == "current"


def test_concurrent_upgrades_apply_each_revision_once(empty_url: str) -> None:
    outcomes: list[db.Outcome] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            outcomes.append(db.upgrade(empty_url))
        except BaseException as exc:  # reported below, with the thread's own error
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(len(o.applied) for o in outcomes) == [0, 0, len(REVISIONS)]
    assert db.status(empty_url).state == "current"
    assert _drift(empty_url) == []


def test_status_of_a_missing_sqlite_file_creates_no_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "oo.sqlite3"
    found = db.status(f"sqlite:///{path}")
    assert (found.state, found.current, found.head) == ("empty", None, db.head())
    assert not path.exists()
    assert found.refusal() == (
        "the database has no oO tables yet; run `oo db upgrade` to create them"
    )


def test_history_is_linear_and_oldest_first() -> None:
    assert REVISIONS[0].down is None
    for earlier, later in itertools.pairwise(REVISIONS):
        assert later.down == earlier.id
    assert REVISIONS[-1].id == db.head()
    assert all(r.title for r in REVISIONS)


def test_a_new_revision_follows_the_head_and_runs_both_ways(tmp_path: Path) -> None:
    location = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS, location, ignore=shutil.ignore_patterns("__pycache__"))
    path = db.new_revision("add timing", autogenerate=True, location=location)
    following = f"{int(db.head()) + 1:04d}"
    assert path.name == f"{following}_add_timing.py"
    text = path.read_text()
    assert f"down_revision = '{db.head()}'" in text
    assert "irreversible: str | None = None" in text
    # The code's tables and the migrations agree, so the draft has nothing to do.
    assert "op." not in text
    added = db.history(location)[-1]
    assert (added.id, added.down, added.title) == (following, db.head(), "add timing")
    url = f"sqlite:///{tmp_path / 'oo.sqlite3'}"
    assert db.upgrade(url, location=location).after == following
    assert db.downgrade(url, db.head(), location=location).after == db.head()
