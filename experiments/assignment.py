"""Sticky, deterministic assignment of units to arms.

Assignment is a pure function of ``(unit_id, salt, arms)``: no state, no randomness, no I/O, so
every api worker, the learner and an analyst's notebook agree on a unit's arm without talking to
each other. The contract below is pinned by ``tests/experiments/data/assignment_vectors.json``;
changing any part of it moves live units between arms mid-experiment.

Bucketing
    ``bucket(unit_id, salt)`` is SHA-256 of the UTF-8 bytes of ``f"{salt}:{unit_id}"``, whose first
    8 bytes are read as a big-endian unsigned integer and reduced modulo ``BUCKETS`` (10,000).
    Unit ids are hashed as given, without Unicode normalization: they are opaque identifiers, so
    "é" (U+00E9) and "e" + U+0301 are different units. Salts may not contain ``":"`` so that the
    hashed string splits back into exactly one ``(salt, unit_id)`` pair. Because 2**64 is not a
    multiple of 10,000, buckets 0–1615 are favoured by one preimage in about 1.8e15: a relative
    bias of 5e-16, far below anything a test of 10**9 units could see.

Allocation
    Arms keep their given order and receive contiguous, half-open bucket ranges. With integer
    weights ``w_1..w_k``, cumulative weights ``C_i = w_1 + ... + w_i`` and ``W = C_k``, arm ``i``
    owns ``[floor(B * C_{i-1} / W), floor(B * C_i / W))``. Flooring the *cumulative* boundaries
    (rather than each arm's share) makes the ranges tile ``0..B-1`` exactly, keeps every arm within
    one bucket of its exact share, and is computed in integer arithmetic, so no float rounding can
    differ between machines. Equivalently: bucket ``b`` goes to the first arm whose cumulative
    share ``C_i / W`` reaches ``(b + 1) / B``. Weights so small that an arm would own no bucket are
    rejected.

Examples
--------
>>> assign("user-42", "exp-7", [("control", 1), ("treatment", 1)])
'treatment'
>>> allocate([Arm("a", 1), Arm("b", 2)])
(BucketRange(arm='a', start=0, stop=3333), BucketRange(arm='b', start=3333, stop=10000))
"""

from __future__ import annotations

import hashlib
import operator
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BUCKETS",
    "Arm",
    "ArmLike",
    "BucketRange",
    "allocate",
    "arm_for_bucket",
    "assign",
    "bucket",
]

BUCKETS = 10_000
"""Number of hash buckets; the granularity of an arm's traffic share (0.01 %)."""


