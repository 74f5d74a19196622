"""`oo keys` and `oo people`, and the settings that choose local or sign-in mode."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from api.auth.principal import LocalAuthenticator, NeedsLookup, Role
from api.auth.signin import KEY_CACHE_SECONDS, SignInAuthenticator
from api.auth.store import AuthStore
from api.cli import app as cli
from api.settings import Settings
from bandit.store import make_engine
from tests.api.decision_helpers import actions, personalizer_url, services
from tests.conftest import Backend

TOKEN_KEYS = f"k1:{base64.b64encode(b'k' * 32).decode()}"
PROVIDERS = json.dumps(
    {
        "corp": {
            "discovery_url": "https://id.example.com/.well-known/openid-configuration",
            "client_id": "oo",
            "client_secret": "not-a-real-secret",
            "label": "Corp ID",
        }
    }
)
SIGN_IN = {"oidc_providers": PROVIDERS, "token_keys": TOKEN_KEYS, "public_url": "https://oo.test"}


@pytest.fixture
def runner(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("OO_DATABASE_URL", backend.database_url)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_keys_create_list_revoke_through_the_cli(
    runner: CliRunner, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(**SIGN_IN)
    created = json.loads(invoke(runner, "keys", "create", "--name", "billing app", "--json"))
    secret = created["key"]
    assert secret.startswith(f"oo_{created['key_id']}_") and created["roles"] == []
    table = invoke(runner, "keys", "list")
    assert created["key_id"] in table and "billing app" in table and secret not in table

    # The secret is kept only as a digest.
    store = AuthStore(services(client).store.engine)
    with store.engine.connect() as conn:
        dump = " ".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM auth_api_keys"))
    assert secret.split("_", 2)[2] not in dump

    header = {"Ocp-Apim-Subscription-Key": secret}
    body = {"actions": actions("a", "b")}
    assert client.post(personalizer_url("/rank"), json=body, headers=header).status_code == 201
    listed = json.loads(invoke(runner, "keys", "list", "--json"))
    assert listed[0]["last_used_at"] is not None

    revoked = json.loads(invoke(runner, "keys", "revoke", created["key_id"], "--json"))
    assert revoked["revoked_at"] is not None
    # The CLI is another process: a running api trusts its last check for KEY_CACHE_SECONDS.
    later = time.monotonic() + KEY_CACHE_SECONDS + 1
    services(client).auth._monotonic = lambda: later  # type: ignore[attr-defined]
    refused = client.post(personalizer_url("/rank"), json=body, headers=header)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["target"] == "Ocp-Apim-Subscription-Key"
    assert json.loads(invoke(runner, "keys", "list", "--json")) == []
    assert len(json.loads(invoke(runner, "keys", "list", "--all", "--json"))) == 1

    missing = runner.invoke(cli, ["keys", "revoke", "nope"])
    assert missing.exit_code == 1 and "no key has id 'nope'" in missing.output
    bad_role = runner.invoke(cli, ["keys", "create", "--name", "x", "--role", "root"])
    assert bad_role.exit_code == 2 and "must be one of person" in bad_role.output


def test_a_key_carries_the_roles_it_was_created_with(
    runner: CliRunner, make_client: Callable[..., TestClient]
) -> None:
    auth = services(make_client(**SIGN_IN)).auth
    plain = json.loads(invoke(runner, "keys", "create", "--name", "plain", "--json"))
    admin = json.loads(
        invoke(runner, "keys", "create", "--name", "ops", "--role", "admin", "--json")
    )
    found = auth.authenticate_key(plain["key"])
    assert found is not None and found.id == f"key:{plain['key_id']}" and not found.roles
    found = auth.authenticate_key(admin["key"])
    assert found is not None and found.kind == "key" and found.has(Role.ANALYST)


def test_a_key_is_answered_from_memory_only_once_it_was_checked(
    runner: CliRunner, make_client: Callable[..., TestClient]
) -> None:
    # The event loop asks `memory_only` first; a miss must say so, never guess "not valid".
    client = make_client(**SIGN_IN)
    auth = services(client).auth
    created = json.loads(invoke(runner, "keys", "create", "--name", "etl", "--json"))
    with pytest.raises(NeedsLookup):
        auth.authenticate_key(created["key"], memory_only=True)
    with pytest.raises(NeedsLookup):
        auth.authenticate_key("oo_not-a-key", memory_only=True)
    checked = auth.authenticate_key(created["key"])
    assert auth.authenticate_key(created["key"], memory_only=True) == checked
    assert auth.authenticate_key(None, memory_only=True) is None
    # Through the api: a cold key goes to the database, a warm one does not need to.
    headers = {"Authorization": f"Bearer {created['key']}"}
    auth.forget_keys()
    for _ in range(2):  # a key without roles is authenticated, then refused the analyst's logs
        assert client.get("/v1/logs/export", headers=headers).status_code == 403
    refused = client.get("/v1/logs/export", headers={"Authorization": "Bearer oo_nope"})
    assert refused.status_code == 401


def test_people_grant_revoke_disable_enable(runner: CliRunner, backend: Backend) -> None:
    invoke(runner, "people", "list")  # creates the tables on a fresh database
    store = AuthStore(make_engine(backend.database_url, pool_size=1))
    person = store.sign_in(
        provider="corp",
        issuer="https://id.example.com",
        subject="42",
        email="Ada@Example.com",
        name="Ada",
    )
    session = store.create_session(person.id, timedelta(hours=1))
    granted = json.loads(invoke(runner, "people", "grant", "ada@example.com", "analyst", "--json"))
    assert granted["roles"] == ["person", "analyst"]
    revoked = json.loads(invoke(runner, "people", "revoke", person.id, "analyst", "--json"))
    assert revoked["roles"] == ["person"]
    disabled = json.loads(invoke(runner, "people", "disable", person.id, "--json"))
    assert disabled["disabled"] is True
    assert store.session_person(session) is None  # sessions were revoked
    assert "disabled" in invoke(runner, "people", "list")
    assert json.loads(invoke(runner, "people", "enable", person.id, "--json"))["disabled"] is False
    assert store.session_person(session) is None  # enabling does not bring sessions back
    unknown = runner.invoke(cli, ["people", "grant", "nobody@example.com", "admin"])
    assert unknown.exit_code == 1
    bad = runner.invoke(cli, ["people", "grant", person.id, "superuser"])
    assert bad.exit_code == 2
    store.engine.dispose()


# --- local or sign-in mode ----------------------------------------------------------------------


def test_local_mode_refuses_a_network_bind() -> None:
    with pytest.raises(ValidationError, match=r"`host` '0\.0\.0\.0' is not a loopback address"):
        Settings(host="0.0.0.0")
    assert Settings(host="::1").host == "::1"


def test_sign_in_mode_may_bind_to_the_network() -> None:
    settings = Settings(host="0.0.0.0", **SIGN_IN)
    assert list(settings.signin_providers) == ["corp"]
    with pytest.raises(ValidationError, match="`token_keys` must be set"):
        Settings(host="0.0.0.0", oidc_providers=PROVIDERS, public_url="https://oo.test")
    with pytest.raises(ValidationError, match="`public_url` must be set"):
        Settings(host="0.0.0.0", oidc_providers=PROVIDERS, token_keys=TOKEN_KEYS)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"oidc_providers": "{"}, "`oidc_providers` is not valid JSON"),
        ({"oidc_providers": '{"Bad Name": {}}'}, "provider name is 1-32 lower-case"),
        ({"oidc_providers": '{"x": {"client_id": "a"}}'}, "`oidc_providers.x.discovery_url`"),
        (
            {
                "oidc_providers": json.dumps(
                    {
                        "x": {
                            "discovery_url": "http://id.example.com/",
                            "client_id": "a",
                            "client_secret": "b",
                        }
                    }
                )
            },
            "must be https",
        ),
        ({"token_keys": "k1"}, r"`token_keys\[0\]` must look like `kid:base64secret`"),
        ({"token_keys": "k1:c2hvcnQ="}, "at least 32 bytes"),
        ({"google_client_id": "only-the-id"}, "go together"),
        ({"public_url": "oo.example.com"}, "`public_url` must start with https://"),
    ],
)
def test_bad_sign_in_settings_name_the_setting(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{**SIGN_IN, **overrides})


def test_google_preset_and_modes(make_client: Callable[..., TestClient]) -> None:
    local = make_client()
    assert isinstance(services(local).auth, LocalAuthenticator)
    assert local.get("/auth/providers").json() == {"local": True, "providers": []}
    assert local.get("/auth/login/google", follow_redirects=False).status_code == 404

    google = make_client(
        google_client_id="id.apps.googleusercontent.com",
        google_client_secret="not-a-real-secret",
        token_keys=TOKEN_KEYS,
        public_url="https://oo.test",
    )
    auth = services(google).auth
    assert isinstance(auth, SignInAuthenticator) and auth.secure_cookies
    assert google.get("/auth/providers").json()["providers"] == [
        {"name": "google", "label": "Google", "login_url": "/auth/login/google"}
    ]
    assert google.get("/v1/me").status_code == 401


def test_the_static_personalizer_key_is_an_admin_key_in_sign_in_mode(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(personalizer_key="static-key-for-tests", **SIGN_IN)
    auth = services(client).auth
    static = auth.authenticate_key("static-key-for-tests")
    assert static is not None and static.kind == "key" and static.has(Role.ADMIN)
    assert auth.authenticate_key("static-key-for-test") is None
    assert auth.authenticate_key(None) is None


def test_the_static_personalizer_key_does_not_open_v1(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(personalizer_key="static-key-for-tests", **SIGN_IN)
    header = {"Ocp-Apim-Subscription-Key": "static-key-for-tests"}
    assert client.get("/personalizer/v1.0/configurations/service", headers=header).is_success
    refused = client.get("/v1/logs/export", headers=header)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["target"] == "Ocp-Apim-Subscription-Key"
    assert error["message"].startswith("OO_PERSONALIZER_KEY opens the Personalizer routes only")
    # It is no access token either.
    bearer = {"Authorization": "Bearer static-key-for-tests"}
    assert client.get("/v1/logs/export", headers=bearer).status_code == 401
