"""Sticky hash assignment: committed vectors, allocation rule, distribution, validation."""

from __future__ import annotations

import doctest
import hashlib
import itertools
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import stats

from experiments import assignment as assignment_module
from experiments.assignment import (
    BUCKETS,
    Arm,
    allocate,
    arm_for_bucket,
    assign,
    bucket,
)

VECTORS = json.loads(
    (Path(__file__).parent / "data" / "assignment_vectors.json").read_text(encoding="utf-8")
)
CASES = VECTORS["cases"]


def _case_id(case: dict[str, object]) -> str:
    return f"{case['salt']}:{case['unit_id']!r}"[:40]


def test_vectors_cover_enough_cases_including_unicode() -> None:
    assert VECTORS["buckets"] == BUCKETS
    assert len(CASES) >= 50
    assert sum(not case["unit_id"].isascii() for case in CASES) >= 10
    assert {len(case["arms"]) for case in CASES} >= {1, 2, 3, 4}


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_bucket_and_arm_match_committed_vectors(case: dict[str, object]) -> None:
    unit_id, salt = str(case["unit_id"]), str(case["salt"])
    arms = [(str(name), int(weight)) for name, weight in case["arms"]]  # type: ignore[attr-defined]
    assert bucket(unit_id, salt) == case["bucket"]
    assert assign(unit_id, salt, arms) == case["expected_arm"]
    assert (
        assign(unit_id, salt, [Arm(name, weight) for name, weight in arms]) == case["expected_arm"]
    )


def test_bucket_is_the_documented_sha256_formula() -> None:
    for unit_id in ["user-42", "ユーザー", "🙂", "e\u0301"]:
        digest = hashlib.sha256(f"exp-7:{unit_id}".encode()).digest()
        assert bucket(unit_id, "exp-7") == int.from_bytes(digest[:8], "big") % 10_000


def test_unit_ids_are_not_unicode_normalized() -> None:
    precomposed, combining = "\u00e9", "e\u0301"
    assert bucket(precomposed, "exp-1") != bucket(combining, "exp-1")


def test_docstring_examples() -> None:
    outcome = doctest.testmod(assignment_module)
    assert outcome.attempted >= 3
    assert outcome.failed == 0


def test_allocation_floors_cumulative_boundaries() -> None:
    ranges = allocate([("a", 1), ("b", 1), ("c", 1)])
    assert [(r.start, r.stop) for r in ranges] == [(0, 3333), (3333, 6666), (6666, 10_000)]
    assert [r.size for r in allocate([("big", 9999), ("tiny", 1)])] == [9999, 1]
    assert [r.size for r in allocate([("x", 3), ("y", 3), ("z", 1)])] == [4285, 4286, 1429]


