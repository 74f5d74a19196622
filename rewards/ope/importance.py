r"""Feature importance by leave-one-namespace-out counterfactual evaluation.

A feature group is a VW namespace: a top-level key of a context or action feature object
(``{"user": {...}}`` becomes ``|user ...``). Its importance is how much the policy's estimated
value drops when the policy must do without it.

For each namespace :math:`g` of the context (the shared line) and of the actions (the action
lines) seen in the window, a fresh model with the policy's arguments is replayed
progressively over the logged events (predict, then learn; see :mod:`rewards.ope.targets`) on
examples from which :math:`g` was removed, interactions included. The same replay on the full
examples is the reference. By default each replay is valued by its model's greedy choice, so
the policy's exploration (which may be uniform while logging) does not hide what it learned.
With :math:`\hat V` the doubly robust estimate (one reward model, fitted on the full examples,
shared by every replay),

.. math:: d_g = \hat V_{\text{full}} - \hat V_{-g}, \qquad
          s_g = 100 \, \frac{\max(d_g, 0)}{\sum_h \max(d_h, 0)}

so scores are in [0, 100] and sum to 100 unless no namespace helps (then all are 0). A
namespace whose removal does not hurt scores 0: within the noise of the estimate it carries no
signal the policy uses.

Reference: L. Breiman (2001), "Random forests", Machine Learning 45 — permutation/drop-column
importance; here the model is refit without the column and valued off-policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from bandit.model import Model, ModelError
from bandit.store import Store
from bandit.vw_args import VwArgsError, parse
from rewards.estimators._validation import FloatArray
from rewards.ope.errors import EvaluationError
from rewards.ope.logged import Batch, Batches, Log
from rewards.ope.results import EstimatorName
from rewards.ope.runs import CancelFlag, ProgressCallback, run
from rewards.ope.targets import Online, Target, close_all, normalized

Kind = Literal["context", "action"]
DEFAULT_NAMESPACE = "_"
FULL = "full"


def _parts(line: str) -> tuple[str, list[str]]:
    """`shared |user a=1 |time h=9` -> ("shared ", ["user a=1 ", "time h=9"])."""
    head, *parts = line.split("|")
    return head, parts


def _name(part: str) -> str:
    stripped = part.strip()
    return stripped.split(None, 1)[0] if stripped else DEFAULT_NAMESPACE


def namespaces(example: Sequence[str]) -> set[tuple[Kind, str]]:
    """The (kind, namespace) pairs of one unlabeled ADF example (shared line first)."""
    found: set[tuple[Kind, str]] = set()
    for i, line in enumerate(example):
        kind: Kind = "context" if i == 0 else "action"
        for part in _parts(line)[1]:
            name = _name(part)
            if name != DEFAULT_NAMESPACE:
                found.add((kind, name))
    return found


def _drop(line: str, namespace: str) -> str:
    head, parts = _parts(line)
    kept = [p.rstrip() for p in parts if _name(p) != namespace]
    body = " |".join(kept) if kept else DEFAULT_NAMESPACE
    prefix = head.rstrip()
    return f"{prefix} |{body}" if prefix else f"|{body}"


def without(example: Sequence[str], kind: Kind, namespace: str) -> tuple[str, ...]:
    """`example` with `namespace` removed from its shared line (context) or action lines."""
    if kind == "context":
        return (_drop(example[0], namespace), *example[1:])
    return (example[0], *(_drop(line, namespace) for line in example[1:]))


class Ablated:
    """Progressive replay of VW arguments on examples without one namespace.

    With `greedy`, the target is the replayed model's most probable action (first on ties)
    rather than its exploring pmf: what the model learned, undiluted by exploration.
    """

    kind = "vw"

    def __init__(self, args: str, group: tuple[Kind, str] | None, *, greedy: bool = True) -> None:
        self.group = group
        self.greedy = greedy
        self.name = FULL if group is None else f"{group[0]}:{group[1]}"
        try:
            if greedy and "--epsilon" in parse(args):
                # Epsilon only mixes uniform mass into the pmf (up to all of it): the model's
                # choice is what its pmf puts the most on without it.
                args = str(parse(args).with_value("--epsilon", "0"))
            self._model = Model(args)  # the allow-list first, then VW
        except (VwArgsError, ModelError) as exc:
            raise EvaluationError(f"`arguments`: {exc}", target="arguments") from exc

    def pmfs(self, batch: Batch) -> FloatArray:
        out = np.full_like(batch.p_log_all, np.nan)
        replay = self._model.replay
        for i, event in enumerate(batch.events):
            lines = event.example if self.group is None else without(event.example, *self.group)
            prediction = replay(event.learn_example(lines))
            if self.greedy:
                best = max(range(len(prediction)), key=lambda j: (prediction[j], -j))
                out[i, : len(prediction)] = 0.0
                out[i, best] = 1.0
            else:
                out[i, : len(prediction)] = prediction
        return normalized(out)

    def close(self) -> None:
        self._model.close()


@dataclass(frozen=True, slots=True)
class FeatureScore:
    kind: Kind
    namespace: str
    value: float
    """The estimated value of the policy without this namespace."""
    drop: float
    score: float


@dataclass(frozen=True, slots=True)
class Importance:
    n: int
    estimator: EstimatorName
    full_value: float
    scores: tuple[FeatureScore, ...]
    """Descending by score, then by drop."""


def scores(drops: Sequence[float]) -> list[float]:
    """Drops in estimated value -> scores in [0, 100] summing to 100 (or all 0)."""
    positive = [max(d, 0.0) if math.isfinite(d) else 0.0 for d in drops]
    total = math.fsum(positive)
    return [100.0 * p / total if total > 0.0 else 0.0 for p in positive]


def importance(
    batches: Batches,
    args: str,
    *,
    total: int,
    reward_range: tuple[float, float],
    max_weight: float,
    estimator: EstimatorName = "dr",
    greedy: bool = True,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> Importance:
    """Leave-one-namespace-out importance of every namespace of the logged events.

    Parameters
    ----------
    batches
        Makes a fresh pass over the logged events; two are made: one to find the namespaces,
        one to replay.
    args
        The VW ``--cb_explore_adf`` arguments of the policy whose features are scored.
    greedy
        Value each replay's most probable action (default) rather than its exploring pmf, so
        that a policy exploring a lot (up to uniformly) still shows what its model learned.

    Raises
    ------
    EvaluationError
        When VW refuses `args`.
    EvaluationCancelled
        When `cancel` is set between batches.
    """
    groups: set[tuple[Kind, str]] = set()
    for events in batches():
        for event in events:
            groups |= namespaces(event.example)
    ordered = sorted(groups)
    if not ordered:
        return Importance(0, estimator, math.nan, ())
    targets: list[Target] = [Online()]
    try:
        targets.append(Ablated(args, None, greedy=greedy))
        targets.extend(Ablated(args, group, greedy=greedy) for group in ordered)
    except BaseException:
        close_all(targets)
        raise
    result = run(
        batches(),
        targets,
        total=total,
        reward_range=reward_range,
        max_weight=max_weight,
        on_progress=on_progress,
        cancel=cancel,
    )
    full = result.policy(FULL).estimate(estimator).value
    values = [result.policy(f"{kind}:{name}").estimate(estimator).value for kind, name in ordered]
    drops = [full - value for value in values]
    out = [
        FeatureScore(kind, name, value, drop, score)
        for (kind, name), value, drop, score in zip(
            ordered, values, drops, scores(drops), strict=True
        )
    ]
    out.sort(key=lambda s: (-s.score, -(s.drop if math.isfinite(s.drop) else -math.inf)))
    return Importance(result.n, estimator, full, tuple(out))


def from_store(
    store: Store,
    args: str,
    *,
    surface: str | None,
    start: datetime | None,
    end: datetime | None,
    estimator: EstimatorName = "dr",
    batch: int = 1000,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> Importance:
    """:func:`importance` over the learned decisions of [start, end) on `surface`
    (:meth:`rewards.ope.logged.Log.of_store`)."""
    log = Log.of_store(store, surface=surface, start=start, end=end, batch=batch)
    return importance(
        log.batches,
        args,
        total=log.total,
        reward_range=log.reward_range,
        max_weight=log.max_weight,
        estimator=estimator,
        on_progress=on_progress,
        cancel=cancel,
    )
