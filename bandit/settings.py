"""Settings of the decision loop (environment variables prefixed `OO_`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LearnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OO_", extra="ignore")

    reward_wait_seconds: float = Field(
        default=600.0, ge=1.0, le=2 * 86400, description="Reward window after activation"
    )
    default_reward: float = Field(default=0.0, ge=-1.0, le=1.0)
    sweep_seconds: float = Field(default=1.0, gt=0, description="How often expired windows close")
    missed_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often rewards whose bus message was lost are looked for (and learned)",
    )
    sweep_grace_seconds: float = Field(
        default=2.0, ge=0, description="Slack after a window closes before the default applies"
    )
    snapshot_seconds: float = Field(default=5.0, gt=0, description="How often models publish")
    batch_size: int = Field(default=2048, ge=1, le=10_000)
    consumer: str = Field(default="learner-1", description="Consumer name in the stream group")

    @property
    def reward_window(self) -> timedelta:
        return timedelta(seconds=self.reward_wait_seconds)
