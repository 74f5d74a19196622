"""The one gate between text and VW's command line: an allow-list of learning options.

Every VW argument string oO builds a workspace from passes through `parse` first: policy specs,
the Personalizer policy, evaluation targets, search candidates, feature importance, and the
options a model file's header would add when it is loaded (`bandit.vw_header`). Only the
options in `OPTIONS` pass, each with a typed, bounded value; anything else (an option that
names a file, a port or a host, a positional that VW would read as data, an unknown spelling)
is refused with a `VwArgsError` naming it. Why an allow-list and not a blocklist:
docs/adr/0008-vw-arguments-from-an-allow-list.md.

Text is split and read the way VW reads its own command line (`VW::split_command_line` and
`options_cli`): tokens split on spaces, quotes group, a backslash escapes the next character;
`--name value`, `--name=value`, `-xvalue`; a list option takes its first value whatever it looks
like and then every value up to the next option-like token. What passes comes back canonical
(`VwArgs`): one spelling per option, values re-written from their parsed form, so the text
VW is given holds nothing the gate did not read.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

ADR = "docs/adr/0008-vw-arguments-from-an-allow-list.md"

MAX_TEXT = 4096
"""Longest argument text read (a model header's options string included)."""
MAX_WEIGHT_BITS = 24
"""At most 2^24 weights per workspace, all policies of an ensemble together."""
MAX_INTERACTIONS = 64
"""Namespace combinations (`-q`, `--cubic`, `--interactions` values) one workspace may ask for."""
DEFAULT_BITS = 18
"""VW's default `--bit_precision`."""


class VwArgsError(ValueError):
    """VW arguments the gate refuses; `target` is the option as it was spelled (None when the
    fault is not one option's, e.g. a positional or unbalanced quotes)."""

    def __init__(self, message: str, *, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target


# --- the value types -------------------------------------------------------------------------

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
    _option("elim", FLAG, "SquareCB: explore only over plausible actions (RegCB)"),
    _option("regcb", FLAG, "RegCB-elim exploration"),
    _option("regcbopt", FLAG, "RegCB optimistic exploration"),
    _option("mellowness", Number(0.0, 1_000_000.0), "RegCB / SquareCB elim: mellowness c_0"),
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

_BY_NAME: dict[str, Option] = {name: option for option in OPTIONS for name in option.names}

# Not a blocklist: what is not in OPTIONS is refused whatever its name. These only say *why*
# for the options people reach for most, so the message is more than "unrecognised".
_FILES = "reads or writes files"
_SOCKETS = "opens network sockets or runs a daemon"
_FORMAT = "changes how examples are parsed"
_WHY: dict[str, str] = {
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
}


# --- reading the text ------------------------------------------------------------------------


def split_command_line(text: str) -> list[str]:
    """Tokens as `VW::split_command_line` makes them: split on spaces (only), quotes `'`/`"`
    group, a backslash takes the next character literally (`\\n`, `\\t`: newline, tab)."""
    tokens: list[str] = []
    current: list[str] = []
    quote: str | None = None
    chars = iter(text)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise VwArgsError("the arguments end in a lone backslash")
            current.append({"n": "\n", "t": "\t"}.get(escaped, escaped))
        elif char == " " and quote is None:
            if current:
                tokens.append("".join(current))
            current = []
        elif char in "'\"":
            if quote is None:
                quote = char
            elif quote == char:
                quote = None
            else:
                current.append(char)
        else:
            current.append(char)
    if quote is not None:
        raise VwArgsError("the arguments have unbalanced quotes")
    if current:
        tokens.append("".join(current))
    return tokens


# What C's strtof reads whole: VW does not take such a token for an option ("-1", "-inf").
_STRTOF = re.compile(
    r"^\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|"
    r"\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?|inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?)$",
    re.IGNORECASE | re.ASCII,
)


def _option_like(token: str) -> bool:
    if token == "--":
        return True
    if token.startswith("--"):
        return len(token) > 2
    return token.startswith("-") and len(token) > 1 and not _STRTOF.match(token)


@dataclass(frozen=True, slots=True)
class Setting:
    """An allowed option with its canonical values (none for a flag)."""

    option: Option
    values: tuple[str, ...] = ()

    def tokens(self) -> Iterator[str]:
        if isinstance(self.option.value, Flag):
            yield self.option.spelling
        for value in self.values:
            yield self.option.spelling
            yield value


@dataclass(frozen=True, slots=True)
class VwArgs:
    """Gated VW arguments, options in the order first given; `str()` is the canonical text."""

    settings: tuple[Setting, ...] = field(default=())

    @property
    def tokens(self) -> list[str]:
        return [token for setting in self.settings for token in setting.tokens()]

    def __str__(self) -> str:
        return " ".join(self.tokens)

    def __contains__(self, name: object) -> bool:
        return self.find(str(name)) is not None

    def find(self, name: str) -> Setting | None:
        """The setting of the option `name` names (any of its spellings)."""
        option = _BY_NAME.get(name)
        return next((s for s in self.settings if s.option is option), None)

    def value(self, name: str) -> str | None:
        setting = self.find(name)
        return setting.values[0] if setting is not None and setting.values else None

    def number(self, name: str) -> float | None:
        value = self.value(name)
        return None if value is None else float(value)

    def without(self, name: str) -> VwArgs:
        option = _BY_NAME[name]
        return VwArgs(tuple(s for s in self.settings if s.option is not option))

    def with_value(self, name: str, value: str, *, after: str | None = None) -> VwArgs:
        """These arguments with `name` set to `value` (read and bounded like any other): in
        place if present, else after the option `after` (or at the end)."""
        option = _BY_NAME[name]
        setting = Setting(option, (_read(option, name, value),))
        settings = list(self.settings)
        for i, existing in enumerate(settings):
            if existing.option is option:
                settings[i] = setting
                return VwArgs(tuple(settings))
        anchor = self.find(after) if after is not None else None
        at = settings.index(anchor) + 1 if anchor is not None else len(settings)
        settings.insert(at, setting)
        return VwArgs(tuple(settings))


def _read(option: Option, spelled: str, text: str) -> str:
    assert not isinstance(option.value, Flag)
    try:
        return option.value.read(text)
    except ValueError as exc:
        raise VwArgsError(f"{spelled} {exc}", target=spelled) from None


def _refused(spelled: str) -> VwArgsError:
    why = _WHY.get(spelled)
    if why is not None:
        return VwArgsError(
            f"{spelled} {why}; oO's VW arguments hold learning settings only ({ADR})",
            target=spelled,
        )
    return VwArgsError(
        f"unrecognised option {_shown(spelled)}: not among the VW options oO allows ({ADR})",
        target=spelled,
    )


def _shown(token: str) -> str:
    """`token` quoted, with control characters escaped (a tab is part of a VW token)."""
    return "'" + token.encode("unicode_escape").decode("ascii") + "'"


def _next_option(tokens: list[str], at: int) -> tuple[Option, str, list[str], int]:
    """The option at `tokens[at]`, as spelled, with its values; and where the next one starts."""
    token = tokens[at]
    if token == "--":
        raise VwArgsError(f"'--' ends VW's options; oO's VW arguments hold options only ({ADR})")
    if not _option_like(token):
        raise VwArgsError(
            f"{_shown(token)} is not an option: VW reads a positional argument as a data file; "
            f"oO's VW arguments hold options only ({ADR})"
        )
    values: list[str] = []
    if token.startswith("--"):
        spelled, equals, attached = token.partition("=")
        if equals:
            if not attached:
                raise VwArgsError(f"{spelled} needs a value after '='", target=spelled)
            values.append(attached)
    else:
        spelled = token[:2]
        if len(token) > 2:
            values.append(token[2:])
    option = _BY_NAME.get(spelled)
    if option is None:
        raise _refused(spelled)
    at += 1
    if isinstance(option.value, Flag):
        if values:
            raise VwArgsError(f"{spelled} is a switch and takes no value", target=spelled)
        return option, spelled, values, at
    if not values:
        # Like VW, the first value is the next token, whatever it looks like.
        if at >= len(tokens):
            raise VwArgsError(f"{spelled} needs a value: {option.value.describe()}", target=spelled)
        values.append(tokens[at])
        at += 1
    if option.listed:
        while at < len(tokens) and not _option_like(tokens[at]):
            values.append(tokens[at])
            at += 1
    return option, spelled, values, at


@lru_cache(maxsize=1024)
def parse(text: str) -> VwArgs:
    """Gate `text`: the canonical arguments if every token is an allowed option or its value.

    Pure, so cached: serving reads a policy's arguments on every decision.

    Raises
    ------
    VwArgsError
        Naming the first option (as spelled) or token that is not allowed, a value out of its
        type or bounds, a scalar given twice with different values, or a workspace too large.
    """
    if len(text) > MAX_TEXT:
        raise VwArgsError(f"the arguments are longer than {MAX_TEXT} characters")
    if "\x00" in text:
        raise VwArgsError("the arguments contain a NUL character")
    tokens = split_command_line(text)
    found: dict[Option, list[str]] = {}
    spelled_as: dict[Option, str] = {}
    at = 0
    while at < len(tokens):
        option, spelled, raw, at = _next_option(tokens, at)
        values = [_read(option, spelled, value) for value in raw]
        spelled_as.setdefault(option, spelled)
        seen = found.setdefault(option, [])
        for value in values:
            if value in seen:
                continue
            if seen and not option.listed:
                raise VwArgsError(
                    f"{spelled} is given twice with different values ({seen[0]}, {value})",
                    target=spelled,
                )
            seen.append(value)
    args = VwArgs(tuple(Setting(option, tuple(values)) for option, values in found.items()))
    _check_size(args, spelled_as)
    return args


def _check_size(args: VwArgs, spelled_as: dict[Option, str]) -> None:
    """Refuse workspaces whose interactions or weights (2^bits per policy) exceed the budget."""
    interactions = [s for s in args.settings if s.option.long in _INTERACTION_OPTIONS]
    count = sum(len(s.values) for s in interactions)
    if count > MAX_INTERACTIONS:
        spelled = spelled_as[interactions[0].option]
        raise VwArgsError(
            f"{spelled}: {count} interactions; oO allows at most {MAX_INTERACTIONS}",
            target=spelled,
        )
    bits = args.find("--bit_precision")
    if bits is None:
        return  # the default bits with the largest ensemble stay within the budget
    copies, ensemble = 1, "one policy"
    for setting in args.settings:
        copies_of = _COPIES.get(setting.option.long)
        if copies_of is not None and copies_of(int(setting.values[0])) > copies:
            copies = copies_of(int(setting.values[0]))
            ensemble = f"{setting.option.long} {setting.values[0]}"
    total = int(bits.values[0]) + math.ceil(math.log2(copies))
    if total > MAX_WEIGHT_BITS:
        raise VwArgsError(
            f"{spelled_as[bits.option]} {bits.values[0]} with {ensemble} asks for 2^{total} "
            f"weights; oO allows at most 2^{MAX_WEIGHT_BITS} (fewer bits or policies)",
            target=spelled_as[bits.option],
        )


_INTERACTION_OPTIONS = frozenset({"--quadratic", "--cubic", "--interactions"})
_COPIES = {"--bag": lambda n: n, "--cover": lambda n: n + 1, "--rnd": lambda n: n + 1}
"""Weight copies each ensemble option asks for (cover and rnd keep one more than asked)."""


def gate(text: str) -> str:
    """`text` as canonical gated arguments (see `parse`)."""
    return str(parse(text))
