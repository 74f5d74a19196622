r"""Policy search: try a grid of VW ``--cb_explore_adf`` configurations on the log, within a budget.

Each candidate is one combination of an exploration algorithm, a set of interactions, a
learning rate and a ``cb_type``. It is evaluated by progressive replay over the whole window
(:class:`rewards.evaluation.Replay`: predict each event, then learn it), beside the online
policy, exactly as ``POST /v1/evaluations`` would evaluate it; one pass over the log per
candidate, so a candidate's estimate never depends on which others ran.

**Order and budget.** The grid is visited in a seeded random order (random search within a
grid: with a budget smaller than the grid, a random subset explores every axis, where the
grid's own order would vary only the last one). The budget is a number of candidates and/or
a number of seconds; a candidate still replaying when the seconds run out is abandoned (an
estimate over a prefix of the window is not comparable with the online policy's over all of it).

**The winner** follows Personalizer's auto-optimize rule, as evaluations' verdict does: among
candidates whose mean beats the online policy's and whose lower 95% bound is above the online
policy's lower bound, the best mean. There may be none; the ``leader`` (best mean, whatever its
verdict) is reported beside it.

The grid is structured (an algorithm name and a number, namespace pairs, a float, a name), not
free VW text: a search request cannot smuggle in options that touch files
(``--final_regressor``, ``--data``) or change what is being evaluated.

Reference: J. Bergstra & Y. Bengio (2012), "Random search for hyper-parameter optimization",
JMLR 13.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice, product
from typing import Any, Literal

from bandit.store import Store
from rewards import evaluation
from rewards.evaluation import (
    CancelFlag,
    EstimatorName,
    EvaluationCancelled,
    EvaluationError,
    LoggedEvent,
    PolicyResult,
    RewardModelName,
)

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

StopReason = Literal["exhausted", "max_candidates", "max_seconds"]

CB_TYPES_OF: dict[Algorithm, tuple[CbType, ...]] = {
    "squarecb": ("mtr",),
    "regcb": ("mtr",),
    "cover": ("ips", "dr", "mtr"),
}
"""The cb_types VW accepts with an exploration algorithm, where it does not accept them all."""


class SearchError(EvaluationError):
    """A search that cannot run; `target` names the offending field."""


# --- the grid --------------------------------------------------------------------------------


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
                return f"--{self.algorithm}"

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

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "args": self.args,
            "exploration": str(self.exploration),
            "interactions": list(self.interactions),
            "learning_rate": self.learning_rate,
            "cb_type": self.cb_type,
        }


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


# --- the log ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Log:
    """A window of learned events that can be read again, once per candidate.

    `batches()` starts a fresh pass, oldest event first; `total`, `reward_range` and
    `max_weight` are read before the first (see :func:`rewards.evaluation.ranges`).
    """

    batches: Callable[[], Iterable[Sequence[LoggedEvent]]]
    total: int
    reward_range: tuple[float, float]
    max_weight: float
    surface: str | None = None
    model_key: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def of_store(
        cls,
        store: Store,
        *,
        surface: str | None = None,
        model_key: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        batch: int = 1000,
    ) -> Log:
        """The learned decisions of [start, end) as they are now (later ones are left out)."""
        if start is not None and end is not None and start >= end:
            raise SearchError(f"`start` ({start.isoformat()}) must be before `end`", target="start")
        total, r_min, r_max, p_min, last_seq = store.learned_summary(
            start=start, end=end, surface=surface, model_key=model_key
        )
        reward_range, max_weight = evaluation.ranges(r_min, r_max, p_min)

        def batches() -> Iterator[list[LoggedEvent]]:
            return evaluation.store_batches(
                store,
                start=start,
                end=end,
                surface=surface,
                model_key=model_key,
                through_seq=last_seq,
                batch=batch,
            )

        return cls(batches, total, reward_range, max_weight, surface, model_key, start, end)

    @classmethod
    def of_events(cls, events: Callable[[], Iterable[LoggedEvent]], *, batch: int = 1000) -> Log:
        """Events from a source read once for the ranges and once per candidate (a file)."""
        total, r_min, r_max, p_min = 0, math.inf, -math.inf, 1.0
        for event in events():
            total += 1
            r_min, r_max = min(r_min, event.reward), max(r_max, event.reward)
            p_min = min(p_min, event.propensity)
        reward_range, max_weight = evaluation.ranges(
            r_min if total else None, r_max if total else None, p_min
        )

        def batches() -> Iterator[list[LoggedEvent]]:
            source = iter(events())
            while chunk := list(islice(source, batch)):
                yield chunk

        return cls(batches, total, reward_range, max_weight)


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trial:
    """One candidate tried: its result, or why it has none (VW refused its arguments)."""

    candidate: Candidate
    result: PolicyResult | None
    seconds: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a search stands; `events_done` counts replayed events over all candidates."""

    candidates_done: int
    candidates_planned: int
    events_done: int
    events_total: int


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class SearchResult:
    n: int
    alpha: float
    estimator: EstimatorName
    reward_model: str
    grid_size: int
    seed: int
    stopped: StopReason
    online: PolicyResult | None
    trials: tuple[Trial, ...]
    seconds: float
    surface: str | None = None
    model_key: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def _mean(self, trial: Trial) -> float:
        return math.nan if trial.result is None else trial.result.estimate(self.estimator).value

    @property
    def ranked(self) -> list[Trial]:
        """Trials with a result, best mean first (NaN last); ties keep the order tried."""
        done = [t for t in self.trials if t.result is not None]
        return sorted(
            done,
            key=lambda t: (0, -self._mean(t)) if math.isfinite(self._mean(t)) else (1, 0.0),
        )

    @property
    def winner(self) -> Trial | None:
        """The best mean among candidates the auto-optimize rule recommends; None when none is."""
        return next((t for t in self.ranked if t.result and t.result.verdict.recommended), None)

    @property
    def leader(self) -> Trial | None:
        """The best mean, recommended or not."""
        ranked = self.ranked
        return ranked[0] if ranked else None

    def trial(self, index: int) -> Trial:
        found = next((t for t in self.trials if t.candidate.index == index), None)
        if found is None:
            raise SearchError(
                f"`candidate` {index} was not tried (tried: "
                f"{sorted(t.candidate.index for t in self.trials)})",
                target="candidate",
            )
        return found

    def as_json(self) -> dict[str, Any]:
        """JSON-ready (the API's ``PolicySearchResult``); NaN/inf -> None."""
        winner, leader = self.winner, self.leader
        return {
            "n": self.n,
            "alpha": self.alpha,
            "estimator": self.estimator,
            "reward_model": self.reward_model,
            "grid_size": self.grid_size,
            "seed": self.seed,
            "stopped": self.stopped,
            "seconds": self.seconds,
            "surface": self.surface,
            "model_key": self.model_key,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "online": None if self.online is None else evaluation.policy_json(self.online),
            "winner": None if winner is None else winner.candidate.index,
            "leader": None if leader is None else leader.candidate.index,
            "trials": [
                {
                    "candidate": t.candidate.as_json(),
                    "seconds": t.seconds,
                    "error": t.error,
                    "result": None if t.result is None else evaluation.policy_json(t.result),
                }
                for t in self.trials
            ],
        }


