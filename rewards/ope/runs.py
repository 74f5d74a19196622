r"""Evaluation runs: estimate what policies would have earned over a window of logged decisions.

Given learned decisions (the logged pmf over the candidates, the chosen index, its propensity,
the learned reward and the logged VW ADF example; :mod:`rewards.ope.logged`), estimate what
other policies (:mod:`rewards.ope.targets`) would have earned, oldest event first, one batch at
a time. Every policy gets IPS, SNIPS and DR, each with a Gaussian interval and a second one
(Cressie-Read empirical likelihood for IPS and SNIPS, empirical Bernstein for DR), plus overlap
diagnostics, plus its IPS terms per hour (`PolicyResult.over_time`, for reward-over-time
charts). DR's reward model is :mod:`rewards.ope.reward_models`; the verdict rule is
:func:`rewards.ope.results.verdict`.

**Ranges behind the finite-sample intervals.** Cressie-Read and Bernstein need the reward range
and Bernstein a largest weight. Both are read from the log before the run
(:func:`rewards.ope.logged.ranges`): the reward range is ``[min(0, r_min), max(1, r_max)]`` over
the learned rewards of the range, the largest weight ``1 / min propensity``. That is the
a-priori range of an epsilon-style logging policy whose floor was reached; it is not a
guarantee for other logging policies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from bandit.clock import as_utc
from bandit.store import Store
from rewards.estimators import diagnostics, dr, ips, snips
from rewards.estimators._validation import FloatArray
from rewards.ope.errors import EvaluationCancelled
from rewards.ope.logged import Batch, Log, LoggedEvent
from rewards.ope.results import (
    SECOND_INTERVAL,
    Bucket,
    EstimatorName,
    EstimatorResult,
    Evaluation,
    PolicyResult,
    Verdict,
    verdict,
)
from rewards.ope.reward_models import RewardModelName, reward_model
from rewards.ope.targets import Target, close_all

HOUR = 3600

ProgressCallback = Callable[[int, int], None]
"""Called with (events done, events in total) after every batch."""


class CancelFlag(Protocol):
    """What `cancel` needs: a `threading.Event`, or anything with `is_set()`."""

    def is_set(self) -> bool: ...


@dataclass
class _Accumulator:
    """The streaming estimators and diagnostics of one target."""

    target: Target
    ips: ips.Estimator
    snips: snips.Estimator
    dr: dr.Estimator
    diagnostics: diagnostics.Diagnostics = field(default_factory=diagnostics.Diagnostics)
    hours: dict[int, list[float]] = field(default_factory=dict)
    """Hour since the epoch -> [n, sum, sum of squares] of the IPS terms."""

    def add(self, batch: Batch, r_hat_all: FloatArray, hours: FloatArray) -> None:
        p_target_all = self.target.pmfs(batch)
        rows = np.arange(len(batch))
        p_target = p_target_all[rows, batch.chosen]
        self._add_hours(hours, p_target / batch.p_log * batch.reward)
        r_hat = r_hat_all[rows, batch.chosen]
        v_hat = np.nansum(p_target_all * r_hat_all, axis=1)
        low, high = self.dr.reward_range or (-math.inf, math.inf)
        np.clip(v_hat, low, high, out=v_hat)  # a convex mix, but summed in floating point
        self.ips.add_arrays(batch.p_log, batch.reward, p_target)
        self.snips.add_arrays(batch.p_log, batch.reward, p_target)
        self.dr.add_arrays(batch.p_log, batch.reward, p_target, r_hat, v_hat)
        self.diagnostics.add_arrays(batch.p_log_all, p_target_all, batch.chosen)

    def _add_hours(self, hours: FloatArray, terms: FloatArray) -> None:
        known = ~np.isnan(hours) & np.isfinite(terms)
        if not known.any():
            return
        keys, index = np.unique(hours[known], return_inverse=True)
        values = terms[known]
        n = np.bincount(index, minlength=len(keys))
        total = np.bincount(index, weights=values, minlength=len(keys))
        squares = np.bincount(index, weights=values * values, minlength=len(keys))
        for key, count, t, q in zip(keys, n, total, squares, strict=True):
            bucket = self.hours.setdefault(int(key), [0.0, 0.0, 0.0])
            bucket[0] += float(count)
            bucket[1] += float(t)
            bucket[2] += float(q)

    def over_time(self) -> tuple[Bucket, ...]:
        return tuple(
            Bucket(datetime.fromtimestamp(hour * HOUR, tz=UTC), int(n), total, squares)
            for hour, (n, total, squares) in sorted(self.hours.items())
        )

    def results(self, alpha: float) -> tuple[EstimatorResult, ...]:
        out = []
        for name, est in (("ips", self.ips), ("snips", self.snips), ("dr", self.dr)):
            second = SECOND_INTERVAL[name]
            out.append(
                EstimatorResult(
                    estimator=name,  # type: ignore[arg-type]
                    value=est.get(),
                    gaussian=est.interval(alpha, "gaussian"),
                    second=est.interval(alpha, second),  # type: ignore[arg-type]
                    second_method=second,
                )
            )
        return tuple(out)


def _epoch(moment: datetime) -> float:
    """Seconds since the epoch; a naive moment (SQLite) is UTC."""
    return as_utc(moment, "created_at").timestamp()


def _hours(batch: Batch) -> FloatArray:
    """Each event's hour since the epoch (UTC), NaN for an event without a timestamp."""
    return np.fromiter(
        (
            _epoch(e.created_at) // HOUR if e.created_at is not None else np.nan
            for e in batch.events
        ),
        dtype=np.float64,
        count=len(batch),
    )


