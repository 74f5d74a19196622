"""Schema migrations: where a database stands, upgrading it, and taking it back down.

The migration scripts (Alembic) live in `api/db/migrations/versions`, one linear history. Every
run holds a lock, so two upgrades started at once serialize: a PostgreSQL advisory lock held by
the migrating connection, or SQLite's write lock (the run is one BEGIN IMMEDIATE transaction).
The second run waits, then finds the database at head and does nothing.

PostgreSQL is never migrated behind an operator's back: `oo api` and `oo learner` check it with
:func:`prepare` and refuse to start while it is behind the code (`oo db upgrade` first, from one
place: a Kubernetes Job, a compose one-shot service). The embedded default's SQLite file belongs
to its one process, so :func:`prepare` upgrades it in place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from api.db.schema import metadata
from bandit.store import make_engine

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"

LOCK_KEY = 0x6F4F_5343_4845_4D41  # "oOSCHEMA": one advisory lock for every oO upgrade
"""The PostgreSQL advisory lock `oo db upgrade` and `oo db downgrade` hold while they run."""

UPGRADE = "oo db upgrade"

State = Literal["empty", "unversioned", "behind", "current", "ahead"]
"""empty: no oO table; unversioned: tables made before migrations (no version recorded);
behind: revisions of this code are missing; current: at head; ahead: at a revision this code
does not know (a newer release migrated it: running on it is what expand/contract allows)."""


class MigrationError(Exception):
    """A migration the database cannot take; the message says why and what to do."""


class SchemaNotReady(MigrationError):
    """The database is behind the code; the message is the one line an operator needs."""


@dataclass(frozen=True, slots=True)
class Revision:
    id: str
    title: str
    down: str | None = None
    """The revision before it (None for the first)."""
    irreversible: str | None = None
    """Why it cannot go down, when it cannot."""

    def __str__(self) -> str:
        return f"{self.id} ({self.title})"


@dataclass(frozen=True, slots=True)
class Status:
    """Where a database stands against this code's migrations."""

    state: State
    current: str | None
    head: str
    pending: tuple[Revision, ...]

    def refusal(self) -> str | None:
        """Why a PostgreSQL process must not start on this database, in one line (or None)."""
        if self.state == "empty":
            return f"the database has no oO tables yet; run `{UPGRADE}` to create them"
        if self.state == "unversioned":
            return (
                "the database was made before schema migrations (no alembic_version); "
                f"run `{UPGRADE}` to adopt it"
            )
        if self.state == "behind":
            return (
                f"the database is at revision {self.current} and this oO needs {self.head}; "
                f"run `{UPGRADE}` first"
            )
        return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an upgrade or downgrade did: `applied` in the order they ran."""

    before: str | None
    after: str | None
    applied: tuple[Revision, ...]
    adopted: bool = False
    """The database was made before migrations and is now versioned."""
    drift: tuple[str, ...] = ()
    """After adopting: where the database still differs from the code (it needs a hand)."""


# ------------------------------------------------------------------------------- scripts


def _config(location: Path, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(location))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def _scripts(location: Path) -> ScriptDirectory:
    """The revisions of `location` (read once per process: they do not change while it runs)."""
    scripts = ScriptDirectory.from_config(_config(location))
    heads = scripts.get_heads()
    if len(heads) != 1:
        raise MigrationError(f"the migrations in {location} must have one head (got {heads})")
    return scripts


def _revision(script: Script) -> Revision:
    title = (script.doc or "").strip().splitlines()[0] if script.doc else ""
    down = script.down_revision
    if isinstance(down, tuple | list):  # a merge; `_scripts` allows one head, not merges
        raise MigrationError(f"revision {script.revision} merges {down}; keep the history linear")
    reason = getattr(script.module, "irreversible", None)
    return Revision(script.revision, title, down, str(reason) if reason else None)


def history(location: Path = MIGRATIONS) -> list[Revision]:
    """Every revision, oldest first."""
    scripts = _scripts(location)
    return [_revision(s) for s in reversed(list(scripts.walk_revisions()))]


def head(location: Path = MIGRATIONS) -> str:
    return _scripts(location).get_heads()[0]


def _path(location: Path, upper: str | None, lower: str | None) -> list[Script] | None:
    """Revisions after `lower` up to `upper`, newest first (None: below the first); None when
    `lower` is not below `upper`."""
    try:
        found = _scripts(location).iterate_revisions(upper or "base", lower or "base")
        return [s for s in found if isinstance(s, Script)]
    except RevisionError:
        return None


def _pending(location: Path, target: str, current: str | None) -> tuple[Revision, ...]:
    """What upgrading from `current` to `target` runs, in order (empty when already past)."""
    return tuple(_revision(s) for s in reversed(_path(location, target, current) or []))


def _resolve(location: Path, spec: str) -> str | None:
    """A revision id for `spec`: `head`, `base` (below the first: None), or an id."""
    scripts = _scripts(location)
    if spec == "base":
        return None
    if spec == "head":
        return head(location)
    try:
        script = scripts.get_revision(spec)
    except CommandError:
        script = None
    if not isinstance(script, Script):
        known = ", ".join(r.id for r in history(location))
        raise MigrationError(f"`revision` {spec!r} is not a known revision (known: {known})")
    return script.revision


# ------------------------------------------------------------------------------ database


def _known_tables() -> frozenset[str]:
    return frozenset(metadata().tables)


def _status(connection: Connection, location: Path) -> Status:
    scripts = _scripts(location)
    target = head(location)
    inspector = sa.inspect(connection)
    versioned = inspector.has_table(VERSION_TABLE)
    heads = MigrationContext.configure(connection).get_current_heads() if versioned else ()
    current = heads[0] if heads else None
    if current is None:
        tables = set(inspector.get_table_names()) & _known_tables()
        state: State = "unversioned" if tables else "empty"
        pending = _pending(location, target, None)
        return Status(state, None, target, pending)
    try:
        scripts.get_revision(current)
    except CommandError:
        return Status("ahead", current, target, ())
    pending = _pending(location, target, current)
    return Status("behind" if pending else "current", current, target, pending)


def status(url: str, *, location: Path = MIGRATIONS) -> Status:
    """Where the database at `url` stands (read only)."""
    path = make_url(url).database if make_url(url).get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not Path(path).exists():  # looking creates no file
        pending = _pending(location, head(location), None)
        return Status("empty", None, head(location), pending)
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return _status(connection, location)
    finally:
        engine.dispose()


def _migration_engine(url: str) -> Engine:
    """An engine whose transactions serialize migrations.

    pysqlite opens transactions lazily, and never for DDL; here the driver's own handling is
    off and every transaction starts with BEGIN IMMEDIATE, which takes SQLite's write lock at
    once, so a second migrating process waits (busy timeout) instead of interleaving.

    Foreign keys are off while SQLite migrates (it cannot switch them inside a transaction):
    batch mode rebuilds a table by copying it, and dropping the original would otherwise
    delete, or refuse for, every row that references it. :func:`_check_references` verifies
    them before the run commits, as SQLite's own procedure for schema changes does.
    """
    engine = make_engine(url, pool_size=1)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")

        @sa.event.listens_for(engine, "begin")
        def _write_lock(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def _locked(url: str, on_wait: Callable[[], None]) -> Iterator[Connection]:
    """A connection that alone may migrate the database while the block runs."""
    engine = _migration_engine(url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name != "postgresql":
                yield connection  # SQLite: the run's own BEGIN IMMEDIATE is the lock
                return
            took = connection.scalar(sa.select(sa.func.pg_try_advisory_lock(LOCK_KEY)))
            if not took:
                on_wait()
                connection.execute(sa.select(sa.func.pg_advisory_lock(LOCK_KEY)))
            # The lock belongs to the session; no transaction stays open around the run.
            connection.commit()
            try:
                yield connection
            finally:
                try:
                    connection.rollback()
                    connection.execute(sa.select(sa.func.pg_advisory_unlock(LOCK_KEY)))
                    connection.commit()
                except DBAPIError:
                    pass  # the connection is gone, and the session's lock went with it
    finally:
        engine.dispose()


def _check_references(connection: Connection) -> None:
    """SQLite: every foreign key still points at a row (raises, so the run rolls back)."""
    if connection.dialect.name != "sqlite":
        return  # PostgreSQL checked every statement as it ran
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise MigrationError(
            f"the migration left {len(broken)} rows of {', '.join(tables)} pointing at nothing; "
            "nothing was changed"
        )


def _drift(connection: Connection) -> tuple[str, ...]:
    from alembic.autogenerate import compare_metadata

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return tuple(str(diff) for diff in compare_metadata(context, metadata()))


def _quiet() -> None:
    return None


def upgrade(
    url: str,
    revision: str = "head",
    *,
    location: Path = MIGRATIONS,
    on_wait: Callable[[], None] = _quiet,
) -> Outcome:
    """Upgrade the database at `url` to `revision` (default: head) under the migration lock.

    A database made before migrations (oO's tables, no version recorded) is adopted: the first
    revision creates only what it lacks (tables, and indexes added to tables after they were
    made), records itself, and the rest run as usual; anything that still differs from the
    code afterwards is returned in `drift`.
    """
    with _locked(url, on_wait) as connection:
        # One transaction from the look to the last revision: on SQLite it holds the write
        # lock throughout, so what was read is still true when the revisions run.
        with connection.begin():
            before = _status(connection, location)
            if before.state == "ahead":
                raise MigrationError(
                    f"the database is at revision {before.current}, which this oO does not "
                    f"know (its newest is {before.head}); upgrade with the newer release"
                )
            target = _resolve(location, revision)
            if target is None:
                raise MigrationError("`revision` base is below the first revision")
            applied = _pending(location, target, before.current)
            if before.current is not None and not applied and target != before.current:
                raise MigrationError(
                    f"the database is at {before.current}, past {target}; "
                    f"use `oo db downgrade {target}` to go down"
                )
            if applied:
                command.upgrade(_config(location, connection), target)
                _check_references(connection)
        adopted = before.state == "unversioned" and bool(applied)
        drift = _drift(connection) if adopted and target == head(location) else ()
        connection.rollback()
    if applied:
        log.info("database upgraded to %s: %s", target, ", ".join(str(r) for r in applied))
    return Outcome(before.current, target, applied, adopted, drift)


def downgrade(
    url: str,
    revision: str,
    *,
    location: Path = MIGRATIONS,
    on_wait: Callable[[], None] = _quiet,
) -> Outcome:
    """Take the database at `url` down to `revision`, or refuse, before touching anything,
    when a revision on the way cannot go down (its `irreversible` says why)."""
    with _locked(url, on_wait) as connection, connection.begin():
        before = _status(connection, location)
        if before.state in ("empty", "unversioned"):
            raise MigrationError("the database has no recorded revision; nothing to take down")
        if before.state == "ahead":
            raise MigrationError(
                f"the database is at revision {before.current}, which this oO does not know; "
                "take it down with the release that made it"
            )
        target = _resolve(location, revision)
        if target is not None and target == before.current:
            return Outcome(before.current, target, ())
        undone = _path(location, before.current, target)
        if undone is None:
            raise MigrationError(
                f"the database is at {before.current}, below {target}; use `{UPGRADE} {target}`"
            )
        for script in undone:
            step = _revision(script)
            if step.irreversible:
                raise MigrationError(
                    f"revision {step} cannot go down: {step.irreversible}; nothing was changed"
                )
        command.downgrade(_config(location, connection), target or "base")
        _check_references(connection)
    reverted = tuple(_revision(s) for s in undone)
    log.info("database taken down to %s: %s", target, ", ".join(str(r) for r in reverted))
    return Outcome(before.current, target, reverted)


def new_revision(message: str, *, autogenerate: bool = False, location: Path = MIGRATIONS) -> Path:
    """Write the next revision (`NNNN_message.py`) into `location`'s versions and return it.

    With `autogenerate`, its operations are what a scratch SQLite database at head lacks to
    match the code's tables: a draft to read and complete (PostgreSQL-only details, data moves,
    the expand/contract split), never to commit unread.
    """
    import tempfile

    number = f"{int(head(location)) + 1:04d}"
    config = _config(location)
    with tempfile.TemporaryDirectory(prefix="oo-revision-") as scratch:
        url = f"sqlite:///{Path(scratch) / 'head.sqlite3'}"
        upgrade(url, location=location)
        engine = _migration_engine(url)
        try:
            with engine.connect() as connection:
                config.attributes["connection"] = connection
                script = command.revision(config, message, autogenerate=autogenerate, rev_id=number)
        finally:
            engine.dispose()
    _scripts.cache_clear()
    assert isinstance(script, Script)
    return Path(script.path)


def prepare(url: str, *, location: Path = MIGRATIONS) -> Status:
    """Make sure a process may run on the database at `url`.

    The embedded SQLite file is upgraded in place (its process owns it). PostgreSQL is shared
    by replicas and upgraded by the operator: :class:`SchemaNotReady`, whose message is one line
    naming `oo db upgrade`, when it is behind the code. A database ahead of the code is fine:
    during a rolling deploy the previous release runs on the next one's expanded schema.
    """
    found = status(url, location=location)
    if found.refusal() is not None and make_url(url).get_backend_name() == "sqlite":
        outcome = upgrade(url, location=location)
        if outcome.adopted:
            log.info("adopted a database made before migrations; its tables and rows are kept")
        for difference in outcome.drift:
            log.warning("the adopted database differs from this oO's tables: %s", difference)
        found = status(url, location=location)
    refusal = found.refusal()
    if refusal is not None:
        raise SchemaNotReady(refusal)
    if found.state == "ahead":
        log.warning(
            "the database is at revision %s, newer than this oO's %s; running on it",
            found.current,
            found.head,
        )
    return found
