"""Personalizer's spelling of the loop's settings: ISO 8601 durations and camelCase field names.

`bandit.surface_config` names its fields as Python does (`reward_wait`, a `timedelta`); this
module is where they become `rewardWaitTime: "PT10M"` and back, errors included.
"""

from __future__ import annotations

import re
from datetime import timedelta

from bandit.surface_config import ConfigError

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)

WIRE_NAMES = {
    "reward_wait": "rewardWaitTime",
    "default_reward": "defaultReward",
    "reward_aggregation": "rewardAggregation",
    "exploration": "explorationPercentage",
    "log_retention_days": "logRetentionDays",
    "learning_mode": "learningMode",
}
"""The service configuration's name of each `bandit.surface_config.SurfaceConfig` field."""


class WireError(ValueError):
    """A configuration value refused; `target` names the field as the wire spells it."""

    def __init__(self, message: str, *, target: str) -> None:
        super().__init__(message)
        self.target = target


def parse_duration(text: str, target: str) -> timedelta:
    """An ISO 8601 duration of days, hours, minutes and seconds (`PT10M`, `P1DT2H`).

    Years, months and weeks are refused: their length is not fixed.
    """
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None:
        raise WireError(
            f"`{target}` must be an ISO 8601 duration such as PT10M or P1DT2H (got {text!r})",
            target=target,
        )
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    try:
        return timedelta(**parts)
    except OverflowError:
        raise WireError(
            f"`{target}` is too long a duration (got {text!r})", target=target
        ) from None


def format_duration(value: timedelta) -> str:
    """`timedelta(minutes=10)` -> `PT10M`; the shortest ISO 8601 spelling."""
    total = value.total_seconds()
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"{int(days)}D" if days else ""
    clock = ""
    if hours:
        clock += f"{int(hours)}H"
    if minutes:
        clock += f"{int(minutes)}M"
    if seconds or not (date or clock):
        clock += f"{seconds:g}S"
    return f"P{date}" + (f"T{clock}" if clock else "")


def _value(value: object) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, str):
        return repr(value)
    return str(value)


def from_config_error(exc: ConfigError) -> WireError:
    """The loop's refusal of a setting, as the service configuration names the field."""
    target = WIRE_NAMES.get(exc.target, exc.target)
    got = f" (got {_value(exc.got)})" if exc.has_value else ""
    return WireError(f"`{target}` {exc.problem}{got}", target=target)
