"""The reward join and the learner, on both backends, driven step by step."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest

import bandit.learner
from bandit.bus import GROUP, STREAM, EventBus, RedisStreamBus, make_bus
from bandit.events import Action, Decision, utcnow
from bandit.features import action_lines, adf_example
from bandit.hub import ModelHub, learn_example
from bandit.learner import Learner
from bandit.model import LearnExample, Model
from bandit.sampling import sample_index
from bandit.settings import LearnerSettings
from bandit.store import Learnable, Learned, Store
from policies.registry import Registry
from tests.conftest import Backend

KEY = "personalizer:vw-epsilon"
WINDOW = timedelta(seconds=600)
ACTIONS = tuple(Action(f"a{i}", [{"item": {"id": f"a{i}"}}]) for i in range(3))


@dataclass
class Loop:
    store: Store
    registry: Registry
    bus: EventBus
    settings: LearnerSettings

    def learner(self, watchers: Sequence[bandit.learner.Watcher] = ()) -> Learner:
        hub = ModelHub(self.store, self.registry.args_for, replay=True)
        hub.get(KEY)
        return Learner(self.store, hub, self.bus, self.settings, watchers=watchers)

    def decide(
        self, event_id: str, *, ago: timedelta = timedelta(0), activated: bool = True
    ) -> Decision:
        created = utcnow() - ago
        pmf = (0.5, 0.25, 0.25)
        context = [{"user": {"mood": "low" if event_id[-1] in "02468" else "high"}}]
        decision = Decision(
            event_id=event_id,
            surface="personalizer",
            principal="p",
            context=context,
            actions=ACTIONS,
            pmf=pmf,
            chosen_index=sample_index(pmf, event_id),
            policy="vw-epsilon",
            model_key=KEY,
            model_version=0,
            created_at=created,
            activated_at=created if activated else None,
            example=tuple(adf_example(context, action_lines(ACTIONS))),
        )
        assert self.store.insert_decision(decision)
        return decision

    def reward(self, event_id: str, value: float, *, publish: bool = True) -> None:
        outcome = self.store.record_reward(event_id, value, reaction=None, window=WINDOW)
        assert outcome is not None
        if publish:
            self.bus.publish("reward", event_id)


@pytest.fixture
def loop(backend: Backend) -> Iterator[Loop]:
    store = Store.connect(backend.database_url)
    bus = make_bus(backend.redis_url)
    settings = LearnerSettings(reward_wait_seconds=600, sweep_grace_seconds=0)
    yield Loop(store, Registry(), bus, settings)
    bus.close()
    store.engine.dispose()


def drain(learner: Learner, until: Sequence[str] = (), *, max_steps: int = 1000) -> int:
    """Step the learner until it learns nothing more, and (when `until` names decisions) until
    each of them carries a learning mark; returns how many it learned.

    Stopping on state, not on a quiet read: a step under load may read before everything
    published is there. `max_steps` only bounds a learner that never gets there.
    """
    total = 0
    for _ in range(max_steps):
        learned = learner.step(block_ms=50)
        total += learned
        if not learned and all(_marked(learner.store, event_id) for event_id in until):
            return total
    raise AssertionError(f"not all of {list(until)} learned in {max_steps} steps")


def _marked(store: Store, event_id: str) -> bool:
    logged = store.get(event_id)
    return logged is not None and logged.learn_seq is not None


def test_first_reward_is_learned_and_repeats_change_nothing(loop: Loop) -> None:
    learner = loop.learner()
    loop.decide("e1")
    loop.reward("e1", 0.7)
    loop.reward("e1", -1.0)  # ignored: earliest aggregation
    drain(learner, ["e1"])
    logged = loop.store.get("e1")
    assert logged is not None
    assert logged.learned_reward == 0.7
    assert logged.reward == 0.7
    model = learner.hub.get(KEY)
    assert model is not None and model.version == 1


def test_window_closes_with_the_default_reward(loop: Loop) -> None:
    learner = loop.learner()
    loop.decide("old", ago=timedelta(minutes=11))
    loop.decide("fresh", ago=timedelta(minutes=1))
    assert learner.sweep() == 1
    old, fresh = loop.store.get("old"), loop.store.get("fresh")
    assert old is not None and old.learned_reward == 0.0
    assert fresh is not None and fresh.learn_seq is None


def test_a_deferred_decision_is_never_learned_until_activated(loop: Loop) -> None:
    learner = loop.learner()
    loop.decide("deferred", ago=timedelta(hours=2), activated=False)
    loop.reward("deferred", 1.0)
    drain(learner)
    learner.sweep()
    logged = loop.store.get("deferred")
    assert logged is not None and logged.learn_seq is None
    # Activation starts the window; the reward that was waiting is learned now.
    assert loop.store.activate("deferred")
    loop.bus.publish("activate", "deferred")
    drain(learner, ["deferred"])
    logged = loop.store.get("deferred")
    assert logged is not None and logged.learned_reward == 1.0


def test_a_late_reward_is_recorded_but_not_learned(loop: Loop) -> None:
    learner = loop.learner()
    loop.decide("late", ago=timedelta(minutes=30))
    outcome = loop.store.record_reward("late", 1.0, reaction="done", window=WINDOW)
    assert outcome is not None and outcome.late
    loop.bus.publish("reward", "late")
    drain(learner)
    learner.sweep()
    logged = loop.store.get("late")
    assert logged is not None
    assert logged.reward == 1.0 and logged.reward_late
    assert logged.learned_reward == 0.0  # the default, not the late reaction


def test_a_lost_bus_message_is_recovered_by_the_sweep(loop: Loop) -> None:
    learner = loop.learner()
    loop.decide("quiet")
    loop.reward("quiet", 0.5, publish=False)
    assert learner.sweep() == 1
    logged = loop.store.get("quiet")
    assert logged is not None and logged.learned_reward == 0.5


def test_the_loop_looks_for_lost_messages_at_its_own_cadence(loop: Loop) -> None:
    """Looking for lost messages reads every waiting decision, so the loop does it every
    `missed_seconds` (first at its first step), while windows close every `sweep_seconds`."""
    slow = LearnerSettings(
        reward_wait_seconds=600, sweep_grace_seconds=0, sweep_seconds=0.001, missed_seconds=3600
    )
    learner = replace(loop, settings=slow).learner()
    loop.decide("first")
    loop.reward("first", 0.5, publish=False)
    assert learner.step(block_ms=1) == 1  # the first step looks

    loop.decide("second")
    loop.reward("second", 0.25, publish=False)
    loop.decide("expired", ago=timedelta(minutes=11))
    time.sleep(0.002)
    assert learner.step(block_ms=1) == 1  # the window closed; the lost message waits
    second = loop.store.get("second")
    assert second is not None and second.learn_seq is None

    assert learner.recover_missed() == 1
    second = loop.store.get("second")
    assert second is not None and second.learned_reward == 0.25


def test_a_backlog_of_lost_messages_is_learned_in_one_look(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an outage, every reward whose message was lost is learned at the next look, not
    one page per `missed_seconds`."""
    monkeypatch.setattr(bandit.learner, "MISSED_PAGE", 2)
    learner = loop.learner()
    for i in range(5):
        loop.decide(f"lost{i}")
        loop.reward(f"lost{i}", 0.5, publish=False)

    assert learner.recover_missed() == 5
    assert learner.recover_missed() == 0


