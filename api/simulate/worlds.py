"""Simulated worlds: synthetic people whose hidden click probabilities depend on the context.

Each world knows its truth, so for every decision the expected reward of any pmf, of the uniform
random policy and of the oracle (the best action for that context, at that time) are exact, on
the very contexts the served policy saw. The suite (`SUITE`) spans what a default exploration
must cope with: 2 to 50 actions, few and many context features (most of them noise), sparse
rewards around 1% like real click logs, preferences that drift while the loop runs, and
rewards that arrive many decisions late (within the reward window).

Truth model, for context x (one level per feature) at decision t of T::

    logit p(a | x, t) = offset + bias[a]
                        + sum_f (cos(theta_t) A_f[x_f, k(a)] + sin(theta_t) B_f[x_f, k(a)])
    theta_t = drift * (pi / 2) * t / T

where only the first `relevant` features have effects, k(a) is the action's category (actions of
one category share tastes; without categories every action is its own), and A, B, bias are drawn
once from the world's seed. `drift` 1 turns the preferences a quarter circle: by the end they are
independent of where they started.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bandit.events import Features, JSONValue


@dataclass(frozen=True, slots=True)
class Feature:
    """One categorical context feature, sent as `{namespace: {name: level}}`."""

    namespace: str
    name: str
    levels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WorldSpec:
    """The shape of a world; `World(spec, seed)` draws its hidden preferences."""

    name: str
    description: str
    actions: tuple[str, ...]
    features: tuple[Feature, ...]
    relevant: int
    """Only the first `relevant` features move the click probabilities; the rest are noise."""
    offset: float
    """The logit offset: sets how often anyone clicks at all."""
    spread: float
    """Standard deviation of each feature's effect on each category's logit."""
    categories: tuple[str, ...] = ()
    """Action categories (action i is in category i mod len); empty: each action its own."""
    action_spread: float = 0.0
    """Standard deviation of each action's own logit bias."""
    drift: float = 0.0
    """Quarter turns of the preferences over `decisions` (0: stationary)."""
    delay: int = 0
    """Decisions that pass before a reward reaches the server (it stays inside the window)."""
    decisions: int = 5000

    def __post_init__(self) -> None:
        if len(self.actions) < 2:
            raise ValueError(f"`actions` must hold at least 2 (got {len(self.actions)})")
        if not 0 < self.relevant <= len(self.features):
            raise ValueError(f"`relevant` must be in 1..{len(self.features)} (got {self.relevant})")
        if self.delay < 0 or self.decisions < 1:
            raise ValueError("`delay` must be >= 0 and `decisions` >= 1")


def _levels(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(n))


def _generic(namespace: str, count: int, levels: int) -> tuple[Feature, ...]:
    return tuple(Feature(namespace, f"f{i}", _levels("v", levels)) for i in range(count))


TIPS6 = WorldSpec(
    name="tips6",
    description="6 actions, 3 context features (part of day, mood, persona): `oo simulate`",
    actions=("movement", "rest", "focus", "social", "mindfulness", "nutrition"),
    features=(
        Feature("clock", "part", ("morning", "afternoon", "evening", "night")),
        Feature("mood", "level", ("low", "okay", "high")),
        Feature("person", "persona", ("athlete", "desk-worker", "parent")),
    ),
    relevant=3,
    offset=-1.5,
    spread=1.2,
)

SUITE: tuple[WorldSpec, ...] = (
    TIPS6,
    WorldSpec(
        name="two-actions",
        description="2 actions, 2 context features",
        actions=("a", "b"),
        features=_generic("user", 2, 3),
        relevant=2,
        offset=-1.0,
        spread=1.0,
    ),
    WorldSpec(
        name="many-actions",
        description="50 actions in 10 categories, 3 context features",
        actions=_levels("item", 50),
        categories=_levels("cat", 10),
        features=_generic("user", 3, 4),
        relevant=3,
        offset=-2.0,
        spread=1.0,
        action_spread=0.5,
    ),
    WorldSpec(
        name="many-features",
        description="10 actions, 16 context features of which 4 matter",
        actions=_levels("item", 10),
        features=_generic("user", 16, 4),
        relevant=4,
        offset=-2.0,
        spread=0.8,
    ),
    WorldSpec(
        name="sparse",
        description="10 actions, clicks around 1% like real click logs",
        actions=_levels("item", 10),
        features=_generic("user", 3, 3),
        relevant=3,
        offset=-5.5,
        spread=1.0,
    ),
    WorldSpec(
        name="drift",
        description="6 actions whose appeal drifts to new preferences over the run",
        actions=_levels("item", 6),
        features=_generic("user", 3, 3),
        relevant=3,
        offset=-1.5,
        spread=1.2,
        drift=1.0,
    ),
    WorldSpec(
        name="delayed",
        description="6 actions, each reward arrives 200 decisions after its decision",
        actions=_levels("item", 6),
        features=_generic("user", 3, 3),
        relevant=3,
        offset=-1.5,
        spread=1.2,
        delay=200,
    ),
    WorldSpec(
        name="catalog30",
        description="30 tips in 6 categories, 6 features (3 matter), clicks ~4%, delay 20",
        actions=_levels("tip", 30),
        categories=_levels("cat", 6),
        features=_generic("user", 6, 3),
        relevant=3,
        offset=-3.5,
        spread=1.0,
        action_spread=0.5,
        delay=20,
    ),
)
"""The worlds the default exploration is chosen on (ADR 0011)."""

