r"""Policy search: try a grid of VW ``--cb_explore_adf`` configurations on the log, within a budget.

Each candidate of the grid (:mod:`rewards.ope.grid`) is evaluated by progressive replay over
the whole window (:class:`rewards.ope.targets.Replay`: predict each event, then learn it),
beside the online policy, exactly as ``POST /v1/evaluations`` would evaluate it
(:func:`rewards.ope.runs.run_log` over the same :class:`rewards.ope.logged.Log`); one pass over
the log per candidate, so a candidate's estimate never depends on which others ran.

**Order and budget.** The grid is visited in a seeded random order (random search within a
grid: with a budget smaller than the grid, a random subset explores every axis, where the
grid's own order would vary only the last one). The budget is a number of candidates and/or
a number of seconds; a candidate still replaying when the seconds run out is abandoned (an
estimate over a prefix of the window is not comparable with the online policy's over all of it).

**The winner** follows Personalizer's auto-optimize rule, as evaluations' verdict does: among
candidates whose mean beats the online policy's and whose lower 95% bound is above the online
policy's lower bound, the best mean. There may be none; the ``leader`` (best mean, whatever its
verdict) is reported beside it.

Reference: J. Bergstra & Y. Bengio (2012), "Random search for hyper-parameter optimization",
JMLR 13.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from rewards.ope.errors import EvaluationCancelled, EvaluationError
from rewards.ope.grid import Budget, Candidate, Grid, SearchError
from rewards.ope.logged import Log
from rewards.ope.results import EstimatorName, PolicyResult
from rewards.ope.reward_models import RewardModelName
from rewards.ope.runs import HOUR, CancelFlag, run_log
from rewards.ope.targets import Online, Replay, Target

StopReason = Literal["exhausted", "max_candidates", "max_seconds"]


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
    bucket_seconds: int = HOUR,
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
    bucket_seconds
        The width of each result's reward-over-time buckets (:func:`rewards.ope.runs.run`).

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
            targets: list[Target] = [Online(), Replay(candidate.name, candidate.args)]
        except EvaluationError as exc:
            reason = f"VW refused the arguments: {exc.__cause__ or exc}"
            trials.append(Trial(candidate, None, clock() - started, reason))
            counter.candidates_done += 1
            counter.events_done += log.total
            counter.report()
            continue
        try:
            run = run_log(
                log,
                targets,
                alpha=alpha,
                reward_model_name=reward_model_name,
                verdict_estimator=estimator,
                on_progress=lambda done, _total: counter.report(done),
                cancel=deadline,
                bucket_seconds=bucket_seconds,
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
