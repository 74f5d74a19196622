"""Settings of Web Push delivery (environment variables prefixed `OO_`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from integrations.timing import PUSH_COST
from notifier.endpoints import ListedHost, PushServices, parse_listed
from notifier.vapid import VapidConfigError, VapidKey, check_subject


class PushSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OO_", env_file=".env.local", extra="ignore")

    vapid_private_key: SecretStr | None = Field(
        default=None,
        description="The deployment's VAPID private key (base64url, 32 bytes; `oo push "
        "new-keys`). Without it only the embedded default pushes, with a generated vapid.key",
    )
    vapid_subject: str | None = Field(
        default=None, description="How push services reach the operator: mailto: or https:"
    )
    push_service_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Push services besides the known four, `host` or `host:port`, "
        "comma-separated; a listed loopback host may use http",
    )
    push_poll_seconds: float = Field(
        default=2.0, gt=0, le=60, description="How often the notifier looks for due pushes"
    )
    push_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="How long one POST to a push service may take"
    )
    push_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long a push being sent is held by its sender; a push held past it "
        "by a sender that died is sent again",
    )
    push_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Sends of one push before it is given up"
    )
    push_ttl_seconds: int = Field(
        default=3600,
        ge=0,
        le=28 * 86400,
        description="How long a push service keeps a tip for a device that is offline",
    )

    timing_poll_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="How often the notifier looks for people whose decision point has come",
    )
    timing_push_cost: float = Field(
        default=PUSH_COST,
        ge=0,
        le=1,
        description="What a push costs its timing decision's reward: how much better than "
        "waiting a moment must look before a tip is pushed (ADR 0014)",
    )

    @field_validator("vapid_private_key", "vapid_subject", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # A Kubernetes Secret or compose file passes unset optional values as empty strings.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("push_service_hosts", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return value.split(",") if isinstance(value, str) else value

    @field_validator("push_service_hosts")
    @classmethod
    def _hosts_parse(cls, value: list[str]) -> list[str]:
        parse_listed(value)
        return [entry.strip() for entry in value if entry.strip()]

    @field_validator("vapid_subject")
    @classmethod
    def _subject_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_subject(value)
            except VapidConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _key_parses(self) -> PushSettings:
        if self.vapid_private_key is not None:
            if not self.vapid_subject:
                raise ValueError("`vapid_subject` must be set with `vapid_private_key`")
            try:
                VapidKey.from_private(
                    self.vapid_private_key.get_secret_value(),
                    self.vapid_subject,
                    source="`vapid_private_key`",
                )
            except VapidConfigError as exc:
                raise ValueError(str(exc)) from None
        if self.push_lease_seconds <= self.push_timeout_seconds:
            raise ValueError(
                f"`push_lease_seconds` ({self.push_lease_seconds:g}) must exceed "
                f"`push_timeout_seconds` ({self.push_timeout_seconds:g}): a push still being "
                "sent must not look abandoned"
            )
        return self

    @property
    def listed_hosts(self) -> tuple[ListedHost, ...]:
        return parse_listed(self.push_service_hosts)

    @property
    def services(self) -> PushServices:
        return PushServices(self.listed_hosts)

    @property
    def private_key(self) -> str | None:
        key = self.vapid_private_key
        return key.get_secret_value() if key is not None else None
