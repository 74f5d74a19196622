"""Streaming properties: shards merge exactly, and the arrays path equals the per-event loop."""

from __future__ import annotations

import functools
import math
import operator
import pickle
import re
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards import estimators
from rewards.estimators import (
    Interval,
    base,
    clipped_ips,
    dm,
    dr,
    dr_os,
    ips,
    sndr,
    snips,
    switch_dr,
)

RANGE = (-1.0, 2.0)
MAX_WEIGHT = 1_000.0  # p_log >= 1e-3 below

Factory = Callable[[], base.Estimator]
FACTORIES: dict[str, Factory] = {
    "ips": lambda: ips.Estimator(reward_range=RANGE, max_weight=MAX_WEIGHT),
    "clipped_ips": lambda: clipped_ips.Estimator(5.0, reward_range=RANGE, max_weight=MAX_WEIGHT),
    "snips": lambda: snips.Estimator(reward_range=RANGE, max_weight=MAX_WEIGHT),
    "dm": lambda: dm.Estimator(reward_range=RANGE, max_weight=MAX_WEIGHT),
    "dr": lambda: dr.Estimator(reward_range=RANGE, max_weight=MAX_WEIGHT),
    "sndr": lambda: sndr.Estimator(reward_range=RANGE, max_weight=MAX_WEIGHT),
    "switch_dr": lambda: switch_dr.Estimator(3.0, reward_range=RANGE, max_weight=MAX_WEIGHT),
    "dr_os": lambda: dr_os.Estimator(2.0, reward_range=RANGE, max_weight=MAX_WEIGHT),
}

Event = tuple[float, float, float, float, float]


NAMES = ("p_log", "reward", "p_target", "r_hat", "v_hat")


def _feed(est: base.Estimator, events: Sequence[Event]) -> base.Estimator:
    """The per-event path, one ``add`` per event."""
    for p_log, reward, p_target, r_hat, v_hat in events:
        if isinstance(est, dr.Estimator):
            est.add(p_log, reward, p_target, r_hat, v_hat)
        elif isinstance(est, ips.Estimator):
            est.add(p_log, reward, p_target)
    return est


def _feed_arrays(est: base.Estimator, events: Sequence[Event]) -> base.Estimator:
    """The vectorized path, one ``add_batch`` for all events."""
    columns = np.array(events, dtype=np.float64).reshape(-1, 5).T
    est.add_batch(dict(zip(NAMES, columns, strict=True)))
    return est


def _state(est: base.Estimator) -> tuple[object, ...]:
    """Everything observable, with nan made comparable."""
    intervals = [
        (est.interval(0.05, m).low, est.interval(0.05, m).high)
        for m in sorted(est.interval_methods)
    ]
    w = est.weights
    return (
        est.n,
        est.totals().tobytes(),
        repr(est.get()),
        repr(intervals),
        repr((w.ess, w.min, w.max, w.mean)),
    )


def _close(a: float, b: float, tol: float = 1e-12) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


probability = st.floats(min_value=1e-3, max_value=1.0)
in_range = st.floats(min_value=RANGE[0], max_value=RANGE[1])
events_strategy = st.lists(
    st.tuples(probability, in_range, st.floats(min_value=0.0, max_value=1.0), in_range, in_range),
    max_size=40,
)
HYPOTHESIS = settings(max_examples=60, derandomize=True, database=None, deadline=None)


@pytest.mark.parametrize("name", sorted(FACTORIES))
@HYPOTHESIS
@given(events=events_strategy, data=st.data())
def test_merged_shards_equal_the_union_exactly(
    name: str, events: list[Event], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(events)))
    make = FACTORIES[name]
    merged = _feed(make(), events[:cut]) + _feed(make(), events[cut:])
    assert _state(merged) == _state(_feed(make(), events))


@pytest.mark.parametrize("name", sorted(FACTORIES))
@HYPOTHESIS
@given(events=events_strategy)
def test_arrays_path_equals_the_loop(name: str, events: list[Event]) -> None:
    make = FACTORIES[name]
    loop, arrays = _feed(make(), events), _feed_arrays(make(), events)
    assert loop.n == arrays.n
    assert all(_close(a, b) for a, b in zip(loop.totals(), arrays.totals(), strict=True))
    assert _close(loop.get(), arrays.get())
    for method in loop.interval_methods:
        a, b = loop.interval(0.05, method), arrays.interval(0.05, method)
        assert _close(a.low, b.low, 1e-9), method
        assert _close(a.high, b.high, 1e-9), method
    assert _close(loop.weights.ess, arrays.weights.ess)


