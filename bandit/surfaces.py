"""Decision surfaces as data: each kind of decision oO makes, registered once.

A surface is one stream of decisions with its own policy, models, reward rules and experiments:
`tips` (which tip a person sees), `personalizer` (the Personalizer-compatible loop integrators
call) and `timing` (send a tip now, or wait). What differs between them is a field of
`Surface`, so the code that serves, learns, experiments and evaluates asks the registry instead
of branching on a name:

- `unit`: what an experiment assigns to arms and analyses, the decision's principal (a person)
  or, where one principal speaks for many people (a Personalizer subscription key), the event;
- `reward_wait`, `default_reward`, `exploration`, `reward_aggregation`: the settings the
  surface starts with (`bandit.surface_config`; an operator may change them while it runs);
- its policy: the one an experiment shipped to it, else the one its setting names. A process's
  settings hold one field per surface, `<name>_policy` (`OO_<NAME>_POLICY`), read by
  `Surface.policy_setting`.

Its model keys are `{surface}:{policy}` (`bandit.model_keys.build`). Registrations live
with the product they belong to (`integrations.context.TIPS_SURFACE`, the Personalizer
surface in `api`); a front door assembles the `Surfaces` it serves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

from bandit.settings import LearnerSettings
from bandit.surface_config import (
    AGGREGATIONS,
    MAX_REWARD_WAIT,
    MIN_REWARD_WAIT,
    Aggregation,
    SurfaceConfig,
)

Unit = Literal["principal", "event"]
UNITS: tuple[Unit, ...] = ("principal", "event")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True, slots=True)
class Surface:
    """One decision surface.

    Attributes
    ----------
    name
        Logged with every decision, the first part of its model keys (lowercase, `_` allowed).
    unit
        What experiments assign: each `principal` (sticky per person), or each `event` (for a
        principal that stands for many people; a retried event id lands in the same arm).
    reward_wait, default_reward
        How long a decision waits for its reward, and the reward it learns when none came;
        None: the learner's (`OO_REWARD_WAIT_SECONDS`, `OO_DEFAULT_REWARD`).
    exploration
        The share of probability spread over the candidates it starts with; None: the
        configuration's default (`SurfaceConfig.exploration`).
    reward_aggregation
        `earliest` (the first reward counts) or `sum` (every on-time reward adds up, learned
        when the window closes).
    """

    name: str
    unit: Unit = "principal"
    reward_wait: timedelta | None = None
    default_reward: float | None = None
    exploration: float | None = None
    reward_aggregation: Aggregation = "earliest"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"`name` must be 1-32 lowercase letters, digits or '_', starting with a letter "
                f"(got {self.name!r})"
            )
        if self.unit not in UNITS:
            raise ValueError(f"`unit` must be one of {list(UNITS)} (got {self.unit!r})")
        if self.reward_wait is not None and not MIN_REWARD_WAIT <= self.reward_wait <= (
            MAX_REWARD_WAIT
        ):
            raise ValueError(f"`reward_wait` must be between 5 seconds and 2 days ({self.name})")
        if self.default_reward is not None and not -1.0 <= self.default_reward <= 1.0:
            raise ValueError(f"`default_reward` must be in [-1, 1] ({self.name})")
        if self.exploration is not None and not 0.0 <= self.exploration <= 1.0:
            raise ValueError(f"`exploration` must be in [0, 1] ({self.name})")
        if self.reward_aggregation not in AGGREGATIONS:
            raise ValueError(f"`reward_aggregation` must be one of {list(AGGREGATIONS)}")

    @property
    def policy_setting(self) -> str:
        """The settings field naming the policy it serves until an experiment ships one."""
        return f"{self.name}_policy"

    @property
    def policy_variable(self) -> str:
        """That setting as the environment spells it: `OO_TIPS_POLICY`."""
        return f"OO_{self.policy_setting.upper()}"

    def settings(self, learner: LearnerSettings) -> SurfaceConfig:
        """What the surface runs with until an operator configures it."""
        config = SurfaceConfig(
            self.reward_wait if self.reward_wait is not None else learner.reward_window,
            learner.default_reward if self.default_reward is None else self.default_reward,
            self.reward_aggregation,
        )
        if self.exploration is not None:
            config = replace(config, exploration=self.exploration)
        return config


class Surfaces(Mapping[str, Surface]):
    """The surfaces a process serves, by name, in the order they were registered."""

    def __init__(self, *surfaces: Surface) -> None:
        self._by_name: dict[str, Surface] = {}
        for surface in surfaces:
            if surface.name in self._by_name:
                raise ValueError(f"surface {surface.name!r} is registered twice")
            self._by_name[surface.name] = surface

    def __getitem__(self, name: str) -> Surface:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return f"Surfaces({', '.join(self._by_name)})"

    def settings(self, learner: LearnerSettings) -> dict[str, SurfaceConfig]:
        """Each surface's starting configuration (see `Surface.settings`)."""
        return {name: surface.settings(learner) for name, surface in self._by_name.items()}
