"""What the Personalizer API stores beside the loop's settings.

Personalizer's service configuration has fields the loop does not act on yet
(`modelExportFrequency`, `logMirror*`, `isAutoOptimizationEnabled`, `autoOptimizationFrequency`,
`autoOptimizationStartDate`, `modelRetrainDays`): they are accepted, validated and echoed, and
kept here rather than in `bandit.surface_config`, with the name the operator gave the policy and
the time of the last edit. They are stored in the surface's configuration row, beside its
settings (`SurfaceConfigs.extra`), under the JSON keys they have always had.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from api.personalizer.wire import WireError


@dataclass(frozen=True, slots=True)
class PersonalizerConfig:
    model_export_frequency: timedelta = timedelta(minutes=5)
    log_mirror_enabled: bool = False
    log_mirror_sas_uri: str | None = None
    auto_optimization_enabled: bool = False
    auto_optimization_frequency: timedelta = timedelta(days=7)
    auto_optimization_start: datetime | None = None
    model_retrain_days: int = 0
    policy_name: str | None = None
    """The name the operator gave the policy (Personalizer's `{name, arguments}`)."""
    edited_at: datetime | None = None

    def validate(self) -> None:
        """Refuse what Personalizer refuses; the error names the field as the wire spells it."""
        if self.model_export_frequency <= timedelta(0):
            raise WireError(
                "`modelExportFrequency` must be a positive duration", target="modelExportFrequency"
            )
        if self.auto_optimization_frequency <= timedelta(0):
            raise WireError(
                "`autoOptimizationFrequency` must be a positive duration",
                target="autoOptimizationFrequency",
            )
        if self.model_retrain_days < 0:
            raise WireError(
                f"`modelRetrainDays` must be 0 or more (got {self.model_retrain_days})",
                target="modelRetrainDays",
            )

    def as_json(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, timedelta):
                value = value.total_seconds()
            elif isinstance(value, datetime):
                value = value.isoformat()
            values[f.name] = value
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> PersonalizerConfig:
        defaults = cls()
        out: dict[str, Any] = {}
        for f in fields(cls):
            default = getattr(defaults, f.name)
            value = values.get(f.name, default)
            if isinstance(default, timedelta) and not isinstance(value, timedelta):
                value = timedelta(seconds=float(value))
            elif f.name in ("auto_optimization_start", "edited_at") and isinstance(value, str):
                value = datetime.fromisoformat(value)
            out[f.name] = value
        return cls(**out)