@dataclass(frozen=True, slots=True)
class Arm:
    """An arm of an experiment: a name and a positive integer traffic weight.

    Weights are relative: ``(1, 1)`` and ``(50, 50)`` allocate identically.
    """

    name: str
    weight: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` of an arm must be a non-empty string (got {self.name!r})")
        weight = self.weight
        if isinstance(weight, bool):
            raise TypeError(f"`weight` of arm {self.name!r} must be an integer (got {weight!r})")
        try:
            # operator.index accepts int and numpy integers but refuses 0.5 and "3": a float
            # weight would make the bucket boundaries depend on float rounding.
            weight = operator.index(weight)
        except TypeError:
            raise TypeError(
                f"`weight` of arm {self.name!r} must be an integer (got {weight!r})"
            ) from None
        if weight <= 0:
            raise ValueError(f"`weight` of arm {self.name!r} must be positive (got {weight})")
        object.__setattr__(self, "weight", weight)


ArmLike = Arm | tuple[str, int]
"""An :class:`Arm` or a ``(name, weight)`` pair."""


@dataclass(frozen=True, slots=True)
class BucketRange:
    """The half-open range of buckets ``[start, stop)`` owned by one arm."""

    arm: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        """Number of buckets in the range; its share of traffic is ``size / BUCKETS``."""
        return self.stop - self.start

    def __contains__(self, bucket: object) -> bool:
        return isinstance(bucket, int) and self.start <= bucket < self.stop


def bucket(unit_id: str, salt: str) -> int:
    """Return the bucket in ``[0, BUCKETS)`` of ``unit_id`` in the experiment salted ``salt``.

    Parameters
    ----------
    unit_id : str
        The randomization unit (e.g. a person's id). Non-empty; hashed as given.
    salt : str
        The experiment's salt. Non-empty and without ``":"``. A fresh salt per experiment makes
        assignments of different experiments independent.

    Returns
    -------
    int
        ``int.from_bytes(sha256(f"{salt}:{unit_id}".encode()).digest()[:8], "big") % BUCKETS``.
    """
    if not isinstance(unit_id, str) or not unit_id:
        raise ValueError(f"`unit_id` must be a non-empty string (got {unit_id!r})")
    if not isinstance(salt, str) or not salt:
        raise ValueError(f"`salt` must be a non-empty string (got {salt!r})")
    if ":" in salt:
        raise ValueError(f"`salt` must not contain ':' (got {salt!r})")
    try:
        key = f"{salt}:{unit_id}".encode()
    except UnicodeEncodeError:
        # Lone surrogates (e.g. from a mis-decoded header) have no UTF-8 form; hashing some
        # replacement would silently merge distinct ids into one unit.
        raise ValueError(f"`unit_id` must be encodable as UTF-8 (got {unit_id!r})") from None
    digest = hashlib.sha256(key).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def allocate(arms: Sequence[ArmLike]) -> tuple[BucketRange, ...]:
    """Split the ``BUCKETS`` buckets into one contiguous range per arm, in the arms' order.

    Parameters
    ----------
    arms : sequence of Arm or (name, weight)
        At least one arm; names unique; weights positive integers.

    Returns
    -------
    tuple of BucketRange
        One range per arm, in order, tiling ``[0, BUCKETS)`` exactly. Arm ``i`` owns
        ``[floor(B * C_{i-1} / W), floor(B * C_i / W))`` (see the module docstring).

    Raises
    ------
    ValueError
        If ``arms`` is empty, has duplicate names, or an arm's weight is too small to own a bucket.
    """
    checked = _checked_arms(arms)
    total = sum(arm.weight for arm in checked)
    ranges: list[BucketRange] = []
    cumulative = 0
    start = 0
    for arm in checked:
        cumulative += arm.weight
        stop = BUCKETS * cumulative // total
        if stop == start:
            raise ValueError(
                f"`weight` of arm {arm.name!r} is too small to own any of the {BUCKETS} buckets "
                f"(got {arm.weight} of a total weight of {total})"
            )
        ranges.append(BucketRange(arm.name, start, stop))
        start = stop
    return tuple(ranges)


def arm_for_bucket(bucket_: int, ranges: Sequence[BucketRange]) -> str:
    """Return the arm whose range in ``ranges`` (from :func:`allocate`) holds ``bucket_``."""
    if isinstance(bucket_, bool) or not isinstance(bucket_, int) or not 0 <= bucket_ < BUCKETS:
        raise ValueError(f"`bucket_` must be an integer in [0, {BUCKETS}) (got {bucket_!r})")
    if not ranges:
        raise ValueError("`ranges` must not be empty")
    index = bisect_right([r.stop for r in ranges], bucket_)
    if index == len(ranges) or bucket_ not in ranges[index]:
        raise ValueError("`ranges` must tile [0, BUCKETS) as returned by allocate()")
    return ranges[index].arm


def assign(unit_id: str, salt: str, arms: Sequence[ArmLike]) -> str:
    """Return the name of the arm ``unit_id`` belongs to in the experiment salted ``salt``.

    Sticky: the same arguments always give the same arm, in any process, on any machine.
    This is ``arm_for_bucket(bucket(unit_id, salt), allocate(arms))``; callers assigning many
    units to one experiment can call :func:`allocate` once and reuse the ranges.

    Examples
    --------
    >>> assign("ünïcødé-ユーザー", "exp-7", [Arm("a", 9), Arm("b", 1)])
    'a'
    """
    return arm_for_bucket(bucket(unit_id, salt), allocate(arms))


def _checked_arms(arms: Sequence[ArmLike]) -> list[Arm]:
    if isinstance(arms, str | bytes) or not isinstance(arms, Sequence):
        raise TypeError(f"`arms` must be a sequence of Arm or (name, weight) pairs (got {arms!r})")
    if len(arms) == 0:
        raise ValueError("`arms` must not be empty")
    checked: list[Arm] = []
    seen: set[str] = set()
    for item in arms:
        if isinstance(item, Arm):
            arm = item
        elif isinstance(item, tuple) and len(item) == 2:
            arm = Arm(item[0], item[1])
        else:
            raise TypeError(f"`arms` items must be Arm or (name, weight) pairs (got {item!r})")
        if arm.name in seen:
            raise ValueError(f"`arms` has a duplicate arm name {arm.name!r}")
        seen.add(arm.name)
        checked.append(arm)
    return checked
