"""The allow-list of VW options oO builds workspaces with: each option, its spellings, and the
type and bounds of its value (`bandit.vw_args` reads text against it). Why these and why an
allow-list: docs/adr/0009-vw-arguments-from-an-allow-list.md, whose table a test keeps equal to
`OPTIONS`.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass

MAX_WEIGHT_BITS = 24
"""At most 2^24 weights per workspace, all policies of an ensemble together."""

_DECIMAL = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$", re.ASCII)
_UNSIGNED = re.compile(r"^\+?\d{1,20}$", re.ASCII)
_NAMESPACE_CHARS = re.compile(r"^[A-Za-z0-9_]+$")
_INTERACTION_CHARS = re.compile(r"^[A-Za-z0-9_:]+$")


@dataclass(frozen=True, slots=True)
class Flag:
    """A switch: no value."""

    def describe(self) -> str:
        return "flag"


@dataclass(frozen=True, slots=True)
class Number:
    """A decimal number in [low, high] (`integer`: a whole number written without a point)."""

    low: float
    high: float
    integer: bool = False
    low_open: bool = False

    def read(self, text: str) -> str:
        pattern = _UNSIGNED if self.integer else _DECIMAL
        if not pattern.match(text):
            raise ValueError(f"needs {self.describe()} (got {text!r})")
        value = int(text) if self.integer else float(text)
        # VW keeps floats in single precision: bound what it will hold, not only what was written.
        held = value if isinstance(value, int) else _single(value)
        for number in (value, held):
            if (
                not math.isfinite(number)
                or number > self.high
                or number < self.low
                or (self.low_open and number == self.low)
            ):
                raise ValueError(f"needs {self.describe()} (got {text!r})")
        return str(value) if isinstance(value, int) else canonical_number(value)

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        opening = "(" if self.low_open else "["
        return f"{kind} in {opening}{canonical_number(self.low)}, {canonical_number(self.high)}]"


@dataclass(frozen=True, slots=True)
class Choice:
    """One of a few words."""

    values: tuple[str, ...]

    def read(self, text: str) -> str:
        if text not in self.values:
            raise ValueError(f"needs one of {', '.join(self.values)} (got {text!r})")
        return text

    def describe(self) -> str:
        return "one of " + ", ".join(self.values)


@dataclass(frozen=True, slots=True)
class Namespaces:
    """Namespace letters (first characters of namespace names): ASCII letters, digits, '_',
    and ':' (any namespace) where `wildcard`; each value `low` to `high` characters."""

    low: int
    high: int
    wildcard: bool = False

    def read(self, text: str) -> str:
        chars = _INTERACTION_CHARS if self.wildcard else _NAMESPACE_CHARS
        if not (self.low <= len(text) <= self.high and chars.match(text)):
            raise ValueError(f"needs {self.describe()} (got {text!r})")
        return text

    def describe(self) -> str:
        size = f"{self.low}" if self.low == self.high else f"{self.low}-{self.high}"
        extra = ", ':' for any namespace" if self.wildcard else ""
        return f"{size} namespace letters (ASCII letters, digits, '_'{extra})"


ValueType = Flag | Number | Choice | Namespaces


def _single(value: float) -> float:
    """`value` as a C float holds it (VW's float options)."""
    try:
        single: float = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.inf
    return single


def canonical_number(value: float) -> str:
    """The shortest text that reads back as `value`: `10`, `0.2`, `1e-05`."""
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


# --- the allow-list --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One allowed VW option. `spelling` is how canonical arguments write it; `names` every
    spelling VW accepts for it (`--long` and, where VW has one, `-s`)."""

    spelling: str
    value: ValueType
    names: tuple[str, ...]
    help: str
    listed: bool = False
    """A list option (`-q ab -q cd`): values accumulate instead of having to agree."""

    @property
    def long(self) -> str:
        return next(name for name in self.names if name.startswith("--"))


def _option(
    long: str,
    value: ValueType,
    help: str,
    *,
    short: str | None = None,
    spell_short: bool = False,
    listed: bool = False,
) -> Option:
    names = (f"--{long}",) if short is None else (f"--{long}", f"-{short}")
    spelling = f"-{short}" if spell_short and short is not None else f"--{long}"
    return Option(spelling, value, names, help, listed)


FLAG = Flag()
UNIT = Number(0.0, 1.0)
POLICIES = Number(1, 32, integer=True)
"""Ensemble sizes (bagging, cover, rnd): each policy is a copy of the weights."""

OPTIONS: tuple[Option, ...] = (
    # the reduction every oO policy is
    _option("cb_explore_adf", FLAG, "contextual bandit with action-dependent features"),
    # exploration
    _option("epsilon", UNIT, "epsilon-greedy exploration probability"),
    _option("first", Number(1, 1_000_000_000, integer=True), "tau-first: explore the first N"),
    _option("bag", POLICIES, "bagging: number of policies"),
    _option("greedify", FLAG, "bagging: always update the first policy"),
    _option("cover", POLICIES, "online cover: number of policies"),
    _option("psi", Number(0.0, 100.0), "online cover: disagreement parameter"),
    _option("nounif", FLAG, "online cover: no uniform exploration of zero-probability actions"),
    _option("first_only", FLAG, "explore only the first action of a tie"),
    _option("softmax", FLAG, "softmax exploration"),
    _option("lambda", Number(-1000.0, 1000.0), "softmax: inverse temperature"),
    _option("squarecb", FLAG, "SquareCB inverse-gap weighting"),
    _option("gamma_scale", Number(0.0, 1_000_000.0, low_open=True), "SquareCB: gamma scale"),
    _option("gamma_exponent", Number(0.0, 10.0), "SquareCB: exponent of the example count"),
    _option("regcb", FLAG, "RegCB-elim exploration"),
    _option("regcbopt", FLAG, "RegCB optimistic exploration"),
    _option("mellowness", Number(0.0, 1_000_000.0), "RegCB: mellowness c_0"),
    _option("cb_min_cost", Number(-1_000_000.0, 1_000_000.0), "lower bound on cost"),
    _option("cb_max_cost", Number(-1_000_000.0, 1_000_000.0), "upper bound on cost"),
    _option("synthcover", FLAG, "synthetic cover exploration"),
    _option("synthcoverpsi", Number(0.0, 100.0), "synthetic cover: exploration reward bonus"),
    _option("synthcoversize", Number(1, 100, integer=True), "synthetic cover: policies"),
    _option("rnd", POLICIES, "random network distillation exploration: number of networks"),
    _option("rnd_alpha", Number(0.0, 1_000_000.0), "rnd: confidence interval width"),
    _option("rnd_invlambda", Number(0.0, 1_000_000.0), "rnd: covariance regularization"),
    # the contextual-bandit estimator
    _option("cb_type", Choice(("ips", "dr", "mtr", "dm", "sm")), "contextual-bandit estimator"),
    _option("clip_p", UNIT, "clip propensities below this in importance weights"),
    # features
    _option(
        "quadratic",
        Namespaces(2, 2, wildcard=True),
        "pairs of namespaces",
        short="q",
        spell_short=True,
        listed=True,
    ),
    _option("cubic", Namespaces(3, 3, wildcard=True), "triples of namespaces", listed=True),
    _option(
        "interactions",
        Namespaces(2, 3, wildcard=True),
        "interactions of 2 or 3 namespaces",
        listed=True,
    ),
    _option("ignore", Namespaces(1, 62), "namespaces to ignore", listed=True),
    _option("ignore_linear", Namespaces(1, 62), "namespaces without linear terms", listed=True),
    _option("keep", Namespaces(1, 62), "namespaces to keep (all others ignored)", listed=True),
    _option("noconstant", FLAG, "no constant feature"),
    _option("hash", Choice(("strings", "all")), "how feature names are hashed"),
    _option(
        "bit_precision",
        Number(1, MAX_WEIGHT_BITS, integer=True),
        "bits of the weight table",
        short="b",
        spell_short=True,
    ),
    # the update rule
    _option(
        "learning_rate",
        Number(0.0, 100.0, low_open=True),
        "learning rate",
        short="l",
        spell_short=True,
    ),
    _option("power_t", Number(0.0, 10.0), "learning rate decay exponent"),
    _option("initial_t", Number(0.0, 1e9), "initial example count of the decay"),
    _option("decay_learning_rate", Number(0.0, 10.0), "learning rate decay between passes"),
    _option("l1", Number(0.0, 100.0), "L1 regularization"),
    _option("l2", Number(0.0, 100.0), "L2 regularization"),
    _option("adaptive", FLAG, "adaptive learning rates"),
    _option("normalized", FLAG, "normalized updates"),
    _option("invariant", FLAG, "importance-invariant updates"),
    _option("sgd", FLAG, "plain stochastic gradient descent"),
    _option("coin", FLAG, "coin-betting optimizer"),
    _option(
        "loss_function",
        Choice(("squared", "classic", "logistic", "hinge", "quantile", "poisson")),
        "loss of the reward regressors",
    ),
    _option("quantile_tau", Number(0.0, 1.0, low_open=True), "quantile loss: tau"),
    # state and output
    _option("random_seed", Number(0, 2**64 - 1, integer=True), "seed of VW's random numbers"),
    _option("save_resume", FLAG, "keep learning state in saved models (VW 9 always does)"),
    _option("quiet", FLAG, "no diagnostics"),
    # what VW itself writes into the header of every --cb_explore_adf model it saves
    _option("cb_adf", FLAG, "the learner under --cb_explore_adf (VW adds it)"),
    _option("csoaa_ldf", Choice(("multiline", "m")), "its reduction (VW adds it)"),
    _option("csoaa_rank", FLAG, "its ranking output (VW adds it)"),
)

BY_NAME: dict[str, Option] = {name: option for option in OPTIONS for name in option.names}

# Not a blocklist: what is not in OPTIONS is refused whatever its name. These only say *why*
# for the options people reach for most, so the message is more than "unrecognised".
_FILES = "reads or writes files"
_SOCKETS = "opens network sockets or runs a daemon"
_FORMAT = "changes how examples are parsed"
WHY: dict[str, str] = {
    **dict.fromkeys(
        [
            "-d",
            "--data",
            "-f",
            "--final_regressor",
            "-i",
            "--initial_regressor",
            "--readable_model",
            "--invert_hash",
            "-p",
            "--predictions",
            "-r",
            "--raw_predictions",
            "-c",
            "--cache",
            "--cache_file",
            "--audit_regressor",
            "--feature_mask",
            "--dictionary",
            "--dictionary_path",
            "--pid_file",
            "--port_file",
            "--input_feature_regularizer",
            "--output_feature_regularizer_binary",
            "--output_feature_regularizer_text",
            "--save_per_pass",
            "--log_output",
            "--driver_output",
            "--dump_json_weights_experimental",
            "--extra_metrics",
            "--epsilon_decay_audit",
        ],
        _FILES,
    ),
    **dict.fromkeys(
        [
            "--daemon",
            "--port",
            "--foreground",
            "--num_children",
            "--sendto",
            "--span_server",
            "--span_server_port",
            "--unique_id",
            "--total",
            "--node",
        ],
        _SOCKETS,
    ),
    **dict.fromkeys(["--json", "--dsjson", "--flatbuffer", "--csv"], _FORMAT),
    # Measured with VW 9.11 on the learning suite (docs/learning-suite.md): its pmf holds
    # negative probabilities on up to 14% of decisions, which no decision log can record.
    "--elim": "makes SquareCB return negative probabilities on some examples; use --squarecb "
    "alone, or --regcbopt with --cb_min_cost/--cb_max_cost",
}
