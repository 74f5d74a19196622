"""The DSJSON importer under hostile input.

Whatever a line holds — random bytes, any JSON value, a valid line with one part replaced,
nesting past the recursion limit, integers of thousands of digits, a line of many megabytes —
reading it either yields an event or raises `DsjsonError` whose message starts with the line
number and names the field; nothing else escapes, and a huge line is never held whole.
"""

from __future__ import annotations

import io
import json
import math
import random
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.cli import app as cli
from rewards.logs.dsjson_import import (
    DsjsonError,
    ImportedEvent,
    bounded_lines,
    line_content,
    read_dsjson,
)

FIELDS = {
    "",
    "c",
    "c._multi",
    "a",
    "p",
    "_label_Action",
    "_labelIndex",
    "_label_probability",
    "_label_cost",
    "_skipLearn",
    "EventId",
    "Timestamp",
}
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
hostile_numbers = st.sampled_from(
    [
        10**400,
        -(10**400),
        float("nan"),
        float("inf"),
        -0.0,
        1e-320,
        2**63,
        -1,
        0,
        True,
        "0.5",
        None,
    ]
)


def valid_record(rng: random.Random, n_actions: int = 3) -> dict[str, Any]:
    weights = [rng.random() + 0.01 for _ in range(n_actions)]
    pmf = [w / sum(weights) for w in weights]
    order = list(range(1, n_actions + 1))
    rng.shuffle(order)
    return {
        "_label_cost": -rng.choice([0.0, 1.0, 0.25]),
        "_label_probability": pmf[order[0] - 1],
        "_label_Action": order[0],
        "_labelIndex": order[0] - 1,
        "a": order,
        "p": [pmf[i - 1] for i in order],
        "c": {
            "user": {"tier": rng.choice(["gold", "free"]), "age": rng.randint(18, 90)},
            "_multi": [{"_tag": f"tip-{i}", "tip": {"len": i}} for i in range(n_actions)],
        },
        "EventId": f"e{rng.getrandbits(32):x}",
        "Timestamp": "2026-11-25T09:00:00.000000Z",
    }


def check_line(text: str | bytes, number: int = 7) -> ImportedEvent | DsjsonError:
    """Read `text` as line `number` of a file; anything but an event or a DsjsonError fails."""
    lines: list[str | bytes] = ["\n"] * (number - 1) + [text]
    refused: DsjsonError | None = None
    try:
        events = list(read_dsjson(lines, strict=True))
    except DsjsonError as error:
        refused = error
    if refused is not None:
        assert refused.line == number
        assert str(refused).startswith(f"line {number}: ")
        assert refused.field in FIELDS, refused.field
        if refused.field:
            assert f"`{refused.field}" in str(refused), str(refused)
        assert len(str(refused)) < 300, "messages stay short whatever the line holds"
        return refused
    if not text.strip():
        assert events == []
        return DsjsonError(number, "", "blank")
    (event,) = events
    assert event.line == number
    assert math.isclose(sum(event.pmf), 1.0, abs_tol=1e-3)
    assert 0 <= event.chosen_index < len(event.actions)
    assert math.isfinite(event.reward)
    return event


def test_a_valid_line_reads() -> None:
    event = check_line(json.dumps(valid_record(random.Random(1))))
    assert isinstance(event, ImportedEvent)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    check_line(data)


@FUZZ
@given(json_values)
def test_any_json_value(value: Any) -> None:
    check_line(json.dumps(value))


PATHS = [
    ("_label_cost",),
    ("_label_probability",),
    ("_label_Action",),
    ("_labelIndex",),
    ("_skipLearn",),
    ("a",),
    ("a", 0),
    ("p",),
    ("p", 0),
    ("p", 1),
    ("c",),
    ("c", "_multi"),
    ("c", "_multi", 0),
    ("c", "_multi", 1, "_tag"),
    ("c", "user"),
    ("EventId",),
    ("Timestamp",),
]


def mutate(record: dict[str, Any], path: tuple[str | int, ...], value: Any, delete: bool) -> None:
    parent: Any = record
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value


@FUZZ
@given(
    seed=st.integers(0, 2**32 - 1),
    path=st.sampled_from(PATHS),
    value=json_values | hostile_numbers,
    delete=st.booleans(),
)
def test_valid_lines_with_one_part_replaced(
    seed: int, path: tuple[str | int, ...], value: Any, delete: bool
) -> None:
    record = valid_record(random.Random(seed))
    mutate(record, path, value, delete)
    check_line(json.dumps(record))


