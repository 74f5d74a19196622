r"""Counterfactual evaluation over the service's own decision log.

Given learned decisions (the logged pmf over the candidates, the chosen index, its propensity,
the learned reward and the logged VW ADF example), estimate what other policies would have
earned, oldest event first, one batch at a time:

``baseline``
    Always the first logged candidate (index 0): Personalizer's baseline.
``random``
    Uniform over the logged candidates (any registered spec of kind ``random``).
``online``
    The logged pmf itself. Its weights are all 1, so its IPS estimate *is* the mean logged reward
    (the on-policy estimate); every other policy is judged against it.
VW specs
    By **progressive replay**: for each event in log order, a fresh ``--cb_explore_adf`` workspace
    with the spec's arguments predicts its pmf over the logged candidates on the logged example,
    and only then learns that event (chosen index, cost ``-reward``, logged propensity). The
    estimate is thus an honest online estimate: no event is scored by a model that has seen it.

Every policy gets IPS, SNIPS and DR, each with a Gaussian interval and a second one (Cressie-Read
empirical likelihood for IPS and SNIPS, empirical Bernstein for DR), plus overlap diagnostics,
plus its IPS terms per hour (`PolicyResult.over_time`, for reward-over-time charts).

**DR reward model.** pyvw's ``cb_explore_adf`` predictions expose only the pmf, not the candidate's
own regressor, so DR uses one reward model shared by all policies, trained progressively on the
same events (predict, then learn) so that it never scores an event it has learned:

``"action-mean"`` (default)
    The running mean reward of each candidate, keyed by its logged VW action line (its exact
    features), falling back to the running mean over all events for a candidate never chosen
    yet. Cheap and crude; DR stays unbiased whatever the model, only its variance depends on it.
``"vw"``
    A VW ``--cb_adf --cb_type mtr -q ::`` regressor predicting each candidate's cost; better
    when the context matters, at the price of one more VW predict and learn per event.

Predictions are clipped to the reward range.

**Ranges behind the finite-sample intervals.** Cressie-Read and Bernstein need the reward range
and Bernstein a largest weight. Both are read from the log before the run: the reward range is
``[min(0, r_min), max(1, r_max)]`` over the learned rewards of the range, the largest weight
``1 / min propensity``. That is the a-priori range of an epsilon-style logging policy whose floor
was reached; it is not a guarantee for other logging policies.

**Verdict** (Personalizer's auto-optimize rule): a candidate is recommended only if its mean
beats the online policy's and its lower 95% bound is above the online policy's lower bound, on
the ``verdict_estimator`` (IPS by default) with Gaussian intervals.

Reference: L. Li, W. Chu, J. Langford & X. Wang (2011), "Unbiased offline evaluation of
contextual-bandit-based news article recommendation algorithms", WSDM (replay).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import numpy as np

from bandit.errors import DomainError
from bandit.model import LearnExample, ModelError, workspace
from bandit.store import LearnedRow, Store
from rewards.estimators import Interval, diagnostics, dr, ips, snips
from rewards.estimators._validation import FloatArray

ONLINE, BASELINE, RANDOM = "online", "baseline", "random"
DEFAULT_POLICIES = (BASELINE, RANDOM, ONLINE)

EstimatorName = Literal["ips", "snips", "dr"]
RewardModelName = Literal["action-mean", "vw"]
ESTIMATORS: tuple[EstimatorName, ...] = ("ips", "snips", "dr")
SECOND_INTERVAL = {"ips": "cressie_read", "snips": "cressie_read", "dr": "bernstein"}
"""The interval reported beside the Gaussian one, per estimator."""

REWARD_MODEL_ARGS = "--cb_adf --cb_type mtr -q :: --quiet"

HOUR = 3600

ProgressCallback = Callable[[int, int], None]
"""Called with (events done, events in total) after every batch."""


class CancelFlag(Protocol):
    """What `cancel` needs: a `threading.Event`, or anything with `is_set()`."""

    def is_set(self) -> bool: ...


class Spec(Protocol):
    """A registered policy spec as evaluation reads it (`policies.spec.PolicySpec`)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def args(self) -> str: ...


