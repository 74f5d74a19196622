"""OAuth 2.0 connections to providers (Todoist, Google Calendar) through authlib's client.

The flow: `StateStore.issue` makes a random single-use `state`, stores its hash bound to the
person and provider for ten minutes (in the database, so any api process can finish the flow),
and `OAuthProvider.authorization_url` sends the person to the provider with it. On the way back
`StateStore.consume` deletes the row (only one request can) and checks person, provider and
expiry; `OAuthProvider.exchange` trades the code for a token. `refresh` renews an expired access
token with its refresh token (Google; Todoist's tokens do not expire) and `revoke` invalidates
the token at the provider on disconnect.

Errors (`OAuthFailed`, `TokenRevoked`) carry the provider's error code at most: never the code,
the state, a token or the client secret.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import authlib.deprecate  # noqa: F401 - installs its "always" filter before ours below
import httpx
import sqlalchemy as sa
from authlib.integrations.base_client.errors import OAuthError

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 fork and warns when it runs on httpx, which it supports.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy.engine import Engine

from bandit.errors import DomainError
from bandit.events import utcnow
from integrations.oauth_tables import OAuthStateRow
from integrations.providers import ProviderUnavailable, TokenRevoked
from integrations.vault import ProviderToken

logger = logging.getLogger(__name__)

STATE_TTL = timedelta(minutes=10)
EXCHANGE_TIMEOUT_S = 10.0

states_table = OAuthStateRow.__table__  # type: ignore[attr-defined]


class OAuthFailed(DomainError):
    """The provider refused the code or answered something unreadable; safe to show."""

    def __init__(self, message: str, *, target: str = "code") -> None:
        super().__init__(message, target=target)


class StateRejected(DomainError):
    """The state is unknown, used, expired, or was issued to someone else or another provider.

    The reason stays in the exception (for logs and tests); the caller gets one answer for
    all of them, so a probe learns nothing about states it does not hold.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason, target="state")

    @property
    def message(self) -> str:
        return "`state` is not valid for this connection; start again from the connect link"


