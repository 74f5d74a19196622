"""Group commit of the decision log (ADR 0013): batches form under load, every writer is
answered only after the commit holding its row, and one bad row or twin never fails another."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from bandit.events import Action, Decision, Features, utcnow
from bandit.features import action_lines, adf_example
from bandit.store import Store
from bandit.store.database import decision_json, json_text
from bandit.store.group_commit import GroupCommit
from bandit.store.rows import _JSON_COLUMNS, _row, decisions
from bandit.store.writes import SQLITE_BATCH_ROWS
from tests.conftest import Backend, wait_until

ACTIONS = (Action("a", [{"item": {"id": "a"}}]), Action("b", [{"item": {"id": "b"}}]))


def decision(event_id: str) -> Decision:
    now = utcnow()
    context = [{"user": {"id": "u"}}]
    return Decision(
        event_id=event_id,
        surface="personalizer",
        principal="p",
        context=context,
        actions=ACTIONS,
        pmf=(0.5, 0.5),
        chosen_index=0,
        policy="random",
        model_key="personalizer:random",
        model_version=0,
        created_at=now,
        activated_at=now,
        example=tuple(adf_example(context, action_lines(ACTIONS))),
    )


class Gate:
    """A commit function that holds its first batch until released, recording every batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail: BaseException | None = None

    def __call__(self, rows: Sequence[str]) -> list[str]:
        self.batches.append(list(rows))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(30)
        if self.fail is not None:
            raise self.fail
        return [row.upper() for row in rows]


def _writers(group: GroupCommit[str, str], rows: list[str]) -> tuple[list[threading.Thread], dict]:
    answers: dict[str, object] = {}

    def write(row: str) -> None:
        try:
            answers[row] = group.write(row)
        except BaseException as exc:
            answers[row] = exc

    threads = [threading.Thread(target=write, args=(row,)) for row in rows]
    for thread in threads:
        thread.start()
    return threads, answers


def test_rows_queued_during_a_commit_share_the_next_one_and_wait_for_it() -> None:
    gate = Gate()
    group: GroupCommit[str, str] = GroupCommit(gate, name="test-group")
    first, first_answers = _writers(group, ["first"])
    assert gate.entered.wait(30)
    rest, answers = _writers(group, [f"row{i}" for i in range(8)])
    wait_until(lambda: len(group._queue) == 8)
    # Nothing is answered before its commit returns.
    assert all(thread.is_alive() for thread in first + rest)
    assert first_answers == answers == {}
    gate.release.set()
    for thread in first + rest:
        thread.join(30)
    assert gate.batches[0] == ["first"]
    assert sorted(gate.batches[1]) == [f"row{i}" for i in range(8)]  # one commit for all eight
    assert first_answers == {"first": "FIRST"}
    assert answers == {f"row{i}": f"ROW{i}" for i in range(8)}


def test_the_rows_of_each_commit_are_counted_by_log() -> None:
    """`oo_group_commit_rows` says how many writers shared each commit (here 1, then 8), and
    `oo_group_commit_seconds` times each commit."""
    gate = Gate()
    group: GroupCommit[str, str] = GroupCommit(gate, name="test-counted")
    labels = {"log": "test-counted"}
    first, _ = _writers(group, ["first"])
    assert gate.entered.wait(30)
    rest, _ = _writers(group, [f"row{i}" for i in range(8)])
    wait_until(lambda: len(group._queue) == 8)
    gate.release.set()
    for thread in first + rest:
        thread.join(30)
    assert REGISTRY.get_sample_value("oo_group_commit_rows_count", labels) == 2
    assert REGISTRY.get_sample_value("oo_group_commit_rows_sum", labels) == 9
    assert REGISTRY.get_sample_value("oo_group_commit_rows_bucket", {**labels, "le": "1.0"}) == 1
    assert REGISTRY.get_sample_value("oo_group_commit_seconds_count", labels) == 2