@pytest.mark.parametrize("seed", range(40))
def test_seeded_structural_mutations(seed: int) -> None:
    """Several mutations at once, of kinds a truncated or hand-edited log really has."""
    rng = random.Random(seed)
    record = valid_record(rng, n_actions=rng.randint(1, 6))
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["drop", "swap", "dup", "type", "truncate"])
        key = rng.choice(sorted(record))
        if kind == "drop":
            record.pop(key)
        elif kind == "swap" and len(record) > 1:
            other = rng.choice(sorted(record))
            record[key], record[other] = record[other], record[key]
        elif kind == "dup" and isinstance(record[key], list):
            record[key] = record[key] + record[key][:1]
        elif kind == "type":
            record[key] = rng.choice([[], {}, "x", 3, None, [record[key]]])
    text = json.dumps(record)
    if rng.random() < 0.3:
        text = text[: rng.randint(0, len(text))]
    check_line(text)


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "", "nested too deeply"),
        ('{"c": ' * 50_000 + "{}" + "}" * 50_000, "", "nested too deeply"),
        ("9" * 5000, "", "not valid JSON"),
        (b'{"EventId": "\xff\xfe"}', "", "not UTF-8"),
        ("NaN", "", "must be a JSON object"),
    ],
)
def test_pathological_json(text: str | bytes, field: str, message: str) -> None:
    error = check_line(text)
    assert isinstance(error, DsjsonError)
    assert error.field == field
    assert message in str(error)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("_label_cost",), 10**400, "_label_cost"),
        (("_label_cost",), float("inf"), "_label_cost"),
        (("_label_probability",), -(10**300), "_label_probability"),
        (("p", 0), 10**400, "p"),
        (("p", 1), float("nan"), "p"),
        (("_label_Action",), 10**400, "_label_Action"),
        (("Timestamp",), "0001-01-01T00:00:00+05:00", "Timestamp"),
        (("Timestamp",), 10**20, "Timestamp"),
        (("EventId",), [[[[["deep"]]]]], "EventId"),
        (("c", "_multi", 0, "_tag"), {"id": 1}, "c._multi"),
        (("a", 0), 10**400, "a"),
    ],
)
def test_huge_and_out_of_range_values_name_their_field(
    path: tuple[str | int, ...], value: Any, field: str
) -> None:
    record = valid_record(random.Random(3))
    mutate(record, path, value, delete=False)
    error = check_line(json.dumps(record))
    assert isinstance(error, DsjsonError)
    assert error.field == field


def test_a_huge_line_is_refused_without_being_held(tmp_path: Path) -> None:
    path = tmp_path / "huge.dsjson"
    good = json.dumps(valid_record(random.Random(5))).encode() + b"\n"
    with open(path, "wb") as handle:
        handle.write(good)
        handle.write(b'{"EventId": "' + b"x" * (32 * 1024 * 1024) + b'"}\n')
        handle.write(good)
    errors: list[DsjsonError] = []
    tracemalloc.start()
    try:
        with open(path, "rb") as handle:
            events = list(
                read_dsjson(
                    bounded_lines(handle, 64 * 1024),
                    strict=False,
                    on_error=errors.append,
                    max_line_bytes=64 * 1024,
                )
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.line for e in events] == [1, 3]
    assert [(e.line, str(e)) for e in errors] == [(2, "line 2: the line exceeds 65536 bytes")]
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes: the 32 MiB line was held"


def test_bounded_lines_keeps_ordinary_lines_whole() -> None:
    data = b"a\n" + b"b" * 10 + b"\n\nlast"
    assert list(bounded_lines(io.BytesIO(data), 10)) == [b"a\n", b"b" * 10 + b"\n", b"\n", b"last"]


def test_a_line_at_the_limit_reads_whatever_its_terminator() -> None:
    data = b"b" * 10 + b"\r\n" + b"c" * 10 + b"\n" + b"d" * 11 + b"\r\n" + b"e" * 10
    lines = list(bounded_lines(io.BytesIO(data), 10))
    # The third line is cut after 12 bytes, enough to refuse it.
    assert [line_content(line) for line in lines] == [
        b"b" * 10,
        b"c" * 10,
        b"d" * 11 + b"\r",
        b"e" * 10,
    ]
    errors: list[DsjsonError] = []
    list(read_dsjson(lines, strict=False, on_error=errors.append, max_line_bytes=10))
    assert [(e.line, str(e).split(": ")[1]) for e in errors] == [
        (1, "not valid JSON (Expecting value)"),
        (2, "not valid JSON (Expecting value)"),
        (3, "the line exceeds 10 bytes"),
        (4, "not valid JSON (Expecting value)"),
    ]


def test_line_content_strips_one_terminator_only() -> None:
    assert [line_content(x) for x in (b"a\r\n", b"a\n", b"a\r", b"a\n\n", b"", b"\n")] == [
        b"a",
        b"a",
        b"a\r",
        b"a\n",
        b"",
        b"",
    ]
    assert [line_content(x) for x in ("a\r\n", "a\n", "a")] == ["a", "a", "a"]


@FUZZ
@given(st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ").removesuffix(b"\r")))
@example(b'"')  # "Unterminated string" alone, "Invalid control character" with its newline
@example(b'{"EventId": "a\rb')
def test_a_line_reads_the_same_with_or_without_its_terminator(line: bytes) -> None:
    """(A line ending in `\r` followed by `\n` is a `\r\n`-terminated line: not drawn.)"""

    def outcome(text: bytes) -> list[str]:
        errors: list[DsjsonError] = []
        events = read_dsjson([text], strict=False, on_error=errors.append)
        return [repr(e) for e in events] + [str(e) for e in errors]

    assert outcome(line) == outcome(line + b"\n") == outcome(line + b"\r\n")


@settings(max_examples=40, deadline=None, database=None)
@given(st.lists(st.binary(max_size=80) | json_values.map(json.dumps), max_size=6))
@example([b'"', b""])  # the CLI saw `"\n` (a control character), the reader `"` (unterminated)
def test_cli_import_reports_every_malformed_line(lines: list[bytes | str]) -> None:
    """`oo logs import` exits 0 or 1 with a summary, never a traceback."""
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    raw = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in raw]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.dsjson"
        path.write_bytes(b"\n".join(raw))
        result = CliRunner().invoke(cli, ["logs", "import", str(path), "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1), result.output
    expected: list[DsjsonError] = []
    events = list(read_dsjson(raw, strict=False, on_error=expected.append))
    summary = json.loads(result.stdout)
    assert (summary["events"], summary["malformed"]) == (len(events), len(expected))
    assert result.exit_code == (1 if expected else 0)
    assert summary["errors"] == [str(e) for e in expected]
