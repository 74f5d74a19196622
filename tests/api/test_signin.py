"""Sign-in end to end against a real OpenID provider (node-oidc-provider on loopback), the web
session and its CSRF rule, access and refresh tokens, and the refusals that must not tell one
person from another."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import OctKey

from api.app import create_app
from api.auth.config import TokenKey
from api.auth.principal import KEY_HEADER, Role
from api.auth.signin import (
    CSRF_COOKIE,
    CSRF_HEADER,
    KEY_CACHE_SECONDS,
    SESSION_COOKIE,
    SignInAuthenticator,
)
from api.auth.tokens import AccessTokens, InvalidToken
from tests.api.decision_helpers import actions, personalizer_url, services
from tests.conftest import Backend, free_port
from tests.oidc import provider as oidc
from tests.rewards.synthetic import write_log

PUBLIC_URL = "http://testserver"  # the TestClient's origin
HTTPS_URL = "https://testserver"
KEY_SECRET = bytes(range(32))
TOKEN_KEYS = f"k2:{base64.b64encode(KEY_SECRET).decode()}"


@pytest.fixture(scope="module")
def provider() -> Iterator[oidc.OidcProvider]:
    yield from oidc.start([f"{PUBLIC_URL}/auth/callback/test", f"{HTTPS_URL}/auth/callback/test"])


def signin_settings(provider: oidc.OidcProvider, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "oidc_providers": json.dumps(
            {
                "test": {
                    "discovery_url": provider.discovery_url,
                    "client_id": provider.client_id,
                    "client_secret": provider.client_secret,
                    "label": "Test ID",
                }
            }
        ),
        "token_keys": TOKEN_KEYS,
        "public_url": PUBLIC_URL,
        "admin_emails": "root@example.test",
    }
    values.update(overrides)
    return values


@pytest.fixture
def app_client(make_client: Callable[..., TestClient], provider: oidc.OidcProvider) -> TestClient:
    return make_client(**signin_settings(provider))


def authenticator(client: TestClient) -> SignInAuthenticator:
    auth = services(client).auth
    assert isinstance(auth, SignInAuthenticator)
    return auth


def provider_round_trip(login_url: str, login: str, back_to: str = PUBLIC_URL) -> str:
    """Drive the provider like a browser: its redirects, the login form; return the URL it
    finally sends the browser to (our callback with code and state)."""
    with httpx.Client(timeout=10) as browser:
        url = login_url
        for _ in range(12):
            if url.startswith(back_to):
                return url
            reply = browser.get(url)
            if reply.status_code == 200 and 'name="login"' in reply.text:
                action = reply.text.split('action="', 1)[1].split('"', 1)[0]
                reply = browser.post(urljoin(url, action), data={"login": login})
            assert reply.status_code in (302, 303), (reply.status_code, reply.text[:300])
            url = urljoin(url, reply.headers["location"])
    raise AssertionError("the provider never redirected back")


def start_login(client: TestClient) -> str:
    reply = client.get("/auth/login/test", follow_redirects=False)
    assert reply.status_code == 302, reply.text
    return reply.headers["location"]


def sign_in(client: TestClient, login: str) -> httpx.Response:
    callback = provider_round_trip(start_login(client), login)
    return client.get(callback.removeprefix(PUBLIC_URL), follow_redirects=False)


def signed_in(client: TestClient, login: str) -> str:
    """Sign `login` in; the client now holds the session cookies. Returns the person id."""
    reply = sign_in(client, login)
    assert reply.status_code == 302, reply.text
    assert reply.headers["location"] == "/"
    person = authenticator(client).store.session_person(client.cookies[SESSION_COOKIE])
    assert person is not None
    return person.id


def csrf(client: TestClient) -> dict[str, str]:
    return {CSRF_HEADER: client.cookies[CSRF_COOKIE]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_pair(client: TestClient) -> dict[str, Any]:
    reply = client.post("/v1/auth/token", json={"grant_type": "session"}, headers=csrf(client))
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    pair: dict[str, Any] = reply.json()
    return pair


def without_cookies(client: TestClient) -> dict[str, str]:
    """Drop the client's cookies (a separate API client); returns them for later."""
    saved = dict(client.cookies)
    client.cookies.clear()
    return saved


