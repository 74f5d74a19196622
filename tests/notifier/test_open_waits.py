"""The open-waits read every recommend makes: the hand-written psycopg text and the SQLite
read compiled once answer exactly what the SQLAlchemy statement answers, at the window's
edges too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bandit.store import make_engine
from notifier.timing_points import _OPEN_WAITS, SEND, WAIT, TimingPoints, points
from tests.conftest import Backend

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
WINDOW = timedelta(hours=2)


@pytest.fixture
def engine(backend: Backend) -> Iterator[sa.Engine]:
    engine = make_engine(backend.database_url)
    yield engine
    engine.dispose()


def _point(
    person: str, minutes_ago: float, action: str | None, visited: bool = False
) -> dict[str, object]:
    decided = NOW - timedelta(minutes=minutes_ago)
    return {
        "principal": person,
        "slot_at": decided,
        "local_day": decided.date().isoformat(),
        "event_id": f"{person}-{minutes_ago}-{action}-{visited}",
        "action": action,
        "decided_at": decided,
        "visited_at": NOW if visited else None,
    }


def test_the_open_waits_are_the_statement_s_answer(engine: sa.Engine) -> None:
    rows = [
        _point("ann", 0, WAIT),  # decided at `now`: in the window
        _point("ann", -1, WAIT),  # decided after `now`: not yet
        _point("ann", 120, WAIT),  # at the window's start: in
        _point("ann", 120.01, WAIT),  # just before it: out
        _point("ann", 30, WAIT, visited=True),  # rewarded by a visit already
        _point("ann", 40, SEND),
        _point("ann", 50, None),  # claimed, undecided
        _point("bob", 10, WAIT),  # someone else's
        _point("ann", 60, WAIT),
    ]
    with engine.begin() as conn:
        conn.execute(points.insert(), rows)
    bounds = {"person": "ann", "since": NOW - WINDOW, "now": NOW}
    with engine.connect() as conn:
        expected = sorted(row.event_id for row in conn.execute(_OPEN_WAITS, bounds))
    assert expected == ["ann-0-wait-False", "ann-120-wait-False", "ann-60-wait-False"]
    assert sorted(TimingPoints(engine).open_waits("ann", NOW, WINDOW)) == expected
    assert TimingPoints(engine).open_waits("carl", NOW, WINDOW) == []
