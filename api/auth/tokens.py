"""Short-lived access tokens for API and mobile clients: HS256 JWTs through joserfc.

Keys come from OO_TOKEN_KEYS newest first: the newest signs (its id goes in the `kid` header)
and every listed key verifies, so a key is rotated by putting a new one in front, waiting one
access-token lifetime, and dropping the old one.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from api.auth.config import TokenKey
from api.auth.principal import Role

AUDIENCE = "oo-api"
ALGORITHM = "HS256"
VERIFIED_KEPT = 10_000
"""How many verified tokens a process remembers (about 3 MB at most)."""


class InvalidToken(Exception):
    """The access token does not verify: signature, issuer, audience, expiry or shape."""


@dataclass(frozen=True)
class AccessClaims:
    subject: str
    roles: frozenset[Role]
    expires_at: int


class AccessTokens:
    def __init__(
        self,
        keys: Iterable[TokenKey],
        issuer: str,
        lifetime_seconds: int,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        keys = tuple(keys)
        if not keys:
            raise ValueError("`token_keys` must hold at least one key")
        self._signing = OctKey.import_key(keys[0].secret, {"kid": keys[0].kid})
        self._verifying = KeySet([OctKey.import_key(k.secret, {"kid": k.kid}) for k in keys])
        self.issuer = issuer
        self.lifetime = lifetime_seconds
        self._now = now
        self._verified: dict[str, AccessClaims] = {}
        self._verified_lock = threading.Lock()

    def issue(self, subject: str, roles: Iterable[Role]) -> str:
        now = int(self._now())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": secrets.token_urlsafe(12),
            "roles": sorted(role.value for role in roles),
        }
        return jwt.encode({"alg": ALGORITHM, "kid": self._signing.kid}, claims, self._signing)

    def verify(self, token: str) -> AccessClaims:
        """The claims of `token`, or InvalidToken.

        A client sends the same token with every request of its lifetime, so a token that
        verified is remembered (the newest `VERIFIED_KEPT`): a later use checks only what
        time can change, its expiry, exactly as the claims registry does (`exp <= now` is
        expired). Its signature, issuer and audience cannot change, and the keys are fixed
        for the process's life. A token that fails is never remembered.
        """
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at <= self._now():
                raise InvalidToken("ExpiredTokenError")
            return known
        claims = self._verify(token)
        with self._verified_lock:
            if len(self._verified) >= VERIFIED_KEPT:
                self._verified.pop(next(iter(self._verified)), None)  # the oldest
            self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            decoded = jwt.decode(token, self._verifying, algorithms=[ALGORITHM])
            registry = jwt.JWTClaimsRegistry(
                now=lambda: int(self._now()),
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": AUDIENCE},
                sub={"essential": True},
                exp={"essential": True},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken(type(exc).__name__) from None
        claims = decoded.claims
        roles = claims.get("roles", [])
        if not isinstance(claims["sub"], str) or not isinstance(roles, list):
            raise InvalidToken("claims")
        return AccessClaims(
            claims["sub"],
            frozenset(Role(r) for r in roles if r in {role.value for role in Role}),
            int(claims["exp"]),
        )