def run(
    batches: Iterable[Sequence[LoggedEvent]],
    targets: Sequence[Target],
    *,
    total: int,
    reward_range: tuple[float, float],
    max_weight: float,
    alpha: float = 0.05,
    reward_model_name: RewardModelName = "action-mean",
    verdict_estimator: EstimatorName = "ips",
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    surface: str | None = None,
    model_key: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Evaluation:
    """Evaluate `targets` over batches of logged events, in order.

    The first target is the reference of the verdict (the online policy). Targets are closed
    when the run ends, whether it completes, fails or is cancelled.

    Raises
    ------
    EvaluationCancelled
        When `cancel` is set; it is checked before every batch.
    """
    began = time.perf_counter()
    model = reward_model(reward_model_name)
    accumulators = [
        _Accumulator(
            t,
            ips.Estimator(reward_range=reward_range, max_weight=max_weight),
            snips.Estimator(reward_range=reward_range, max_weight=max_weight),
            dr.Estimator(reward_range=reward_range, max_weight=max_weight),
        )
        for t in targets
    ]
    low, high = reward_range
    done = 0
    try:
        for events in batches:
            if cancel is not None and cancel.is_set():
                raise EvaluationCancelled(done, total)
            if not events:
                continue
            batch = Batch.of(events)
            r_hat_all = np.clip(model.predict_learn(batch), low, high)
            hours = _hours(batch)
            for acc in accumulators:
                acc.add(batch, r_hat_all, hours)
            done += len(batch)
            if on_progress is not None:
                on_progress(done, max(total, done))
    finally:
        model.close()
        close_all(targets)
    results = [(acc, acc.results(alpha)) for acc in accumulators]
    reference = next(e for e in results[0][1] if e.estimator == verdict_estimator)
    policies = []
    for i, (acc, estimates) in enumerate(results):
        if i == 0:
            judged = Verdict(None, "the online policy: the reference")
        else:
            mine = next(e for e in estimates if e.estimator == verdict_estimator)
            judged = verdict(mine, reference)
        policies.append(
            PolicyResult(
                acc.target.name,
                acc.target.kind,
                estimates,
                acc.diagnostics.get(),
                judged,
                acc.over_time(),
            )
        )
    return Evaluation(
        n=done,
        surface=surface,
        model_key=model_key,
        start=start,
        end=end,
        alpha=alpha,
        reward_range=reward_range,
        max_weight=max_weight,
        reward_model=reward_model_name,
        verdict_estimator=verdict_estimator,
        policies=tuple(policies),
        seconds=time.perf_counter() - began,
    )


def run_log(
    log: Log,
    targets: Sequence[Target],
    *,
    alpha: float = 0.05,
    reward_model_name: RewardModelName = "action-mean",
    verdict_estimator: EstimatorName = "ips",
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> Evaluation:
    """:func:`run` over one fresh pass of `log`, with its summary and its window."""
    return run(
        log.batches(),
        targets,
        total=log.total,
        reward_range=log.reward_range,
        max_weight=log.max_weight,
        alpha=alpha,
        reward_model_name=reward_model_name,
        verdict_estimator=verdict_estimator,
        on_progress=on_progress,
        cancel=cancel,
        surface=log.surface,
        model_key=log.model_key,
        start=log.start,
        end=log.end,
    )


def evaluate_log(
    log: Log,
    targets: Sequence[Target],
    *,
    alpha: float = 0.05,
    reward_model_name: RewardModelName = "action-mean",
    verdict_estimator: EstimatorName = "ips",
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> Evaluation:
    """Evaluate `targets` (see :func:`rewards.ope.targets.resolve`) over `log`: progress is
    reported at (0, total) first, then after every batch (:func:`run_log`)."""
    if on_progress is not None:
        on_progress(0, log.total)
    return run_log(
        log,
        targets,
        alpha=alpha,
        reward_model_name=reward_model_name,
        verdict_estimator=verdict_estimator,
        on_progress=on_progress,
        cancel=cancel,
    )


def evaluate(
    store: Store,
    targets: Sequence[Target],
    *,
    surface: str | None = None,
    model_key: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    alpha: float = 0.05,
    batch: int = 1000,
    reward_model_name: RewardModelName = "action-mean",
    verdict_estimator: EstimatorName = "ips",
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> Evaluation:
    """Evaluate `targets` over the learned decisions of [start, end) (:meth:`Log.of_store`:
    only decisions learned when the run starts, `batch` per query); see :func:`evaluate_log`.

    Raises
    ------
    EvaluationError
        When `start` is not before `end`.
    """
    log = Log.of_store(
        store, surface=surface, model_key=model_key, start=start, end=end, batch=batch
    )
    return evaluate_log(
        log,
        targets,
        alpha=alpha,
        reward_model_name=reward_model_name,
        verdict_estimator=verdict_estimator,
        on_progress=on_progress,
        cancel=cancel,
    )
