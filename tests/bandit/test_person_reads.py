"""The decision path's reads of one person's decisions (recent choices, history) are answered by
the person's own index, not by scanning every person's decisions on the surface (migration
0004): checked on the statements the code sends, with SQLite's planner, which has no statistics
to rescue a wrong index choice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bandit.events import utcnow
from bandit.store import Store
from tests.bandit.test_group_commit import decision
from tests.schema import migrated

INDEX = "ix_decisions_principal_surface_created"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.connect(migrated(f"sqlite:///{tmp_path / 'oo.sqlite3'}"))
    yield store
    store.engine.dispose()


def _statements(store: Store, read: Any) -> list[tuple[str, Any]]:
    """The SELECTs on `decisions` that `read()` sends, with their parameters."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "decisions" in statement:
            sent.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        read()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    return sent


@pytest.mark.parametrize("read", ["recent_choices", "person_history"])
def test_a_person_s_reads_use_the_person_s_index(store: Store, read: str) -> None:
    now = utcnow()
    for i in range(20):  # several people on the surface, so that a scan would have rows to read
        store.insert_decision(replace(decision(f"e{i}"), principal=f"person-{i % 4}"))
    since = now - timedelta(days=28)
    answers: list[Any] = []
    if read == "recent_choices":
        statements = _statements(
            store,
            lambda: answers.append(store.recent_choices("person-1", "personalizer", since)),
        )
        assert list(answers[0]) == ["a"]  # person-1's five decisions all chose "a"
    else:
        statements = _statements(
            store,
            lambda: answers.append(store.person_history("person-1", "personalizer", since, 50)),
        )
        assert sorted(c.event_id for c in answers[0]) == ["e1", "e13", "e17", "e5", "e9"]
    assert statements, "the read sent no SELECT on decisions"
    with store.engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            details = " | ".join(str(row[-1]) for row in plan)
            assert f"USING INDEX {INDEX} (principal=? AND surface=? AND created_at>?)" in details
