"""Property: token soups built from VW's own option list pass the gate only when every token is
an allowed option or a value of one; allowed soups always pass, and VW agrees with the result.

VW's option list is `tests/bandit/data/vw_options.json` (read from the installed VW's `--help`,
kept in step by `test_vw_args.py`). Seeded: the examples are the same on every run.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bandit.model import ModelError, workspace
from bandit.vw_args import VwArgsError, gate, parse, split_command_line
from bandit.vw_options import OPTIONS, Choice, Flag, Namespaces, Number, Option
from tests.bandit import vw_help

SEEDED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow],
)

VW_OPTIONS = vw_help.load()
ALLOWED = {name for option in OPTIONS for name in option.names}
EVERY_NAME = sorted(
    {o["long"] for o in VW_OPTIONS if o["long"]} | {o["short"] for o in VW_OPTIONS if o["short"]}
)
REFUSED = [name for name in EVERY_NAME if name not in ALLOWED]
LONG = [name for name in EVERY_NAME if name and name.startswith("--")]
SHORT = [name for name in EVERY_NAME if name and not name.startswith("--")]
VALUES = [
    *("0", "0.1", "1", "3", "18", "32", "33", "-1", "1e9", "nan", "inf", "-inf", ".5"),
    *("ab", "::", "abc", "a", "mtr", "ips", "multiline", "all", "squared", "x y"),
    *("/tmp/oo-soup", "/etc/passwd", "127.0.0.1:9", "model.vw", "26542", "'q'", "a\\b", "--"),
]
_NUMBER = re.compile(
    r"^\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)$", re.IGNORECASE
)
_VALUE = re.compile(r"^[A-Za-z0-9_:.+-]+$")


def _value(option_value: Any) -> st.SearchStrategy[str]:
    match option_value:
        case Number(low=low, high=high, integer=True):
            return st.integers(int(low), int(min(high, 18 if high == 24 else high))).map(str)
        case Number(low=low, high=high, low_open=low_open):
            floats = st.floats(low, high, exclude_min=low_open, width=32, allow_subnormal=False)
            return floats.map(lambda x: f"{x:.6g}")
        case Choice(values=values):
            return st.sampled_from(values)
        case Namespaces(low=low, high=high, wildcard=wildcard):
            letters = "ab_:" if wildcard else "abz_9"
            return st.text(letters, min_size=low, max_size=high)
    raise AssertionError(option_value)


def _spelled(option: Option, value: str, form: int) -> list[str]:
    """`option` with `value` as VW reads it: separate, `--name=value`, or `-xvalue`."""
    name = option.names[form % len(option.names)]
    if isinstance(option.value, Flag):
        return [name]
    if form == 2:
        return [f"{name}={value}"] if name.startswith("--") else [f"{name}{value}"]
    return [name, value]


any_piece = st.one_of(
    st.sampled_from(EVERY_NAME).map(lambda name: [name]),
    st.tuples(st.sampled_from(LONG), st.sampled_from(VALUES)).map(lambda t: ["=".join(t)]),
    st.tuples(st.sampled_from(SHORT), st.sampled_from(VALUES)).map(lambda t: ["".join(t)]),
    st.sampled_from(VALUES).map(lambda value: [value]),
)
"""Any of VW's option names, with a value of the pool or none; or a stray value."""
allowed_piece = st.sampled_from(OPTIONS).flatmap(
    lambda option: st.builds(
        _spelled,
        st.just(option),
        st.one_of(st.sampled_from(VALUES), _value(option.value))
        if not isinstance(option.value, Flag)
        else st.just(""),
        st.integers(0, 2),
    )
)
"""An allowed option with a value of its type or of the pool."""
soup = st.one_of(
    st.lists(st.tuples(st.one_of(any_piece, allowed_piece), st.booleans()), min_size=1, max_size=8),
    st.lists(st.tuples(allowed_piece, st.booleans()), min_size=1, max_size=8),
)


def _render(tokens: list[str], quoted: list[bool]) -> str:
    """Text VW splits back into `tokens`: specials escaped, or the token quoted."""
    parts = []
    for text, quote in zip(tokens, quoted, strict=True):
        if quote and "'" not in text and "\\" not in text:
            parts.append(f"'{text}'")
        else:
            parts.append(re.sub(r"([ '\"\\])", r"\\\1", text))
    return " ".join(parts)


def _option_like(text: str) -> bool:
    """VW's own rule (options_cli.cc): `--x`, or `-x` that is not a number."""
    if text.startswith("--"):
        return len(text) > 2
    return text.startswith("-") and len(text) > 1 and not _NUMBER.match(text)


def _names(text: str) -> str:
    return text.partition("=")[0] if text.startswith("--") else text[:2]


@SEEDED
@given(soup)
def test_soups_pass_only_when_every_token_is_allowed(soup: list[tuple[list[str], bool]]) -> None:
    tokens = [text for texts, _ in soup for text in texts]
    text = _render(tokens, [quote for texts, quote in soup for _ in texts])
    assert split_command_line(text) == tokens
    try:
        args = parse(text)
    except VwArgsError:
        event("refused")
        return
    event("allowed")
    for part in tokens:
        if _option_like(part):
            assert _names(part) in ALLOWED, (text, part)
        else:
            assert _VALUE.match(part), (text, part)  # no path, host, quote or space got through
        assert not any(part == name or part.startswith(f"{name}=") for name in REFUSED)
    canonical = str(args)
    assert gate(canonical) == canonical
    assert all(_VALUE.match(part) for part in canonical.split(" "))


@st.composite
def allowed(draw: st.DrawFn) -> list[str]:
    chosen = draw(st.lists(st.sampled_from(OPTIONS), max_size=8, unique_by=lambda o: o.long))
    tokens = ["--cb_explore_adf"]
    for option in chosen:
        name = draw(st.sampled_from(option.names))
        if isinstance(option.value, Flag):
            tokens.append(name)
        elif draw(st.booleans()) and name.startswith("--"):
            tokens.append(f"{name}={draw(_value(option.value))}")
        else:
            tokens += [name, draw(_value(option.value))]
    return tokens


@SEEDED
@given(allowed())
def test_allowed_soups_pass_and_come_back_canonical(tokens: list[str]) -> None:
    canonical = gate(" ".join(tokens))
    assert gate(canonical) == canonical
    assert set(canonical.split(" ")) >= {"--cb_explore_adf"}


@settings(SEEDED, max_examples=60)
@given(allowed())
def test_vw_reads_canonical_arguments_as_the_gate_does(tokens: list[str]) -> None:
    """Where VW builds the workspace at all, its own account of the options passes the gate."""
    canonical = gate(" ".join(tokens))  # the gate passes allowed soups (test above)
    try:
        vw = workspace(canonical)
    except ModelError:
        event("VW refused the combination")
        return
    try:
        supplied = vw.get_arguments().split()
    finally:
        vw.finish()
    parse(" ".join(t for t in supplied if t not in {"--no_stdin", "--no_predict"}))
