"""The learner's sweep reads only the decisions whose window closed, through the awaiting index,
and answers the same on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bandit.events import Action, Decision, utcnow
from bandit.features import action_lines, adf_example
from bandit.sampling import sample_index
from bandit.store import Learned, Store
from bandit.tables import AWAITING_INDEX
from tests.conftest import Backend

ACTIONS = (Action("a", [{"x": {"k": "a"}}]), Action("b", [{"x": {"k": "b"}}]))
NOW = utcnow()


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    store = Store.connect(backend.database_url)
    yield store
    store.engine.dispose()


def _decide(
    store: Store, event_id: str, *, surface: str, ago: timedelta, activated: bool = True
) -> None:
    at = NOW - ago
    pmf = (0.5, 0.5)
    store.insert_decision(
        Decision(
            event_id=event_id,
            surface=surface,
            principal="p",
            context=[],
            actions=ACTIONS,
            pmf=pmf,
            chosen_index=sample_index(pmf, event_id),
            policy="vw-epsilon",
            model_key=f"{surface}:vw-epsilon",
            model_version=0,
            created_at=at,
            activated_at=at if activated else None,
            example=tuple(adf_example([], action_lines(ACTIONS))),
        )
    )


def test_expired_unrewarded_is_what_closed_unlearned_and_activated(store: Store) -> None:
    for i, minutes in enumerate([30, 20, 12, 5, 1]):
        _decide(store, f"p{i}", surface="personalizer", ago=timedelta(minutes=minutes))
    _decide(store, "t0", surface="tips", ago=timedelta(minutes=40))
    _decide(store, "deferred", surface="personalizer", ago=timedelta(hours=1), activated=False)
    store.mark_learned([Learned("p1", 1, 0.0)])
    before = NOW - timedelta(minutes=10)

    assert store.expired_unrewarded(before, 100, surfaces=["personalizer"]) == ["p0", "p2"]
    assert store.expired_unrewarded(before, 1, surfaces=["personalizer"]) == ["p0"]
    assert store.expired_unrewarded(before, 100, exclude=["personalizer"]) == ["t0"]
    assert store.expired_unrewarded(before, 100) == ["t0", "p0", "p2"]


def test_on_sqlite_the_sweep_reads_through_the_awaiting_index(
    store: Store, backend: Backend
) -> None:
    if backend.name != "embedded":
        pytest.skip("PostgreSQL's planner takes the index by itself, from its statistics")
    for i in range(50):
        _decide(store, f"e{i}", surface="personalizer", ago=timedelta(seconds=i))
    seen: list[tuple[str, Any]] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    store.expired_unrewarded(NOW - timedelta(minutes=10), 1000, surfaces=["personalizer"])
    store.expired_unrewarded(NOW - timedelta(minutes=10), 1000, exclude=["tips"])
    sa.event.remove(store.engine, "before_cursor_execute", _capture)

    assert len(seen) == 2
    with store.engine.connect() as conn:
        for statement, params in seen:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
            details = " | ".join(str(row[-1]) for row in plan)
            assert f"USING INDEX {AWAITING_INDEX}" in details, details
            assert "TEMP B-TREE" not in details, details  # the index gives the order too
