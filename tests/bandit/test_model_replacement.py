"""A model imported or reset by an api process while the learner runs in another process:
the learner rebuilds from it, learns nothing twice, and never republishes the old model."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bandit.hub import ModelHub
from bandit.learner import Learner
from bandit.model import Model
from bandit.surface_config import SurfaceConfig, SurfaceConfigs
from policies.registry import EPSILON_GREEDY_ARGS
from tests.bandit.test_learner import KEY, Loop, loop  # noqa: F401 - the shared fixture

DEFAULTS = SurfaceConfig(timedelta(seconds=600), 0.0)


def _configs(loop: Loop) -> SurfaceConfigs:  # noqa: F811 - the fixture's name
    return SurfaceConfigs(loop.store.engine, DEFAULTS, ttl=0.0)


def test_the_learner_rebuilds_from_a_model_replaced_elsewhere(loop: Loop) -> None:  # noqa: F811
    hub = ModelHub(loop.store, loop.registry.args_for, replay=True)
    hub.get(KEY)
    learner = Learner(loop.store, hub, loop.bus, loop.settings, configs=_configs(loop))
    for i in range(5):
        loop.decide(f"e{i}")
        loop.reward(f"e{i}", 1.0)
    learner.sweep()  # reads the generation (0) and learns the rewarded decisions
    assert hub.get(KEY).version == 5
    learner.publish_snapshots()

    # Another process (an api worker) resets the model.
    api_hub = ModelHub(loop.store, loop.registry.args_for, replay=False)
    fresh = Model(EPSILON_GREEDY_ARGS)
    data, _ = fresh.serialize()
    fresh.close()
    version = api_hub.install(KEY, EPSILON_GREEDY_ARGS, data, _configs(loop))
    assert version == 6
    assert api_hub.get(KEY).version == 6

    # The learner has not noticed yet and learns two more into the old model ...
    for i in range(5, 7):
        loop.decide(f"e{i}")
        loop.reward(f"e{i}", 1.0)
    assert learner.learn_events(["e5", "e6"]) == 2
    assert hub.get(KEY).version == 7
    # ... but it never publishes the old model: it rebuilds from the new one first, replaying
    # only the two decisions learned after it.
    assert learner.publish_snapshots(force=True) == 1
    snapshot = loop.store.latest_snapshot(KEY)
    assert snapshot is not None
    assert (snapshot.version, snapshot.through_seq) == (6 + 2, 7)
    assert hub.get(KEY).version == 8
    assert api_hub.refresh() == [KEY]
    assert api_hub.get(KEY).version == 8

    # A restarted learner agrees, and issues new marks after every old one.
    restarted_hub = ModelHub(loop.store, loop.registry.args_for, replay=True)
    assert restarted_hub.get(KEY).version == 8
    assert Learner(loop.store, restarted_hub, loop.bus, loop.settings).seq == 7


def test_logs_past_their_retention_are_pruned_unless_a_model_needs_them(
    loop: Loop,  # noqa: F811
) -> None:
    configs = _configs(loop)
    configs.put("personalizer", replace(DEFAULTS, log_retention_days=1))
    learner = Learner(loop.store, loop.learner().hub, loop.bus, loop.settings, configs=configs)
    loop.decide("old", ago=timedelta(days=3))
    loop.decide("recent")
    loop.reward("recent", 1.0)
    assert learner.sweep() == 2  # "old" with the default reward, its window long closed
    learner.publish_snapshots()

    loop.decide("old-unsnapshotted", ago=timedelta(days=2))
    assert learner.sweep() == 1
    assert learner.prune_logs() == 1
    assert loop.store.get("old") is None
    # Learned after the newest snapshot: a rebuilt model needs it, so it stays for now.
    assert loop.store.get("old-unsnapshotted") is not None
    assert loop.store.get("recent") is not None

    learner.publish_snapshots()
    assert learner.prune_logs() == 1
    assert loop.store.get("old-unsnapshotted") is None
    assert loop.store.get("recent") is not None
    rebuilt = ModelHub(loop.store, loop.registry.args_for, replay=True)
    assert rebuilt.get(KEY).version == 3
