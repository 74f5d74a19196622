"""Pending OAuth authorizations: one row per `state` handed to a provider, until it returns.

Only a hash of the state is stored, so a database reader cannot complete someone's flow; the
PKCE verifier is useless without the authorization code, which never reaches the database.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from bandit.tables import UTCDateTime


class OAuthStateRow(SQLModel, table=True):
    __tablename__ = "oauth_states"

    state_hash: str = Field(primary_key=True, max_length=64)
    principal: str = Field(max_length=256)
    provider: str = Field(max_length=32)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    code_verifier: str | None = Field(default=None, max_length=128)
    """PKCE verifier of this flow (providers that support PKCE); never leaves the server."""
