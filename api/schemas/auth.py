"""Wire schemas of sign-in, tokens and API keys (`api/auth`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from api.schemas.base import NoNul, Strict


class SignInProvider(BaseModel):
    name: str
    label: str
    login_url: str = Field(description="Open this in the browser to sign in with the provider")


class SignInProviders(BaseModel):
    local: bool = Field(description="True in local single-user mode: nobody needs to sign in")
    providers: list[SignInProvider]


class TokenRequest(Strict):
    grant_type: Literal["refresh_token", "session"] = Field(
        description="`session`: trade the web session cookie for a first token pair; "
        "`refresh_token`: rotate a refresh token"
    )
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256), NoNul] | None = (
        None
    )


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str = Field(description="Single use: each refresh returns the next one")


class TokenRevoke(Strict):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256), NoNul]


RoleName = Literal["person", "experimenter", "analyst", "admin"]


class ApiKeyCreate(Strict):
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), NoNul
    ]
    roles: list[RoleName] = Field(
        default_factory=list, max_length=4, description="`admin` may administer the service"
    )


class ApiKeyPublic(BaseModel):
    key_id: str
    name: str
    roles: list[RoleName]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="`oo_<key id>_<secret>`: shown only in this answer")