# -------------------------------------------------------------------------------------- state


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class StateStore:
    """Single-use OAuth states, shared by every api process through the database."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: timedelta = STATE_TTL,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.clock = clock

    def issue(self, principal: str, provider: str, *, code_verifier: str | None = None) -> str:
        state = secrets.token_urlsafe(32)
        now = self.clock()
        with self.engine.begin() as conn:
            # Abandoned flows are swept here, so the table holds at most ten minutes of them.
            conn.execute(states_table.delete().where(states_table.c.expires_at < now))
            conn.execute(
                states_table.insert().values(
                    state_hash=_hash(state),
                    principal=principal,
                    provider=provider,
                    expires_at=now + self.ttl,
                    code_verifier=code_verifier,
                )
            )
        return state

    def consume(self, state: str, principal: str, provider: str) -> str | None:
        """Spend `state` for this person and provider and return its PKCE verifier, if any;
        raise StateRejected otherwise.

        The row is deleted whatever the outcome: a state is tried once, so a replayed or
        leaked state is worthless even to the person it was issued to.
        """
        if not state or len(state) > 512:
            raise StateRejected("state is missing or malformed")
        digest = _hash(state)
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(states_table).where(states_table.c.state_hash == digest)
            ).first()
            if row is None:
                raise StateRejected("state is unknown or already used")
            deleted = conn.execute(
                states_table.delete().where(states_table.c.state_hash == digest)
            ).rowcount
        if deleted != 1:
            raise StateRejected("state is unknown or already used")
        if row.principal != principal or row.provider != provider:
            raise StateRejected("state was issued for another flow")
        if row.expires_at <= self.clock():
            raise StateRejected("state has expired")
        verifier: str | None = row.code_verifier
        return verifier

    def forget(self, principal: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(states_table.delete().where(states_table.c.principal == principal))


# ---------------------------------------------------------------------------------- providers


@dataclass(frozen=True, slots=True, repr=False)
class OAuthProvider:
    """One provider's OAuth client registration and endpoints. Its repr hides the secret."""

    name: str
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    revoke_url: str
    scope: str
    redirect_uri: str
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    revoke_style: str = "rfc7009"
    """``rfc7009``: form ``token=`` (Google); ``todoist``: JSON client id, secret and token."""
    pkce: bool = False
    """Send a PKCE S256 challenge (Google supports it; Todoist does not document it)."""
    transport: httpx.BaseTransport | None = None

    def __repr__(self) -> str:
        return f"OAuthProvider({self.name!r}, client_id={self.client_id!r}, client_secret='***')"

    def _client(self, timeout: float) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method="client_secret_post",
            revocation_endpoint_auth_method="client_secret_post",
            scope=self.scope,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256" if self.pkce else None,
            timeout=timeout,
            transport=self.transport,
            follow_redirects=False,
        )

    def new_code_verifier(self) -> str | None:
        """A fresh PKCE verifier when this provider uses PKCE (43-128 characters, RFC 7636)."""
        return secrets.token_urlsafe(48) if self.pkce else None

    def authorization_url(self, state: str, code_verifier: str | None = None) -> str:
        with self._client(EXCHANGE_TIMEOUT_S) as client:
            url, _ = client.create_authorization_url(
                self.authorize_url,
                state=state,
                code_verifier=code_verifier,
                **dict(self.authorize_params),
            )
        return str(url)

    def exchange(
        self,
        code: str,
        *,
        code_verifier: str | None = None,
        timeout: float = EXCHANGE_TIMEOUT_S,
    ) -> ProviderToken:
        """The token for an authorization code; OAuthFailed when the provider refuses it."""
        extra = {"code_verifier": code_verifier} if code_verifier else {}
        with self._client(timeout) as client:
            try:
                raw = client.fetch_token(
                    self.token_url, code=code, grant_type="authorization_code", **extra
                )
            except OAuthError as exc:
                raise OAuthFailed(f"{self.name} refused the authorization ({exc.error})") from None
            except httpx.HTTPStatusError as exc:
                raise OAuthFailed(
                    f"{self.name} answered {exc.response.status_code} to the token request"
                ) from None
            except (httpx.HTTPError, ValueError) as exc:
                raise OAuthFailed(
                    f"{self.name}'s token endpoint failed ({type(exc).__name__})"
                ) from None
        return self._token(raw, previous=None)

    def refresh(self, token: ProviderToken, *, timeout: float) -> ProviderToken:
        """A fresh access token. TokenRevoked when the refresh token no longer works."""
        if not token.refresh_token:
            raise TokenRevoked(f"{self.name} token expired and has no refresh token; reconnect")
        with self._client(timeout) as client:
            try:
                raw = client.refresh_token(self.token_url, refresh_token=token.refresh_token)
            except OAuthError as exc:
                if exc.error in ("invalid_grant", "unauthorized_client", "invalid_client"):
                    raise TokenRevoked(
                        f"{self.name} refused to refresh the token ({exc.error}); reconnect"
                    ) from None
                raise ProviderUnavailable(f"{self.name} refresh failed ({exc.error})") from None
            except httpx.TimeoutException:
                raise ProviderUnavailable(
                    f"{self.name} did not refresh the token within {timeout:g}s"
                ) from None
            except httpx.HTTPStatusError as exc:
                raise ProviderUnavailable(
                    f"{self.name} answered {exc.response.status_code} to the refresh"
                ) from None
            except (httpx.HTTPError, ValueError) as exc:
                raise ProviderUnavailable(
                    f"{self.name} refresh failed ({type(exc).__name__})"
                ) from None
        return self._token(raw, previous=token)

    def revoke(self, token: ProviderToken, *, timeout: float = EXCHANGE_TIMEOUT_S) -> bool:
        """Invalidate the token at the provider; False (logged) when that did not work.

        Disconnecting never depends on it: the token is deleted from the vault either way.
        """
        try:
            with self._client(timeout) as client:
                if self.revoke_style == "todoist":
                    response = client.request(
                        "POST",
                        self.revoke_url,
                        json={
                            "client_id": self.client_id,
                            "client_secret": self.client_secret,
                            "access_token": token.access_token,
                        },
                        withhold_token=True,
                    )
                else:
                    secret = token.refresh_token or token.access_token
                    response = client.revoke_token(self.revoke_url, token=secret)
        except httpx.HTTPError as exc:
            logger.warning("%s: revoking the token failed (%s)", self.name, type(exc).__name__)
            return False
        # 400 with invalid_token means it was already revoked, which is what we wanted.
        if response.status_code < 300 or response.status_code == 400:
            return True
        logger.warning("%s: revoking the token answered %d", self.name, response.status_code)
        return False

    def _token(self, raw: Mapping[str, Any], previous: ProviderToken | None) -> ProviderToken:
        access = raw.get("access_token")
        if not isinstance(access, str) or not access:
            raise OAuthFailed(f"{self.name}'s token answer has no `access_token`")
        expires_at = None
        expires_in = raw.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            expires_at = utcnow() + timedelta(seconds=float(expires_in))
        refresh = raw.get("refresh_token")
        scope = raw.get("scope")
        return ProviderToken(
            access_token=access,
            refresh_token=refresh
            if isinstance(refresh, str) and refresh
            else (previous.refresh_token if previous else None),
            token_type=str(raw.get("token_type") or "Bearer"),
            scope=scope if isinstance(scope, str) else (previous.scope if previous else None),
            expires_at=expires_at,
        )