class Specs(Protocol):
    """Where specs are looked up by name (`policies.registry.Registry`); `rewards` does not
    import `policies` (packages import downward only)."""

    def find(self, name: str) -> Spec | None: ...

    def refusal(self, name: str) -> Exception | None:
        """Why a stored spec `find` does not return is not served (the VW allow-list refuses
        it), or None."""

    def __iter__(self) -> Iterator[Spec]: ...


class EvaluationError(DomainError, ValueError):
    """An evaluation that cannot run; `target` names the offending argument."""

    target: str

    def __init__(self, message: str, *, target: str = "policies") -> None:
        super().__init__(message, target=target)


class EvaluationCancelled(Exception):
    """The cancel event was set; `done` events of `total` had been evaluated."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"evaluation cancelled after {done} of {total} events")
        self.done = done
        self.total = total


# --- the logged events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One learned decision as evaluation needs it.

    `example` is the unlabeled ADF example the logging policy saw, shared line first, one line
    per candidate after it.
    """

    event_id: str
    created_at: datetime | None
    pmf: tuple[float, ...]
    chosen_index: int
    reward: float
    example: tuple[str, ...]

    @property
    def propensity(self) -> float:
        return self.pmf[self.chosen_index]

    def labeled(self) -> list[str]:
        """The example labeled as the learner learned it (cost ``-reward`` on the chosen line)."""
        return LearnExample(self.example, self.chosen_index, self.propensity, self.reward).labeled()


@dataclass(frozen=True, slots=True)
class Batch:
    """Events with their columns as arrays; pmfs padded with NaN to the widest event."""

    events: Sequence[LoggedEvent]
    p_log_all: FloatArray
    """Shape ``(n, max_actions)``, NaN past each event's candidates."""
    chosen: np.ndarray[Any, np.dtype[np.intp]]
    p_log: FloatArray
    reward: FloatArray

    @classmethod
    def of(cls, events: Sequence[LoggedEvent]) -> Batch:
        p_log_all = _padded([e.pmf for e in events])
        chosen = np.fromiter((e.chosen_index for e in events), dtype=np.intp, count=len(events))
        rows = np.arange(len(events))
        reward = np.fromiter((e.reward for e in events), dtype=np.float64, count=len(events))
        return cls(events, p_log_all, chosen, p_log_all[rows, chosen], reward)

    def __len__(self) -> int:
        return len(self.events)

    def uniform(self) -> FloatArray:
        """The uniform pmf over each event's candidates, NaN-padded like `p_log_all`."""
        real = ~np.isnan(self.p_log_all)
        counts = real.sum(axis=1, keepdims=True)
        return np.where(real, 1.0 / counts, np.nan)


def _event(row: LearnedRow) -> LoggedEvent:
    event_id, created_at, pmf, chosen_index, reward, example = row
    return LoggedEvent(
        event_id,
        created_at,
        pmf,
        int(chosen_index),
        float(reward),
        tuple(example.split("\n")),
    )


# --- policies under evaluation ---------------------------------------------------------------


class Target(Protocol):
    """A policy under evaluation: its pmf over each event's logged candidates."""

    name: str
    kind: str

    def pmfs(self, batch: Batch) -> FloatArray:
        """Shape ``(n, max_actions)`` NaN-padded like ``batch.p_log_all``; events in order.

        A learning target must predict each event before it learns from it.
        """
        ...

    def close(self) -> None: ...


@dataclass
class Online:
    """The logging policy itself: the logged pmf."""

    name: str = ONLINE
    kind: str = "online"

    def pmfs(self, batch: Batch) -> FloatArray:
        return batch.p_log_all

    def close(self) -> None:
        pass


@dataclass
class Baseline:
    """Always the first logged candidate."""

    name: str = BASELINE
    kind: str = "baseline"

    def pmfs(self, batch: Batch) -> FloatArray:
        out = np.where(np.isnan(batch.p_log_all), np.nan, 0.0)
        out[:, 0] = 1.0
        return out

    def close(self) -> None:
        pass