def test_a_failed_commit_raises_its_error_in_every_writer_of_the_batch() -> None:
    gate = Gate()
    group: GroupCommit[str, str] = GroupCommit(gate, name="test-group")
    first, _ = _writers(group, ["first"])
    assert gate.entered.wait(30)
    gate.fail = OSError("disk gone")
    rest, answers = _writers(group, ["x", "y"])
    wait_until(lambda: len(group._queue) == 2)
    gate.release.set()
    for thread in first + rest:
        thread.join(30)
    assert {row: str(answer) for row, answer in answers.items()} == {
        "x": "disk gone",
        "y": "disk gone",
    }
    # The writer thread survives a failed batch: the next write is committed.
    gate.fail = None
    assert group.write("later") == "LATER"


def test_a_submitted_row_returns_at_once_and_shares_the_next_commit() -> None:
    """`submit`: queued like a write, nobody waits for it, and its error goes to nobody (the
    writer goes on)."""
    gate = Gate()
    group: GroupCommit[str, str] = GroupCommit(gate, name="test-submit")
    group.submit("first")  # returns while its batch is held
    assert gate.entered.wait(30)
    group.submit("a")
    group.submit("b")
    gate.fail = OSError("disk gone")
    gate.release.set()
    wait_until(lambda: len(gate.batches) == 2)
    assert gate.batches == [["first"], ["a", "b"]]
    gate.fail = None
    assert group.write("later") == "LATER"


def test_the_writer_thread_ends_when_idle_and_starts_again() -> None:
    group: GroupCommit[str, str] = GroupCommit(
        lambda rows: [r.upper() for r in rows], name="test-idle", idle_seconds=0.01
    )
    assert group.write("a") == "A"
    wait_until(lambda: not any(t.name == "test-idle" for t in threading.enumerate()))
    assert group.write("b") == "B"


def test_a_coroutine_awaits_its_commit_while_the_loop_serves_others() -> None:
    """`write_async` (ADR 0016): the loop is free while the batch commits, the answer comes
    only after it, and a failed batch raises in the coroutine."""
    gate = Gate()
    group: GroupCommit[str, str] = GroupCommit(gate, name="test-async")

    async def scenario() -> tuple[str, list[str], BaseException]:
        waiting = asyncio.ensure_future(group.write_async("first"))
        while not gate.entered.is_set():
            await asyncio.sleep(0)  # the loop keeps running while the commit is held
        ticks = []
        for i in range(3):
            ticks.append(f"tick{i}")
            await asyncio.sleep(0)
        assert not waiting.done()  # not answered before its commit returns
        gate.release.set()
        answer = await waiting
        gate.fail = OSError("disk gone")
        with pytest.raises(OSError, match="disk gone") as refused:
            await group.write_async("second")
        return answer, ticks, refused.value

    answer, ticks, refused = asyncio.run(scenario())
    assert answer == "FIRST"
    assert ticks == ["tick0", "tick1", "tick2"]
    assert str(refused) == "disk gone"


def test_a_cancelled_coroutine_leaves_the_writer_running_and_its_row_committed() -> None:
    """A coroutine cancelled while its row waits (at shutdown, say) gets no answer; the others
    do, and the writer thread goes on (setting the cancelled one's answer used to end it)."""
    gate = Gate()
    group: GroupCommit[str, str] = GroupCommit(gate, name="test-cancel")

    async def scenario() -> str:
        first = asyncio.ensure_future(group.write_async("first"))
        while not gate.entered.is_set():
            await asyncio.sleep(0)
        gone = asyncio.ensure_future(group.write_async("gone"))
        kept = asyncio.ensure_future(group.write_async("kept"))
        while len(group._queue) < 2:
            await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        gate.release.set()
        await first
        return await asyncio.wait_for(kept, 30)

    assert asyncio.run(scenario()) == "KEPT"
    assert gate.batches == [["first"], ["gone", "kept"]]  # the cancelled row is committed too
    assert group.write("later") == "LATER"  # the writer thread lives on


