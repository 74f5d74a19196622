"""Alembic's environment for oO: always online, on the connection `api.db.migrate` opened.

`api.db.migrate` takes the lock (a PostgreSQL advisory lock; SQLite's write lock through
BEGIN IMMEDIATE) and hands the connection over in `config.attributes["connection"]`; the whole
run is one transaction on both backends, so a failed upgrade leaves the database as it was.
"""

from __future__ import annotations

from alembic import context

from api.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata(),
    # SQLite alters most things by copying the table; batch mode does that for a migration.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    # SQLite's DDL is transactional too; alembic only assumes it for PostgreSQL.
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
