"""Service settings (environment variables prefixed `OO_`; `.env.local` is read when present)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from api.auth.config import ProviderConfig, TokenKey, parse_providers, parse_token_keys
from api.budget import Budget
from bandit.surfaces import Surface
from policies.registry import DEFAULT_POLICY, TIMING_POLICY
from rewards.mapping import DEFAULT_REWARDS, RewardMapping

ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?")
"""A browser origin as it sends it: scheme, host, optional port; lower case, no path."""


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
    # What each registered surface (`api.services.surfaces`) serves until a policy is shipped
    # to it: one `<surface>_policy` field per surface (`surface_policy`).
    # Why this default: docs/adr/0011-exploration-default-from-the-simulation-suite.md.
    tips_policy: str = DEFAULT_POLICY
    personalizer_policy: str = DEFAULT_POLICY
    timing_policy: str = TIMING_POLICY  # the timing simulation's choice (ADR 0014)
    reaction_rewards: str = Field(
        default="", description='JSON object, e.g. {"done": 1, "useful": 1, "later": 0.25, ...}'
    )
    tip_cooldown_hours: float = Field(default=24.0, ge=0)
    max_candidates: int = Field(default=30, ge=2, le=50)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_in_flight: int = Field(
        default=32,
        ge=1,
        description="Requests one process works on at once; past it, 503 + Retry-After",
    )
    # docs/operations.md ("Scaling the api") has what larger pools measured.
    database_pool_size: int = Field(
        default=10,
        ge=1,
        description="PostgreSQL connections one api process keeps once it has needed them; "
        "as many again open in bursts and close after",
    )
    # ADR 0025: a hung (not broken) connection must not hold the requests behind it.
    database_timeout_seconds: float = Field(
        default=5.0,
        ge=0.01,
        le=60,
        description="How long a request's statements may run on PostgreSQL (its reads, its "
        "decision, its reward, its activation) before the server cancels them and the request "
        "gets 503 + Retry-After; the learner's and evaluations' work is not bounded",
    )
    model_refresh_seconds: float = Field(default=1.0, gt=0)
    personalizer_key: str | None = Field(
        default=None, description="When set, Personalizer calls must send it as the key header"
    )
    # Personalizer settings that act (ADR 0015): policy optimization's search budget, the
    # schedules of auto-optimization and model export, and where exports go.
    personalizer_search_candidates: int = Field(
        default=16,
        ge=1,
        le=1000,
        description="Grid candidates a policy optimization replays at most "
        "(enablePolicyOptimization and auto-optimization)",
    )
    personalizer_search_seconds: float = Field(
        default=600.0, gt=0, le=86_400, description="Seconds a policy optimization searches at most"
    )
    schedule_seconds: float = Field(
        default=30.0, gt=0, description="How often a process checks the schedules that are due"
    )
    model_export_dir: Path | None = Field(
        default=None,
        description="Folder under data_dir where the Personalizer model is exported every "
        "modelExportFrequency; unset: no scheduled export",
    )
    model_export_keep: int = Field(
        default=48, ge=1, le=100_000, description="Model exports kept in model_export_dir, newest"
    )
    web_dir: Path | None = None
    # signals, profile and consent (issue 4)
    signal_retention_days: int = Field(
        default=90, ge=1, le=3650, description="Signals older than this are deleted"
    )
    signal_prune_seconds: float = Field(
        default=3600.0, gt=0, description="How often the learner prunes old signals"
    )

    # Hostile input and operations (issue 7): rate limits, CORS, security headers.
    rate_limit_default: str = Field(
        default="600/minute",
        description="Budget per signed-in principal on every limited route (`off`: none)",
    )
    rate_limit_signals: str = Field(
        default="30/minute",
        description="Budget per person for POST /v1/signals, spent on top of the default",
    )
    rate_limit_personalizer: str = Field(
        default="6000/minute", description="Budget per Personalizer subscription key"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port], comma-separated) allowed to call the API "
        "from a browser, with credentials; empty: same-origin only",
    )
    public_url: str | None = Field(
        default=None, description="Where people reach the service; https turns on HSTS"
    )

    @field_validator("rate_limit_default", "rate_limit_signals", "rate_limit_personalizer")
    @classmethod
    def _budget_parses(cls, value: str) -> str:
        Budget.parse(value)
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _exact_origins(cls, value: object) -> object:
        origins = value.split(",") if isinstance(value, str) else value
        if not isinstance(origins, list):
            return origins
        checked = []
        for origin in (str(o).strip() for o in origins):
            if not origin:
                continue
            if not ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"`cors_origins` holds exact origins like https://app.example.com "
                    f"(scheme, host, optional port; no path, no wildcard); got {origin!r}"
                )
            checked.append(origin)
        return checked

    # Sign-in (issue 4, api/auth): OpenID providers, sessions, access and refresh tokens, keys.
    oidc_providers: str = Field(
        default="",
        description='JSON: {"name": {"discovery_url", "client_id", "client_secret", "label"}}',
    )
    google_client_id: str | None = Field(default=None, description="The Google sign-in preset")
    google_client_secret: SecretStr | None = None
    token_keys: SecretStr | None = Field(
        default=None,
        description="Access-token keys `kid:base64secret`, comma-separated, newest first: "
        "the newest signs, all verify",
    )
    admin_emails: str = Field(
        default="", description="Comma-separated emails made admin when they sign in"
    )
    session_hours: float = Field(default=30 * 24, gt=0, description="Web session lifetime")
    access_token_minutes: float = Field(default=10, gt=0, le=60)
    refresh_token_days: float = Field(default=30, gt=0)

    @model_validator(mode="after")
    def _signin_parses(self) -> Settings:
        self.signin_providers  # noqa: B018 - parse now, so a bad value stops start-up
        self.signin_token_keys  # noqa: B018
        return self

    @property
    def signin_providers(self) -> dict[str, ProviderConfig]:
        secret = self.google_client_secret
        return parse_providers(
            self.oidc_providers,
            self.google_client_id,
            secret.get_secret_value() if secret is not None else None,
        )

    @property
    def signin_token_keys(self) -> tuple[TokenKey, ...]:
        keys = self.token_keys
        return parse_token_keys(keys.get_secret_value()) if keys is not None else ()

    @field_validator("reaction_rewards")
    @classmethod
    def _mapping_parses(cls, value: str) -> str:
        if value:
            RewardMapping.from_json(value)
        return value

    @model_validator(mode="after")
    def _local_mode_is_loopback(self) -> Settings:
        if self.signin_providers:
            # Sign-in mode may face the network; it needs its token keys and public URL.
            if not self.signin_token_keys:
                raise ValueError(
                    "`token_keys` must be set when a sign-in provider is configured "
                    "(OO_TOKEN_KEYS=kid:base64secret, 32 bytes or more)"
                )
            if not self.public_url:
                raise ValueError(
                    "`public_url` must be set when a sign-in provider is configured; "
                    "the providers redirect back to it"
                )
            if not self.public_url.startswith(("https://", "http://")):
                raise ValueError(f"`public_url` must start with https:// (got {self.public_url!r})")
            return self
        # Local single-user mode has no sign-in: it must never be reachable from the network.
        if not _is_loopback(self.host):
            raise ValueError(
                f"`host` {self.host!r} is not a loopback address; local single-user mode "
                "(no sign-in configured) only binds to 127.0.0.1 or ::1"
            )
        return self

    def surface_policy(self, surface: Surface) -> str:
        """The policy `OO_<SURFACE>_POLICY` names for `surface`.

        Raises
        ------
        ValueError
            When no field holds it: registering a surface means adding its setting here.
        """
        value = getattr(self, surface.policy_setting, None)
        if not isinstance(value, str):
            raise ValueError(
                f"surface {surface.name!r} has no policy setting: add `{surface.policy_setting}` "
                f"({surface.policy_variable}) to api.settings.Settings"
            )
        return value

    @model_validator(mode="after")
    def _export_dir_under_data_dir(self) -> Settings:
        folder = self.model_export_dir
        if folder is None:
            return self
        # An allow-list of one place: nothing the API is sent names a path outside it.
        resolved = (folder if folder.is_absolute() else self.data_dir / folder).resolve()
        if not resolved.is_relative_to(self.data_dir.resolve()):
            raise ValueError(
                f"`model_export_dir` must be a folder under `data_dir` ({self.data_dir}); "
                f"got {folder} (OO_MODEL_EXPORT_DIR)"
            )
        self.model_export_dir = resolved
        return self

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'oo.sqlite3'}"

    @property
    def rewards(self) -> RewardMapping:
        if self.reaction_rewards:
            return RewardMapping.from_json(self.reaction_rewards)
        return RewardMapping(DEFAULT_REWARDS)

    # People's integrations (issue 4, integrations/connections.py): Todoist, Google Calendar.
    provider_deadline_ms: int = Field(
        default=300, ge=10, le=10_000, description="How long a recommend waits for providers"
    )
    vault_keys: SecretStr | None = Field(
        default=None,
        description="Token-vault keys `kid:base64key`, newest first; without it the embedded "
        "SQLite default keeps a generated key in vault.keys beside the database",
    )
    todoist_client_id: str | None = None
    todoist_client_secret: SecretStr | None = None
    todoist_authorize_url: str = "https://todoist.com/oauth/authorize"
    todoist_token_url: str = "https://todoist.com/oauth/access_token"
    todoist_revoke_url: str = "https://api.todoist.com/api/v1/access_tokens/revoke"
    todoist_api_url: str = "https://api.todoist.com/api/v1"
    google_calendar_client_id: str | None = None
    google_calendar_client_secret: SecretStr | None = None
    google_calendar_authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_calendar_token_url: str = "https://oauth2.googleapis.com/token"
    google_calendar_revoke_url: str = "https://oauth2.googleapis.com/revoke"
    google_calendar_api_url: str = "https://www.googleapis.com/calendar/v3"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
