"""An independent learner for the learning suite: Bayesian regression with Thompson sampling.

The suite (`api.simulate.worlds`) measures how much of the oracle's lift the default VW policy
captures. This module answers the other half of that question: how much a learner of a
different family captures on the same worlds, traffic and floor — a yardstick for the goal of
issues 15 and 17 (≥ 90% on the median world in 5,000 cold-start decisions), not a policy oO
serves (oO's policies are VW's; see docs/learning-suite.md, "An independent reference").

It imports nothing of oO's learning code. Each request is read as Personalizer sends it:

- the **features** are what VW's `-q ::` crosses, minus the self-crossings that cannot change
  a ranking: every context feature (`namespace.name=value`, plus a constant) crossed with every
  action feature (`namespace.name=value`), as one-hot indicators added as they first appear;
- the **model** is a Gaussian posterior over their weights, updated once per reward: exact
  Bayesian ridge regression on the reward (`linear`), or logistic regression on the click by
  the online Laplace step (`logistic`: one Newton step per example, the extended Kalman filter
  of Chapelle and Li's display-ads Thompson sampling), with the posterior's covariance whole
  (`full`, O(D²) per update) or only its diagonal (`diagonal`, O(features) per update: what
  would scale to hashed feature spaces);
- **exploration** is Thompson sampling: the probability of each action is the share of
  `draws` posterior samples (scaled by `scale`) in which it scores best, and the surface's
  floor is mixed in as oO mixes it, pmf' = (1 − δ)·pmf + δ/K. The action is drawn from exactly
  that pmf, so the logged propensity is the one sampled from.

    .venv/bin/python bench/bench_learning.py --references --path model --seeds 3
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Family = Literal["linear", "logistic"]
Covariance = Literal["full", "diagonal"]

CONSTANT = "constant"
"""The context feature every request has: crossed with an action feature, that action's bias."""
INTERCEPT = "__intercept__"
"""A logistic model's shared intercept (the click rate's base): it cannot change a ranking, but
it carries the offset so the per-action weights need not."""
INTERCEPT_VARIANCE = 25.0


@dataclass(frozen=True, slots=True)
class Reference:
    """One reference learner's settings; `name` is how the suite's tables show it."""

    family: Family
    covariance: Covariance
    scale: float
    """Thompson sampling's posterior scale: samples are drawn from N(mean, scale² · covariance)."""
    prior_variance: float = 1.0
    draws: int = 256

    @property
    def name(self) -> str:
        return f"reference: {self.family} TS, {self.covariance} covariance, scale {self.scale:g}"


REFERENCES: tuple[Reference, ...] = (
    Reference("linear", "full", 0.05),
    Reference("logistic", "full", 0.25),
    Reference("logistic", "diagonal", 0.35),
)
"""The settings docs/learning-suite.md reports: each family's best scale on seeds 0–2."""


def tokens(features: list[dict[str, dict[str, Any]]]) -> list[str]:
    """`namespace.name=value` for every feature of Personalizer feature objects (one level)."""
    return [
        f"{namespace}.{name}={value}"
        for obj in features
        for namespace, values in obj.items()
        for name, value in values.items()
    ]