def _seeded_events(n: int, seed: int) -> list[Event]:
    rng = np.random.default_rng(seed)
    columns = np.stack(
        [
            rng.uniform(1e-3, 1.0, n),
            rng.uniform(*RANGE, n),
            rng.uniform(0.0, 1.0, n),
            rng.uniform(*RANGE, n),
            rng.uniform(*RANGE, n),
        ]
    )
    return [(a, b, c, d, e) for a, b, c, d, e in columns.T.tolist()]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_seeded_shards_arrays_and_loop_agree(name: str) -> None:
    events = _seeded_events(1_500, seed=11)
    make = FACTORIES[name]
    union_loop = _feed(make(), events)
    shards = [events[i::4] for i in range(4)]  # interleaved, not contiguous
    merged_loop = functools.reduce(operator.add, [_feed(make(), s) for s in shards])
    assert _state(merged_loop) == _state(union_loop)

    merged_arrays = functools.reduce(operator.add, [_feed_arrays(make(), s) for s in shards])
    union_arrays = _feed_arrays(make(), events)
    for est in (merged_arrays, union_arrays):
        assert est.n == union_loop.n
        assert _close(est.get(), union_loop.get())
        ci, expected = est.interval(), union_loop.interval()
        assert _close(ci.low, expected.low)
        assert _close(ci.high, expected.high)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_merge_is_associative_and_empty_is_identity(name: str) -> None:
    make = FACTORIES[name]
    a, b, c = (_feed(make(), _seeded_events(30, seed=s)) for s in (1, 2, 3))
    assert _state((a + b) + c) == _state(a + (b + c))
    assert _state(make() + a) == _state(a) == _state(a + make())


def test_merge_leaves_operands_untouched() -> None:
    a = _feed(FACTORIES["dr"](), _seeded_events(10, seed=1))
    b = _feed(FACTORIES["dr"](), _seeded_events(10, seed=2))
    before = (_state(a), _state(b))
    _ = a + b
    assert (_state(a), _state(b)) == before


def test_empty_estimator() -> None:
    est = ips.Estimator(reward_range=(0.0, 1.0))
    assert math.isnan(est.get())
    assert est.interval() == Interval(-math.inf, math.inf)
    ci = est.interval(method="cressie_read")
    assert (ci.low, ci.high) == (0.0, 1.0)
    assert est.weights.n == 0
    assert math.isnan(est.weights.ess)
    est.add_arrays([], [], [])
    assert est.n == 0


def test_merge_refuses_other_types_and_settings() -> None:
    with pytest.raises(TypeError, match="cannot merge ips with snips"):
        ips.Estimator() + snips.Estimator()
    with pytest.raises(
        ValueError,
        match=re.escape(
            "cannot merge clipped_ips estimators with different settings (`clip` 2.0 vs 3.0)"
        ),
    ):
        clipped_ips.Estimator(2.0) + clipped_ips.Estimator(3.0)
    with pytest.raises(
        ValueError, match=re.escape("different settings (`reward_range` (0.0, 1.0) vs None)")
    ):
        ips.Estimator(reward_range=(0, 1)) + ips.Estimator()


def test_add_batch_equals_add_arrays_and_ignores_extra_columns() -> None:
    columns = np.array(_seeded_events(50, seed=3)).T
    batch = dict(zip(NAMES, columns, strict=True))
    ips_by_name, ips_positional = (
        ips.Estimator(reward_range=RANGE, max_weight=MAX_WEIGHT) for _ in range(2)
    )
    ips_by_name.add_batch(batch)  # r_hat and v_hat are not IPS inputs
    ips_positional.add_arrays(batch["p_log"], batch["reward"], batch["p_target"])
    assert _state(ips_by_name) == _state(ips_positional)

    dr_by_name, dr_positional = (
        dr.Estimator(reward_range=RANGE, max_weight=MAX_WEIGHT) for _ in range(2)
    )
    dr_by_name.add_batch(batch)
    dr_positional.add_arrays(*columns)
    assert _state(dr_by_name) == _state(dr_positional)
    assert dr.Estimator.inputs == NAMES
    assert ips.Estimator.inputs == NAMES[:3]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_estimators_pickle_for_process_shards(name: str) -> None:
    make = FACTORIES[name]
    events = _seeded_events(40, seed=5)
    shard = pickle.loads(pickle.dumps(_feed(make(), events[:25])))
    assert _state(shard + _feed(make(), events[25:])) == _state(_feed(make(), events))


def test_package_table_matches_declared_interval_methods() -> None:
    lines = (estimators.__doc__ or "").splitlines()
    column = next(line for line in lines if line.startswith("module")).index("intervals")
    table = {
        line.split()[0].removeprefix(":mod:`.").removesuffix("`"): line[column:]
        for line in lines
        if line.startswith(":mod:`.") and line.split()[0].endswith("`")  # table rows only
    }
    modules = {
        "ips": ips,
        "clipped_ips": clipped_ips,
        "snips": snips,
        "dm": dm,
        "dr": dr,
        "sndr": sndr,
        "switch_dr": switch_dr,
        "dr_os": dr_os,
    }
    assert set(table) == set(modules)
    for name, module in modules.items():
        listed = table[name].replace(",", " ").split()
        assert set(listed) == set(module.Estimator.interval_methods), name
