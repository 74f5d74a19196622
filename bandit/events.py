"""Event contracts of the decision loop: feature objects, actions, decisions and rewards.

A *feature object* follows Personalizer's convention: a JSON object whose top-level keys name
feature groups (VW namespaces) and whose values are scalars, lists or nested objects. Keys that
start with an underscore are carried along but are not features (as in DSJSON).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from bandit.clock import utcnow as utcnow  # re-exported: the event modules import it from here

JSONScalar: TypeAlias = str | int | float | bool | None
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
FeatureObject: TypeAlias = dict[str, JSONValue]
Features: TypeAlias = list[FeatureObject]

MAX_ID_LENGTH = 256


class _EventIds:
    """Random (version 4) UUIDs in hex, drawn from a pool of `os.urandom` bytes.

    `uuid.uuid4` reads the kernel's random source once per id, and that read releases the GIL:
    on the event loop each id then waits for the decision log's writer thread to hand the GIL
    back (a fifth of a rank's wall time under load). One read serves `ids_per_read` ids here. A
    forked child drops the pool, so parent and child never hand out the same ids.
    """

    def __init__(self, ids_per_read: int = 256) -> None:
        self._size = 16 * ids_per_read
        self._pool = b""
        self._at = 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._drop)

    def _drop(self) -> None:
        self._pool, self._at = b"", 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._at >= len(self._pool):
                self._pool, self._at = os.urandom(self._size), 0
            draw = self._pool[self._at : self._at + 16]
            self._at += 16
        value = int.from_bytes(draw, "big")
        # As `uuid.UUID(bytes=draw, version=4)` sets them: RFC 4122 variant, version 4.
        value = (value & ~(0xC000 << 48)) | (0x8000 << 48)
        value = (value & ~(0xF000 << 64)) | (4 << 76)
        return f"{value:032x}"


_event_ids = _EventIds()


def new_event_id() -> str:
    """A fresh, unguessable event id for a decision the caller did not name: a random UUID
    (version 4) in hex.

    The id seeds the decision's draws (`bandit.sampling`), so whoever must reproduce them (a
    test judging what was chosen) supplies its own ids in place of this.
    """
    return _event_ids()


@dataclass(frozen=True, slots=True)
class Action:
    """One candidate: an id unique within the decision and its feature objects."""

    id: str
    features: Features = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Decision:
    """What was decided, with everything needed to learn from it and to evaluate it later.

    `pmf[i]` is the probability with which `actions[i]` could have been drawn; `chosen_index`
    is the index actually drawn, so `pmf[chosen_index]` is the logged propensity.
    """

    event_id: str
    surface: str
    principal: str
    context: Features
    actions: tuple[Action, ...]
    pmf: tuple[float, ...]
    chosen_index: int
    policy: str
    model_key: str
    model_version: int
    created_at: datetime
    activated_at: datetime | None
    experiment: str | None = None
    arm: str | None = None
    missing_sources: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    example: tuple[str, ...] = ()
    """The unlabeled VW ADF example the policy saw (shared line, then one line per action)."""

    def __post_init__(self) -> None:
        validate_pmf(self.pmf, len(self.actions))
        if not 0 <= self.chosen_index < len(self.actions):
            raise ValueError(
                f"`chosen_index` must index one of {len(self.actions)} actions "
                f"(got {self.chosen_index})"
            )

    @property
    def propensity(self) -> float:
        return self.pmf[self.chosen_index]

    @property
    def chosen(self) -> Action:
        return self.actions[self.chosen_index]


@dataclass(frozen=True, slots=True)
class Reward:
    """A reward joined to its decision by event id."""

    event_id: str
    value: float
    received_at: datetime
    reaction: str | None = None
    late: bool = False


def validate_pmf(pmf: Sequence[float], n_actions: int, tolerance: float = 1e-4) -> None:
    """Refuse a probability vector that cannot be the one actions were drawn from."""
    if len(pmf) != n_actions:
        raise ValueError(f"`pmf` must have one entry per action ({n_actions}), got {len(pmf)}")
    for i, p in enumerate(pmf):
        if not math.isfinite(p) or p < 0.0 or p > 1.0:
            raise ValueError(f"`pmf[{i}]` must be a probability in [0, 1] (got {p})")
    total = math.fsum(pmf)
    if abs(total - 1.0) > tolerance:
        raise ValueError(f"`pmf` must sum to 1 (got {total:.6g})")
