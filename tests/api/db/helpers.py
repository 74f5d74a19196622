"""What the migration tests share: the release fixtures, loading a dump, counting rows, and a
canonical description of a schema to compare two databases by."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL

FIXTURES = Path(__file__).parent / "fixtures"
RELEASE_0 = "release-0"
"""The last release before migrations: its databases have no `alembic_version`."""
RELEASES = tuple(sorted(path.stem for path in FIXTURES.glob("release-*.json")))
"""Every release whose databases the upgrade test starts from (fixtures/make_fixtures.py)."""


def release_counts(backend: str, release: str = RELEASE_0) -> dict[str, int]:
    """The rows of every table in a release fixture, as its script counted them."""
    counts: dict[str, int] = json.loads((FIXTURES / f"{release}.json").read_text())[backend]
    return counts


def needs_postgres() -> str:
    if not PG_URL:
        pytest.skip("PostgreSQL not configured (run through `make test`)")
    return PG_URL


def load_dump(url: str, dump: Path) -> None:
    """Run a plain-SQL `pg_dump` file into the database at `url` (psql's meta-commands, the
    `\\restrict` guard lines, have no meaning outside psql and are left out)."""
    script = "\n".join(line for line in dump.read_text().splitlines() if not line.startswith("\\"))
    engine = sa.create_engine(url)
    try:
        raw: Any = engine.raw_connection()
        try:
            raw.driver_connection.execute(script)
            raw.driver_connection.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()


def row_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = [n for n in sa.inspect(conn).get_table_names() if n != "alembic_version"]
            return {
                n: conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in names
            }
    finally:
        engine.dispose()


def _normal(text: str) -> str:
    """SQL text with whitespace collapsed and schema qualifiers dropped."""
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r'\b(?:"[^"]+"|[a-z_][a-z0-9_]*)\.(?=[a-z_"])', "", text)


def describe(url: str) -> dict[str, Any]:
    """Every table's columns, indexes and constraints, as the database reports them, in a form
    that compares equal between two databases with the same schema (order of columns aside:
    a migration appends a column where the code may declare it in the middle)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                return _describe_sqlite(conn)
            return _describe_postgres(conn)
    finally:
        engine.dispose()


def _describe_sqlite(conn: sa.Connection) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    names = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'alembic_version'"
    ).scalars()
    for name in names:
        columns = {tuple(row[1:]) for row in conn.exec_driver_sql(f'PRAGMA table_info("{name}")')}
        indexes = {
            (row[1], row[2], row[3], row[4])  # name, unique, origin (pk, u, c), partial
            for row in conn.exec_driver_sql(f'PRAGMA index_list("{name}")')
        }
        index_sql = {
            _normal(sql)
            for sql in conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL",
                (name,),
            ).scalars()
        }
        keys = {
            tuple(row[2:]) for row in conn.exec_driver_sql(f'PRAGMA foreign_key_list("{name}")')
        }
        tables[name] = {"columns": columns, "indexes": indexes, "index_sql": index_sql, "fk": keys}
    return tables


def _describe_postgres(conn: sa.Connection) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    columns = conn.execute(
        sa.text(
            "SELECT table_name, column_name, data_type, character_maximum_length, "
            "is_nullable, column_default FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name != 'alembic_version'"
        )
    ).all()
    for table, *column in columns:
        tables.setdefault(table, {"columns": set(), "indexes": set(), "constraints": set()})
        tables[table]["columns"].add(tuple(_normal(str(v)) for v in column))
    for table, definition in conn.execute(
        sa.text(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename != 'alembic_version'"
        )
    ):
        tables[table]["indexes"].add(_normal(definition))
    for table, name, definition in conn.execute(
        sa.text(
            "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname != 'alembic_version'"
        )
    ):
        tables[table]["constraints"].add((name, _normal(definition)))
    return tables
