"""Principals and roles.

A principal is whoever a request speaks for: a signed-in person, an API key (a service account
such as a Personalizer integrator or an analyst's script), or — in local single-user mode — the
one person who owns the machine. Roles grant surfaces, never data: a person sees only their own
decisions whatever their roles; `experimenter` opens the experiment endpoints, `analyst` the
logs and evaluations, and `admin` everything including keys and the Personalizer administration
surface. A key holds the roles it was created with, and is never a person (ADR 0008).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from starlette.requests import HTTPConnection

KEY_HEADER = "Ocp-Apim-Subscription-Key"
"""Where Personalizer's SDKs send their key; oO's API keys may travel in it on every route."""


class Role(StrEnum):
    PERSON = "person"
    EXPERIMENTER = "experimenter"
    ANALYST = "analyst"
    ADMIN = "admin"


ALL_ROLES = frozenset(Role)

PrincipalKind = Literal["local", "person", "key"]


@dataclass(frozen=True)
class Principal:
    """`id` is the person id (or `key:<key id>`); decisions are owned by it."""

    id: str
    kind: PrincipalKind
    roles: frozenset[Role] = field(default_factory=frozenset)

    def has(self, role: Role) -> bool:
        return role in self.roles or Role.ADMIN in self.roles

    @property
    def is_person(self) -> bool:
        return self.kind in ("local", "person")


LOCAL_PERSON = "local"
LOCAL = Principal(LOCAL_PERSON, "local", ALL_ROLES)


class Authenticator(Protocol):
    """Turns a request's credentials into a principal.

    `authenticate` (a person's credentials, or an API key) returns None when the request carries
    no credentials at all and raises `api.errors.Unauthorized` when it carries credentials that
    do not hold (expired, tampered, revoked, disabled) — the message never says whether a given
    person or key exists.
    `authenticate_key` checks a Personalizer-style subscription key header value.

    With `memory_only=True` either answers from what the process holds (a cached key or
    person, a verified token) or raises `NeedsLookup` where it would query the database: the
    event loop asks that way first and sends only a miss to a worker thread.
    """

    @property
    def local(self) -> bool: ...

    def authenticate(
        self, request: HTTPConnection, *, memory_only: bool = False
    ) -> Principal | None: ...

    def authenticate_key(
        self, key: str | None, *, memory_only: bool = False
    ) -> Principal | None: ...


class NeedsLookup(Exception):
    """Raised by a `memory_only` authentication that cannot answer without the database."""


class LocalAuthenticator:
    """Local single-user mode: no sign-in; the server only binds to loopback (see Settings).

    Every request is the machine's owner, with every role. Personalizer calls need the static
    `OO_PERSONALIZER_KEY` when one is set, and nothing otherwise.
    """

    local = True

    def __init__(self, static_key: str | None = None) -> None:
        self._static_key = static_key or None  # an empty key is no key, never a match for ""

    def authenticate(
        self, request: HTTPConnection, *, memory_only: bool = False
    ) -> Principal | None:
        return LOCAL

    def authenticate_key(self, key: str | None, *, memory_only: bool = False) -> Principal | None:
        if self._static_key is None:
            return LOCAL
        if key is not None and _same(key, self._static_key):
            return LOCAL
        return None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
