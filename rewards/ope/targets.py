r"""Policies under evaluation (targets): each one's pmf over every logged event's candidates.

``baseline``
    Always the first logged candidate (index 0): Personalizer's baseline.
``random``
    Uniform over the logged candidates (any registered spec of kind ``random``).
``online``
    The logged pmf itself. Its weights are all 1, so its IPS estimate *is* the mean logged reward
    (the on-policy estimate); every other policy is judged against it.
VW specs
    By **progressive replay**: for each event in log order, a fresh ``--cb_explore_adf`` model
    (:class:`bandit.model.Model`, built through the VW allow-list) with the spec's arguments
    predicts its pmf over the logged candidates on the logged example, and only then learns that
    event (chosen index, cost ``-reward``, logged propensity). The estimate is thus an honest
    online estimate: no event is scored by a model that has seen it.

Reference: L. Li, W. Chu, J. Langford & X. Wang (2011), "Unbiased offline evaluation of
contextual-bandit-based news article recommendation algorithms", WSDM (replay).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bandit.model import Model, ModelError
from rewards.estimators._validation import FloatArray
from rewards.ope.errors import EvaluationError
from rewards.ope.logged import Batch, padded

ONLINE, BASELINE, RANDOM = "online", "baseline", "random"
DEFAULT_POLICIES = (BASELINE, RANDOM, ONLINE)


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
            self._model = Model(args)  # the allow-list first, then VW
        except ModelError as exc:
            raise EvaluationError(
                f"`{field}`: {name!r} cannot be replayed: {exc}", target=field
            ) from exc

    def pmfs(self, batch: Batch) -> FloatArray:
        replay = self._model.replay
        predictions = [replay(event.learn_example()) for event in batch.events]
        return normalized(padded(predictions, batch.p_log_all.shape[1]))

    def close(self) -> None:
        self._model.close()


def normalized(pmf: FloatArray) -> FloatArray:
    """VW returns float32 probabilities: renormalize rows in double, kept within [0, 1]; a row
    with no mass becomes uniform over its candidates."""
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
        close_all(targets)
        raise
    return targets


def close_all(targets: Iterable[Target]) -> None:
    """Close every target (their VW models), e.g. when building the rest of a list failed."""
    for target in targets:
        target.close()