@dataclass(frozen=True)
class _Deadline:
    """Set by the caller's cancel flag, or once the clock passes `at`."""

    cancel: CancelFlag | None
    at: float
    clock: Callable[[], float]

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def is_set(self) -> bool:
        return self.cancelled() or self.clock() >= self.at


@dataclass
class _Counter:
    candidates_done: int = 0
    events_done: int = 0
    planned: int = 0
    total: int = 0
    listeners: list[ProgressCallback] = field(default_factory=list)

    def report(self, in_pass: int = 0) -> None:
        snapshot = Progress(
            self.candidates_done,
            self.planned,
            self.events_done + in_pass,
            self.planned * self.total,
        )
        for listener in self.listeners:
            listener(snapshot)


def search(
    log: Log,
    grid: Grid,
    *,
    budget: Budget = Budget(),
    seed: int = 0,
    alpha: float = 0.05,
    estimator: EstimatorName = "ips",
    reward_model_name: RewardModelName = "action-mean",
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Replay the grid's candidates over `log` (seeded order) until the budget runs out.

    Parameters
    ----------
    log
        The window, read once per candidate.
    grid, seed
        The candidates and the order they are tried in.
    budget
        Stops after `max_candidates` candidates, or abandons the running candidate once
        `max_seconds` have passed; the result says which (`stopped`).
    estimator
        The estimator the winner is chosen on (Gaussian intervals, level ``1 - alpha``).
    on_progress
        Called after every batch of every candidate.

    Raises
    ------
    EvaluationCancelled
        When `cancel` is set (checked before every batch).
    """
    began = clock()
    candidates = grid.candidates(seed)
    planned = candidates[: budget.max_candidates] if budget.max_candidates else candidates
    deadline = _Deadline(
        cancel, began + budget.max_seconds if budget.max_seconds else math.inf, clock
    )
    counter = _Counter(planned=len(planned), total=log.total)
    if on_progress is not None:
        counter.listeners.append(on_progress)
    counter.report()
    online: PolicyResult | None = None
    trials: list[Trial] = []
    stopped: StopReason = "max_candidates" if len(planned) < len(candidates) else "exhausted"
    for candidate in planned:
        if deadline.cancelled():
            raise EvaluationCancelled(counter.events_done, counter.planned * counter.total)
        if deadline.is_set():
            stopped = "max_seconds"
            break
        started = clock()
        try:
            targets: list[evaluation.Target] = [
                evaluation.Online(),
                evaluation.Replay(candidate.name, candidate.args),
            ]
        except EvaluationError as exc:
            reason = f"VW refused the arguments: {exc.__cause__ or exc}"
            trials.append(Trial(candidate, None, clock() - started, reason))
            counter.candidates_done += 1
            counter.events_done += log.total
            counter.report()
            continue
        try:
            run = evaluation.run(
                log.batches(),
                targets,
                total=log.total,
                reward_range=log.reward_range,
                max_weight=log.max_weight,
                alpha=alpha,
                reward_model_name=reward_model_name,
                verdict_estimator=estimator,
                on_progress=lambda done, _total: counter.report(done),
                cancel=deadline,
            )
        except EvaluationCancelled:
            if deadline.cancelled():
                raise EvaluationCancelled(
                    counter.events_done, counter.planned * counter.total
                ) from None
            stopped = "max_seconds"
            break
        online = online or run.policies[0]
        trials.append(Trial(candidate, run.policies[1], clock() - started))
        counter.candidates_done += 1
        counter.events_done += log.total
        counter.report()
    return SearchResult(
        n=log.total,
        alpha=alpha,
        estimator=estimator,
        reward_model=reward_model_name,
        grid_size=len(grid),
        seed=seed,
        stopped=stopped,
        online=online,
        trials=tuple(trials),
        seconds=clock() - began,
        surface=log.surface,
        model_key=log.model_key,
        start=log.start,
        end=log.end,
    )
