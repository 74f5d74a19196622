"""Personalizer's spelling of the surface settings: ISO 8601 durations, camelCase field names."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from api.personalizer.wire import WireError, format_duration, from_config_error, parse_duration
from bandit.surface_config import ConfigError, SurfaceConfig

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
    with pytest.raises(WireError, match=r"`rewardWaitTime` must be an ISO 8601 duration"):
        parse_duration(text, "rewardWaitTime")
    with pytest.raises(WireError, match="too long"):
        parse_duration("P999999999999D", "rewardWaitTime")


def test_validation_names_the_field_as_the_wire_does() -> None:
    cases = {
        "rewardWaitTime": replace(DEFAULTS, reward_wait=timedelta(seconds=4)),
        "defaultReward": replace(DEFAULTS, default_reward=-1.5),
        "explorationPercentage": replace(DEFAULTS, exploration=1.01),
        "logRetentionDays": replace(DEFAULTS, log_retention_days=-2),
    }
    for target, config in cases.items():
        with pytest.raises(ConfigError) as refused:
            config.validate()
        wire = from_config_error(refused.value)
        assert wire.target == target
        assert f"`{target}`" in str(wire)
    with pytest.raises(ConfigError) as refused:
        replace(DEFAULTS, reward_wait=timedelta(seconds=4)).validate()
    assert str(from_config_error(refused.value)) == (
        "`rewardWaitTime` must be between 5 seconds and 2 days (got PT4S)"
    )
