"""Revision 0005 on PostgreSQL: the decision log's large columns and model snapshots are
compressed with lz4 from the upgrade on, and back to the server's default after going down."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import sqlalchemy as sa

from api import db
from bandit.events import Action, Decision
from bandit.store import Store
from tests.bandit.test_group_commit import decision

COMPRESSED = sa.text(
    """
    SELECT c.relname || '.' || a.attname, a.attcompression
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    WHERE c.relnamespace = current_schema()::regnamespace
      AND c.relname IN ('decisions', 'model_snapshots') AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attcompression <> ''
    """
)
METHOD = sa.text(
    "SELECT pg_column_compression(actions), pg_column_compression(vw_example) FROM decisions"
)
LARGE = [
    "decisions.actions",
    "decisions.context",
    "decisions.pmf",
    "decisions.vw_example",
    "model_snapshots.data",
]


def _decision(event_id: str) -> Decision:
    """A decision whose row is large enough to be compressed (PostgreSQL compresses rows
    past about 2 KB): 40 candidates with a few features each."""
    actions = tuple(
        Action(f"tip-{i}", [{"tip": {"category": f"c{i % 7}", "tag": ["calm", "short"]}}])
        for i in range(40)
    )
    lines = [f"|tip category=c{i % 7} tag=calm tag=short" for i in range(40)]
    now = datetime(2026, 12, 4, 17, tzinfo=UTC)
    return replace(
        decision(event_id),
        actions=actions,
        pmf=tuple([1 / 40] * 40),
        chosen_index=3,
        created_at=now,
        activated_at=now,
        example=("shared |user id=u", *lines),
    )


def test_decisions_written_after_the_upgrade_are_compressed_with_lz4(pg_schema: str) -> None:
    db.upgrade(pg_schema, "0004")
    engine = sa.create_engine(pg_schema)
    try:
        with engine.connect() as conn:
            assert conn.execute(COMPRESSED).all() == []  # the server's default, pglz
        Store.connect(pg_schema).insert_decision(_decision("before"))

        db.upgrade(pg_schema)
        with engine.connect() as conn:
            assert sorted(conn.execute(COMPRESSED).all()) == [(name, "l") for name in LARGE]
        store = Store.connect(pg_schema)
        store.insert_decision(_decision("after"))
        with engine.connect() as conn:
            methods = conn.execute(METHOD).all()
        assert sorted(methods) == [("lz4", "lz4"), ("pglz", "pglz")]
        assert _read(store, "before") == _decision("before")  # older rows read as before
        assert _read(store, "after") == _decision("after")

        db.downgrade(pg_schema, "0004")
        with engine.connect() as conn:
            assert conn.execute(COMPRESSED).all() == []
    finally:
        engine.dispose()


def _read(store: Store, event_id: str) -> Decision:
    logged = store.get(event_id)
    assert logged is not None
    return logged.decision