@dataclass
class Posterior:
    """A Gaussian posterior over weights that are added as features first appear.

    `mean`, and `covariance` (D × D for `full`, its diagonal for `diagonal`), over arrays that
    grow by doubling; the weights in use are the first `len(index)`.
    """

    family: Family
    covariance_kind: Covariance
    prior_variance: float = 1.0
    index: dict[str, int] = field(default_factory=dict)
    mean: np.ndarray = field(default_factory=lambda: np.zeros(64))
    covariance: np.ndarray = field(init=False)
    _rewards: np.ndarray = field(default_factory=lambda: np.zeros(64))
    """Linear only: X'y, so that the mean is covariance @ X'y (exact ridge regression)."""

    def __post_init__(self) -> None:
        capacity = len(self.mean)
        if self.covariance_kind == "full":
            self.covariance = np.eye(capacity) * self.prior_variance
        else:
            self.covariance = np.full(capacity, self.prior_variance)

    def position(self, token: str) -> int:
        """The weight index of `token`, added (with its prior) on first sight."""
        found = self.index.get(token)
        if found is not None:
            return found
        at = len(self.index)
        if at == len(self.mean):
            self._grow()
        self.index[token] = at
        if token == INTERCEPT:
            if self.covariance_kind == "full":
                self.covariance[at, at] = INTERCEPT_VARIANCE
            else:
                self.covariance[at] = INTERCEPT_VARIANCE
        return at

    def _grow(self) -> None:
        old = len(self.mean)
        new = 2 * old
        self.mean = np.concatenate([self.mean, np.zeros(old)])
        self._rewards = np.concatenate([self._rewards, np.zeros(old)])
        if self.covariance_kind == "full":
            grown = np.eye(new) * self.prior_variance
            grown[:old, :old] = self.covariance
            self.covariance = grown
        else:
            self.covariance = np.concatenate([self.covariance, np.full(old, self.prior_variance)])

    def scores(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Each row's score mean and the scores' covariance (rows are feature index lists)."""
        used = sorted({i for row in rows for i in row})
        at = {i: j for j, i in enumerate(used)}
        design = np.zeros((len(rows), len(used)))
        for k, row in enumerate(rows):
            for i in row:
                design[k, at[i]] += 1.0
        weights = self._weights()[used]
        if self.covariance_kind == "full":
            block = self.covariance[np.ix_(used, used)]
            spread = design @ block @ design.T
        else:
            spread = (design * self.covariance[used]) @ design.T
        return design @ weights, spread

    def _weights(self) -> np.ndarray:
        if self.family == "logistic":
            return self.mean
        if self.covariance_kind == "full":
            # Exact ridge regression: mean = (I/σ² + X'X)^-1 X'y.
            return np.asarray(self.covariance @ self._rewards)
        return np.asarray(self.covariance * self._rewards)

    def learn(self, row: list[int], target: float) -> None:
        """One example: features `row` (indices, each counting 1), reward or click `target`."""
        used, counts = np.unique(np.asarray(row), return_counts=True)
        x = counts.astype(float)
        if self.family == "linear":
            self._rewards[used] += target * x
            self._rank_one(used, x, 1.0)
            return
        p = 1.0 / (1.0 + math.exp(-float(x @ self.mean[used])))
        # One Newton step on the log-likelihood: precision += p(1−p) x x', then
        # mean += Σ' x (y − p) with the updated covariance Σ'.
        self.mean += self._rank_one(used, x, max(p * (1.0 - p), 1e-6)) * (target - p)

    def _rank_one(self, used: np.ndarray, x: np.ndarray, curvature: float) -> np.ndarray:
        """Precision += curvature · x x' (Sherman–Morrison on the covariance; per weight when
        only the diagonal is kept), for x nonzero at `used`. Returns Σ' x, as a full vector."""
        if self.covariance_kind == "diagonal":
            self.covariance[used] = 1.0 / (1.0 / self.covariance[used] + curvature * x * x)
            out = np.zeros(len(self.mean))
            out[used] = self.covariance[used] * x
            return out
        sx = self.covariance[:, used] @ x
        denominator = 1.0 + curvature * float(x @ sx[used])
        self.covariance -= np.outer(sx, sx) * (curvature / denominator)
        # Σ' x = Σ x − Σ x (c x'Σx) / (1 + c x'Σx) = Σ x / (1 + c x'Σx).
        return np.asarray(sx / denominator)


@dataclass
class ReferenceLoop:
    """`api.simulate.Loop` over a `Reference`: rank draws from the Thompson pmf under the floor,
    reward learns the chosen action's features at once (as the suite's model path does)."""

    reference: Reference
    floor: float
    seed: int
    world: str
    posterior: Posterior = field(init=False)
    _random: np.random.Generator = field(init=False)
    _pending: dict[str, list[int]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.posterior = Posterior(
            self.reference.family, self.reference.covariance, self.reference.prior_variance
        )
        self._random = np.random.default_rng([self.seed, zlib.crc32(self.world.encode())])

    def _rows(self, body: dict[str, Any]) -> list[list[int]]:
        context = [*tokens(body["contextFeatures"]), CONSTANT]
        shared = [INTERCEPT] if self.reference.family == "logistic" else []
        rows = []
        for action in body["actions"]:
            crossed = [f"{c}*{a}" for c in context for a in tokens(action["features"])]
            rows.append([self.posterior.position(t) for t in [*crossed, *shared]])
        return rows

    def pmf(self, rows: list[list[int]]) -> np.ndarray:
        """Thompson sampling's probabilities (shares of posterior draws that rank each action
        first), under the floor."""
        mean, spread = self.posterior.scores(rows)
        k = len(rows)
        root = np.linalg.cholesky(spread + 1e-9 * np.eye(k))
        draws = (
            mean
            + self.reference.scale
            * self._random.standard_normal((self.reference.draws, k))
            @ root.T
        )
        wins = np.bincount(draws.argmax(axis=1), minlength=k) / self.reference.draws
        return np.asarray((1.0 - self.floor) * wins + self.floor / k)

    def rank(self, body: dict[str, Any]) -> dict[str, Any]:
        rows = self._rows(body)
        pmf = self.pmf(rows)
        chosen = int(self._random.choice(len(rows), p=pmf / pmf.sum()))
        self._pending[body["eventId"]] = rows[chosen]
        actions = body["actions"]
        return {
            "eventId": body["eventId"],
            "rewardActionId": actions[chosen]["id"],
            "ranking": [
                {"id": a["id"], "probability": float(p)} for a, p in zip(actions, pmf, strict=True)
            ],
        }

    def reward(self, event_id: str, value: float) -> None:
        self.posterior.learn(self._pending.pop(event_id), value)
