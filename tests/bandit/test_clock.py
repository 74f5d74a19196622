"""`bandit.clock.as_utc`: the one conversion to UTC, refusing instants with no UTC spelling."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bandit import clock
from bandit.clock import OutOfRange, as_utc

FIRST = datetime(1, 1, 1, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(clock).failed == 0


def test_an_aware_time_is_converted_and_a_naive_one_taken_as_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert as_utc(datetime(2026, 11, 25, 10, tzinfo=paris), "t") == datetime(
        2026, 11, 25, 9, tzinfo=UTC
    )
    naive = as_utc(datetime(2026, 11, 25, 9), "t")
    assert naive.tzinfo is UTC and naive == datetime(2026, 11, 25, 9, tzinfo=UTC)


@pytest.mark.parametrize("hours", [0, 1, 14])
def test_the_first_and_last_instants_convert_from_every_offset_that_can_spell_them(
    hours: int,
) -> None:
    # The first instant is written east of Greenwich (or at it), the last one west of it.
    assert as_utc(FIRST.astimezone(timezone(timedelta(hours=hours))), "t") == FIRST
    assert as_utc(LAST.astimezone(timezone(timedelta(hours=-hours))), "t") == LAST


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(1, 1, 1, 0, 0, 0, tzinfo=timezone(timedelta(microseconds=1))),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(-timedelta(microseconds=1))),
    ],
)
def test_an_instant_with_no_utc_spelling_is_refused_naming_its_source(moment: datetime) -> None:
    with pytest.raises(OutOfRange, match=r"^`start` is out of range in UTC \(got .+\)$") as caught:
        as_utc(moment, "start")
    assert isinstance(caught.value, ValueError)
    assert caught.value.name == "start"
    assert caught.value.reason == f"is out of range in UTC (got {moment.isoformat()})"
