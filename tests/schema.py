"""Test databases at head, made by the migrations and fast enough to make one per test.

Running Alembic on a fresh database costs about 0.1 s on SQLite and 0.2-0.4 s on PostgreSQL
(17 tables, 22 indexes, a catalog read per table), paid by some 700 backend tests. Instead the
migrations run for real once per session and backend; every statement that changed the
database (CREATE, INSERT into alembic_version, ...) is recorded as it went to the driver, and
each test's database replays that script in one transaction. The result is the migrations'
own DDL, byte for byte; tests/api/db checks it against the code (no drift) and runs the
migrations themselves (fresh, adoption of an old database, downgrade).
"""

from __future__ import annotations

import tempfile
import uuid
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from api import db
from bandit.store import make_engine

_CHANGES = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")


def _recorded_upgrade(url: str) -> tuple[str, ...]:
    """Upgrade `url` to head and return the statements that changed it, in order."""
    statements: list[str] = []
    target = make_url(url)

    def record(
        conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        # Only the migrating engine's statements: a thread left by an earlier test may be
        # writing to its own database meanwhile.
        if conn.engine.url != target:
            return
        if statement.lstrip().upper().startswith(_CHANGES):
            assert not parameters, f"a migration statement with parameters: {statement}"
            statements.append(statement.strip())

    sa.event.listen(Engine, "before_cursor_execute", record)
    try:
        db.upgrade(url)
    finally:
        sa.event.remove(Engine, "before_cursor_execute", record)
    return tuple(statements)


@cache
def _sqlite_script() -> str:
    with tempfile.TemporaryDirectory(prefix="oo-schema-") as work:
        statements = _recorded_upgrade(f"sqlite:///{Path(work) / 'template.sqlite3'}")
    return "BEGIN;\n" + ";\n".join(statements) + ";\nCOMMIT;\n"


@cache
def _postgres_script(server_url: str) -> str:
    schema = f"template_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        statements = _recorded_upgrade(schema_url(server_url, schema))
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
    return ";\n".join(statements) + ";\n"


def schema_url(server_url: str, schema: str) -> str:
    """`server_url` with `schema` first on the search path."""
    separator = "&" if "?" in server_url else "?"
    return f"{server_url}{separator}options={quote(f'-csearch_path={schema}')}"


def migrated(url: str, *, server_url: str | None = None) -> str:
    """Bring the empty database at `url` to head (the migrations' recorded script); `url`.

    PostgreSQL needs the `server_url` its schema lives in: the script is recorded there once.
    """
    engine = make_engine(url, pool_size=1)  # the file or connection, as the app makes it
    try:
        raw: Any = engine.raw_connection()
        try:
            driver = raw.driver_connection
            if engine.dialect.name == "sqlite":
                driver.executescript(_sqlite_script())
            else:
                assert server_url is not None, "PostgreSQL needs the server url"
                driver.execute(_postgres_script(server_url))
                driver.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()
    return url
