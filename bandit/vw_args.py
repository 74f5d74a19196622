"""The one gate between text and VW's command line: an allow-list of learning options.

Every VW argument string oO builds a workspace from passes through `parse` first: policy specs,
the Personalizer policy, evaluation targets, search candidates, feature importance, and the
options a model file's header would add when it is loaded (`bandit.vw_header`). Only the options
in `bandit.vw_options.OPTIONS` pass, each with a typed, bounded value; anything else (an option
that names a file, a port or a host, a positional that VW would read as data, an unknown
spelling) is refused with a `VwArgsError` naming it. Why an allow-list and not a blocklist:
docs/adr/0009-vw-arguments-from-an-allow-list.md.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from bandit.errors import DomainError
from bandit.vw_options import (
    BY_NAME,
    MAX_WEIGHT_BITS,
    WHY,
    Flag,
    Option,
)

ADR = "docs/adr/0009-vw-arguments-from-an-allow-list.md"

MAX_TEXT = 4096
"""Longest argument text read (a model header's options string included)."""
MAX_INTERACTIONS = 64
"""Namespace combinations (`-q`, `--cubic`, `--interactions` values) one workspace may ask for."""
DEFAULT_BITS = 18
"""VW's default `--bit_precision`."""


class VwArgsError(DomainError, ValueError):
    """VW arguments the gate refuses; `target` is the option as it was spelled (None when the
    fault is not one option's, e.g. a positional or unbalanced quotes)."""


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
        option = BY_NAME.get(name)
        return next((s for s in self.settings if s.option is option), None)

    def value(self, name: str) -> str | None:
        setting = self.find(name)
        return setting.values[0] if setting is not None and setting.values else None

    def number(self, name: str) -> float | None:
        value = self.value(name)
        return None if value is None else float(value)

    def without(self, name: str) -> VwArgs:
        option = BY_NAME[name]
        return VwArgs(tuple(s for s in self.settings if s.option is not option))

    def with_value(self, name: str, value: str, *, after: str | None = None) -> VwArgs:
        """These arguments with `name` set to `value` (read and bounded like any other): in
        place if present, else after the option `after` (or at the end)."""
        option = BY_NAME[name]
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
    why = WHY.get(spelled)
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
    option = BY_NAME.get(spelled)
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
