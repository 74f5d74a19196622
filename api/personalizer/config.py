"""What the Personalizer API stores beside the loop's settings.

Personalizer's service configuration has fields that are not the learning loop's: they are
kept here rather than in `bandit.surface_config`, with the name the operator gave the policy and
the time of the last edit, in the surface's configuration row beside its settings
(`SurfaceConfigs.extra`), under the JSON keys they have always had. Each acts or is refused
(ADR 0015):

- `modelExportFrequency`, `isAutoOptimizationEnabled`, `autoOptimizationFrequency`,
  `autoOptimizationStartDate` drive the schedules (`api.personalizer.schedule`);
- `logMirrorEnabled`, `logMirrorSasUri` and `modelRetrainDays` ask for what oO does not do:
  a value other than off is refused with a 400 saying what oO does instead (`refusals`). A value
  stored before they were refused is reported at start-up (`inert`) and shown as off; it does
  not stop the process.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
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
        for refused in self.refusals():
            raise refused

    def refusals(self) -> list[WireError]:
        """The settings that ask for what oO does not do, each saying what it does instead."""
        refused = []
        if self.log_mirror_enabled:
            refused.append(
                WireError(
                    "`logMirrorEnabled` must be false: oO cannot mirror logs to Azure Blob "
                    "Storage; export them as DSJSON with GET /v1/logs/export (or `oo logs "
                    "export`) and copy the file where you need it",
                    target="logMirrorEnabled",
                )
            )
        if self.log_mirror_sas_uri:
            refused.append(
                WireError(
                    "`logMirrorSasUri` must be empty: oO reaches no Azure storage; export the "
                    "logs as DSJSON with GET /v1/logs/export (or `oo logs export`)",
                    target="logMirrorSasUri",
                )
            )
        if self.model_retrain_days:
            refused.append(
                WireError(
                    f"`modelRetrainDays` must be 0 (got {self.model_retrain_days}): oO learns "
                    "online from every joined event and never retrains from past logs; to "
                    "start over, reset the model (DELETE /model) or import one (PUT /model)",
                    target="modelRetrainDays",
                )
            )
        return refused

    def inert(self) -> list[str]:
        """What a stored configuration asks that oO does not do (stored before it was refused)."""
        return [f"stored {error}; oO shows it as off" for error in self.refusals()]

    def effective(self) -> PersonalizerConfig:
        """This configuration as oO acts on it: refused settings off."""
        return replace(
            self, log_mirror_enabled=False, log_mirror_sas_uri=None, model_retrain_days=0
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