def error(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()["error"]
    return body


# --- the happy path ---------------------------------------------------------------------------


def test_sign_in_through_a_real_provider_then_use_the_api(app_client: TestClient) -> None:
    client = app_client
    assert client.get("/v1/me").status_code == 401
    login_url = start_login(client)
    query = parse_qs(urlsplit(login_url).query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43 and query["nonce"] and query["state"]
    assert "code_verifier" not in query

    callback = provider_round_trip(login_url, "ada")
    reply = client.get(callback.removeprefix(PUBLIC_URL), follow_redirects=False)
    assert reply.status_code == 302 and reply.headers["location"] == "/"
    cookies = {c.name: c for c in client.cookies.jar}
    session = cookies[SESSION_COOKIE]
    assert session.has_nonstandard_attr("HttpOnly")
    assert not cookies[CSRF_COOKIE].has_nonstandard_attr("HttpOnly")
    assert "samesite=lax" in reply.headers.get_list("set-cookie")[0].lower()
    # Only a digest of the session token is stored.
    assert authenticator(client).store.session_person(session.value) is not None

    assert client.get("/v1/me").status_code == 200
    decision = client.post("/v1/recommend", json={}, headers=csrf(client))
    assert decision.status_code == 200, decision.text
    logged = services(client).store.get(decision.json()["event_id"])
    assert logged is not None
    person = authenticator(client).store.find_person("ada@example.test")
    assert person is not None and logged.decision.principal == person.id
    assert person.roles == {Role.PERSON}

    # The same identity signs in again as the same person.
    assert signed_in(client, "ada") == person.id


def test_export_and_erasure_cover_the_account(app_client: TestClient) -> None:
    client = app_client
    person = signed_in(client, "erin")
    tip = client.post("/v1/recommend", json={}, headers=csrf(client)).json()
    session_token = client.cookies[SESSION_COOKIE]

    export = client.get("/v1/me/export")
    assert export.status_code == 200, export.text
    sections = {section["name"]: section["data"] for section in export.json()["sections"]}
    account = sections["account"]
    assert account["id"] == person and account["email"] == "erin@example.test"
    assert [i["provider"] for i in account["identities"]] == ["test"]
    assert account["sessions"] and "token_hash" not in account["sessions"][0]
    assert session_token not in export.text

    erased = client.delete("/v1/me", headers=csrf(client))
    assert erased.status_code == 204
    assert all("max-age=0" in c.lower() for c in erased.headers.get_list("set-cookie"))
    # The session went with the account; the decision stays, under a pseudonym.
    assert client.get("/v1/me").status_code == 401
    assert authenticator(client).store.person(person) is None
    logged = services(client).store.get(tip["event_id"])
    assert logged is not None and logged.decision.principal.startswith("erased:")
    # Signing in again with the same provider account starts a new, unrelated person.
    assert signed_in(client, "erin") != person


def test_https_public_url_makes_every_cookie_secure(
    backend: Backend, provider: oidc.OidcProvider
) -> None:
    app = create_app(backend.settings(**signin_settings(provider, public_url=HTTPS_URL)))
    with TestClient(app, base_url=HTTPS_URL) as client:
        callback = provider_round_trip(start_login(client), "ada", back_to=HTTPS_URL)
        reply = client.get(callback.removeprefix(HTTPS_URL), follow_redirects=False)
        assert reply.status_code == 302, reply.text
        set_cookies = reply.headers.get_list("set-cookie")
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            (cookie,) = [c for c in set_cookies if c.startswith(f"{name}=")]
            assert "; secure" in cookie.lower() and "samesite=lax" in cookie.lower()
        assert client.get("/v1/me").status_code == 200


def test_admin_emails_bootstrap_the_admin_role(app_client: TestClient) -> None:
    signed_in(app_client, "root")
    person = authenticator(app_client).store.find_person("root@example.test")
    assert person is not None and Role.ADMIN in person.roles


def test_token_pair_bearer_and_refresh_rotation(app_client: TestClient) -> None:
    client = app_client
    person_id = signed_in(client, "grace")
    pair = token_pair(client)
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 600
    claims = jwt.decode(pair["access_token"], OctKey.import_key(KEY_SECRET)).claims
    assert claims["sub"] == person_id and claims["aud"] == "oo-api"
    assert claims["iss"] == PUBLIC_URL and claims["exp"] - claims["iat"] == 600

    without_cookies(client)
    assert client.get("/v1/me", headers=bearer(pair["access_token"])).status_code == 200
    # A bearer token needs no CSRF header: browsers never attach it on their own.
    reply = client.post("/v1/recommend", json={}, headers=bearer(pair["access_token"]))
    assert reply.status_code == 200, reply.text

    first = pair["refresh_token"]
    rotated = client.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": first}
    )
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    assert client.get("/v1/me", headers=bearer(rotated.json()["access_token"])).status_code == 200

    # Presenting the first token again is reuse: the whole family is revoked, second included.
    reused = client.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": first}
    )
    assert error(reused, 401)["target"] == "refresh_token"
    after = client.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": second}
    )
    assert error(after, 401)["message"] == error(reused, 401)["message"]


