"""The surface registry: a surface is data (its unit, starting settings, policy setting)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bandit.settings import LearnerSettings
from bandit.store import Store
from bandit.surface_config import SurfaceConfig, SurfaceConfigs
from bandit.surfaces import Surface, Surfaces
from experiments.lifecycle import ArmSpec, Experiments
from tests.schema import migrated

LEARNER = LearnerSettings(reward_wait_seconds=600, default_reward=0.0)
TIMING = Surface("timing", reward_wait=timedelta(hours=1), default_reward=-0.1, exploration=0.3)


def test_a_surface_starts_with_its_own_settings_or_the_learners() -> None:
    assert Surface("tips").settings(LEARNER) == SurfaceConfig(timedelta(minutes=10), 0.0)
    timing = TIMING.settings(LEARNER)
    assert (timing.reward_wait, timing.default_reward) == (timedelta(hours=1), -0.1)
    assert timing.exploration == 0.3
    timing.validate()


def test_its_policy_setting_follows_its_name() -> None:
    assert (TIMING.policy_setting, TIMING.policy_variable) == ("timing_policy", "OO_TIMING_POLICY")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Tips"}, "`name` must be 1-32 lowercase"),
        ({"name": "a:b"}, "`name` must be 1-32 lowercase"),
        ({"name": "x", "unit": "person"}, "`unit` must be one of"),
        ({"name": "x", "reward_wait": timedelta(seconds=1)}, "`reward_wait` must be between"),
        ({"name": "x", "default_reward": 2.0}, r"`default_reward` must be in \[-1, 1\]"),
        ({"name": "x", "exploration": -0.1}, r"`exploration` must be in \[0, 1\]"),
    ],
)
def test_a_registration_that_could_not_serve_is_refused(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Surface(**fields)  # type: ignore[arg-type]


def test_the_registry_keeps_order_and_refuses_twins() -> None:
    surfaces = Surfaces(Surface("tips"), Surface("personalizer", unit="event"), TIMING)
    assert list(surfaces) == ["tips", "personalizer", "timing"]
    assert surfaces["personalizer"].unit == "event"
    assert "timing" in surfaces and "nope" not in surfaces
    with pytest.raises(ValueError, match="'tips' is registered twice"):
        Surfaces(Surface("tips"), replace(TIMING, name="tips"))


def test_unconfigured_surfaces_run_with_their_registration(tmp_path: Path) -> None:
    store = Store.connect(migrated(f"sqlite:///{tmp_path / 'oo.sqlite3'}"), pool_size=2)
    surfaces = Surfaces(Surface("tips"), TIMING)
    fallback = SurfaceConfig(timedelta(minutes=10), 0.0)
    configs = SurfaceConfigs(store.engine, fallback, ttl=0.0, starting=surfaces.settings(LEARNER))
    assert configs.get("timing") == TIMING.settings(LEARNER)
    assert configs.get("tips") == fallback
    assert configs.get("gone") == fallback  # a surface no longer registered still reads

    # Configuring one setting keeps the registration's others.
    configs.put("timing", replace(configs.get("timing"), learning_mode="Apprentice"))
    stored = configs.configured()["timing"][0]
    assert (stored.reward_wait, stored.learning_mode) == (timedelta(hours=1), "Apprentice")
    store.engine.dispose()


def test_experiments_take_their_unit_from_the_surface(tmp_path: Path) -> None:
    store = Store.connect(migrated(f"sqlite:///{tmp_path / 'oo.sqlite3'}"), pool_size=2)
    surfaces = Surfaces(Surface("tips"), Surface("personalizer", unit="event"))
    experiments = Experiments(store.engine, surfaces, lambda policy: True)
    arms = [ArmSpec("control", "random", 1), ArmSpec("treatment", "vw-epsilon", 1)]
    assert experiments.create("a", "tips", arms).unit == "principal"
    assert experiments.create("b", "personalizer", arms).unit == "event"
    assert {e.name: e.unit for e in experiments.list()} == {"a": "principal", "b": "event"}
    # A stored surface no longer registered still reads, per principal.
    assert Experiments(store.engine, Surfaces(), lambda p: True).get("b").unit == "principal"
    store.engine.dispose()
