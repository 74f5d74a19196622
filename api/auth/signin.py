"""Sign-in mode: people sign in with an OpenID provider; keys speak for integrators.

Three credentials, checked in this order on every request to a person's or role's endpoint:

- `Authorization: Bearer <access token>`: an HS256 JWT (see `api.auth.tokens`) for API and
  mobile clients. It is short-lived; the person's disabled flag and roles are re-read (through a
  cache of a few seconds) so disabling someone locks them out at once. An API key
  (`Authorization: Bearer oo_…`, or the Personalizer key header) speaks for a script within the
  key's roles: an analyst's export, an experimenter's automation. It is never a person
  (ADR 0008).
- the `oo_session` cookie of the web page: an opaque random token, stored hashed with its expiry
  and revocation. Unsafe methods must echo the `oo_csrf` cookie in `X-CSRF-Token` (double
  submit; the CSRF token is derived from the session token, so another site cannot plant one).
- the Personalizer key header: `oo_<key id>_<secret>` API keys, or OO_PERSONALIZER_KEY as a
  static admin key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import warnings
from collections.abc import Callable
from datetime import timedelta

import authlib.deprecate  # noqa: F401 - installs its "always" filter before ours below

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 fork and warns when it runs on httpx, which it supports.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from starlette.requests import HTTPConnection
from starlette.responses import Response

from api.auth.config import ProviderConfig, parse_emails
from api.auth.principal import KEY_HEADER, NeedsLookup, Principal, Role
from api.auth.store import KEY_PREFIX, AuthStore, Person
from api.auth.tokens import AccessTokens, InvalidToken
from api.errors import Forbidden, NotFound, Unauthorized
from api.settings import Settings

SESSION_COOKIE = "oo_session"
CSRF_COOKIE = "oo_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCOPES = "openid email profile"
PERSON_CACHE_SECONDS = 5.0
KEY_CACHE_SECONDS = 5.0
"""A checked API key is trusted this long without a database read (the key check was the
largest cost of a Personalizer call under load). Revoking through this process takes effect at
once; other processes follow within these seconds, as for disabled people."""
"""How long a bearer request may rely on a read of the person's disabled flag and roles (in
other processes than the one that changed them; this process forgets at once)."""

STATIC_KEY = Principal("key:static", "key", frozenset({Role.ADMIN}))


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: readable by the page, useless without the session."""
    raw = hashlib.sha256(b"oo-csrf\x00" + session_token.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SignInAuthenticator:
    local = False

    def __init__(
        self,
        settings: Settings,
        store: AuthStore,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.public_url:
            raise ValueError("`public_url` must be set in sign-in mode")
        self.store = store
        self.public_url = settings.public_url.rstrip("/")
        self.secure_cookies = self.public_url.startswith("https://")
        self.providers: dict[str, ProviderConfig] = settings.signin_providers
        self.tokens = AccessTokens(
            settings.signin_token_keys,
            issuer=self.public_url,
            lifetime_seconds=round(settings.access_token_minutes * 60),
        )
        self.session_lifetime = timedelta(hours=settings.session_hours)
        self.refresh_lifetime = timedelta(days=settings.refresh_token_days)
        self.admin_emails = parse_emails(settings.admin_emails)
        self._static_key = settings.personalizer_key
        self._monotonic = monotonic
        self._people: dict[str, tuple[float, Person | None]] = {}
        self._keys: dict[str, tuple[float, Principal]] = {}
        """Checked keys by the SHA-256 of the presented value (the key is not kept)."""
        self._lock = threading.Lock()
        store.on_person_change(self.forget)
        self.oauth = OAuth()
        for provider in self.providers.values():
            self.oauth.register(
                name=provider.name,
                client_id=provider.client_id,
                client_secret=provider.client_secret,
                server_metadata_url=provider.discovery_url,
                client_kwargs={"scope": SCOPES, "code_challenge_method": "S256", "timeout": 10},
            )

    # the Authenticator protocol ---------------------------------------------------------

    def authenticate(
        self, request: HTTPConnection, *, memory_only: bool = False
    ) -> Principal | None:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized(
                    "`Authorization` must be `Bearer <access token or API key>`",
                    target="Authorization",
                )
            token = token.strip()
            if token.startswith(f"{KEY_PREFIX}_"):  # access tokens are JWTs: `eyJ…`
                return self.key(token, "Authorization", memory_only=memory_only)
            return self.bearer(token, memory_only=memory_only)
        key = request.headers.get(KEY_HEADER)
        if key is not None:
            return self.key(key, KEY_HEADER, memory_only=memory_only)
        if memory_only and SESSION_COOKIE in request.cookies:
            raise NeedsLookup  # sessions live in the database only
        person = self.session_person(request)
        if person is None:
            return None
        return Principal(person.id, "person", person.roles)

    def authenticate_key(self, key: str | None, *, memory_only: bool = False) -> Principal | None:
        if not key:
            return None
        if self._static_key is not None and hmac.compare_digest(
            key.encode(), self._static_key.encode()
        ):
            return STATIC_KEY
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        now = self._monotonic()
        with self._lock:
            hit = self._keys.get(fingerprint)
        if hit is not None and hit[0] > now:
            return hit[1]
        if memory_only:
            raise NeedsLookup
        found = self.store.check_key(key)
        if found is None:  # never cached: a key created a moment later works at once
            return None
        principal = Principal(f"key:{found.key_id}", "key", found.roles)
        with self._lock:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[fingerprint] = (now + KEY_CACHE_SECONDS, principal)
        return principal

    def forget_keys(self) -> None:
        """After a key is revoked here: the next call with any key is checked again."""
        with self._lock:
            self._keys.clear()

    # credentials ------------------------------------------------------------------------

    def key(self, presented: str, header: str, *, memory_only: bool = False) -> Principal:
        """The principal of an API key sent in `header` to a person's or role's route: a
        script's, within the key's roles."""
        principal = self.authenticate_key(presented, memory_only=memory_only)
        if principal is None:
            raise Unauthorized("the API key is not valid or has been revoked", target=header)
        if principal is STATIC_KEY:
            # Integrators' SDKs hold it; it was never meant to open people's data on /v1.
            raise Forbidden(
                "OO_PERSONALIZER_KEY opens the Personalizer routes only; on /v1 use a key "
                "with roles (`oo keys create --role …`)",
                target=header,
            )
        return principal

    def bearer(self, token: str, *, memory_only: bool = False) -> Principal:
        refused = Unauthorized(
            "the access token is not valid or has expired; refresh it or sign in again",
            target="Authorization",
        )
        try:
            claims = self.tokens.verify(token)
        except InvalidToken:
            raise refused from None
        person = self._cached_person(claims.subject, memory_only=memory_only)
        if person is None or person.disabled:
            raise refused
        return Principal(person.id, "person", person.roles)

    def session_person(self, request: HTTPConnection) -> Person | None:
        """The person of the request's session cookie (None without one); unsafe methods must
        carry the CSRF header."""
        token = request.cookies.get(SESSION_COOKIE)
        if token is None:
            return None
        person = self.store.session_person(token) if len(token) <= 128 else None
        if person is None:
            raise Unauthorized(
                "the session is not valid (expired, signed out or altered); sign in again",
                target=SESSION_COOKIE,
            )
        method = request.scope.get("method", "GET")
        if method not in SAFE_METHODS:
            self.check_csrf(request, token)
        return person

    def check_csrf(self, request: HTTPConnection, session_token: str) -> None:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None or not hmac.compare_digest(
            sent.encode(), csrf_token(session_token).encode()
        ):
            raise Forbidden(
                f"a request signed in by cookie must send the `{CSRF_COOKIE}` cookie's value "
                f"in the `{CSRF_HEADER}` header",
                target=CSRF_HEADER,
            )

    def _cached_person(self, person_id: str, *, memory_only: bool = False) -> Person | None:
        now = self._monotonic()
        with self._lock:
            hit = self._people.get(person_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        if memory_only:
            raise NeedsLookup
        person = self.store.person(person_id)
        with self._lock:
            if len(self._people) > 10_000:
                self._people.clear()
            self._people[person_id] = (now + PERSON_CACHE_SECONDS, person)
        return person

    def forget(self, person_id: str) -> None:
        with self._lock:
            self._people.pop(person_id, None)

    # sign-in flow -----------------------------------------------------------------------

    def client(self, provider: str) -> StarletteOAuth2App:
        if provider not in self.providers:
            raise NotFound(f"no sign-in provider is named {provider!r}", target="provider")
        client: StarletteOAuth2App = self.oauth.create_client(provider)
        return client

    def callback_url(self, provider: str) -> str:
        return f"{self.public_url}/auth/callback/{provider}"

    def is_admin_email(self, email: str | None, verified: bool) -> bool:
        return verified and email is not None and email.lower() in self.admin_emails

    def start_session(self, response: Response, person: Person) -> None:
        token = self.store.create_session(person.id, self.session_lifetime)
        max_age = int(self.session_lifetime.total_seconds())
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=max_age,
            path="/",
            secure=self.secure_cookies,
            httponly=True,
            samesite="lax",
        )
        response.set_cookie(
            CSRF_COOKIE,
            csrf_token(token),
            max_age=max_age,
            path="/",
            secure=self.secure_cookies,
            httponly=False,  # the page reads it and echoes it in X-CSRF-Token
            samesite="lax",
        )

    def end_session(self, response: Response) -> None:
        for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
            response.delete_cookie(
                name, path="/", secure=self.secure_cookies, httponly=httponly, samesite="lax"
            )