def test_revoking_a_refresh_token_signs_the_client_out(app_client: TestClient) -> None:
    client = app_client
    signed_in(client, "ken")
    pair = token_pair(client)
    without_cookies(client)
    assert client.post("/v1/auth/revoke", json={"refresh_token": "unknown"}).status_code == 204
    assert client.post("/v1/auth/revoke", json=pair).status_code == 400  # unknown fields
    revoke = {"refresh_token": pair["refresh_token"]}
    assert client.post("/v1/auth/revoke", json=revoke).status_code == 204
    refresh = {"grant_type": "refresh_token", **revoke}
    error(client.post("/v1/auth/token", json=refresh), 401)


def test_logout_ends_the_session_everywhere(app_client: TestClient) -> None:
    client = app_client
    signed_in(client, "linus")
    saved = dict(client.cookies)
    assert error(client.post("/auth/logout"), 403)["target"] == CSRF_HEADER
    assert client.post("/auth/logout", headers=csrf(client)).status_code == 204
    assert SESSION_COOKIE not in client.cookies
    client.cookies.update(saved)  # a copy of the cookie kept elsewhere
    assert error(client.get("/v1/me"), 401)["target"] == SESSION_COOKIE


# --- refusals ---------------------------------------------------------------------------------


def test_cookie_authenticated_post_needs_the_csrf_header(app_client: TestClient) -> None:
    client = app_client
    signed_in(client, "margaret")
    refused = client.post("/v1/recommend", json={})
    assert error(refused, 403)["target"] == CSRF_HEADER
    forged = client.post("/v1/recommend", json={}, headers={CSRF_HEADER: "x" * 43})
    error(forged, 403)
    # Another session's CSRF token does not fit this session.
    other = client.post(
        "/v1/recommend", json={}, headers={CSRF_HEADER: client.cookies[CSRF_COOKIE][::-1]}
    )
    error(other, 403)
    assert client.post("/v1/recommend", json={}, headers=csrf(client)).status_code == 200


def test_tampered_state_and_replayed_code_are_refused(app_client: TestClient) -> None:
    client = app_client
    callback = provider_round_trip(start_login(client), "eve")
    path, _, query = callback.removeprefix(PUBLIC_URL).partition("?")
    params = parse_qs(query)
    tampered = f"{path}?code={params['code'][0]}&state={params['state'][0]}x"
    assert error(client.get(tampered, follow_redirects=False), 401)["target"] == "state"
    assert SESSION_COOKIE not in client.cookies

    # The code is still unused: the real callback signs in once...
    assert client.get(f"{path}?{query}", follow_redirects=False).status_code == 302
    client.cookies.pop(SESSION_COOKIE)
    # ...and replayed with a fresh, valid state the provider refuses the used code.
    fresh = parse_qs(urlsplit(start_login(client)).query)["state"][0]
    replay = client.get(f"{path}?code={params['code'][0]}&state={fresh}", follow_redirects=False)
    error(replay, 401)
    assert SESSION_COOKIE not in client.cookies


def test_forged_or_altered_session_cookies_are_refused(app_client: TestClient) -> None:
    client = app_client
    signed_in(client, "mallory")
    real = client.cookies[SESSION_COOKIE]
    messages = set()
    for forged in (real[:-1] + ("A" if real[-1] != "A" else "B"), "x" * 43, "", "A" * 300):
        client.cookies.delete(SESSION_COOKIE)
        client.cookies.set(SESSION_COOKIE, forged)
        messages.add(error(client.get("/v1/me"), 401)["message"])
    assert len(messages) == 1


