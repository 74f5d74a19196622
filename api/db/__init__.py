"""The database schema: every table's metadata and the migrations that make and evolve it.

It sits at the top of the layering (in `api`, which nothing imports) because the migrations see
every package's tables, the api's own (sign-in, jobs) included.
"""

from api.db.migrate import (
    MIGRATIONS,
    MigrationError,
    Outcome,
    Revision,
    SchemaNotReady,
    Status,
    downgrade,
    head,
    history,
    new_revision,
    prepare,
    status,
    upgrade,
)

__all__ = [
    "MIGRATIONS",
    "MigrationError",
    "Outcome",
    "Revision",
    "SchemaNotReady",
    "Status",
    "downgrade",
    "head",
    "history",
    "new_revision",
    "prepare",
    "status",
    "upgrade",
]
