"""Model keys: which model a decision is learned into, as one string.

A key is `{surface}:{policy}`, so each surface (the tips product, the Personalizer-compatible
loop) learns its own model for each policy version; an experiment's arm learns its own model
under `{surface}:{policy}:{experiment}/{arm}`. `{policy}` is a policy spec's id (`name` or
`name@vN`, see `policies.spec`), which never contains `:`. Decisions that must be logged but
never learned (Personalizer's logging-only mode) go under `{surface}:LoggingOnly`: not a
policy id (ids are lowercase), so no registry builds a model for it.

This module is the only place that spells or parses the format.
"""

from __future__ import annotations

from dataclasses import dataclass

UNLEARNED = "LoggingOnly"


@dataclass(frozen=True, slots=True)
class ModelKey:
    """The parts of a model key."""

    surface: str
    policy: str
    experiment: str | None = None
    arm: str | None = None

    def __str__(self) -> str:
        return build(self.surface, self.policy, self.experiment, self.arm)


def build(surface: str, policy: str, experiment: str | None = None, arm: str | None = None) -> str:
    """The key of `policy` on `surface`, or of one experiment's arm when both are given."""
    if experiment is None or arm is None:
        return f"{surface}:{policy}"
    return f"{surface}:{policy}:{experiment}/{arm}"


def unlearned(surface: str) -> str:
    """The key decisions of `surface` are logged under when they must never be learned."""
    return build(surface, UNLEARNED)


def parse(key: str) -> ModelKey:
    """The parts of `key`; a key without a policy part is refused.

    Raises
    ------
    ValueError
        When `key` has no `:` separating its surface from its policy.
    """
    surface, sep, rest = key.partition(":")
    if not sep:
        raise ValueError(f"`model_key` must be surface:policy[:experiment/arm] (got {key!r})")
    policy, sep, arm_part = rest.partition(":")
    if not sep:
        return ModelKey(surface, policy)
    experiment, _, arm = arm_part.partition("/")
    return ModelKey(surface, policy, experiment, arm)


def surface_of(key: str) -> str:
    """The surface part of `key`."""
    return key.split(":", 1)[0]


def policy_of(key: str) -> str:
    """The policy id in `key` (either form)."""
    return parse(key).policy