def test_bad_access_tokens_are_refused_alike(app_client: TestClient) -> None:
    client = app_client
    person_id = signed_in(client, "trudy")
    without_cookies(client)
    auth = authenticator(client)
    key = TokenKey("k2", KEY_SECRET)
    expired = AccessTokens([key], PUBLIC_URL, 600, now=lambda: time.time() - 601).issue(
        person_id, [Role.PERSON]
    )
    other_audience = jwt.encode(
        {"alg": "HS256", "kid": "k2"},
        {"iss": PUBLIC_URL, "aud": "another-api", "sub": person_id, "exp": int(time.time()) + 60},
        OctKey.import_key(KEY_SECRET, {"kid": "k2"}),
    )
    other_issuer = AccessTokens([key], "https://elsewhere.example", 600).issue(person_id, [])
    other_key = AccessTokens([TokenKey("k2", b"z" * 32)], PUBLIC_URL, 600).issue(person_id, [])
    unsigned = jwt.encode({"alg": "none"}, {"sub": person_id}, None, algorithms=["none"])
    nobody = auth.tokens.issue("p_nobody", [Role.ADMIN])
    messages = set()
    for token in (expired, other_audience, other_issuer, other_key, unsigned, nobody, "abc"):
        body = error(client.get("/v1/me", headers=bearer(token)), 401)
        messages.add((body["message"], body["target"]))
    assert messages == {
        (
            "the access token is not valid or has expired; refresh it or sign in again",
            "Authorization",
        )
    }
    assert client.get("/v1/me", headers=bearer(auth.tokens.issue(person_id, []))).status_code == 200


def test_a_disabled_person_is_locked_out_at_once(app_client: TestClient) -> None:
    client = app_client
    person_id = signed_in(client, "oscar")
    pair = token_pair(client)
    access = bearer(pair["access_token"])
    assert client.get("/v1/me", headers=access).status_code == 200  # cached as active

    authenticator(client).store.set_disabled(person_id, True)
    session_refusal = error(client.get("/v1/me"), 401)
    cookies = without_cookies(client)
    bearer_refusal = error(client.get("/v1/me", headers=access), 401)
    unknown = authenticator(client).tokens.issue("p_unknown", [Role.PERSON])
    # The refusal reads exactly like a token for nobody: it does not tell who exists.
    assert bearer_refusal == error(client.get("/v1/me", headers=bearer(unknown)), 401)
    refreshed = client.post(
        "/v1/auth/token",
        json={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
    )
    error(refreshed, 401)
    assert session_refusal["target"] == SESSION_COOKIE
    # Signing in again through the provider is refused too.
    client.cookies.update({k: v for k, v in cookies.items() if k != SESSION_COOKIE})
    error(sign_in(client, "oscar"), 403)
    assert SESSION_COOKIE not in client.cookies

    authenticator(client).store.set_disabled(person_id, False)
    assert signed_in(client, "oscar") == person_id


def test_token_endpoint_input(app_client: TestClient) -> None:
    client = app_client
    assert (
        error(client.post("/v1/auth/token", json={"grant_type": "password"}), 400)["target"]
        == "grant_type"
    )
    missing = client.post("/v1/auth/token", json={"grant_type": "refresh_token"})
    assert error(missing, 400)["target"] == "refresh_token"
    unknown = client.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": "nope"}
    )
    error(unknown, 401)
    no_session = client.post("/v1/auth/token", json={"grant_type": "session"})
    assert error(no_session, 401)["target"] == SESSION_COOKIE


def test_providers_list_and_unknown_provider(app_client: TestClient) -> None:
    body = app_client.get("/auth/providers").json()
    assert body == {
        "local": False,
        "providers": [{"name": "test", "label": "Test ID", "login_url": "/auth/login/test"}],
    }
    assert (
        error(app_client.get("/auth/login/nope", follow_redirects=False), 404)["target"]
        == "provider"
    )


def test_key_rotation_newest_signs_all_verify() -> None:
    old, new = TokenKey("k1", b"o" * 32), TokenKey("k2", b"n" * 32)
    issued_before = AccessTokens([old], PUBLIC_URL, 600).issue("p_1", [])
    rotated = AccessTokens([new, old], PUBLIC_URL, 600)
    assert rotated.verify(issued_before).subject == "p_1"
    header = jwt.decode(rotated.issue("p_1", []), OctKey.import_key(b"n" * 32)).header
    assert header["kid"] == "k2"
    with pytest.raises(Exception, match="InvalidKeyId"):
        AccessTokens([new], PUBLIC_URL, 600).verify(issued_before)


