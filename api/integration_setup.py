"""Builds the people's-integrations service (`integrations.connections`) from the settings."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import Engine

from api.settings import Settings
from integrations import calendar, todoist
from integrations.calendar import CalendarClient
from integrations.connections import Integrations
from integrations.oauth import OAuthProvider
from integrations.todoist import TodoistClient
from integrations.vault import ENV_VAR, Vault, VaultConfigError

INTEGRATIONS_PREFIX = "/v1/integrations/"
CALLBACK = INTEGRATIONS_PREFIX + "{provider}/callback"
REDACTED_PREFIXES = (INTEGRATIONS_PREFIX, "/auth/callback/")
"""Routes whose query strings are never logged: OAuth callbacks carry codes and states."""


def make_integrations(settings: Settings, engine: Engine) -> Integrations:
    base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    registrations = {
        todoist.PROVIDER: (
            settings.todoist_client_id,
            settings.todoist_client_secret,
            "OO_TODOIST_CLIENT_ID and OO_TODOIST_CLIENT_SECRET",
        ),
        calendar.PROVIDER: (
            settings.google_calendar_client_id,
            settings.google_calendar_client_secret,
            "OO_GOOGLE_CALENDAR_CLIENT_ID and OO_GOOGLE_CALENDAR_CLIENT_SECRET",
        ),
    }
    providers: dict[str, OAuthProvider] = {}
    missing: dict[str, str] = {}
    for name, (client_id, secret, needed) in registrations.items():
        if not client_id or secret is None or not secret.get_secret_value():
            missing[name] = needed
            continue
        redirect_uri = base + CALLBACK.format(provider=name)
        if name == todoist.PROVIDER:
            providers[name] = OAuthProvider(
                name=name,
                client_id=client_id,
                client_secret=secret.get_secret_value(),
                authorize_url=settings.todoist_authorize_url,
                token_url=settings.todoist_token_url,
                revoke_url=settings.todoist_revoke_url,
                scope="data:read",
                redirect_uri=redirect_uri,
                revoke_style="todoist",
            )
        else:
            providers[name] = OAuthProvider(
                name=name,
                client_id=client_id,
                client_secret=secret.get_secret_value(),
                authorize_url=settings.google_calendar_authorize_url,
                token_url=settings.google_calendar_token_url,
                revoke_url=settings.google_calendar_revoke_url,
                scope=calendar.SCOPE,
                redirect_uri=redirect_uri,
                # A refresh token comes only with offline access, and again only on consent.
                authorize_params={"access_type": "offline", "prompt": "consent"},
                pkce=True,
            )
    return Integrations(
        engine,
        providers=providers,
        missing_settings=missing,
        vault_factory=lambda: open_vault(settings),
        todoist_client=TodoistClient(base_url=settings.todoist_api_url),
        calendar_client=CalendarClient(base_url=settings.google_calendar_api_url),
        deadline_s=settings.provider_deadline_ms / 1000,
    )


def open_vault(settings: Settings) -> Vault:
    """The vault's keys: OO_VAULT_KEYS, or on the embedded SQLite default a local key file.

    The file (`vault.keys` beside the SQLite database, mode 0600) is generated on first use.
    PostgreSQL deployments must set OO_VAULT_KEYS: a key invented on one api worker would not
    open tokens sealed on another.
    """
    keys = settings.vault_keys
    if keys is not None and keys.get_secret_value().strip():
        return Vault.from_env({ENV_VAR: keys.get_secret_value()})
    folder = local_folder(settings)
    if folder is not None:
        return Vault.from_env({}, local_key_file=folder / "vault.keys")
    raise VaultConfigError(
        f"{ENV_VAR} is not set: connecting an integration on PostgreSQL needs a vault key "
        "(generate one with `oo vault new-key`)"
    )


def local_folder(settings: Settings) -> Path | None:
    """The folder of the embedded SQLite database, where generated keys live beside it (the
    vault's, the VAPID key); None on PostgreSQL, where every process must share set keys."""
    url = settings.database
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///")).parent
    return None


class RedactOAuthQuery(logging.Filter):
    """Keeps OAuth codes and states out of access logs: the callback's query is dropped.

    uvicorn's access log line carries the full path with its query string; on the integration
    and sign-in callbacks that query holds a one-time authorization code and state.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2]
            if path.startswith(REDACTED_PREFIXES) and "?" in path:
                record.args = (*args[:2], path.split("?", 1)[0] + "?<redacted>", *args[3:])
        return True


def redact_access_log() -> None:
    """Install `RedactOAuthQuery` on uvicorn's access logger (once per process)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactOAuthQuery) for f in access.filters):
        access.addFilter(RedactOAuthQuery())