def test_a_batch_wakes_its_coroutines_loop_once() -> None:
    """The writer answers a batch's coroutines on one loop with one callback: the loop wakes
    once per commit, not once per row."""
    gate = Gate()
    group: GroupCommit[str, str] = GroupCommit(gate, name="test-wakeups")
    wakeups: list[int] = []

    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        threadsafe = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any) -> Any:
            wakeups.append(len(args[0]) if args else 0)
            return threadsafe(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        first = asyncio.ensure_future(group.write_async("first"))
        while not gate.entered.is_set():
            await asyncio.sleep(0)
        rest = [asyncio.ensure_future(group.write_async(f"r{i}")) for i in range(7)]
        while len(group._queue) < 7:
            await asyncio.sleep(0)
        gate.release.set()
        return [await first, *[await r for r in rest]]

    answers = asyncio.run(scenario())
    assert answers == ["FIRST", *[f"R{i}" for i in range(7)]]
    assert gate.batches == [["first"], [f"r{i}" for i in range(7)]]
    assert wakeups == [1, 7]  # one callback per batch, answering all of its rows


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    store = Store.connect(backend.database_url)
    yield store
    store.engine.dispose()


def test_concurrent_decisions_are_all_logged_once(store: Store) -> None:
    ids = [f"e{i}" for i in range(64)]
    results: dict[str, bool] = {}

    def log(event_id: str) -> None:
        results[event_id] = store.insert_decision(decision(event_id))

    threads = [threading.Thread(target=log, args=(event_id,)) for event_id in ids * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == sorted(ids)
    assert {d.decision.event_id for d in store.get_many(ids)} == set(ids)
    # Each id was written twice: the second write of each found it logged.
    assert store.insert_decision(decision("e0")) is False


def test_a_twin_in_the_batch_is_logged_once_and_a_bad_row_fails_alone(store: Store) -> None:
    good, twin, other = _row(decision("t1")), _row(decision("t1")), _row(decision("t2"))
    bad = {**_row(decision("t3")), "surface": None}  # NOT NULL
    results = store._commit_decisions([good, twin, bad, other])
    assert results[:2] == [True, False]
    assert isinstance(results[2], Exception)
    assert results[3] is True
    assert {d.decision.event_id for d in store.get_many(["t1", "t2", "t3"])} == {"t1", "t2"}


def test_a_batch_larger_than_one_statement_tells_logged_from_new_rows(store: Store) -> None:
    """On SQLite a batch is one lookup and one multi-row INSERT per `SQLITE_BATCH_ROWS` rows:
    across those statements each row is answered for itself, in order."""
    logged = [f"old{i}" for i in range(0, 2 * SQLITE_BATCH_ROWS + 7, 5)]
    store._commit_decisions([_row(decision(event_id)) for event_id in logged])
    ids = [f"old{i}" for i in range(2 * SQLITE_BATCH_ROWS + 7)]
    results = store._commit_decisions([_row(decision(event_id)) for event_id in ids])
    assert results == [event_id not in logged for event_id in ids]
    assert {d.decision.event_id for d in store.get_many(ids)} == set(ids)


def test_decisions_awaited_from_a_loop_are_logged_once_and_read_back_unchanged(
    store: Store,
) -> None:
    """The event loop's path writes what the thread path writes (on SQLite it goes through
    the `sqlite3` connection, with the columns' own conversions)."""
    ids = [f"a{i}" for i in range(32)]
    made = {event_id: decision(event_id) for event_id in ids}

    async def log_all() -> list[bool]:
        writes = [store.insert_decision_async(made[event_id]) for event_id in ids * 2]
        return list(await asyncio.gather(*writes))

    results = asyncio.run(log_all())
    assert sorted(results) == [False] * 32 + [True] * 32  # each id once, its twin refused
    for logged in store.get_many(ids):
        assert logged.decision == made[logged.decision.event_id]


def test_the_sqlite_path_stores_the_text_sqlalchemy_stores(store: Store, backend: Backend) -> None:
    """Column for column, a decision logged through the `sqlite3` connection is stored as
    SQLAlchemy's own INSERT stores it (queries compare stored datetimes as text); the JSON
    columns, written by orjson, hold the same values."""
    if backend.name != "embedded":
        pytest.skip("the sqlite3 path is SQLite's")
    store.insert_decision(decision("fast"))
    with store.engine.begin() as conn:
        conn.execute(sa.insert(decisions), _row(decision("through-sqlalchemy")))
        rows = conn.execute(
            sa.text("SELECT * FROM decisions WHERE event_id IN ('fast', 'through-sqlalchemy')")
        ).mappings()
        stored = {row["event_id"]: dict(row) for row in rows}
    fast, reference = stored["fast"], stored["through-sqlalchemy"]
    for name in ("created_at", "activated_at"):  # the same format, a few µs apart
        assert len(fast.pop(name)) == len(reference.pop(name)) == len("2026-01-01 00:00:00.000000")
    fast.pop("event_id"), reference.pop("event_id")
    for name in _JSON_COLUMNS:
        assert json.loads(fast.pop(name)) == json.loads(reference.pop(name)), name
    assert fast == reference


@pytest.mark.parametrize(
    "value",
    [
        {"tip": {"title": "Étirer le dos 🧘", "minutes": 5, "weight": 0.1 + 0.2}},
        [1e-7, 1e16, -0.0, 2**63 - 1, True, None, ""],
        {"big": 2**70},  # beyond orjson's 64 bits: written by the stdlib
        {"lone": "\ud800"},  # a lone surrogate, which json.loads can hand over
        {1: "a key that is not a string"},
    ],
    ids=["unicode", "numbers", "big-int", "lone-surrogate", "int-key"],
)
def test_a_decision_column_reads_back_as_the_stdlib_writes_it(value: object) -> None:
    """`decision_json` writes other text than `json.dumps` (compact, non-ASCII kept), never
    other values; and what orjson refuses falls back to the stdlib instead of failing."""
    assert json.loads(decision_json(value)) == json.loads(json.dumps(value))


TIP = [{"tip": {"category": "sleep", "title": "Étirer le dos 🧘", "minutes": 5}}]


@pytest.mark.parametrize(
    "features",
    [TIP, [*TIP, {"history": {"rate": 0.35, "shown": "few"}}], [], [{"big": {"n": 2**70}}]],
    ids=["tip", "with-history", "none", "big-int"],
)
def test_an_action_kept_is_logged_as_one_written_with_each_decision(features: Features) -> None:
    """A kept action's JSON is the text the decision log writes for the same action without
    it, alone and among others; one whose features orjson refuses keeps none and is written by
    the stdlib, reading back the same."""
    kept, plain = Action.kept("a", features), Action("a", features)
    assert kept == plain  # what was kept is no part of the action's value
    others = (Action.kept("b", TIP), Action("c", TIP))
    assert decision_json((kept, *others)) == decision_json((plain, *others))
    expected = [{"id": a.id, "features": a.features} for a in (plain, *others)]
    assert json.loads(decision_json((kept, *others))) == json.loads(json.dumps(expected))
    assert (kept.logged is None) == (features == [{"big": {"n": 2**70}}])


def test_the_log_writes_an_actions_kept_json_as_it_is() -> None:
    """What was kept is written without a look at the features: they must never change in place
    once kept (`Action.kept`)."""
    action = Action("a", TIP, logged=orjson.Fragment(b'{"id":"a","features":"as kept"}'))
    assert decision_json((action,)) == '[{"id":"a","features":"as kept"}]'


def test_kept_actions_are_written_again_when_another_column_value_needs_the_stdlib() -> None:
    """Kept JSON is only orjson's to embed: when an action beside the kept ones holds what
    orjson refuses, every action of the column is written afresh by the stdlib, and reads back
    as it is."""
    actions = (Action.kept("a", TIP), Action("b", [{"big": {"n": 2**70}}]), Action.kept("c", []))
    expected = [{"id": a.id, "features": a.features} for a in actions]
    assert json.loads(decision_json(actions)) == expected
    assert json_text(actions) == json.dumps(expected)


def test_awkward_feature_values_are_logged_and_read_back_unchanged(store: Store) -> None:
    """Non-ASCII text and an integer beyond 64 bits in a decision's context and actions come
    back from either backend's write path as they went in."""
    logged = decision("awkward")
    context = [{"user": {"name": "Zoë ✓", "visits": 2**70, "ratio": 1 / 3}}]
    actions = (
        Action(id="é", features=[{"item": {"kind": "thé", "n": -(2**65)}}]),
        Action(id="b", features=[{"item": {"kind": "b"}}]),
    )
    made = replace(
        logged,
        context=context,
        actions=actions,
        example=tuple(adf_example(context, action_lines(actions))),
    )
    assert store.insert_decision(made) is True
    (read,) = store.get_many(["awkward"])
    assert read.decision == made
