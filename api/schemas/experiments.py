"""Wire schemas of A/B experiments and their results."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.base import Strict, SurfaceName
from experiments.stats import ExperimentResults


class ArmIn(Strict):
    name: str
    policy: str = Field(
        description="A policy name (pinned to its latest version on create, e.g. `name@v2`) "
        "or a version id `name@vN`"
    )
    weight: int = Field(default=1, description="Relative traffic share; a positive integer")


class ExperimentBase(Strict):
    name: str = Field(description="The experiment's id: lowercase letters, digits, '.', '_', '-'")
    surface: SurfaceName
    description: str = Field(default="", max_length=500)


class ExperimentCreate(ExperimentBase):
    arms: list[ArmIn] = Field(description="The first arm is the control")
    salt: str | None = Field(default=None, description="Assignment salt; random when omitted")
    min_units_per_arm: int = Field(default=200, description="Units per arm before any verdict")
    min_decisions_per_arm: int = Field(
        default=1000, description="Decisions per arm before any verdict"
    )


class ExperimentUpdate(Strict):
    arms: list[ArmIn]


class ShipRequest(Strict):
    arm: str | None = Field(
        default=None, description="The arm to ship; by default the winner of the results"
    )


class ExperimentPublic(ExperimentBase):
    status: Literal["draft", "running", "paused", "stopped", "shipped"]
    arms: list[ArmIn]
    control: str
    salt: str
    primary_metric: Literal["mean_reward"] = "mean_reward"
    guardrails: list[str] = Field(default=["dismiss_rate", "tips_per_day"])
    min_units_per_arm: int
    min_decisions_per_arm: int
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    shipped_arm: str | None


class ArmModel(BaseModel):
    name: str
    policy: str
    model_key: str = Field(description="The model this arm learns, from its own traffic only")


class ExperimentResultsPublic(BaseModel):
    experiment: str
    status: str
    days: float = Field(description="Days since the start (to the stop), at least 1")
    arms: list[ArmModel]
    winner: str | None = Field(description="The arm `ship` picks when none is named")
    provisional: bool = Field(
        description="True while an arm is below `min_units_per_arm` or `min_decisions_per_arm`: "
        "lift, tests, intervals and guardrails are shown (each arm says whether its own are "
        "provisional) and every verdict waits for the floors"
    )
    min_units_per_arm: int
    min_decisions_per_arm: int
    results: ExperimentResults
