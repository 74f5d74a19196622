"""`UTCDateTime` on SQLite reads its text in one parse (`utc_from_sqlite`), answering exactly
what SQLAlchemy's own parse followed by `process_result_value` answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator

from bandit.tables import UTCDateTime, utc_from_sqlite

DIALECT = sqlite.dialect()
STORED = UTCDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
"""What the store writes for a time: SQLAlchemy's SQLite text, naive UTC."""
GENERAL = TypeDecorator.result_processor(UTCDateTime().dialect_impl(DIALECT), DIALECT, None)
"""How SQLAlchemy reads it without the override."""


def _same(text: Any) -> None:
    expected = GENERAL(text)
    got = utc_from_sqlite(text)
    assert got == expected
    if expected is not None:
        assert got is not None and got.tzinfo is UTC and expected.tzinfo is UTC


def test_the_sqlite_dialect_reads_through_it() -> None:
    assert UTCDateTime().dialect_impl(DIALECT).result_processor(DIALECT, None) is utc_from_sqlite


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-9, minutes=-30))]),
    )
)
def test_every_stored_time_reads_as_sqlalchemy_reads_it(moment: datetime) -> None:
    text = STORED(moment)
    assert isinstance(text, str)
    _same(text)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "2026-12-04 10:00:00.000000",
        "0001-01-01 00:00:00.000000",
        "9999-12-31 23:59:59.999999",
        "2026-12-04 10:00:00",  # SQLite's CURRENT_TIMESTAMP
        "2026-12-04T10:00:00.123",
        "2026-12-04",  # a date alone: "+00:00" appended would read naive
        "2026-12-04T10:00:00Z",
        "2026-12-04 10:00:00.123456+02:00",
        "0001-01-01 00:30:00-01:00",
    ],
)
def test_other_texts_read_as_sqlalchemy_reads_them(text: str | None) -> None:
    _same(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a time", "Invalid isoformat string"),
        ("", "Invalid isoformat string"),
        ("2026-13-01 00:00:00", "month must be in 1..12"),
        ("0001-01-01 00:30:00+01:00", "out of range in UTC"),
    ],
)
def test_a_text_that_is_no_time_fails_as_it_did(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GENERAL(text)
    with pytest.raises(ValueError, match=message):
        utc_from_sqlite(text)
