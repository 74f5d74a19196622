"""Sign-in routes: the browser flow under /auth, tokens for API clients under /v1/auth, and the
admin's API keys under /v1/keys (the same as `oo keys`)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Annotated, Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client.errors import OAuthError
from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.responses import RedirectResponse
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from api.auth.principal import Role
from api.auth.signin import SESSION_COOKIE, SignInAuthenticator
from api.auth.store import ApiKey, RefreshRefused
from api.deps import AdminDep, ServicesDep
from api.errors import BadRequest, Forbidden, NotFound, Unauthorized, Unavailable
from api.schemas.auth import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    SignInProvider,
    SignInProviders,
    TokenPair,
    TokenRequest,
    TokenRevoke,
)
from api.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["sign-in"])
v1 = APIRouter(prefix="/v1/auth", tags=["sign-in"])
api_keys = APIRouter(prefix="/v1/keys", tags=["keys"])

ProviderName = Annotated[str, Path(min_length=1, max_length=32)]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
REFUSED: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "The credential is not valid (the reason is never more specific)",
        "content": ERROR_BODY,
    }
}


def signin_mode(services: ServicesDep) -> SignInAuthenticator:
    if not isinstance(services.auth, SignInAuthenticator):
        raise NotFound("sign-in is not configured: oO runs in local single-user mode")
    return services.auth


SignInDep = Annotated[SignInAuthenticator, Depends(signin_mode)]


@router.get("/providers", response_model=SignInProviders)
def list_providers(services: ServicesDep) -> SignInProviders:
    """The sign-in buttons the page shows (none in local single-user mode)."""
    auth = services.auth
    if not isinstance(auth, SignInAuthenticator):
        return SignInProviders(local=True, providers=[])
    return SignInProviders(
        local=False,
        providers=[
            SignInProvider(name=p.name, label=p.label, login_url=f"/auth/login/{p.name}")
            for p in auth.providers.values()
        ],
    )


@router.get(
    "/login/{provider}",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "To the provider's authorization endpoint"}},
)
async def login(provider: ProviderName, request: Request, signin: SignInDep) -> Response:
    """Start the authorization code flow (state, nonce and PKCE S256 kept in a signed cookie)."""
    client = signin.client(provider)
    try:
        response: Response = await client.authorize_redirect(request, signin.callback_url(provider))
    except (httpx.HTTPError, ValueError) as exc:  # unreachable, or its discovery is not JSON
        raise _unavailable(provider, exc) from None
    return response


def _unavailable(provider: str, exc: Exception) -> Unavailable:
    log.warning("sign-in provider %s failed: %s", provider, type(exc).__name__)
    return Unavailable(f"the sign-in provider {provider!r} cannot be reached; retry")


@router.get(
    "/callback/{provider}",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "Signed in: to the page, with the session cookie"}, **REFUSED},
)
async def callback(provider: ProviderName, request: Request, signin: SignInDep) -> Response:
    """The provider sends the browser back here with a code; it becomes a session."""
    client = signin.client(provider)
    try:
        token = await client.authorize_access_token(request)
    except OAuthError as exc:
        # Mismatching or missing state, an error from the provider, a code already used.
        reason = (exc.error or "refused")[:64]  # may come from the query string
        target = "state" if reason == "mismatching_state" else "code"
        raise Unauthorized(f"sign-in failed: {reason}", target=target) from None
    except (AuthlibBaseError, JoseError):
        raise Unauthorized(
            "sign-in failed: the ID token does not verify", target="id_token"
        ) from None
    except (httpx.HTTPError, ValueError) as exc:  # unreachable, or answers that are not JSON
        raise _unavailable(provider, exc) from None
    userinfo = token.get("userinfo")
    if not userinfo or not userinfo.get("sub") or not userinfo.get("iss"):
        raise Unauthorized("sign-in failed: the provider sent no ID token", target="id_token")
    email, verified = userinfo.get("email"), userinfo.get("email_verified") is True
    name = userinfo.get("name")
    if email is None and (await client.load_server_metadata()).get("userinfo_endpoint"):
        # Some issuers keep scope claims out of the ID token: ask the userinfo endpoint.
        try:
            extra = await client.userinfo(token=token)
        except (httpx.HTTPError, ValueError):
            extra = {}
        if extra.get("sub") == userinfo["sub"]:  # OpenID Connect Core 5.3.2
            email, verified = extra.get("email"), extra.get("email_verified") is True
            name = name or extra.get("name")
    person = await run_in_threadpool(
        signin.store.sign_in,
        provider=provider,
        issuer=str(userinfo["iss"]),
        subject=str(userinfo["sub"]),
        email=str(email)[:320] if isinstance(email, str) else None,
        name=name[:256] if isinstance(name, str) else None,
        admin=signin.is_admin_email(email if isinstance(email, str) else None, verified),
    )
    if person.disabled:
        raise Forbidden("this account is disabled; ask an administrator")
    response = RedirectResponse("/", status_code=302)
    await run_in_threadpool(signin.start_session, response, person)
    return response


@router.post("/logout", status_code=204)
def logout(request: Request, signin: SignInDep) -> Response:
    """End the web session: the cookie stops working everywhere, not just here."""
    token = request.cookies.get(SESSION_COOKIE)
    if token is not None:
        signin.check_csrf(request, token)
        signin.store.revoke_session(token)
    response = Response(status_code=204)
    signin.end_session(response)
    return response


@v1.post("/token", response_model=TokenPair, responses=REFUSED)
def issue_token(
    body: TokenRequest, request: Request, response: Response, signin: SignInDep
) -> TokenPair:
    """An access token (minutes) and a refresh token (single use, rotating).

    `session`: the signed-in web page trades its cookie (with the CSRF header) for a first pair.
    `refresh_token`: a client trades its refresh token for the next pair; presenting a refresh
    token a second time revokes its whole family.
    """
    response.headers.update(NO_STORE)
    if body.grant_type == "session":
        person = signin.session_person(request)
        if person is None:
            raise Unauthorized(
                "grant_type `session` needs the session cookie of a signed-in page",
                target=SESSION_COOKIE,
            )
        refresh = signin.store.issue_refresh(person.id, signin.refresh_lifetime)
    else:
        if body.refresh_token is None:
            raise BadRequest(
                "`refresh_token` is required with grant_type `refresh_token`",
                target="refresh_token",
            )
        try:
            person, refresh = signin.store.rotate_refresh(
                body.refresh_token, signin.refresh_lifetime
            )
        except RefreshRefused:
            raise Unauthorized(
                "`refresh_token` is not valid (expired, revoked or already used); sign in again",
                target="refresh_token",
            ) from None
    return TokenPair(
        access_token=signin.tokens.issue(person.id, person.roles),
        expires_in=signin.tokens.lifetime,
        refresh_token=refresh,
    )


@v1.post("/revoke", status_code=204)
def revoke_token(body: TokenRevoke, signin: SignInDep) -> Response:
    """Sign an API client out: its refresh token and every successor stop working."""
    signin.store.revoke_refresh(body.refresh_token)
    return Response(status_code=204)


# --- API keys over HTTP (the same as `oo keys`) ------------------------------------------------


def _key_public(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        key_id=key.key_id,
        name=key.name,
        roles=[role.value for role in Role if role in key.roles],
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


@api_keys.get("", response_model=list[ApiKeyPublic])
def list_keys(
    admin: AdminDep, signin: SignInDep, include_revoked: bool = False
) -> list[ApiKeyPublic]:
    """API keys, oldest first; never their secrets."""
    return [_key_public(k) for k in signin.store.keys(include_revoked=include_revoked)]


@api_keys.post("", response_model=ApiKeyCreated, status_code=201)
def create_key(body: ApiKeyCreate, admin: AdminDep, signin: SignInDep) -> ApiKeyCreated:
    """A new key for the Personalizer-compatible API; its secret is in this answer only."""
    issued = signin.store.create_key(body.name, [Role(r) for r in body.roles])
    return ApiKeyCreated(**_key_public(issued.key).model_dump(), key=issued.secret)


@api_keys.delete("/{key_id}", response_model=ApiKeyPublic)
def revoke_key(
    key_id: Annotated[str, Path(min_length=1, max_length=32)],
    admin: AdminDep,
    signin: SignInDep,
) -> ApiKeyPublic:
    """Revoke a key: calls with it fail from now on (revoking twice is harmless)."""
    key = signin.store.revoke_key(key_id)
    signin.forget_keys()
    if key is None:
        raise NotFound(f"no key has id {key_id!r}", target="key_id")
    return _key_public(key)


def install(app: FastAPI, settings: Settings) -> None:
    """The sign-in routes, and in sign-in mode the signed cookie that carries the state, nonce
    and PKCE verifier of a sign-in in progress (ten minutes at most)."""
    keys = settings.signin_token_keys
    if settings.signin_providers and keys:
        secret = hmac.new(keys[0].secret, b"oo-signin-state", hashlib.sha256).hexdigest()
        app.add_middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="oo_signin",
            max_age=600,
            same_site="lax",
            https_only=(settings.public_url or "").startswith("https://"),
        )
    app.include_router(router)
    app.include_router(v1)
    app.include_router(api_keys)