@dataclass
class Uniform:
    """Uniform over the logged candidates."""

    name: str = RANDOM
    kind: str = "random"

    def pmfs(self, batch: Batch) -> FloatArray:
        return batch.uniform()

    def close(self) -> None:
        pass


class Replay:
    """A VW ``--cb_explore_adf`` spec evaluated by progressive replay (predict, then learn)."""

    kind = "vw"

    def __init__(self, name: str, args: str, *, field: str = "policies") -> None:
        """`field` names where `args` came from in the caller's request; a refusal names it."""
        self.name = name
        self.args = args
        try:
            self._vw = workspace(args)  # the allow-list first, then VW
        except ModelError as exc:
            raise EvaluationError(
                f"`{field}`: {name!r} cannot be replayed: {exc}", target=field
            ) from exc

    def pmfs(self, batch: Batch) -> FloatArray:
        vw = self._vw
        predictions = []
        for event in batch.events:
            predictions.append(vw.predict(list(event.example)))
            vw.learn(event.labeled())
        return _normalized(_padded(predictions, batch.p_log_all.shape[1]))

    def close(self) -> None:
        self._vw.finish()


def _padded(rows: Sequence[Sequence[float]], width: int = 0) -> FloatArray:
    """`rows` as a float array at least `width` wide, NaN past the end of shorter rows."""
    width = max(width, *(len(r) for r in rows)) if rows else width
    if all(len(r) == width for r in rows):
        return np.array(rows, dtype=np.float64).reshape(len(rows), width)
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _normalized(pmf: FloatArray) -> FloatArray:
    """VW returns float32 probabilities: renormalize rows in double, kept within [0, 1]."""
    totals = np.nansum(pmf, axis=1, keepdims=True)
    width = (~np.isnan(pmf)).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(totals > 0.0, pmf / totals, 1.0 / width)
    clipped: FloatArray = np.clip(out, 0.0, 1.0)
    return clipped


def _target(name: str, registry: Specs, field: str) -> Target:
    if name == BASELINE:
        return Baseline()
    spec = registry.find(name)
    refusal = registry.refusal(name) if spec is None else None
    if refusal is not None:
        raise EvaluationError(f"`{field}`: {refusal}", target=field)
    if spec is None:
        known = ", ".join(sorted({*DEFAULT_POLICIES, ONLINE, *(s.name for s in registry)}))
        raise EvaluationError(f"`{field}`: unknown policy {name!r} (known: {known})", target=field)
    if spec.kind == "random":
        return Uniform(name=name)
    if spec.kind == "vw":
        return Replay(name, spec.args, field=field)
    raise EvaluationError(
        f"`{field}`: {name!r} is a {spec.kind} policy; only random and VW policies "
        "can be evaluated from the log",
        target=field,
    )


def resolve(names: Sequence[str], registry: Specs, *, field: str = "policies") -> list[Target]:
    """Targets for `names`: ``online`` first (the reference), then the others in order.

    ``baseline``, ``random`` and ``online`` are built in; any other name is looked up in the
    registry (``random`` specs evaluate as uniform, ``vw`` specs by progressive replay).
    Rule policies need the decision's features and cannot be replayed from the log yet.
    `field` is what the caller calls the list of names (the analysis page's `policy`); errors
    name it.

    Raises
    ------
    EvaluationError
        For an unknown or duplicate name, or a rule policy.
    """
    targets: list[Target] = [Online()]
    try:
        seen = {ONLINE}
        for name in names:
            if name in seen:
                if name == ONLINE:
                    continue
                raise EvaluationError(f"`{field}` names {name!r} twice", target=field)
            seen.add(name)
            targets.append(_target(name, registry, field))
    except BaseException:
        for target in targets:
            target.close()
        raise
    return targets


# --- the DR reward model ---------------------------------------------------------------------


class RewardModel(Protocol):
    def predict_learn(self, batch: Batch) -> FloatArray:
        """Predicted reward per candidate, shape like ``batch.p_log_all``; each event is
        predicted before the model learns it."""
        ...

    def close(self) -> None: ...