def test_restart_resumes_without_losing_or_double_learning(loop: Loop) -> None:
    first = loop.learner()
    for i in range(20):
        loop.decide(f"e{i}")
    for i in range(10):
        loop.reward(f"e{i}", float(i % 2))
    assert drain(first, [f"e{i}" for i in range(10)]) == 10
    assert first.publish_snapshots() == 1  # snapshot through 10 examples
    for i in range(10, 20):
        loop.reward(f"e{i}", float(i % 2))
    assert drain(first, [f"e{i}" for i in range(10, 20)]) == 10
    before = first.hub.get(KEY)
    assert before is not None and before.version == 20
    context = [{"user": {"mood": "low"}}]
    expected = before.predict(context, action_lines(ACTIONS))

    # The process dies here: no snapshot of the last 10. A new learner recovers from the log.
    second = loop.learner()
    after = second.hub.get(KEY)
    assert after is not None
    assert after.version == 20
    assert after.predict(context, action_lines(ACTIONS)) == pytest.approx(expected, abs=1e-6)
    # Every message is delivered again: nothing is learned twice. A new decision's reward,
    # published after them, is learned once they have all been read.
    for i in range(20):
        loop.bus.publish("reward", f"e{i}")
    loop.decide("e20")
    loop.reward("e20", 1.0)
    assert drain(second, ["e20"]) == 1
    assert after.version == 21
    seqs = [loop.store.get(f"e{i}").learn_seq for i in range(21)]  # type: ignore[union-attr]
    assert sorted(seqs) == list(range(1, 22))  # type: ignore[type-var]


