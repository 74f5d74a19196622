r"""The grid of a policy search: VW ``--cb_explore_adf`` configurations, and the search's budget.

Each candidate is one combination of an exploration algorithm, a set of interactions, a
learning rate and a ``cb_type``. The grid is structured (an algorithm name and a number,
namespace pairs, a float, a name), not free VW text: a search request cannot smuggle in options
that touch files (``--final_regressor``, ``--data``) or change what is being evaluated; the
arguments a candidate spells still pass the VW allow-list when its model is built.

The grid is visited in a seeded random order (:meth:`Grid.candidates`; see
:mod:`rewards.ope.search`).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Literal

from rewards.ope.errors import EvaluationError

Algorithm = Literal["epsilon", "softmax", "squarecb", "bag", "cover", "regcb", "regcbopt"]
ALGORITHMS: tuple[Algorithm, ...] = (
    "epsilon",
    "softmax",
    "squarecb",
    "bag",
    "cover",
    "regcb",
    "regcbopt",
)
CbType = Literal["ips", "dr", "mtr", "dm"]
CB_TYPES: tuple[CbType, ...] = ("ips", "dr", "mtr", "dm")
_PAIR = re.compile(r"^[A-Za-z:]{2}$")

CB_TYPES_OF: dict[Algorithm, tuple[CbType, ...]] = {
    "squarecb": ("mtr",),
    "regcb": ("mtr",),
    "cover": ("ips", "dr", "mtr"),
}
"""The cb_types VW accepts with an exploration algorithm, where it does not accept them all."""


class SearchError(EvaluationError):
    """A search that cannot run; `target` names the offending field."""


@dataclass(frozen=True, slots=True)
class Exploration:
    """An exploration algorithm and its one number, or None for VW's default.

    ``epsilon``: the exploration probability in [0, 1]. ``softmax``: lambda (> 0).
    ``squarecb``: gamma_scale (> 0). ``bag``, ``cover``: the number of policies (an integer
    >= 1). ``regcb``, ``regcbopt``: none (mellowness stays VW's default).
    """

    algorithm: Algorithm
    value: float | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise SearchError(
                f"`explorations`: algorithm must be one of {list(ALGORITHMS)} "
                f"(got {self.algorithm!r})",
                target="explorations",
            )
        v = self.value
        if v is None:
            if self.algorithm in ("bag", "cover"):
                raise SearchError(
                    f"`explorations`: {self.algorithm} needs a number of policies, "
                    f"e.g. {self.algorithm}=4",
                    target="explorations",
                )
            return
        if self.algorithm in ("regcb", "regcbopt"):
            raise SearchError(
                f"`explorations`: {self.algorithm} takes no value (got {v})", target="explorations"
            )
        if not math.isfinite(v):
            raise SearchError(
                f"`explorations`: value must be finite (got {v})", target="explorations"
            )
        if self.algorithm == "epsilon" and not 0.0 <= v <= 1.0:
            raise SearchError(
                f"`explorations`: epsilon must be in [0, 1] (got {v})", target="explorations"
            )
        if self.algorithm in ("softmax", "squarecb") and v <= 0.0:
            raise SearchError(
                f"`explorations`: {self.algorithm} value must be positive (got {v})",
                target="explorations",
            )
        if self.algorithm in ("bag", "cover") and (v != int(v) or not 1 <= v <= 32):
            raise SearchError(
                f"`explorations`: {self.algorithm} needs a whole number of policies in 1-32 "
                f"(got {v})",
                target="explorations",
            )

    @classmethod
    def parse(cls, text: str) -> Exploration:
        """``epsilon=0.1``, ``squarecb``, ``softmax=10``, ``bag=4``… (the CLI's spelling)."""
        name, _, value = text.strip().partition("=")
        if name not in ALGORITHMS:
            raise SearchError(
                f"`explorations`: algorithm must be one of {list(ALGORITHMS)} (got {name!r})",
                target="explorations",
            )
        try:
            number = float(value) if value else None
        except ValueError:
            raise SearchError(
                f"`explorations`: value of {name} must be a number (got {value!r})",
                target="explorations",
            ) from None
        return cls(name, number)

    @property
    def args(self) -> str:
        v = self.value
        match self.algorithm:
            case "epsilon":
                return "--epsilon 0.05" if v is None else f"--epsilon {v:g}"
            case "softmax":
                return "--softmax" + ("" if v is None else f" --lambda {v:g}")
            case "squarecb":
                return "--squarecb" + ("" if v is None else f" --gamma_scale {v:g}")
            case "bag" | "cover":
                return f"--{self.algorithm} {int(v or 1)}"
            case "regcb" | "regcbopt":
                # RegCB's confidence bounds assume costs in [cb_min_cost, cb_max_cost], by
                # default [0, 1]; oO's costs are -reward, in [-1, 0] for rewards in [0, 1]
                # (measured: 7% of the oracle's lift with VW's range, 80% with this one).
                return f"--{self.algorithm} --cb_min_cost -1 --cb_max_cost 0"

    def __str__(self) -> str:
        return self.algorithm if self.value is None else f"{self.algorithm}={self.value:g}"


def interaction_args(pairs: Sequence[str]) -> str:
    """``-q`` options for namespace pairs (first letters; ``:`` is any namespace)."""
    for pair in pairs:
        if not _PAIR.match(pair):
            raise SearchError(
                "`interactions` holds pairs of namespace letters or ':' such as '::' or 'ui' "
                f"(got {pair!r})",
                target="interactions",
            )
    return " ".join(f"-q {pair}" for pair in pairs)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One configuration of the grid; `args` is what VW is built with."""

    index: int
    exploration: Exploration
    interactions: tuple[str, ...]
    learning_rate: float | None
    cb_type: CbType

    @property
    def name(self) -> str:
        return f"candidate-{self.index}"

    @property
    def args(self) -> str:
        parts = ["--cb_explore_adf", self.exploration.args, f"--cb_type {self.cb_type}"]
        if self.interactions:
            parts.append(interaction_args(self.interactions))
        if self.learning_rate is not None:
            parts.append(f"-l {self.learning_rate:g}")
        return " ".join(parts)


DEFAULT_EXPLORATIONS = (
    Exploration("epsilon", 0.05),
    Exploration("epsilon", 0.2),
    Exploration("squarecb"),
    Exploration("softmax", 10.0),
)
DEFAULT_INTERACTIONS: tuple[tuple[str, ...], ...] = ((), ("::",))
DEFAULT_LEARNING_RATES: tuple[float | None, ...] = (None, 0.1)
DEFAULT_CB_TYPES: tuple[CbType, ...] = ("mtr", "ips")


@dataclass(frozen=True, slots=True)
class Grid:
    """The axes of the search; every combination VW accepts is one candidate (`CB_TYPES_OF`).
    A `None` learning rate is VW's default (0.5)."""

    explorations: tuple[Exploration, ...] = DEFAULT_EXPLORATIONS
    interactions: tuple[tuple[str, ...], ...] = DEFAULT_INTERACTIONS
    learning_rates: tuple[float | None, ...] = DEFAULT_LEARNING_RATES
    cb_types: tuple[CbType, ...] = DEFAULT_CB_TYPES

    def __post_init__(self) -> None:
        for name, axis in (
            ("explorations", self.explorations),
            ("interactions", self.interactions),
            ("learning_rates", self.learning_rates),
            ("cb_types", self.cb_types),
        ):
            if not axis:
                raise SearchError(f"`{name}` must hold at least one value", target=name)
            if len(set(axis)) != len(axis):
                raise SearchError(f"`{name}` holds a value twice", target=name)
        for pairs in self.interactions:
            interaction_args(pairs)
        for rate in self.learning_rates:
            if rate is not None and not (math.isfinite(rate) and 0.0 < rate <= 10.0):
                raise SearchError(
                    f"`learning_rates` must be in (0, 10] (got {rate})", target="learning_rates"
                )
        for cb_type in self.cb_types:
            if cb_type not in CB_TYPES:
                raise SearchError(
                    f"`cb_types` must be among {list(CB_TYPES)} (got {cb_type!r})",
                    target="cb_types",
                )

        if not self._combinations():
            raise SearchError(
                f"`cb_types` {list(self.cb_types)} fit none of the explorations "
                f"{[str(e) for e in self.explorations]} (squarecb and regcb need mtr; cover "
                "takes ips, dr or mtr)",
                target="cb_types",
            )

    def _combinations(self) -> list[tuple[Exploration, tuple[str, ...], float | None, CbType]]:
        """Every combination VW accepts: `CB_TYPES_OF` leaves the others out."""
        return [
            combo
            for combo in product(
                self.explorations, self.interactions, self.learning_rates, self.cb_types
            )
            if combo[3] in CB_TYPES_OF.get(combo[0].algorithm, CB_TYPES)
        ]

    def __len__(self) -> int:
        return len(self._combinations())

    def candidates(self, seed: int = 0) -> list[Candidate]:
        """Every combination once, in a random order fixed by `seed`; indices follow it."""
        combos = self._combinations()
        random.Random(seed).shuffle(combos)
        return [Candidate(i, *combo) for i, combo in enumerate(combos)]


@dataclass(frozen=True, slots=True)
class Budget:
    """At most `max_candidates` candidates and/or `max_seconds` of wall-clock time (None: no
    limit on that axis)."""

    max_candidates: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_candidates is not None and self.max_candidates < 1:
            raise SearchError(
                f"`max_candidates` must be at least 1 (got {self.max_candidates})",
                target="max_candidates",
            )
        if self.max_seconds is not None and not (
            math.isfinite(self.max_seconds) and self.max_seconds > 0
        ):
            raise SearchError(
                f"`max_seconds` must be positive (got {self.max_seconds})", target="max_seconds"
            )