class ActionMean:
    """Running mean reward per logged action line; the global running mean for unseen ones."""

    def __init__(self) -> None:
        self._sums: dict[str, list[float]] = {}
        self._total = 0.0
        self._n = 0

    def predict_learn(self, batch: Batch) -> FloatArray:
        out = np.full_like(batch.p_log_all, np.nan)
        sums = self._sums
        for i, event in enumerate(batch.events):
            prior = self._total / self._n if self._n else 0.0
            lines = event.example[1:]
            for j, line in enumerate(lines):
                seen = sums.get(line)
                out[i, j] = seen[0] / seen[1] if seen else prior
            chosen = sums.setdefault(lines[event.chosen_index], [0.0, 0.0])
            chosen[0] += event.reward
            chosen[1] += 1.0
            self._total += event.reward
            self._n += 1
        return out

    def close(self) -> None:
        pass


class VwRegressor:
    """A progressive VW ``--cb_adf`` regressor of each candidate's cost."""

    def __init__(self, args: str = REWARD_MODEL_ARGS) -> None:
        self._vw = workspace(args)

    def predict_learn(self, batch: Batch) -> FloatArray:
        out = np.full_like(batch.p_log_all, np.nan)
        vw = self._vw
        for i, event in enumerate(batch.events):
            costs = vw.predict(list(event.example))
            vw.learn(event.labeled())
            out[i, : len(costs)] = np.negative(costs)
        return out

    def close(self) -> None:
        self._vw.finish()


def reward_model(name: RewardModelName) -> RewardModel:
    if name == "vw":
        return VwRegressor()
    return ActionMean()


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EstimatorResult:
    """One estimator's estimate of one policy, with both of its intervals."""

    estimator: EstimatorName
    value: float
    gaussian: Interval
    second: Interval
    second_method: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """``recommended`` is None for the online policy itself."""

    recommended: bool | None
    reason: str


@dataclass(frozen=True, slots=True)
class Bucket:
    """One hour (UTC) of a policy's IPS terms ``w·r``: their count, sum and sum of squares.

    Their mean is the hour's IPS estimate; buckets of several hours merge by adding fields.
    """

    start: datetime
    n: int
    total: float
    squares: float


