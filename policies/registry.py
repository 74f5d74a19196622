"""The policy registry: built-in specs, validation, and the construction of policies from specs.

Each policy version learns its own model per surface (and per experiment arm), under the
model key `bandit.model_keys` builds from the spec's id (`name` for version 1, `name@vN` after;
see `policies.spec`).

Ids are exact: `find("name")` is version 1, as it was before versions existed, wherever it is
stored (model keys, experiment arms, shipped defaults, settings). Only `latest` and `pin` resolve
a bare name to its newest version, for input that means "this policy as registered now".

Stored versions the allow-list refuses (`RefusedSpec`) are held apart: `find` does not see them,
`get` and `build` refuse them by name with the reason, and they still count for numbering.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence

from bandit import model_keys
from bandit.hub import ModelHub
from bandit.model import Model, ModelError
from bandit.policy import Policy
from policies import random, rule, vw
from policies.spec import (
    PolicySpec,
    PolicySpecError,
    RefusedSpec,
    StoredSpec,
    canonical_id,
    parse_id,
)

EPSILON_GREEDY_ARGS = "--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::"
"""The arguments of `vw-epsilon`, the epsilon-greedy policy of ADR 0002 (the default until
ADR 0011; the default is now `DEFAULT_POLICY`)."""
TUNED_SQUARECB_ARGS = (
    "--cb_explore_adf --squarecb --gamma_scale 100 --cb_type mtr -q :: -l 2 --clip_p 0.1"
)
DEFAULT_POLICY = "vw-squarecb-tuned"
"""What a surface serves unless configured: SquareCB, greedier, learning faster and with the
reward model's importance weights clipped (`--clip_p 0.1`), under the surface's uniform floor
(`bandit.surface_config.DEFAULT_EXPLORATION`), tuned on the simulation suite (ADR 0011,
docs/learning-suite.md). `vw-squarecb` keeps VW's defaults, so a deployment that named it keeps
its model."""

TIMING_POLICY = "vw-timing"
"""What the timing surface serves unless configured (ADR 0014): send or wait is one action
crossed with the context, and the dose leaves few sends to learn from, so it learns fast."""

BUILTIN: tuple[PolicySpec, ...] = (
    PolicySpec("random", "random", description="Uniform over the candidates (the v0)."),
    PolicySpec(
        "vw-epsilon",
        "vw",
        EPSILON_GREEDY_ARGS,
        "Epsilon-greedy (20%) over an MTR reward model with all quadratic interactions.",
    ),
    PolicySpec(
        "vw-squarecb",
        "vw",
        "--cb_explore_adf --squarecb --cb_type mtr -q ::",
        "SquareCB (Foster & Rakhlin 2020) inverse-gap weighting with VW's defaults, under the "
        "surface's uniform floor.",
    ),
    PolicySpec(
        "vw-squarecb-tuned",
        "vw",
        TUNED_SQUARECB_ARGS,
        "SquareCB turning greedy ten times sooner (gamma scale 100), learning rate 2, "
        "importance weights of the reward model clipped at 10, under the surface's uniform "
        "floor (2% unless configured): the default, tuned on the simulation suite.",
    ),
    PolicySpec(
        TIMING_POLICY,
        "vw",
        "--cb_explore_adf --squarecb --gamma_scale 1000 -l 1 --cb_type mtr -q w:",
        "SquareCB for the timing surface: the action crossed with every context namespace "
        "only (-q w:), a greedier gap weighting (gamma scale 1000) and a faster learning rate: "
        "the timing simulation's choice (ADR 0014).",
    ),
    PolicySpec(
        "vw-softmax",
        "vw",
        "--cb_explore_adf --softmax --lambda 10 --cb_type mtr -q ::",
        "Softmax exploration over predicted rewards.",
    ),
    PolicySpec(
        "most-urgent-todo",
        "rule",
        "most-urgent-todo",
        "Rule: the most urgent todo (overdue, then priority), with a 5% uniform floor.",
    ),
    PolicySpec(
        rule.RANDOM_TIME,
        "rule",
        rule.RANDOM_TIME,
        "Rule: random-time delivery, the timing surface's baseline arm: at each decision point "
        "send with probability pushes left / points left of the day (uniform elsewhere).",
    ),
)

PolicyLoader = Callable[[str], StoredSpec | None]
"""Looks a policy up by id where registrations persist (another process may have added it)."""

HistoryLoader = Callable[[str], Sequence[StoredSpec]]
"""Every persisted version of a name, oldest first."""


def offending_option(args: str, message: str) -> str:
    """The VW option a refusal message is about, e.g. `--foo` in "unrecognised option '--foo'".

    Falls back to `args` when VW's message names no option.
    """
    named = re.search(r"option '?(--?[A-Za-z_][\w-]*)", message)
    if named:
        return named.group(1)
    quoted = re.search(r"'(--?[A-Za-z_][\w-]*)'", message)
    if quoted:
        return quoted.group(1)
    tokens = args.split()
    bad_value = re.search(r"(?:convert|value) '?([^'\s]+)'? to", message)
    if bad_value and bad_value.group(1) in tokens:
        i = tokens.index(bad_value.group(1))
        if i > 0 and tokens[i - 1].startswith("-"):
            return tokens[i - 1]
    if "quadratic" in message and "-q" in tokens:
        return "-q"
    if "cubic" in message and "--cubic" in tokens:
        return "--cubic"
    return "args"


def validate(spec: PolicySpec, field: str = "args") -> None:
    """Refuse a spec that could not serve: VW arguments (gated when the spec was made) are built
    into a workspace and probed, so combinations VW itself refuses are caught too.

    `field` is the name the caller gave the spec's arguments (Personalizer calls them
    `arguments`); the error names it.

    Raises
    ------
    PolicySpecError
        With `target` the offending VW option (e.g. `--epsilon`) or `field`.
    """
    if spec.kind == "rule" and spec.args not in rule.RULES:
        raise PolicySpecError(
            f"`{field}` of a rule policy must name a rule, one of {sorted(rule.RULES)} "
            f"(got {spec.args!r})",
            target=field,
        )
    if spec.kind != "vw":
        return
    try:
        model = Model(spec.args)
    except ModelError as exc:
        option = exc.target or offending_option(spec.args, str(exc))
        option = field if option == "args" else option
        what = "the arguments" if option == field else option
        raise PolicySpecError(
            f"`{field}`: VW refused {what}: {exc.__cause__ or exc}", target=option
        ) from exc
    try:
        model.probe()  # a spec must not only build but also predict
    except ModelError as exc:
        raise PolicySpecError(
            f"`{field}`: VW cannot predict with {spec.args!r}: {exc}", target=field
        ) from exc
    finally:
        model.close()


KEYS_KEPT = 4096
"""Model keys whose spec `Registry.args_for` remembers; all are forgotten at once when full."""


class Registry:
    """Policy spec versions by id; built-ins plus any registered at run time."""

    def __init__(
        self,
        specs: Iterable[PolicySpec] = BUILTIN,
        *,
        loader: PolicyLoader | None = None,
        history: HistoryLoader | None = None,
    ) -> None:
        self._specs: dict[str, PolicySpec] = {}
        self._refused: dict[str, RefusedSpec] = {}
        self._by_key: dict[str, PolicySpec] = {}  # model key -> its policy's spec (`args_for`)
        self._loader = loader
        self._history = history
        for spec in specs:
            self.add(spec)

    def add(self, spec: StoredSpec) -> None:
        if isinstance(spec, RefusedSpec):
            self._refused[spec.id] = spec
            return
        if spec.id in self._specs and self._specs[spec.id] != spec:
            raise PolicySpecError(f"`name` {spec.id!r} is already registered with another spec")
        self._specs[spec.id] = spec

    def find(self, policy_id: str) -> PolicySpec | None:
        """The version `policy_id` names exactly (a bare name is version 1); None when unknown
        or refused."""
        try:
            policy_id = canonical_id(policy_id)
        except PolicySpecError:
            return None
        spec = self._specs.get(policy_id)
        if spec is None and policy_id not in self._refused and self._loader is not None:
            loaded = self._loader(policy_id)
            if loaded is not None:
                self.add(loaded)
                spec = self._specs.get(policy_id)
        return spec

    def get(self, policy_id: str) -> PolicySpec:
        spec = self.find(policy_id)
        if spec is not None:
            return spec
        refused = self.refusal(policy_id)
        if refused is not None:
            raise refused
        known = ", ".join(sorted(self._specs))
        raise PolicySpecError(f"unknown policy {policy_id!r} (known: {known})", target="policy")

    def refusal(self, policy_id: str) -> PolicySpecError | None:
        """Why the stored version `policy_id` names is not served, or None if it is not refused."""
        try:
            refused = self._refused.get(canonical_id(policy_id))
        except PolicySpecError:
            return None
        if refused is None:
            return None
        return PolicySpecError(
            f"policy {refused.id!r} is not served: the allow-list refuses its stored spec: "
            f"{refused.reason}",
            target="policy",
        )

    def refused(self) -> list[RefusedSpec]:
        """Stored versions that are not served, by id."""
        return sorted(self._refused.values(), key=lambda spec: (spec.name, spec.version))

    def versions(self, name: str) -> list[PolicySpec]:
        """Every served version of `name`, oldest first (empty when unknown)."""
        if self._history is not None:
            for spec in self._history(name):
                self.add(spec)
        return sorted(
            (spec for spec in self._specs.values() if spec.name == name),
            key=lambda spec: spec.version,
        )

    def next_version(self, name: str) -> int:
        """The version a new registration of `name` gets: after every stored one, refused ones
        included."""
        served = [spec.version for spec in self.versions(name)]
        refused = [spec.version for spec in self._refused.values() if spec.name == name]
        return max(served + refused, default=0) + 1

    def latest(self, name: str) -> PolicySpec | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def pin(self, reference: str) -> str:
        """The id `reference` stands for now: a bare name is its latest version.

        Unknown references come back unchanged, for the caller to refuse by name.
        """
        try:
            name, _ = parse_id(reference)
        except PolicySpecError:
            return reference
        if reference != name:
            return canonical_id(reference)
        latest = self.latest(name)
        return latest.id if latest is not None else reference

    def __iter__(self) -> Iterator[PolicySpec]:
        """Every known version."""
        return iter(self._specs.values())

    def args_for(self, key: str) -> str | None:
        """VW arguments for a model key, or None when its policy learns no model.

        Every decision asks it of its serving policy. A policy id names one spec forever
        (`add` refuses another spec under a registered id), so the spec a key found is
        remembered; a key that found none is looked up again, as its policy may be stored
        later.
        """
        spec = self._by_key.get(key)
        if spec is None:
            spec = self.find(model_keys.policy_of(key))
            if spec is None:
                return None
            if len(self._by_key) >= KEYS_KEPT:
                self._by_key.clear()
            self._by_key[key] = spec
        return spec.args if spec.kind == "vw" else None

    def build(
        self,
        name: str,
        surface: str,
        hub: ModelHub,
        *,
        experiment: str | None = None,
        arm: str | None = None,
    ) -> Policy:
        spec = self.get(name)
        key = model_keys.build(surface, spec.id, experiment, arm)
        if spec.kind == "random":
            return random.Policy(spec.id, key)
        if spec.kind == "rule":
            return rule.Policy(spec.id, key, spec.args)
        return vw.Policy(spec.id, key, hub)
