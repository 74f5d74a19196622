"""The checkup: one window of a surface's log, what it says about learning, and what to fix.

Exact over the whole window (the database sums them, `Store.window_counts`): decisions, the
reward shares, the smallest logged propensity, when rewards arrived; per model, its newest
snapshot. From a bounded sample (`Store.sample_window`, `DEFAULT_SAMPLE` decisions at most):
the exploration share, the feature checks (`rewards.doctor.features`) and the online and
baseline estimates (SNIPS over the sample's learned decisions, with a Cressie-Read 95% interval
and the weights' effective sample size).

Why Cressie-Read and not the Gaussian interval `oo evaluate` shows first: a learning policy
rarely picks the first candidate, so the baseline's estimate often rests on a handful of
decisions, and when their rewards are all alike the delta method's interval shrinks to a point
(four thousand decisions, fourteen of them the first candidate's, every one unrewarded: SNIPS
0.000 with the "interval" [0.000, 0.000]). The empirical-likelihood interval knows the reward
range and the largest possible weight, so it stays as wide as the few matched decisions warrant
([0, 0.21] there) and close to the Gaussian one when they are many.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from bandit.store import LoggedSample, ModelUse, Store, WindowCounts
from rewards.doctor.features import MAX_FEATURES, FeatureCheck, FeatureFinding
from rewards.doctor.report import Code, Diagnosis, Finding, ModelStatus, ValueEstimate
from rewards.estimators import snips
from rewards.ope.logged import ranges

DEFAULT_SAMPLE = 20_000
"""Decisions read at most; counts and shares stay exact over the whole window."""
MIN_DECISIONS = 100
"""Below this many decisions (activated ones for reward shares), shares are not judged."""
FEW_REWARDS = 0.10
"""A reward share under this means most decisions learn the default reward."""
LATE_REWARDS = 0.10
STALE_AFTER = timedelta(days=1)
"""A learning model unchanged this long while rewards arrive is not learning."""
PROPENSITY_FLOOR = 0.001
"""Smaller logged propensities mean importance weights past 1,000."""
DETERMINISTIC = 1.0 - 1e-6
"""A pmf whose top action has at least this probability does not explore."""
MAX_PER_KIND = 10
"""Feature warnings of one kind past this many are summed up in one more warning."""
ALPHA = 0.05

ProgressCallback = Callable[[int, int], None]
"""Called with (decisions read, decisions to read) after every batch."""


@dataclass
class _Sampled:
    """Running totals over the sampled decisions."""

    decisions: int = 0
    with_choice: int = 0
    explored: int = 0
    deterministic: int = 0

    def add(self, sample: LoggedSample) -> None:
        self.decisions += 1
        pmf = sample.pmf
        if len(pmf) < 2:
            return
        self.with_choice += 1
        top = max(pmf)
        if pmf[sample.chosen_index] < top:
            self.explored += 1
        if top >= DETERMINISTIC:
            self.deterministic += 1


@dataclass
class _Learned:
    """The sample's learned decisions, as the columns the estimates need.

    Kept whole (the sample is bounded) because the interval needs the reward range, which is
    known only once every reward has been read.
    """

    p_log: list[np.ndarray] = field(default_factory=list)
    reward: list[np.ndarray] = field(default_factory=list)
    first: list[np.ndarray] = field(default_factory=list)

    def add(self, batch: list[LoggedSample]) -> None:
        learned = [s for s in batch if s.learned_reward is not None]
        if not learned:
            return
        n = len(learned)
        self.p_log.append(np.fromiter((s.pmf[s.chosen_index] for s in learned), float, n))
        self.reward.append(np.fromiter((float(s.learned_reward or 0.0) for s in learned), float, n))
        self.first.append(np.fromiter((s.chosen_index == 0 for s in learned), float, n))

    def estimates(self, min_propensity: float | None) -> tuple[ValueEstimate, ValueEstimate] | None:
        """The online policy's and the baseline's (always the first candidate) estimates."""
        if not self.p_log:
            return None
        p_log, reward = np.concatenate(self.p_log), np.concatenate(self.reward)
        first = np.concatenate(self.first)
        reward_range, max_weight = ranges(
            float(reward.min()), float(reward.max()), min_propensity or float(p_log.min())
        )
        # The online policy's weights are 1 by construction (it is the policy that logged).
        online = snips.Estimator(reward_range=reward_range, max_weight=1.0 + 1e-6)
        online.add_arrays(p_log, reward, p_log)
        baseline = snips.Estimator(reward_range=reward_range, max_weight=max_weight)
        baseline.add_arrays(p_log, reward, first)
        return _value(online), _value(baseline)


def _value(estimator: snips.Estimator) -> ValueEstimate:
    estimate = estimator.estimate(alpha=ALPHA, method="cressie_read")
    return ValueEstimate(
        value=_finite(estimate.value),
        low=_finite(estimate.ci.low),
        high=_finite(estimate.ci.high),
        n=estimate.n,
        effective_n=_finite(estimate.weights.ess),
    )


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def diagnose(
    store: Store,
    surface: str,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    learns: Callable[[str], bool],
    sample: int = DEFAULT_SAMPLE,
    on_progress: ProgressCallback | None = None,
) -> Diagnosis:
    """Check whether `surface` is learning from its decisions created in [start, end).

    Parameters
    ----------
    learns
        Whether a policy (by the name decisions log) learns a model; a random or rule policy
        that never changes is not stale.
    sample
        At most this many decisions are read, spread over the window.
    on_progress
        Called with (read, to read) after every batch.
    """
    counts = store.window_counts(surface, start, end)
    models = store.window_models(surface, start, end)
    features = FeatureCheck()
    sampled = _Sampled()
    learned = _Learned()
    to_read = min(counts.decisions, sample)
    if on_progress is not None:
        on_progress(0, to_read)
    if counts.first_decision_at is not None and counts.last_decision_at is not None:
        batches = store.sample_window(
            surface,
            counts.first_decision_at,
            counts.last_decision_at + timedelta(microseconds=1),
            limit=sample,
            total=counts.decisions,
        )
        for batch in batches:
            for decision in batch:
                sampled.add(decision)
                features.add(decision.example)
            learned.add(batch)
            if on_progress is not None:
                on_progress(min(sampled.decisions, to_read), to_read)
    statuses = [_status(use, learns(use.policy), now) for use in models]
    main = max(statuses, key=lambda m: (m.learns, m.decisions), default=None)
    activated = counts.activated
    online, baseline = learned.estimates(counts.min_propensity) or (None, None)
    return Diagnosis(
        surface=surface,
        start=start,
        end=end,
        decisions=counts.decisions,
        sampled=sampled.decisions,
        activated=activated,
        rewarded_share=counts.rewarded / activated if activated else None,
        default_reward_share=counts.defaulted / activated if activated else None,
        late_reward_share=counts.late / activated if activated else None,
        exploration_share=(sampled.explored / sampled.with_choice if sampled.with_choice else None),
        min_propensity=counts.min_propensity,
        last_reward_at=counts.last_reward_at,
        model_key=main.model_key if main else None,
        model_version=main.version if main else None,
        model_updated_at=main.updated_at if main else None,
        model_age_seconds=main.age_seconds if main else None,
        online=online,
        baseline=baseline,
        models=tuple(statuses),
        warnings=tuple(_warnings(surface, start, end, counts, statuses, sampled, features)),
    )


def _status(use: ModelUse, learns: bool, now: datetime) -> ModelStatus:
    updated = use.snapshot_at
    return ModelStatus(
        model_key=use.model_key,
        policy=use.policy,
        learns=learns,
        decisions=use.decisions,
        version=use.snapshot_version if use.snapshot_version is not None else use.max_version,
        updated_at=updated,
        age_seconds=max(0.0, (now - updated).total_seconds()) if updated else None,
        first_reward_at=use.first_reward_at,
        last_reward_at=use.last_reward_at,
    )


def _warnings(
    surface: str,
    start: datetime,
    end: datetime,
    counts: WindowCounts,
    models: list[ModelStatus],
    sampled: _Sampled,
    features: FeatureCheck,
) -> Iterator[Finding]:
    n = counts.decisions
    if n == 0:
        yield Finding(
            "no_decisions",
            None,
            None,
            f"no decisions on `{surface}` from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
            "check that traffic reaches this surface, or widen the window (`start`, `end`)",
        )
        return
    if n < MIN_DECISIONS:
        yield Finding(
            "few_decisions",
            None,
            None,
            f"only {n} decisions in the window: too few to judge reward shares, exploration "
            f"and features (the checks need {MIN_DECISIONS})",
            "widen the window (`start`)",
        )
    yield from _reward_warnings(counts)
    yield from _model_warnings(models)
    yield from _exploration_warnings(counts, sampled)
    if features.decisions >= MIN_DECISIONS:
        yield from _feature_warnings(features.findings())


def _reward_warnings(counts: WindowCounts) -> Iterator[Finding]:
    activated = counts.activated
    if activated < MIN_DECISIONS:
        return
    share = counts.rewarded / activated
    if share < FEW_REWARDS:
        yield Finding(
            "few_rewards",
            None,
            None,
            f"only {share:.1%} of the {activated:,} activated decisions got a reward within "
            "their reward window; all the others learned the default reward, so the model "
            "mostly learns that nothing works",
            "send a reward for every event (send 0 explicitly rather than nothing), send it "
            "within the reward window, and activate deferred decisions when they are shown",
        )
    late = counts.late / activated
    if late >= LATE_REWARDS:
        yield Finding(
            "late_rewards",
            None,
            None,
            f"{late:.1%} of the activated decisions got their reward after the reward window: "
            "late rewards are kept for the record but never learned",
            "send rewards sooner, or lengthen the reward window (the surface's reward wait "
            "time, OO_REWARD_WAIT_SECONDS)",
        )


def _model_warnings(models: list[ModelStatus]) -> Iterator[Finding]:
    for model in models:
        first, last = model.first_reward_at, model.last_reward_at
        if not model.learns or first is None or last is None:
            continue
        since = max(model.updated_at, first) if model.updated_at is not None else first
        if last - since < STALE_AFTER:
            continue
        changed = (
            f"since {model.updated_at:%Y-%m-%d %H:%M} UTC"
            if model.updated_at is not None
            else "since it was created (it never published a version)"
        )
        yield Finding(
            "stale_model",
            None,
            None,
            f"model `{model.model_key}` (policy `{model.policy}`) has not changed {changed}, "
            f"while rewards kept arriving until {last:%Y-%m-%d %H:%M} UTC",
            "check that the learner runs (`oo learner`, or `oo serve`, which includes it) "
            "against the same database and Redis; its /health and its log say why it stopped",
        )


def _exploration_warnings(counts: WindowCounts, sampled: _Sampled) -> Iterator[Finding]:
    if (
        sampled.with_choice >= MIN_DECISIONS
        and sampled.explored == 0
        and sampled.deterministic == sampled.with_choice
    ):
        yield Finding(
            "no_exploration",
            None,
            None,
            f"all {sampled.with_choice:,} sampled decisions gave the chosen action probability "
            "1: the policy never explores, so it cannot find out that another action is better",
            "give the surface an exploration share above 0 (Personalizer's "
            "explorationPercentage, or a VW policy with --epsilon, --squarecb or a floor)",
        )
    low = counts.min_propensity
    if low is not None and low < PROPENSITY_FLOOR:
        yield Finding(
            "low_propensity",
            None,
            None,
            f"the smallest logged propensity is {low:.3g}, below {PROPENSITY_FLOOR:g}: "
            f"importance weights up to {1 / low:,.0f} make counterfactual estimates unreliable",
            "keep a floor of exploration under every candidate (a uniform share spread over "
            "the candidates), or offer fewer candidates per decision",
        )


_WHERE = {"context": "in the context", "action": "on the candidates"}


def _feature_warnings(findings: Iterator[FeatureFinding]) -> Iterator[Finding]:
    counted: dict[str, int] = {}
    for f in findings:
        counted[f.kind] = counted.get(f.kind, 0) + 1
        if counted[f.kind] <= MAX_PER_KIND:
            yield _feature_warning(f)
    for kind, count in counted.items():
        if count > MAX_PER_KIND:
            yield Finding(
                _CODES[kind],
                None,
                None,
                f"{count - MAX_PER_KIND} more features have the same problem ({kind})",
                "fix the ones above first; `oo doctor --json` lists the first ten of each kind",
            )


_CODES: dict[str, Code] = {
    "identifier": "identifier_feature",
    "generated_names": "identifier_feature",
    "timestamp": "timestamp_feature",
    "rare": "rare_feature",
}


def _feature_warning(f: FeatureFinding) -> Finding:
    name = f"`{f.namespace}.{f.feature}`" if f.kind != "generated_names" else f"`{f.namespace}`"
    where = _WHERE[f.where]
    example = f" (e.g. `{f.example}`)" if f.example else ""
    if f.kind == "identifier":
        message = (
            f"{name} {where} takes a new value almost every time it appears ({f.share:.0%} "
            f"distinct){example}: an identifier never repeats, so nothing learned about it "
            "carries over to the next decision"
        )
        action = "drop it, or send what it stands for instead: a segment, a count, a bucketed value"
    elif f.kind == "generated_names":
        message = (
            f"namespace {name} {where} has more feature names than the {MAX_FEATURES:,} the "
            f"checkup tracks, e.g. `{f.feature}`: keys that carry data (ids, dates) make a "
            "new feature every time"
        )
        action = "put the data in values under fixed keys, then check those are not identifiers"
    elif f.kind == "timestamp":
        message = (
            f"{name} {where} looks like a timestamp ({f.share:.0%} of its values){example}: "
            "every decision sees a new value, and as a number its size swamps the other features"
        )
        action = (
            "send what matters about the time instead: part of day, weekday, or days since "
            "an event, in buckets"
        )
    else:
        message = (
            f"{name} {where} appears in {f.share:.2%} of the decisions (under 1%): too rare "
            "for the model to learn a weight for it"
        )
        action = "drop it, or fold it into a broader feature most decisions carry"
    return Finding(_CODES[f.kind], f.namespace, f.feature, message, action)