@dataclass(frozen=True, slots=True)
class PolicyResult:
    name: str
    kind: str
    estimates: tuple[EstimatorResult, ...]
    diagnostics: diagnostics.Report
    verdict: Verdict
    over_time: tuple[Bucket, ...] = ()
    """Hourly IPS terms, oldest first; events without a timestamp are left out."""

    def estimate(self, estimator: EstimatorName) -> EstimatorResult:
        return next(e for e in self.estimates if e.estimator == estimator)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of one evaluation run over `n` logged events."""

    n: int
    surface: str | None
    model_key: str | None
    start: datetime | None
    end: datetime | None
    alpha: float
    reward_range: tuple[float, float]
    max_weight: float
    reward_model: str
    verdict_estimator: EstimatorName
    policies: tuple[PolicyResult, ...]
    seconds: float

    def policy(self, name: str) -> PolicyResult:
        return next(p for p in self.policies if p.name == name)

    @property
    def recommended(self) -> list[str]:
        """Candidates that pass the verdict rule, best mean first."""
        passing = [p for p in self.policies if p.verdict.recommended]
        passing.sort(key=lambda p: -p.estimate(self.verdict_estimator).value)
        return [p.name for p in passing]

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape of the API's ``EvaluationResult``); NaN/inf -> None."""
        return {
            "n": self.n,
            "surface": self.surface,
            "model_key": self.model_key,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "alpha": self.alpha,
            "reward_range": list(self.reward_range),
            "max_weight": _finite(self.max_weight),
            "reward_model": self.reward_model,
            "verdict_estimator": self.verdict_estimator,
            "recommended": self.recommended,
            "seconds": self.seconds,
            "policies": [policy_json(p) for p in self.policies],
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _interval_json(interval: Interval, method: str) -> dict[str, Any]:
    return {"method": method, "low": _finite(interval.low), "high": _finite(interval.high)}


def policy_json(p: PolicyResult) -> dict[str, Any]:
    """One policy's result as JSON (the API's ``PolicyEvaluationPublic``)."""
    w = p.diagnostics.weights
    return {
        "name": p.name,
        "kind": p.kind,
        "estimates": [
            {
                "estimator": e.estimator,
                "value": _finite(e.value),
                "intervals": [
                    _interval_json(e.gaussian, "gaussian"),
                    _interval_json(e.second, e.second_method),
                ],
            }
            for e in p.estimates
        ],
        "diagnostics": {
            "ess": _finite(w.ess),
            "ess_ratio": _finite(w.ess_ratio),
            "min_weight": _finite(w.min),
            "max_weight": _finite(w.max),
            "mean_weight": _finite(w.mean),
            "low_overlap_share": _finite(p.diagnostics.low_overlap_share),
            "low_overlap_threshold": p.diagnostics.threshold,
        },
        "verdict": {"recommended": p.verdict.recommended, "reason": p.verdict.reason},
    }


# --- the run ---------------------------------------------------------------------------------


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
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


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


def verdict(candidate: EstimatorResult, online: EstimatorResult) -> Verdict:
    """Personalizer's auto-optimize rule on one estimator's Gaussian intervals."""
    if not math.isfinite(candidate.value):
        return Verdict(False, "no estimate (the policy never agreed with the log)")
    beats_mean = candidate.value > online.value
    beats_low = candidate.gaussian.low > online.gaussian.low
    what = (
        f"{candidate.estimator} {candidate.value:.4f} vs online {online.value:.4f}; "
        f"lower bound {candidate.gaussian.low:.4f} vs {online.gaussian.low:.4f}"
    )
    if beats_mean and beats_low:
        return Verdict(True, f"beats the online policy: {what}")
    if not beats_mean:
        return Verdict(False, f"mean does not beat the online policy: {what}")
    return Verdict(False, f"lower bound not above the online policy's: {what}")


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
        for t in targets:
            t.close()
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


def ranges(
    reward_min: float | None, reward_max: float | None, propensity_min: float | None
) -> tuple[tuple[float, float], float]:
    """The reward range ``[min(0, r_min), max(1, r_max)]`` and largest weight ``1 / p_min``."""
    low = min(0.0, reward_min if reward_min is not None else 0.0)
    high = max(1.0, reward_max if reward_max is not None else 1.0)
    max_weight = 1.0 / propensity_min if propensity_min else 1.0
    # The Cressie-Read interval needs w_max > 1; any bound above the true one stays valid.
    return (low, high), max(max_weight, 1.0 + 1e-6)


def store_batches(
    store: Store,
    *,
    start: datetime | None,
    end: datetime | None,
    surface: str | None,
    model_key: str | None,
    through_seq: int | None,
    batch: int,
) -> Iterator[list[LoggedEvent]]:
    """Learned decisions of the range as `LoggedEvent` batches, oldest first."""
    # Decisions learned after the summary are left out: the ranges were read before them.
    for rows in store.iter_learned(
        start=start,
        end=end,
        surface=surface,
        model_key=model_key,
        through_seq=through_seq,
        batch=batch,
    ):
        yield [_event(r) for r in rows]


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
    """Evaluate `targets` (see :func:`resolve`) over the learned decisions of [start, end).

    Decisions are read in `created_at` order, `batch` per query; only learned decisions count
    (their reward is final), and only those learned when the run starts. See :func:`run`.
    """
    if start is not None and end is not None and start >= end:
        raise EvaluationError(f"`start` ({start.isoformat()}) must be before `end`", target="start")
    total, r_min, r_max, p_min, last_seq = store.learned_summary(
        start=start, end=end, surface=surface, model_key=model_key
    )
    reward_range, max_weight = ranges(r_min, r_max, p_min)
    if on_progress is not None:
        on_progress(0, total)
    return run(
        store_batches(
            store,
            start=start,
            end=end,
            surface=surface,
            model_key=model_key,
            through_seq=last_seq,
            batch=batch,
        ),
        targets,
        total=total,
        reward_range=reward_range,
        max_weight=max_weight,
        alpha=alpha,
        reward_model_name=reward_model_name,
        verdict_estimator=verdict_estimator,
        on_progress=on_progress,
        cancel=cancel,
        surface=surface,
        model_key=model_key,
        start=start,
        end=end,
    )
