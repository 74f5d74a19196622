"""`oo evaluate --log` reads DSJSON straight into columns: the same figures as before, to the bit.

`data/dsjson_evaluation.json` holds the evaluation of `dsjson_eval_log.write` as the former
reader computed it (every line through `parse_record` and the featurizer, read twice).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rewards.logs.dsjson_import import DsjsonError
from rewards.logs.dsjson_scan import summary_fields
from rewards.ope.dsjson_log import summary
from rewards.ope.logged import Log, dsjson_events
from rewards.ope.reward_models import RewardModelName
from rewards.ope.runs import evaluate_log
from rewards.ope.targets import Baseline, Online, Uniform
from tests.rewards.dsjson_eval_log import write

PINNED = Path(__file__).parent / "data" / "dsjson_evaluation.json"


def _flat(value: Any, at: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flat(item, f"{at}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _flat(item, f"{at}[{i}]")
    else:
        yield at, value


def _figures(log: Log, model: RewardModelName) -> dict[str, Any]:
    result = evaluate_log(log, [Online(), Baseline(), Uniform()], reward_model_name=model)
    figures = dataclasses.asdict(result)
    figures.pop("seconds")
    return dict(_flat(json.loads(json.dumps(figures, default=str))))


@pytest.mark.parametrize("model", ["action-mean", "vw"])
def test_the_column_reader_keeps_every_figure(tmp_path: Path, model: RewardModelName) -> None:
    path = write(tmp_path / "log.dsjson")
    pinned = dict(_flat(json.loads(PINNED.read_text())[model]))
    for log in (
        Log.of_dsjson(path, batch=64),
        Log.of_events(lambda: dsjson_events(path), batch=64),  # the generic reader
    ):
        figures = _figures(log, model)
        assert figures.keys() == pinned.keys()
        for key, expected in pinned.items():
            got = figures[key]
            if isinstance(expected, float) and isinstance(got, float) and math.isfinite(expected):
                assert got == pytest.approx(expected, rel=0, abs=1e-12), key
            else:
                assert got == expected, key


def test_replayed_policies_read_the_same_examples(tmp_path: Path) -> None:
    path = write(tmp_path / "log.dsjson", 200)
    fast = [e for chunk in Log.of_dsjson(path, batch=32).batches() for e in chunk]
    assert fast == list(dsjson_events(path))


def test_the_summary_reads_what_the_parser_reads(tmp_path: Path) -> None:
    path = write(tmp_path / "log.dsjson")
    learnable = list(dsjson_events(path))
    told = summary(path)
    assert told.total == len(learnable)
    assert told.reward_min == min(e.reward for e in learnable)
    assert told.reward_max == max(e.reward for e in learnable)
    assert told.propensity_min == min(1.0, *(e.propensity for e in learnable))
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    assert 0 < sum(summary_fields(line) is not None for line in lines) < len(lines)


@pytest.mark.parametrize(
    "line",
    [
        # a feature spelled like the line's own key: left to the parser
        b'{"_label_cost":-1.0,"_label_probability":0.5,"_label_Action":1,"_labelIndex":0,'
        b'"a":[1,2],"p":[0.5,0.5],"c":{"_multi":[{"_label_cost":3},{}]},"EventId":"e"}',
        # a later duplicate wins in json.loads
        b'{"_label_cost":-1.0,"_label_probability":0.5,"_label_Action":1,"_labelIndex":0,'
        b'"a":[1,2],"p":[0.5,0.5],"c":{"_multi":[{},{}]},"EventId":"e","p":[0.25,0.75]}',
        # a key spelled with an escape
        b'{"_label_cost":-1.0,"_label_probability":0.5,"_label_Action":1,"_labelIndex":0,'
        b'"a":[1,2],"p":[0.5,0.5],"c":{"_multi":[{},{}]},"EventId":"e","\\u005fskipLearn":true}',
        b'{"_label_cost":-1e999,"_label_probability":0.5,"_label_Action":1,"_labelIndex":0,'
        b'"a":[1,2],"p":[0.5,0.5],"c":{"_multi":[{},{}]},"EventId":"e"}',
    ],
)
def test_the_summary_leaves_unusual_lines_to_the_parser(line: bytes) -> None:
    assert summary_fields(line) is None


def test_a_malformed_line_is_refused_during_the_pass(tmp_path: Path) -> None:
    path = write(tmp_path / "log.dsjson", 30)
    lines = path.read_bytes().splitlines(keepends=True)
    # The summary reads the label by pattern; the pmf no longer sums to 1.
    lines[20] = lines[20].replace(b'"p":[', b'"p":[0.9,', 1).replace(b'"a":[', b'"a":[99,', 1)
    path.write_bytes(b"".join(lines))
    log = Log.of_dsjson(path, batch=8)
    with pytest.raises(DsjsonError) as caught:
        evaluate_log(log, [Online(), Baseline()])
    assert caught.value.line == 21


def test_memory_stays_flat_with_the_log(tmp_path: Path) -> None:
    # One hour in all: the only state that grows with the window is one entry per hour.
    second = timedelta(seconds=1)
    paths = [write(tmp_path / f"log{n}.dsjson", n, spacing=second) for n in (400, 2000)]
    evaluate_log(Log.of_dsjson(paths[0], batch=50), [Online()])  # imports, caches
    peaks = []
    for path in paths:
        tracemalloc.start()
        evaluate_log(Log.of_dsjson(path, batch=50), [Online(), Baseline(), Uniform()])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.25 * peaks[0]  # five times the events
