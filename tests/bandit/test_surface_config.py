"""Surface configuration: ISO 8601 durations, validation, storage, apprentice counters."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bandit.events import utcnow
from bandit.store import Store
from bandit.surface_config import (
    DEFAULT_EXPLORATION,
    ApprenticeCounts,
    ConfigError,
    SurfaceConfig,
    SurfaceConfigs,
    format_duration,
    parse_duration,
    table,
)
from tests.schema import migrated

DEFAULTS = SurfaceConfig(timedelta(minutes=10), 0.0)


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("PT10M", 600, "PT10M"),
        ("pt5s", 5, "PT5S"),
        ("P1DT2H", 93600, "P1DT2H"),
        ("P2D", 172800, "P2D"),
        ("PT1.5S", 1.5, "PT1.5S"),
        ("PT0S", 0, "PT0S"),
    ],
)
def test_durations(text: str, seconds: float, canonical: str) -> None:
    value = parse_duration(text, "rewardWaitTime")
    assert value.total_seconds() == seconds
    assert format_duration(value) == canonical


@pytest.mark.parametrize("text", ["P1M", "P1Y", "PT", "P", "10 minutes", "PT-5S", "P1W"])
def test_durations_of_no_fixed_length_or_not_iso_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"`rewardWaitTime` must be an ISO 8601 duration"):
        parse_duration(text, "rewardWaitTime")
    with pytest.raises(ConfigError, match="too long"):
        parse_duration("P999999999999D", "rewardWaitTime")


def test_validation_names_the_field() -> None:
    DEFAULTS.validate()
    cases = {
        "rewardWaitTime": replace(DEFAULTS, reward_wait=timedelta(seconds=4)),
        "defaultReward": replace(DEFAULTS, default_reward=-1.5),
        "explorationPercentage": replace(DEFAULTS, exploration=1.01),
        "logRetentionDays": replace(DEFAULTS, log_retention_days=-2),
    }
    for target, config in cases.items():
        with pytest.raises(ConfigError, match=f"`{target}`") as refused:
            config.validate()
        assert refused.value.target == target


def test_storage_generation_and_apprentice_counters(tmp_path: Path) -> None:
    store = Store.connect(migrated(f"sqlite:///{tmp_path / 'oo.sqlite3'}"), pool_size=2)
    configs = SurfaceConfigs(store.engine, DEFAULTS, ttl=0.0)
    assert configs.get("personalizer") == DEFAULTS
    assert configs.configured() == {}
    assert configs.apprentice("personalizer") is None

    stored = configs.put(
        "personalizer",
        replace(DEFAULTS, reward_aggregation="sum", learning_mode="Apprentice", exploration=0.3),
    )
    assert configs.get("personalizer") == stored
    assert stored.edited_at is not None
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