def test_the_api_side_hub_picks_up_published_versions(loop: Loop) -> None:
    learner = loop.learner()
    serving = ModelHub(loop.store, loop.registry.args_for, replay=False)
    assert serving.get(KEY) is not None
    loop.decide("v1")
    loop.reward("v1", 1.0)
    drain(learner, ["v1"])
    learner.publish_snapshots()
    assert serving.refresh() == [KEY]
    model = serving.get(KEY)
    assert model is not None and model.version == 1


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_pending_stream_messages_survive_a_learner_crash(loop: Loop, backend: Backend) -> None:
    assert backend.redis_url is not None
    loop.decide("p1")
    loop.reward("p1", 1.0)
    crashed = RedisStreamBus(backend.redis_url)
    delivered = crashed.read("learner-1", 10, 100)
    assert [m.event_id for m in delivered] == ["p1"]  # delivered, never acknowledged
    crashed.close()
    learner = loop.learner()  # same consumer name: re-reads its pending messages first
    assert drain(learner, ["p1"]) == 1
    logged = loop.store.get("p1")
    assert logged is not None and logged.learned_reward == 1.0


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_dead_consumers_messages_are_claimed_at_the_first_read_even_just_after_boot(
    loop: Loop, backend: Backend
) -> None:
    assert backend.redis_url is not None
    loop.decide("p1")
    loop.reward("p1", 1.0)
    dead = RedisStreamBus(backend.redis_url)
    (message,) = dead.read("learner-dead", 10, 100)
    # As if that consumer died two minutes ago, past the default one-minute idle threshold.
    dead.client.xclaim(STREAM, GROUP, "learner-dead", 0, [message.id], idle=120_000)
    dead.close()
    booted = RedisStreamBus(backend.redis_url, clock=lambda: 5.0)  # five seconds of uptime
    try:
        assert [m.event_id for m in booted.read("learner-2", 10, 1)] == ["p1"]
    finally:
        booted.close()


# Long batches: chunks learned while the next chunk is read and the last one's marks committed.


def _rewarded(loop: Loop, n: int) -> list[str]:
    ids = [f"e{i}" for i in range(n)]
    for i, event_id in enumerate(ids):
        loop.decide(event_id)
        loop.reward(event_id, float(i % 3 == 0), publish=False)
    return ids


def _one_pass(loop: Loop, ids: list[str]) -> bytes:
    """The model that learns `ids`' decisions one after another, without a learner."""
    args = loop.registry.args_for(KEY)
    assert args is not None
    logged = {item.event_id: item for item in loop.store.learnables(ids)}
    model = Model(args)
    model.learn([learn_example(logged[i], logged[i].reward or 0.0) for i in ids])
    return model.serialize()[0]


def _marked_ids(loop: Loop, ids: list[str]) -> list[str]:
    return [event_id for event_id in ids if _marked(loop.store, event_id)]


@dataclass
class Recording:
    """A watcher of every example that counts what it saw, was told durable, or rolled back."""

    shown: list[int] = field(default_factory=list)  # the versions it saw, since the last call
    committed_count: int = 0
    rolled_back_count: int = 0

    def wants(self, item: Learnable) -> bool:
        return True

    def before_learning(self, model_key: str, model: Model, example: LearnExample) -> None:
        self.shown.append(model.version)

    def committed(self, at: datetime) -> None:
        self.committed_count += len(self.shown)
        self.shown = []

    def rolled_back(self) -> None:
        self.rolled_back_count += len(self.shown)
        self.shown = []


def test_a_long_batch_is_learned_in_chunks_as_in_one_pass(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bandit.learner, "PIPELINE_CHUNK", 4)
    ids = _rewarded(loop, 30)
    expected = _one_pass(loop, ids)
    learner = loop.learner()
    assert learner.learn_events([*ids, "e3", "e0"]) == 30  # a repeated id is one decision
    model = learner.hub.get(KEY)
    assert model is not None and model.version == 30
    assert model.serialize()[0] == expected
    seqs = [loop.store.get(event_id).learn_seq for event_id in ids]  # type: ignore[union-attr]
    assert seqs == list(range(1, 31))
    assert learner.learned == 30


@pytest.mark.parametrize("watched", [False, True])
def test_a_failed_commit_keeps_the_chunks_before_it_and_nothing_after(
    loop: Loop, monkeypatch: pytest.MonkeyPatch, watched: bool
) -> None:
    monkeypatch.setattr(bandit.learner, "PIPELINE_CHUNK", 4)
    ids = _rewarded(loop, 30)
    expected = _one_pass(loop, ids)
    watcher = Recording()
    learner = loop.learner([watcher] if watched else [])
    mark_learned = loop.store.mark_learned
    commits: list[int] = []

    def third_fails(marks: Sequence[Learned], at: datetime | None = None) -> None:
        commits.append(len(marks))
        if len(commits) == 3:
            raise ConnectionError("the database went away")
        mark_learned(marks, at=at)

    monkeypatch.setattr(loop.store, "mark_learned", third_fails)
    with pytest.raises(ConnectionError):
        learner.learn_events(ids)
    # The first two chunks are durable; the third failed, and no later chunk was marked.
    assert _marked_ids(loop, ids) == ids[:8]
    assert learner.seq == 8 and learner.learned == 8
    if watched:
        # Told durable exactly what was marked; the failed chunk's examples rolled back.
        assert (watcher.committed_count, watcher.rolled_back_count) == (8, 4)
    # The model is rebuilt from the log, and the retry learns the rest once, in order.
    assert learner.learn_events(ids) == 22
    model = learner.hub.get(KEY)
    assert model is not None and model.version == 30
    assert model.serialize()[0] == expected
    seqs = [loop.store.get(event_id).learn_seq for event_id in ids]  # type: ignore[union-attr]
    assert seqs == list(range(1, 31))
    if watched:
        assert (watcher.committed_count, watcher.rolled_back_count) == (30, 4)
