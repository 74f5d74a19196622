"""Surface settings: validation, storage, apprentice counters (the wire spelling of the same
settings is tested in tests/api/test_personalizer_wire.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bandit.apprentice import ApprenticeCounts
from bandit.events import utcnow
from bandit.store import Store
from bandit.surface_config import (
    DEFAULT_EXPLORATION,
    ConfigError,
    SurfaceConfig,
    SurfaceConfigs,
    table,
)
from tests.schema import migrated

DEFAULTS = SurfaceConfig(timedelta(minutes=10), 0.0)


def test_validation_names_the_field() -> None:
    DEFAULTS.validate()
    cases = {
        "reward_wait": replace(DEFAULTS, reward_wait=timedelta(seconds=4)),
        "default_reward": replace(DEFAULTS, default_reward=-1.5),
        "exploration": replace(DEFAULTS, exploration=1.01),
        "log_retention_days": replace(DEFAULTS, log_retention_days=-2),
    }
    for target, config in cases.items():
        with pytest.raises(ConfigError, match=f"`{target}`") as refused:
            config.validate()
        assert refused.value.target == target


def test_a_read_overlapping_a_write_does_not_cache_the_row_from_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The learner reads a configuration while an api thread switches the mode: the row read
    before the write must not be cached after the write emptied the cache."""
    store = Store.connect(migrated(f"sqlite:///{tmp_path / 'oo.sqlite3'}"), pool_size=2)
    configs = SurfaceConfigs(store.engine, DEFAULTS, ttl=3600.0)
    configs.put("personalizer", DEFAULTS)
    row = configs._row

    def row_then_write(surface: str) -> object:
        before = row(surface)
        configs.put(surface, replace(DEFAULTS, learning_mode="Apprentice"))
        return before

    monkeypatch.setattr(configs, "_row", row_then_write)
    assert configs.read("personalizer")[0].learning_mode == "Online"  # as it was when read
    monkeypatch.undo()
    assert configs.get("personalizer").learning_mode == "Apprentice"


def test_storage_generation_and_apprentice_counters(tmp_path: Path) -> None:
    store = Store.connect(migrated(f"sqlite:///{tmp_path / 'oo.sqlite3'}"), pool_size=2)
    configs = SurfaceConfigs(store.engine, DEFAULTS, ttl=0.0)
    assert configs.get("personalizer") == DEFAULTS
    assert configs.configured() == {}
    assert configs.apprentice("personalizer") is None

    stored = configs.put(
        "personalizer",
        replace(DEFAULTS, reward_aggregation="sum", learning_mode="Apprentice", exploration=0.3),
        extra={"policy_name": "mine"},
    )
    assert configs.get("personalizer") == stored
    assert configs.extra("personalizer") == {"policy_name": "mine"}
    assert configs.get("tips") == DEFAULTS  # other surfaces keep the defaults
    assert configs.configured() == {"personalizer": (stored, 0)}

    now = utcnow()
    configs.add_apprentice("personalizer", ApprenticeCounts(3, 2.0, 1, 1.0), now)
    configs.add_apprentice("personalizer", ApprenticeCounts(2, 1.0, 2, 1.0), now)
    metrics = configs.apprentice("personalizer")
    assert metrics is not None
    assert metrics.total == ApprenticeCounts(5, 3.0, 3, 2.0)
    assert metrics.total.match_rate == pytest.approx(0.6)
    assert metrics.last_batch == ApprenticeCounts(2, 1.0, 2, 1.0)

    # Re-entering apprentice mode restarts the metrics; staying in it does not.
    configs.put("personalizer", replace(stored, default_reward=0.5))
    assert configs.apprentice("personalizer").total.events == 5  # type: ignore[union-attr]
    configs.put("personalizer", replace(stored, learning_mode="Online"))
    configs.put("personalizer", replace(stored, learning_mode="Apprentice"))
    assert configs.apprentice("personalizer").total.events == 0  # type: ignore[union-attr]

    before = configs.lineage("personalizer")
    after = configs.new_model("personalizer")
    assert after.generation == before.generation + 1
    assert after.created_at >= before.created_at
    assert configs.generation("personalizer") == after.generation
    store.engine.dispose()


def test_a_new_surface_gets_the_default_exploration_and_a_stored_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    """ADR 0011: the default share applies where nothing is stored; a configuration stored
    before it (exploration null: the policy's own epsilon) or set since keeps its value."""
    store = Store.connect(migrated(f"sqlite:///{tmp_path / 'oo.sqlite3'}"))
    configs = SurfaceConfigs(store.engine, DEFAULTS, ttl=0.0)
    assert configs.get("tips").exploration == DEFAULT_EXPLORATION == 0.02

    now = utcnow()
    stored_before = {**DEFAULTS.as_json(), "exploration": None}
    with store.engine.begin() as conn:
        conn.execute(
            table.insert().values(
                surface="personalizer",
                config=stored_before,
                created_at=now,
                updated_at=now,
                model_generation=0,
                model_created_at=now,
                apprentice_last_batch={},
            )
        )
    assert configs.get("personalizer").exploration is None
    configs.put("personalizer", replace(DEFAULTS, exploration=0.2))
    assert configs.get("personalizer").exploration == 0.2