WORLDS = {spec.name: spec for spec in SUITE}


Context = tuple[int, ...]
"""One level index per feature."""


@dataclass
class World:
    """A world drawn from `spec` with `seed`: the contexts arrive in a seeded order and people
    react with a second seeded stream, so every policy run on the world sees the same contexts.
    """

    spec: WorldSpec
    seed: int
    _contexts: np.random.Generator = field(init=False, repr=False)
    _reactions: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        spec = self.spec
        rng = np.random.default_rng(self.seed)
        kinds = len(spec.categories) or len(spec.actions)
        relevant = spec.features[: spec.relevant]
        self.start = [rng.normal(0.0, spec.spread, (len(f.levels), kinds)) for f in relevant]
        self.end = [rng.normal(0.0, spec.spread, (len(f.levels), kinds)) for f in relevant]
        self.bias = (
            rng.normal(0.0, spec.action_spread, len(spec.actions))
            if spec.action_spread
            else np.zeros(len(spec.actions))
        )
        self.kind = np.arange(len(spec.actions)) % kinds
        self._contexts = np.random.default_rng(self.seed + 1)
        self._reactions = np.random.default_rng(self.seed + 2)

    @property
    def actions(self) -> list[dict[str, object]]:
        """The candidates as Personalizer's rank call takes them."""
        spec = self.spec
        out: list[dict[str, object]] = []
        for i, name in enumerate(spec.actions):
            item: dict[str, object] = {"id": name}
            if spec.categories:
                item["category"] = spec.categories[self.kind[i]]
            out.append({"id": name, "features": [{"item": item}]})
        return out

    def context(self) -> Context:
        """The next person's context."""
        return tuple(int(self._contexts.integers(len(f.levels))) for f in self.spec.features)

    def features(self, ctx: Context) -> Features:
        """The context as Personalizer's `contextFeatures`: one object per namespace."""
        grouped: dict[str, dict[str, JSONValue]] = {}
        for feature, level in zip(self.spec.features, ctx, strict=True):
            grouped.setdefault(feature.namespace, {})[feature.name] = feature.levels[level]
        return [{namespace: values} for namespace, values in grouped.items()]

    def probabilities(self, ctx: Context, t: int = 0) -> np.ndarray:
        """The click probability of every action for `ctx` at decision `t`, shape (actions,)."""
        spec = self.spec
        theta = spec.drift * (math.pi / 2) * t / spec.decisions
        logit = spec.offset + self.bias.copy()
        for level, start, end in zip(ctx, self.start, self.end, strict=False):
            logit += (math.cos(theta) * start[level] + math.sin(theta) * end[level])[self.kind]
        probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-logit))
        return probabilities

    def react(self, probability: float) -> float:
        """1 with the click probability of the action shown, else 0."""
        return 1.0 if self._reactions.random() < probability else 0.0


@dataclass(frozen=True, slots=True)
class Expected:
    """Exact expected rewards of one decision under the world's truth."""

    policy: float
    random: float
    oracle: float


def expected(pmf: Sequence[float], probabilities: np.ndarray) -> Expected:
    """The expected reward of drawing from `pmf`, of uniform random, and of the best action.

    >>> e = expected([0.5, 0.5, 0.0], np.array([0.2, 0.4, 0.9]))
    >>> round(e.policy, 6), round(e.random, 6), e.oracle
    (0.3, 0.5, 0.9)
    """
    return Expected(
        float(np.dot(pmf, probabilities)),
        float(probabilities.mean()),
        float(probabilities.max()),
    )
