"""How a surface's run-time configuration shapes the policy that serves it.

Personalizer's service configuration changes serving without changing the learned model:

- *exploration percentage*: the share of probability spread uniformly over the candidates. An
  epsilon-greedy VW policy serves with that epsilon (the learned reward model does not depend on
  epsilon, so the model is kept; only the pmf changes). Any other VW explorer (SquareCB, RegCB,
  softmax, bagging, cover) keeps its own adaptive pmf and gets that share mixed in as a floor,
  pmf' = (1 - share) pmf + share / K, so every candidate keeps probability >= share / K and the
  logs stay evaluable (ADR 0011); it is never re-mixed with epsilon-greedy on top;
- *Apprentice* mode: the baseline (first) action is served with probability 1, and the decision
  is learned into the policy's model as usual, so the policy learns while imitating;
- *LoggingOnly* mode: the policy serves as usual, but its decisions are logged under a model key
  no model is built for, so they are kept for evaluation and never learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from bandit import model_keys
from bandit.events import Action, Features
from bandit.policy import Policy
from bandit.surface_config import floor_share
from bandit.vw_args import parse

EXPLORATION_ALGORITHMS = frozenset(
    {
        "--first",
        "--bag",
        "--cover",
        "--softmax",
        "--squarecb",
        "--regcb",
        "--regcbopt",
        "--rnd",
        "--synthcover",
    }
)
"""VW exploration options other than epsilon-greedy; epsilon means nothing to them."""

# These read gated arguments (a spec's, or a client's once its spec is made); text the
# allow-list refuses raises `bandit.vw_args.VwArgsError`.


@lru_cache(maxsize=256)
def is_epsilon_greedy(args: str) -> bool:
    """True when `args` explore epsilon-greedily (VW's default for `--cb_explore_adf`).

    Cached: every decision asks it of its policy's arguments, and parsing them cost about a
    twentieth of a rank's work on the event loop.
    """
    gated = parse(args)
    return not any(algorithm in gated for algorithm in EXPLORATION_ALGORITHMS)


def epsilon_of(args: str) -> float | None:
    """The `--epsilon` value in `args`, or None when absent."""
    return parse(args).number("--epsilon")


def without_epsilon(args: str) -> str:
    """`args` without their `--epsilon` option (for comparing what a model learns)."""
    return str(parse(args).without("--epsilon"))


def with_epsilon(args: str, epsilon: float) -> str:
    """`args` with `--epsilon` set to `epsilon` (inserted after `--cb_explore_adf`)."""
    return str(parse(args).with_value("--epsilon", f"{epsilon:.6g}", after="--cb_explore_adf"))


class Wrapped:
    """A policy that serves another's pmf reshaped: it keeps the inner policy's name, model key
    and version, so its decisions are logged and learned as the inner policy's."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model_key(self) -> str:
        return self.inner.model_key

    @property
    def model_version(self) -> int:
        return self.inner.model_version


class Explore(Wrapped):
    """Epsilon-greedy around the inner policy's most probable action."""

    def __init__(self, inner: Policy, epsilon: float) -> None:
        super().__init__(inner)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"`epsilon` must be in [0, 1] (got {epsilon})")
        self.epsilon = epsilon

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        base = self.inner.pmf(context, actions, action_lines)
        best = max(range(len(base)), key=lambda i: (base[i], -i))
        floor = self.epsilon / len(base)
        return [floor + (1.0 - self.epsilon if i == best else 0.0) for i in range(len(base))]


class Floor(Wrapped):
    """The inner explorer's pmf with a uniform floor mixed in.

    pmf'(a) = (1 - delta) pmf(a) + delta / K for K candidates: the result sums to 1 and every
    candidate keeps probability >= delta / K, so importance weights stay below K / delta while
    the inner explorer keeps its own (adaptive) shape above the floor.
    """

    def __init__(self, inner: Policy, delta: float) -> None:
        super().__init__(inner)
        if not 0.0 <= delta <= 1.0:
            raise ValueError(f"`delta` must be in [0, 1] (got {delta})")
        self.delta = delta

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        base = self.inner.pmf(context, actions, action_lines)
        floor = self.delta / len(base)
        return [(1.0 - self.delta) * p + floor for p in base]


class Baseline(Wrapped):
    """Apprentice mode: the first action, always; learned into the inner policy's model."""

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        return [1.0 if i == 0 else 0.0 for i in range(len(actions))]


class LoggingOnly(Wrapped):
    """Serves as the inner policy, logged under a model key that is never learned."""

    def __init__(self, inner: Policy, surface: str) -> None:
        super().__init__(inner)
        self._key = model_keys.unlearned(surface)

    @property
    def model_key(self) -> str:
        return self._key

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        return self.inner.pmf(context, actions, action_lines)


def serving(
    policy: Policy, surface: str, *, mode: str, exploration: float | None, args: str | None
) -> Policy:
    """The policy as the surface's configuration makes it serve.

    `args` are the policy's VW arguments (None for policies without a VW model, which keep
    their own exploration). `exploration` is the share spread uniformly: epsilon for an
    epsilon-greedy policy, the floor of any other VW explorer. None keeps an epsilon-greedy
    policy's own epsilon and floors any other explorer at `DEFAULT_EXPLORATION`, so no VW
    explorer serves a candidate with less than a floor's probability unless the operator set
    the share to 0.
    """
    if mode == "Apprentice":
        return Baseline(policy)
    if args is not None:
        if is_epsilon_greedy(args):
            if exploration is not None:
                policy = Explore(policy, exploration)
        else:
            policy = Floor(policy, floor_share(exploration))
    if mode == "LoggingOnly":
        return LoggingOnly(policy, surface)
    return policy