def test_a_remembered_token_still_expires_and_others_are_verified_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verified tokens are remembered (`VERIFIED_KEPT`), but a remembered one is refused from
    the second its `exp` is reached, as verifying it would; a token altered in any byte is
    verified, and refused; the oldest is forgotten past the bound and verifies again."""
    monkeypatch.setattr("api.auth.tokens.VERIFIED_KEPT", 3)
    clock = [1_000_000.0]
    tokens = AccessTokens([TokenKey("k1", b"o" * 32)], PUBLIC_URL, 600, now=lambda: clock[0])
    token = tokens.issue("p_1", [Role.PERSON])
    assert tokens.verify(token).roles == {Role.PERSON}
    assert tokens.verify(token).expires_at == 1_000_600
    head, body, signature = token.split(".")
    for altered in (f"{head}.{body}.{signature[:-2]}AA", f"{head}.{body}x.{signature}"):
        with pytest.raises(InvalidToken):
            tokens.verify(altered)
    others = [tokens.issue(f"p_{i}", []) for i in range(2, 5)]
    for other in others:
        tokens.verify(other)
    assert token not in tokens._verified and len(tokens._verified) == 3
    clock[0] = 1_000_599.0
    assert tokens.verify(others[0]).subject == "p_2"  # remembered, not yet expired
    clock[0] = 1_000_600.0
    for expired in (token, others[0]):  # verified afresh, and remembered: both refused
        with pytest.raises(InvalidToken):
            tokens.verify(expired)


# --- API keys ---------------------------------------------------------------------------------


def test_personalizer_keys_in_sign_in_mode(app_client: TestClient) -> None:
    client = app_client
    store = authenticator(client).store
    issued = store.create_key("sdk")
    header = {"Ocp-Apim-Subscription-Key": issued.secret}
    body = {"actions": actions("a", "b")}
    assert client.post(personalizer_url("/rank"), json=body, headers=header).status_code == 201
    for wrong in (issued.secret[:-1] + "x", "oo_nope_x", "", issued.secret + "x"):
        refused = client.post(
            personalizer_url("/rank"), json=body, headers={"Ocp-Apim-Subscription-Key": wrong}
        )
        error(refused, 401)
    # Revoked elsewhere (`oo keys revoke`, another api process): this process trusts its check
    # for at most KEY_CACHE_SECONDS, then refuses.
    signin = authenticator(client)
    store.revoke_key(issued.key.key_id)
    assert client.post(personalizer_url("/rank"), json=body, headers=header).status_code == 201
    later = time.monotonic() + KEY_CACHE_SECONDS + 1
    signin._monotonic = lambda: later  # type: ignore[method-assign]
    error(client.post(personalizer_url("/rank"), json=body, headers=header), 401)


def test_admins_manage_keys_over_http(app_client: TestClient) -> None:
    client = app_client
    auth = authenticator(client)
    signed_in(client, "root")  # admin through OO_ADMIN_EMAILS
    root = auth.store.find_person("root@example.test")
    ada_id = signed_in(client, "ada")
    assert root is not None
    without_cookies(client)
    admin = bearer(auth.tokens.issue(root.id, root.roles))
    person = bearer(auth.tokens.issue(ada_id, [Role.PERSON]))

    error(client.get("/v1/keys"), 401)
    error(client.get("/v1/keys", headers=person), 403)
    error(client.post("/v1/keys", json={"name": "x"}, headers=person), 403)
    bad = client.post("/v1/keys", json={"name": "x", "roles": ["root"]}, headers=admin)
    assert error(bad, 400)["target"] == "roles[0]"

    created = client.post("/v1/keys", json={"name": " sdk ", "roles": ["analyst"]}, headers=admin)
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["name"] == "sdk" and key["roles"] == ["analyst"]
    listed = client.get("/v1/keys", headers=admin).json()
    assert [k["key_id"] for k in listed] == [key["key_id"]] and "key" not in listed[0]

    rank = {"actions": actions("a", "b")}
    header = {"Ocp-Apim-Subscription-Key": key["key"]}
    assert client.post(personalizer_url("/rank"), json=rank, headers=header).status_code == 201
    revoked = client.delete(f"/v1/keys/{key['key_id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    error(client.post(personalizer_url("/rank"), json=rank, headers=header), 401)
    assert client.get("/v1/keys", headers=admin).json() == []
    assert len(client.get("/v1/keys?include_revoked=true", headers=admin).json()) == 1
    assert error(client.delete("/v1/keys/nope", headers=admin), 404)["target"] == "key_id"


def test_an_analysts_script_uses_a_key_on_v1_within_its_roles(app_client: TestClient) -> None:
    client = app_client
    signin = authenticator(client)
    write_log(services(client).store, 30)
    analyst = signin.store.create_key("nightly export", [Role.ANALYST])
    plain = signin.store.create_key("sdk")
    for headers in (bearer(analyst.secret), {KEY_HEADER: analyst.secret}):
        export = client.get("/v1/logs/export", params={"format": "dsjson"}, headers=headers)
        assert export.status_code == 200, export.text
        assert len(export.text.splitlines()) == 30
        created = client.post("/v1/evaluations", json={"surface": "personalizer"}, headers=headers)
        assert created.status_code == 201, created.text
        assert client.get(f"/v1/evaluations/{created.json()['id']}", headers=headers).is_success

    # Within its roles: the analyst key is no experimenter, the plain key no analyst.
    refused = error(client.post("/v1/experiments", json={}, headers=bearer(analyst.secret)), 403)
    assert "`experimenter` role, which this API key does not carry" in refused["message"]
    refused = error(client.get("/v1/logs/export", headers={KEY_HEADER: plain.secret}), 403)
    assert "`analyst` role" in refused["message"]
    # A key is never a person, whatever its roles.
    admin = signin.store.create_key("ops", [Role.ADMIN, Role.PERSON])
    for method, path in (("GET", "/v1/me"), ("POST", "/v1/recommend"), ("POST", "/v1/feedback")):
        refused = error(client.request(method, path, json={}, headers=bearer(admin.secret)), 403)
        assert refused["message"].startswith("this endpoint is for people"), refused

    # Keys that do not hold, in either place, name where they were sent.
    for headers, target in (
        (bearer(analyst.secret[:-1] + "x"), "Authorization"),
        (bearer("oo_nope_x"), "Authorization"),
        ({KEY_HEADER: "oo_nope_x"}, KEY_HEADER),
        ({KEY_HEADER: ""}, KEY_HEADER),
    ):
        assert error(client.get("/v1/logs/export", headers=headers), 401)["target"] == target
    # Revoked: refused once this process's short trust in the last check has run out.
    signin.store.revoke_key(analyst.key.key_id)
    later = time.monotonic() + KEY_CACHE_SECONDS + 1
    signin._monotonic = lambda: later  # type: ignore[method-assign]
    assert error(client.get("/v1/logs/export", headers=bearer(analyst.secret)), 401)


# --- a provider that fails -------------------------------------------------------------------


class BrokenProvider(BaseHTTPRequestHandler):
    """Serves a valid discovery document; its token endpoint fails like a proxy in trouble."""

    token_status = 502

    def do_GET(self) -> None:
        issuer = f"http://127.0.0.1:{self.server.server_port}"
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        self._answer(200, "application/json", json.dumps(document))

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.token_status == 400:
            self._answer(400, "application/json", '{"error": "invalid_grant"}')
        else:
            self._answer(self.token_status, "text/html", "<h1>Bad Gateway</h1>")

    def _answer(self, status: int, media_type: str, body: str) -> None:
        self.send_response(status)
        self.send_header("content-type", media_type)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def broken_provider() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BrokenProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
@pytest.mark.parametrize(("token_status", "answer"), [(502, 503), (500, 503), (400, 401)])
def test_a_failing_provider_is_a_clear_4xx_or_503(
    make_client: Callable[..., TestClient],
    broken_provider: ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    token_status: int,
    answer: int,
) -> None:
    monkeypatch.setattr(BrokenProvider, "token_status", token_status)
    port = broken_provider.server_port
    discovery = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
    down = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"
    providers = {
        "broken": {"discovery_url": discovery, "client_id": "a", "client_secret": "b"},
        "down": {"discovery_url": down, "client_id": "a", "client_secret": "b"},
    }
    client = make_client(
        oidc_providers=json.dumps(providers), token_keys=TOKEN_KEYS, public_url=PUBLIC_URL
    )
    assert error(client.get("/auth/login/down", follow_redirects=False), 503)["message"] == (
        "the sign-in provider 'down' cannot be reached; retry"
    )
    login = client.get("/auth/login/broken", follow_redirects=False)
    assert login.status_code == 302, login.text
    state = parse_qs(urlsplit(login.headers["location"]).query)["state"][0]
    reply = client.get(f"/auth/callback/broken?code=abc&state={state}", follow_redirects=False)
    error(reply, answer)
    assert SESSION_COOKIE not in client.cookies