@given(st.lists(st.integers(min_value=1, max_value=100_000), min_size=1, max_size=12))
@example([1, 50_000])
@example([3, 3, 1])
def test_allocation_tiles_all_buckets_within_one_of_exact_share(weights: list[int]) -> None:
    arms = [(f"arm{i}", w) for i, w in enumerate(weights)]
    total = sum(weights)
    empty = [
        name
        for (name, _), start, stop in zip(
            arms, [0, *itertools.accumulate(weights)], itertools.accumulate(weights), strict=False
        )
        if BUCKETS * start // total == BUCKETS * stop // total
    ]
    if empty:
        # Only an arm whose exact share is below one bucket can round down to nothing.
        assert all(BUCKETS * w < total for (name, w) in arms if name in empty)
        with pytest.raises(ValueError, match=f"`weight` of arm '{empty[0]}' is too small"):
            allocate(arms)
        return
    ranges = allocate(arms)
    assert ranges[0].start == 0
    assert ranges[-1].stop == BUCKETS
    for left, right in itertools.pairwise(ranges):
        assert left.stop == right.start
    for arm_range, weight in zip(ranges, weights, strict=True):
        assert abs(arm_range.size - BUCKETS * weight / total) < 1
    for b in (0, BUCKETS // 2, BUCKETS - 1):
        assert sum(b in r for r in ranges) == 1


def test_arm_for_bucket_agrees_with_ranges_everywhere() -> None:
    ranges = allocate([("w1", 1), ("w2", 2), ("w3", 3), ("w4", 4)])
    owners = [arm_for_bucket(b, ranges) for b in range(BUCKETS)]
    assert Counter(owners) == {"w1": 1000, "w2": 2000, "w3": 3000, "w4": 4000}
    assert owners == sorted(owners)


def test_buckets_are_uniform() -> None:
    buckets = np.array([bucket(f"unit-{i}", "uniformity") for i in range(200_000)])
    per_bucket = np.bincount(buckets, minlength=BUCKETS)
    assert stats.chisquare(per_bucket).pvalue > 0.001
    per_decile = np.bincount(buckets // 1000, minlength=10)
    assert stats.chisquare(per_decile).pvalue > 0.001


def test_arm_proportions_match_weights() -> None:
    arms = [("control", 5), ("t1", 3), ("t2", 2)]
    counts = Counter(assign(f"person-{i}", "proportions", arms) for i in range(100_000))
    observed = [counts[name] for name, _ in arms]
    expected = [100_000 * w / 10 for _, w in arms]
    assert stats.chisquare(observed, expected).pvalue > 0.001
    assert np.allclose(np.array(observed) / 100_000, [0.5, 0.3, 0.2], atol=0.006)


def test_assignment_is_sticky_within_and_across_processes() -> None:
    arms = [("control", 1), ("treatment", 1)]
    units = [f"sticky-{i}" for i in range(200)] + ["ünïcødé", "🙂"]
    first = [assign(u, "exp-sticky", arms) for u in units]
    assert first == [assign(u, "exp-sticky", arms) for u in units]
    # A fresh interpreter with another PYTHONHASHSEED would expose any use of hash().
    script = (
        "import json, sys; from experiments.assignment import bucket; "
        "print(json.dumps([bucket(u, 'exp-sticky') for u in json.loads(sys.stdin.read())]))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(units),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert json.loads(completed.stdout) == [bucket(u, "exp-sticky") for u in units]


def test_salts_give_independent_assignments() -> None:
    units = [f"indep-{i}" for i in range(100_000)]
    a = np.array([bucket(u, "exp-a") for u in units])
    b = np.array([bucket(u, "exp-b") for u in units])
    table = np.zeros((10, 10), dtype=np.int64)
    np.add.at(table, (a // 1000, b // 1000), 1)
    assert stats.chi2_contingency(table).pvalue > 0.001
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01
    # Being in treatment in one experiment says nothing about the other: 2x2 independence.
    arms = allocate([("control", 1), ("treatment", 1)])
    in_a = np.array([arm_for_bucket(int(x), arms) == "treatment" for x in a])
    in_b = np.array([arm_for_bucket(int(x), arms) == "treatment" for x in b])
    two_by_two = [
        [np.sum(in_a & in_b), np.sum(in_a & ~in_b)],
        [np.sum(~in_a & in_b), np.sum(~in_a & ~in_b)],
    ]
    assert stats.chi2_contingency(two_by_two).pvalue > 0.001


@pytest.mark.parametrize(
    ("arms", "error", "message"),
    [
        ([], ValueError, r"`arms` must not be empty"),
        ([("a", 1), ("a", 2)], ValueError, r"`arms` has a duplicate arm name 'a'"),
        ([("a", 1), ("b", 0)], ValueError, r"`weight` of arm 'b' must be positive \(got 0\)"),
        ([("a", -3)], ValueError, r"`weight` of arm 'a' must be positive \(got -3\)"),
        ([("a", 0.5)], TypeError, r"`weight` of arm 'a' must be an integer \(got 0.5\)"),
        ([("a", True)], TypeError, r"`weight` of arm 'a' must be an integer \(got True\)"),
        ([("", 1)], ValueError, r"`name` of an arm must be a non-empty string"),
        ([("a", 1, 2)], TypeError, r"`arms` items must be Arm or \(name, weight\) pairs"),
        ("ab", TypeError, r"`arms` must be a sequence"),
        (
            [("tiny", 1), ("big", 100_000)],
            ValueError,
            r"`weight` of arm 'tiny' is too small to own any of the 10000 buckets",
        ),
    ],
)
def test_invalid_arms_are_rejected_naming_the_argument(
    arms: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        allocate(arms)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("unit_id", "salt", "message"),
    [
        ("", "exp", r"`unit_id` must be a non-empty string"),
        (42, "exp", r"`unit_id` must be a non-empty string \(got 42\)"),
        ("u", "", r"`salt` must be a non-empty string"),
        ("u", "exp:1", r"`salt` must not contain ':' \(got 'exp:1'\)"),
        ("bad\ud800", "exp", r"`unit_id` must be encodable as UTF-8"),
    ],
)
def test_invalid_unit_or_salt_is_rejected(unit_id: object, salt: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bucket(unit_id, salt)  # type: ignore[arg-type]


def test_arm_for_bucket_validates_its_bucket() -> None:
    ranges = allocate([("a", 1)])
    with pytest.raises(ValueError, match=r"`bucket_` must be an integer in \[0, 10000\)"):
        arm_for_bucket(10_000, ranges)
    with pytest.raises(ValueError, match=r"`ranges` must not be empty"):
        arm_for_bucket(0, [])


def test_numpy_integer_weights_are_accepted() -> None:
    assert Arm("a", np.int64(3)).weight == 3  # type: ignore[arg-type]
    assert type(Arm("a", np.int64(3)).weight) is int  # type: ignore[arg-type]
