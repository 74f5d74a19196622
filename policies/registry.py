"""The policy registry: built-in specs and the construction of policies from specs.

Model keys are `"{surface}:{policy}"`, so each surface (the tips product, the
Personalizer-compatible loop) learns its own model for each policy.
"""

from __future__ import annotations

from collections.abc import Iterable

from bandit.hub import ModelHub
from bandit.policy import Policy
from policies import random, vw
from policies.spec import PolicySpec, PolicySpecError

# Why this default: docs/adr/0002-default-exploration.md.
DEFAULT_VW_ARGS = "--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::"

BUILTIN: tuple[PolicySpec, ...] = (
    PolicySpec("random", "random", description="Uniform over the candidates (the v0)."),
    PolicySpec(
        "vw-epsilon",
        "vw",
        DEFAULT_VW_ARGS,
        "Epsilon-greedy (20%) over an MTR reward model with all quadratic interactions.",
    ),
    PolicySpec(
        "vw-squarecb",
        "vw",
        "--cb_explore_adf --squarecb --cb_type mtr -q ::",
        "SquareCB (Foster & Rakhlin 2020) inverse-gap weighting.",
    ),
    PolicySpec(
        "vw-softmax",
        "vw",
        "--cb_explore_adf --softmax --lambda 10 --cb_type mtr -q ::",
        "Softmax exploration over predicted rewards.",
    ),
)


def model_key(surface: str, policy: str) -> str:
    return f"{surface}:{policy}"


def policy_of(key: str) -> str:
    return key.split(":", 2)[1]


class Registry:
    """Named policy specs; built-ins plus any registered at run time."""

    def __init__(self, specs: Iterable[PolicySpec] = BUILTIN) -> None:
        self._specs: dict[str, PolicySpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: PolicySpec) -> None:
        if spec.name in self._specs and self._specs[spec.name] != spec:
            raise PolicySpecError(f"`name` {spec.name!r} is already registered with another spec")
        self._specs[spec.name] = spec

    def get(self, name: str) -> PolicySpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise PolicySpecError(f"unknown policy {name!r} (known: {known})") from None

    def __iter__(self) -> Iterable[PolicySpec]:
        return iter(self._specs.values())

    def args_for(self, key: str) -> str | None:
        """VW arguments for a model key, or None when its policy learns no model."""
        spec = self._specs.get(policy_of(key))
        return spec.args if spec is not None and spec.kind == "vw" else None

    def build(self, name: str, surface: str, hub: ModelHub) -> Policy:
        spec = self.get(name)
        key = model_key(surface, spec.name)
        if spec.kind == "random":
            return random.Policy(spec.name, key)
        return vw.Policy(spec.name, key, hub)
