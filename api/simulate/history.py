"""People with stable personal tastes: does their own history help the tips policy learn?

A seeded world of `people` who each like a few categories of the tip catalog, whatever the
moment: a tip of a liked category is done with probability `liked`, any other with `other`
(plus a small taste the whole population shares, so a policy without history still has
something to learn). Nothing in the context tells people apart, and the context carries no
identifier (it must not: `oo doctor` warns about those), so without history the best a policy
can learn is the population's taste; with it, "this person did tips of this kind before" is a
feature, and one weight for it serves every person and category.

The loop runs the tips surface's own pieces in this process: `build_context` for the moment,
the catalog's candidates (`TipSource`), `integrations.history` for the person's record,
`with_history`, the featurization, a VW model with the tips policy's arguments under the
surface's default exploration floor (`policies.serving.Floor`), the draw seeded by the event
id; a reaction is learned as soon as it comes. Event ids, people, moments and reactions are
seeded, so a run is the same every time. Because the world is known, every decision's expected
done rate under the served pmf, under uniform random and under the oracle is exact.

    .venv/bin/python bench/bench_history.py
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from bandit.events import Action, Features
from bandit.features import adf_example
from bandit.model import LearnExample, Model
from bandit.sampling import sample_index
from bandit.surface_config import DEFAULT_EXPLORATION
from integrations.catalog import load_catalog
from integrations.context import TipSource, build_context, with_history
from integrations.history import History
from integrations.profiles import Profile
from policies.registry import BUILTIN, DEFAULT_POLICY
from policies.serving import Floor
from rewards.mapping import DEFAULT_REWARDS

START = datetime(2026, 9, 1, 7, 0, tzinfo=UTC)
TIPS_ARGS = next(spec.args for spec in BUILTIN if spec.name == DEFAULT_POLICY)


@dataclass(frozen=True, slots=True)
class TasteWorld:
    """The world's shape; `run(world, history=...)` draws it from `seed`."""

    people: int = 60
    liked_categories: int = 3
    liked: float = 0.5
    """Chance a liked category's tip is done."""
    other: float = 0.06
    """Chance any other tip is done."""
    shared: float = 0.04
    """Spread of a taste every person shares, added per category (clipped to [0, 1])."""
    dismiss: float = 0.3
    """Chance a tip not done is dismissed (else it is ignored: no reaction)."""
    decisions: int = 2400
    step: timedelta = timedelta(minutes=29)
    """Time between decisions (29 minutes walks through every part of the day)."""
    seed: int = 7


class _Served:
    """A `bandit.policy.Policy` over one in-process model."""

    name = DEFAULT_POLICY
    model_key = "tips:simulation"

    def __init__(self, model: Model) -> None:
        self.model = model

    @property
    def model_version(self) -> int:
        return self.model.version

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        return self.model.predict(context, action_lines)


@dataclass
class Run:
    """Per decision, the exact expected done rate: served policy, random and oracle."""

    history: bool
    policy: list[float] = field(default_factory=list)
    random: list[float] = field(default_factory=list)
    oracle: list[float] = field(default_factory=list)
    done: int = 0

    def share(self, start: float = 0.5) -> dict[str, float]:
        """Means over the decisions after `start` of the run (once learning had time)."""
        cut = int(len(self.policy) * start)
        policy, random, oracle = (
            float(np.mean(xs[cut:])) for xs in (self.policy, self.random, self.oracle)
        )
        lift = oracle - random
        return {
            "policy": policy,
            "random": random,
            "oracle": oracle,
            "captured": (policy - random) / lift if lift > 0 else 0.0,
        }


def run(
    world: TasteWorld, *, history: bool, on_decision: Callable[[int], None] | None = None
) -> Run:
    """Drive `world.decisions` decisions, with or without the history features."""
    rng = np.random.default_rng(world.seed)
    source = TipSource(load_catalog())
    categories = sorted({tip.category for tip in source.catalog.tips})
    shared = rng.normal(0.0, world.shared, len(categories))
    tastes = np.full((world.people, len(categories)), world.other) + shared
    for person in range(world.people):
        liked = rng.choice(len(categories), world.liked_categories, replace=False)
        tastes[person, liked] = world.liked + shared[liked]
    tastes = np.clip(tastes, 0.0, 1.0)
    index = {category: i for i, category in enumerate(categories)}
    people = rng.integers(world.people, size=world.decisions)
    draws = np.random.default_rng(world.seed + 1)

    model = Model(TIPS_ARGS)
    policy = Floor(_Served(model), DEFAULT_EXPLORATION)
    records = [History() for _ in range(world.people)]
    result = Run(history)
    try:
        for i in range(world.decisions):
            person = int(people[i])
            now = START + world.step * i
            profile = Profile(f"person-{person}")
            context, local = build_context(profile, {}, now)
            event_id = f"taste-{world.seed}-{i}"
            candidates = source.candidates(profile, local, {}, event_id)
            actions, lines = candidates.actions, candidates.lines
            if history:
                shown = with_history(
                    actions, lines, records[person].features(now, UTC), source.category
                )
                actions, lines = shown.actions, shown.lines
            pmf = policy.pmf(context, actions, lines)
            chosen = sample_index(pmf, event_id)
            p_done = np.array([tastes[person, index[source.category(a.id)]] for a in actions])
            result.policy.append(float(np.dot(pmf, p_done)))
            result.random.append(float(p_done.mean()))
            result.oracle.append(float(p_done.max()))
            reaction = _react(draws, float(p_done[chosen]), world.dismiss)
            result.done += reaction == "done"
            records[person].shown(event_id, now, source.category(actions[chosen].id))
            reward = 0.0  # the default reward, when the window closes without a reaction
            if reaction is not None:
                records[person].reacted(event_id, reaction)
                reward = DEFAULT_REWARDS[reaction]
            example = adf_example(context, lines)
            model.learn([LearnExample(example, chosen, pmf[chosen], reward)])
            if on_decision is not None:
                on_decision(i + 1)
    finally:
        model.close()
    return result


def _react(draws: np.random.Generator, p_done: float, dismiss: float) -> str | None:
    if draws.random() < p_done:
        return "done"
    return "dismiss" if draws.random() < dismiss else None
