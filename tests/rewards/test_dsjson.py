"""DSJSON export and import: a hand-written oracle, round trips, VW parsing, flat memory."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import vowpalwabbit

from bandit import features
from bandit.events import Action, Decision
from bandit.store import Store
from bandit.store.rows import _row, decisions
from rewards.dsjson import (
    DsjsonError,
    LineEncoder,
    dumps,
    export_lines,
    label,
    read_dsjson,
    to_dsjson,
)
from tests.conftest import Backend
from tests.schema import migrated

T0 = datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC)


def make_decision(
    i: int = 0,
    *,
    created_at: datetime = T0,
    surface: str = "tips",
    activated: bool = True,
    n_actions: int = 3,
    chosen: int = 1,
) -> Decision:
    actions = tuple(
        Action(
            f"tip-{k}",
            [
                {"tip": {"kind": "advice" if k % 2 else "todo", "tag": ["calm", f"t{k}"]}},
                {"len": {"n": k}},
            ],
        )
        for k in range(n_actions)
    )
    rest = (1.0 - 0.5) / (n_actions - 1)
    pmf = tuple(0.5 if k == chosen else rest for k in range(n_actions))
    return Decision(
        event_id=f"e{i}",
        surface=surface,
        principal="local",
        context=[
            {"user": {"tier": "gold"}, "topics": ["sleep", "focus"]},
            {"time": {"hour": "h09"}, "user": {"age": 31, "flags": [True, False]}},
        ],
        actions=actions,
        pmf=pmf,
        chosen_index=chosen,
        policy="vw-epsilon",
        model_key=f"{surface}:vw-epsilon",
        model_version=1,
        created_at=created_at,
        activated_at=created_at if activated else None,
    )


def test_to_dsjson_matches_a_hand_written_line() -> None:
    decision = Decision(
        event_id="ev-1",
        surface="personalizer",
        principal="personalizer",
        context=[{"user": {"tier": "gold"}}, {"time": {"hour": "h09"}}],
        actions=(
            Action("tea", [{"tip": {"kind": "advice"}}]),
            Action(
                "walk",
                [
                    {"tip": {"kind": "todo", "tag": ["legs", "outdoor"]}},
                    {"effort": {"minutes": 20}},
                ],
            ),
            Action("read", []),
        ),
        pmf=(0.1, 0.8, 0.1),
        chosen_index=1,
        policy="vw-epsilon",
        model_key="personalizer:vw-epsilon",
        model_version=3,
        created_at=datetime(2026, 11, 25, 11, 0, 0, 250000, tzinfo=timezone(timedelta(hours=1))),
        activated_at=None,
    )

    line = to_dsjson(decision, 1.0)

    assert line == {
        "_label_cost": -1.0,
        "_label_probability": 0.8,
        "_label_Action": 2,
        "_labelIndex": 1,
        "a": [2, 1, 3],
        "p": [0.8, 0.1, 0.1],
        "c": {
            "user": {"tier": "gold"},
            "time": {"hour": "h09"},
            "_multi": [
                {"_tag": "tea", "tip": {"kind": "advice"}},
                {
                    "_tag": "walk",
                    "tip": {"kind": "todo", "tag=legs": 1, "tag=outdoor": 1},
                    "effort": {"minutes": 20},
                },
                {"_tag": "read"},
            ],
        },
        "EventId": "ev-1",
        "Timestamp": "2026-11-25T10:00:00.250000Z",
        "pdrop": 0,
    }
    assert to_dsjson(decision, 0.0, skip_learn=True)["_skipLearn"] is True
    assert to_dsjson(decision, 0.0)["_label_cost"] == 0.0


def test_shared_keys_of_feature_objects_merge() -> None:
    line = to_dsjson(make_decision(), 0.5)
    assert line["c"]["user"] == {"tier": "gold", "age": 31, "flags_0=true": 1, "flags_1=false": 1}
    assert line["c"]["topics"] == {"topics=sleep": 1, "topics=focus": 1}
    assert line["c"]["_multi"][0] == {
        "_tag": "tip-0",
        "tip": {"kind": "todo", "tag=calm": 1, "tag=t0": 1},
        "len": {"n": 0},
    }


def test_round_trip_gives_back_pmf_chosen_reward_and_features() -> None:
    decision = make_decision(chosen=2, n_actions=4)
    text = json.dumps(to_dsjson(decision, -0.5))

    (event,) = read_dsjson([text])

    assert event.event_id == decision.event_id
    assert event.timestamp == decision.created_at
    assert event.pmf == pytest.approx(decision.pmf)
    assert event.chosen_index == 2
    assert event.chosen.id == "tip-2"
    assert event.propensity == pytest.approx(0.5)
    assert event.reward == -0.5
    assert not event.skip_learn
    assert [a.id for a in event.actions] == [a.id for a in decision.actions]
    # Features come back as the policy saw them (lists of strings are spelled out as keys).
    # `name:1` and `name` are the same VW feature.
    assert [_vw(a.features) for a in event.actions] == [_vw(a.features) for a in decision.actions]
    assert _vw(event.context) == _vw(decision.context)


def _vw(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(token.removesuffix(":1") for token in features.line(objects).split())


def _store(tmp_path: Path) -> Store:
    return Store.connect(migrated(f"sqlite:///{tmp_path / 'log.sqlite3'}"))


def _insert(store: Store, rows: list[dict[str, Any]]) -> None:
    with store.engine.begin() as conn:
        conn.execute(decisions.insert(), rows)


def _learned(decision: Decision, seq: int, reward: float) -> dict[str, Any]:
    return {**_row(decision), "learn_seq": seq, "learned_reward": reward, "learned_at": T0}


def _unlearned(decision: Decision) -> dict[str, Any]:
    return {**_row(decision), "learn_seq": None, "learned_reward": None, "learned_at": None}


def test_export_keeps_settled_decisions_in_order_within_the_range(tmp_path: Path) -> None:
    store = _store(tmp_path)
    at = [T0 + timedelta(minutes=m) for m in range(5)]
    _insert(
        store,
        [
            _learned(make_decision(3, created_at=at[3]), 1, 1.0),
            _learned(make_decision(1, created_at=at[1]), 2, 0.25),
            _unlearned(make_decision(2, created_at=at[2])),  # reward window open: left out
            _unlearned(make_decision(4, created_at=at[1], activated=False)),  # never activated
            _learned(make_decision(0, created_at=at[0], surface="personalizer"), 3, 0.0),
        ],
    )

    every = [json.loads(x) for x in export_lines(store, batch=2)]
    ranged = [json.loads(x) for x in export_lines(store, start=at[1], end=at[3], batch=1)]
    tips = [json.loads(x) for x in export_lines(store, surface="tips")]

    assert [r["EventId"] for r in every] == ["e0", "e1", "e4", "e3"]
    assert [r["_label_cost"] for r in every] == [0.0, -0.25, 0.0, -1.0]
    assert [r.get("_skipLearn", False) for r in every] == [False, False, True, False]
    assert [r["EventId"] for r in ranged] == ["e1", "e4"]
    assert [r["EventId"] for r in tips] == ["e1", "e4", "e3"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"p": [0.5, 0.25]}, r"line 2: `p` must have one probability per action in `a`"),
        ({"a": [2, 2, 3]}, r"line 2: `a` must list every action of `c._multi` once"),
        ({"p": [0.5, 0.25, 0.2]}, r"line 2: `p` must sum to 1"),
        ({"_label_cost": "high"}, r"line 2: `_label_cost` must be a number"),
        ({"_label_Action": 1}, r"line 2: `_label_Action` must be `a\[0\]` \(2\)"),
        ({"_label_probability": 0.3}, r"line 2: `_label_probability` must equal `p\[0\]`"),
        ({"c": {"user": {}}}, r"line 2: `c._multi` must be a non-empty list"),
        ({"EventId": 7}, r"line 2: `EventId` must be a non-empty string"),
        ({"Timestamp": "yesterday"}, r"line 2: `Timestamp` must be ISO 8601"),
    ],
)
def test_import_errors_name_the_line_and_field(change: dict[str, Any], message: str) -> None:
    good = to_dsjson(make_decision(), 1.0)
    lines = [json.dumps(good), json.dumps({**good, **change})]
    with pytest.raises(DsjsonError, match=message):
        list(read_dsjson(lines))


def test_lenient_import_skips_and_reports_malformed_lines() -> None:
    good = json.dumps(to_dsjson(make_decision(), 1.0))
    errors: list[DsjsonError] = []

    events = list(read_dsjson([good, "{not json", "", good], strict=False, on_error=errors.append))

    assert len(events) == 2
    assert [(e.line, str(e)) for e in errors] == [
        (2, "line 2: not valid JSON (Expecting property name enclosed in double quotes)")
    ]


def test_reads_a_vw_learning_loop_line_without_action_ids() -> None:
    # Shaped like the lines of VW's test/train-sets/dsjson_cb.json: ids are positions.
    line = (
        '{"_label_cost":-0.0,"_label_probability":0.05,"_label_Action":4,"_labelIndex":3,'
        '"o":[{"v":1.0,"EventId":"x","ActionTaken":false}],"Timestamp":"2017-10-25T20:09:42.4530000Z",'
        '"Version":"1","EventId":"x","a":[4,2,1,3],"c":{"FromUrl":[{"timeofday":"Afternoon"}],'
        '"_multi":[{"a":{"f":"1"}},{"a":{"f":"2"}},{"a":{"f":"3"}},{"a":{"f":"4"}}]},'
        '"p":[0.05,0.85,0.05,0.05],"VWState":{"m":"x/y"}}'
    )
    (event,) = read_dsjson([line])
    assert [a.id for a in event.actions] == ["1", "2", "3", "4"]
    assert event.pmf == (0.05, 0.85, 0.05, 0.05)
    assert event.chosen_index == 3
    assert event.reward == 0.0
    assert event.timestamp == datetime(2017, 10, 25, 20, 9, 42, 453000, tzinfo=UTC)


def test_vw_parses_and_learns_exported_lines(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _insert(store, [_learned(make_decision(i, chosen=i % 3), i + 1, 1.0) for i in range(6)])
    _insert(store, [_unlearned(make_decision(9, activated=False))])
    workspace = vowpalwabbit.Workspace("--cb_explore_adf --dsjson --quiet")
    try:
        lines = list(export_lines(store))
        for line in lines:
            record = json.loads(line)
            examples = workspace.parse(line)
            if record.get("_skipLearn"):
                workspace.finish_example(examples)
                continue
            assert len(examples) == 1 + len(record["c"]["_multi"])  # shared + one per action
            labels = [
                e.get_label(vowpalwabbit.LabelType.CONTEXTUAL_BANDIT).costs for e in examples[1:]
            ]
            chosen = record["_labelIndex"]
            assert [len(c) for c in labels] == [int(i == chosen) for i in range(len(labels))]
            assert labels[chosen][0].cost == pytest.approx(-1.0)
            assert labels[chosen][0].probability == pytest.approx(0.5)
            workspace.learn(examples)
            workspace.finish_example(examples)
    finally:
        workspace.finish()
    assert len(lines) == 7


def test_export_streams_with_flat_memory(tmp_path: Path) -> None:
    store = _store(tmp_path)
    start = T0 - timedelta(days=1)
    for chunk in range(5):
        _insert(
            store,
            [
                _learned(
                    make_decision(i, created_at=start + timedelta(seconds=i), n_actions=8),
                    i + 1,
                    1.0,
                )
                for i in range(chunk * 1000, (chunk + 1) * 1000)
            ],
        )
    # Warm SQLAlchemy's statement cache before measuring.
    list(export_lines(store, end=start + timedelta(seconds=2), batch=200))

    small_total, small_peak = _traced_export(store, start + timedelta(seconds=1000), batch=50)
    total, peak = _traced_export(store, None, batch=50)

    assert total > 4 * small_total
    # Flat: five times the events, about the same peak (one batch of 50 decisions), and far
    # below what holding the exported text alone would take.
    assert peak < 1.5 * small_peak, f"peak {peak:,} B for all vs {small_peak:,} B for a fifth"
    assert peak < total / 2, f"peak {peak:,} bytes for {total:,} bytes exported"


def _traced_export(store: Store, end: datetime | None, *, batch: int) -> tuple[int, int]:
    total = 0
    tracemalloc.start()
    try:
        for line in export_lines(store, end=end, batch=batch):
            total += len(line)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return total, peak


def test_export_writes_what_to_dsjson_writes_byte_for_byte(backend: Backend) -> None:
    # export_lines encodes from the stored JSON text and remembers fragments; the oracle is
    # the record-at-a-time path over the decisions as logged.
    store = Store.connect(backend.database_url, pool_size=2)
    odd = Decision(
        event_id='é"\\n\u2028',
        surface="tips",
        principal="local",
        context=[{"_multi": {"x": 1}, "ü": ["a", "ß"]}, {"n": {"v": 1e-300}}],
        actions=(Action("a\u00e9", []), Action("b", [{"t": {"k": [1, 2.5, None]}}])),
        pmf=(0.25, 0.75),
        chosen_index=1,
        policy="p",
        model_key="tips:p",
        model_version=1,
        created_at=T0,
        activated_at=T0,
    )
    bare = replace(odd, event_id="bare", context=[], pmf=(1, 0), chosen_index=0)
    rewards = [0.0, 1.0, -0.5]
    rows = [_learned(make_decision(i, chosen=i % 3), i + 1, rewards[i % 3]) for i in range(6)]
    rows += [_learned(odd, 7, 0.125), _learned(bare, 8, 2.0)]
    rows += [_unlearned(make_decision(9, activated=False)), _unlearned(make_decision(10))]
    _insert(store, rows)
    oracle = [
        dumps(to_dsjson(logged.decision, settled[0], skip_learn=settled[1])) + "\n"
        for logged in store.iter_logged()
        if (settled := label(logged)) is not None
    ]

    exported = list(export_lines(store, batch=3))
    forgetful = LineEncoder(memo=1)  # forgets and re-encodes fragments all along
    again = [forgetful.line(row) for rows in store.iter_settled(batch=4) for row in rows]

    assert len(oracle) == 9
    assert exported == oracle
    assert again == oracle
    store.engine.dispose()
