"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by tests/api/test_schemathesis.py).

Every `date-time` value the run generates is, about half the time, one of the instants at the
calendar's edges: a time that exists in its own offset but has no UTC spelling (year 0 or year
10000 in UTC), and the last representable ones, which must still work. Schemathesis' own
`date-time` strategy draws dates uniformly and almost never lands there.

When OO_TEST_DATE_LOG names a file, each edge value drawn is appended to it, so the test can
prove the run explored them.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import strategies as st
from schemathesis.specs.openapi.formats import rfc3339_values

EDGES = (
    "0001-01-01T00:00:00+14:00",  # 0000-12-31T10:00Z
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-14:00",  # 10000-01-01T13:59:59Z
    "9999-12-31T23:59:59.999999-00:01",
    "0001-01-01T00:00:00Z",  # the first instant a datetime holds in UTC
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59.999999Z",  # the last
    "9999-12-31T23:59:59+14:00",
)


def _seen(value: str) -> str:
    log = os.environ.get("OO_TEST_DATE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(value + "\n")
    return value


schemathesis.openapi.format(
    "date-time", st.one_of(st.sampled_from(EDGES).map(_seen), rfc3339_values("date-time"))
)
