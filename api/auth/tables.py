"""Tables of sign-in: people, their provider identities, web sessions, refresh tokens, API keys.

No credential is stored in the clear: sessions, refresh tokens and API key secrets are kept as
SHA-256 digests of high-entropy random values (a digest of 32 random bytes cannot be reversed or
guessed, so no slow password hash is needed).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bandit.tables import UTCDateTime


class PersonRow(SQLModel, table=True):
    __tablename__ = "auth_people"

    id: str = Field(primary_key=True, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=256)
    roles: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    disabled: bool = False
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class IdentityRow(SQLModel, table=True):
    """A person as one provider knows them: the OpenID (issuer, subject) pair."""

    __tablename__ = "auth_identities"
    __table_args__ = (sa.Index("ix_auth_identities_person", "person_id"),)

    issuer: str = Field(primary_key=True, max_length=512)
    subject: str = Field(primary_key=True, max_length=255)
    person_id: str = Field(max_length=64)
    provider: str = Field(max_length=32)
    created_at: datetime = Field(sa_type=UTCDateTime)


class SessionRow(SQLModel, table=True):
    __tablename__ = "auth_sessions"
    __table_args__ = (sa.Index("ix_auth_sessions_person", "person_id"),)

    token_hash: str = Field(primary_key=True, max_length=64)
    person_id: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RefreshTokenRow(SQLModel, table=True):
    """One refresh token of a family; every use retires it and issues the next one."""

    __tablename__ = "auth_refresh_tokens"
    __table_args__ = (
        sa.Index("ix_auth_refresh_tokens_family", "family_id"),
        sa.Index("ix_auth_refresh_tokens_person", "person_id"),
    )

    token_hash: str = Field(primary_key=True, max_length=64)
    family_id: str = Field(max_length=64)
    person_id: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "auth_api_keys"

    key_id: str = Field(primary_key=True, max_length=32)
    secret_hash: str = Field(max_length=64)
    name: str = Field(max_length=128)
    roles: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
