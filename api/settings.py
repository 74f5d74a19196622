"""Service settings (environment variables prefixed `OO_`; `.env.local` is read when present)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rewards.mapping import DEFAULT_REWARDS, RewardMapping


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OO_", env_file=".env.local", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is a SQLite file under data_dir"
    )
    redis_url: str | None = Field(default=None, description="Redis for the event bus")
    role: Literal["all", "api"] = Field(
        default="all", description="all: api + learner in one process; api: serve only"
    )
    tips_policy: str = "vw-epsilon"
    personalizer_policy: str = "vw-epsilon"
    reaction_rewards: str = Field(
        default="", description='JSON object, e.g. {"done": 1, "useful": 1, "later": 0.25, ...}'
    )
    tip_cooldown_hours: float = Field(default=24.0, ge=0)
    max_candidates: int = Field(default=30, ge=2, le=50)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    model_refresh_seconds: float = Field(default=1.0, gt=0)
    personalizer_key: str | None = Field(
        default=None, description="When set, Personalizer calls must send it as the key header"
    )
    bench_endpoints: bool = Field(default=False, description="Expose /internal/bench/predict")
    web_dir: Path | None = None

    @field_validator("reaction_rewards")
    @classmethod
    def _mapping_parses(cls, value: str) -> str:
        if value:
            RewardMapping.from_json(value)
        return value

    @model_validator(mode="after")
    def _local_mode_is_loopback(self) -> Settings:
        # Local single-user mode has no sign-in: it must never be reachable from the network.
        if not _is_loopback(self.host):
            raise ValueError(
                f"`host` {self.host!r} is not a loopback address; local single-user mode "
                "(no sign-in configured) only binds to 127.0.0.1 or ::1"
            )
        return self

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'oo.sqlite3'}"

    @property
    def rewards(self) -> RewardMapping:
        if self.reaction_rewards:
            return RewardMapping.from_json(self.reaction_rewards)
        return RewardMapping(DEFAULT_REWARDS)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
