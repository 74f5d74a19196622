"""Every endpoint checks its principal.

The matrix walks every operation of the OpenAPI document (plus the server-rendered pages), so a
new route that nobody classified fails here until its requirement is written down. Authentication
is replaced by an authenticator that trusts a test header: this file is about authorization (which
principal may call what); sign-in itself is tested end to end against a real OpenID provider in
tests/api/test_sign_in.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import HTTPConnection

from api.auth.principal import KEY_HEADER, Principal, Role
from api.auth.signin import SignInAuthenticator
from tests.api.decision_helpers import assert_error, services
from tests.api.test_signin_admin import SIGN_IN

WHO = "X-Test-Principal"

PRINCIPALS: dict[str, Principal] = {
    "ada": Principal("ada", "person", frozenset({Role.PERSON})),
    "bob": Principal("bob", "person", frozenset({Role.PERSON})),
    "experimenter": Principal("eve", "person", frozenset({Role.PERSON, Role.EXPERIMENTER})),
    "analyst": Principal("ana", "person", frozenset({Role.PERSON, Role.ANALYST})),
    "admin": Principal("root", "person", frozenset({Role.PERSON, Role.ADMIN})),
}
KEY_ROLES: dict[str, frozenset[Role]] = {
    "integrator-key": frozenset(),
    "person-key": frozenset({Role.PERSON}),  # a key with the person role is still not a person
    "experimenter-key": frozenset({Role.EXPERIMENTER}),
    "analyst-key": frozenset({Role.ANALYST}),
    "admin-key": frozenset({Role.ADMIN}),
}
KEYS: dict[str, Principal] = {
    name: Principal(f"key:{name}", "key", roles) for name, roles in KEY_ROLES.items()
}


class HeaderAuthenticator:
    """Test double for authentication only: the caller names its principal in a header."""

    local = False

    def authenticate(
        self, request: HTTPConnection, *, memory_only: bool = False
    ) -> Principal | None:
        name = request.headers.get(WHO)
        if name is None:
            return None
        return PRINCIPALS.get(name) or KEYS.get(name)

    def authenticate_key(self, key: str | None, *, memory_only: bool = False) -> Principal | None:
        return KEYS.get(key or "")


@dataclass(frozen=True)
class Rule:
    """Who may call: `allowed` principals get past authorization, everyone else is refused."""

    allowed: frozenset[str]
    by_key: bool = False  # credentials travel in the subscription-key header

    def admits(self, name: str) -> bool:
        return name in self.allowed


PEOPLE = frozenset({"ada", "bob", "experimenter", "analyst", "admin"})
PERSON = Rule(PEOPLE)
EXPERIMENTER = Rule(frozenset({"experimenter", "admin", "experimenter-key", "admin-key"}))
ANALYST = Rule(frozenset({"analyst", "admin", "analyst-key", "admin-key"}))
POLICY_AUTHOR = Rule(
    frozenset({"experimenter", "analyst", "admin", "experimenter-key", "analyst-key", "admin-key"})
)
INTEGRATOR = Rule(frozenset(KEYS), by_key=True)  # any key ranks; its roles don't matter
INTEGRATOR_ADMIN = Rule(frozenset({"admin-key"}), by_key=True)
ADMIN = Rule(frozenset({"admin", "admin-key"}))
PUBLIC = Rule(frozenset(), by_key=False)

PERSONALIZER_RUNTIME = r"^/personalizer/(v1\.0/)?(rank|events/.*|multislot/.*)$"

# (method regex, path regex, rule); the first match wins.
RULES: list[tuple[str, str, Rule]] = [
    (".*", r"^/(health|metrics|auth/.*)$", PUBLIC),
    (".*", PERSONALIZER_RUNTIME, INTEGRATOR),
    (".*", r"^/personalizer/.*$", INTEGRATOR_ADMIN),
    (
        ".*",
        r"^/v1/(recommend|feedback|signals|decisions/.*|me|me/.*|integrations.*|push/.*)$",
        PERSON,
    ),
    (".*", r"^/v1/auth/.*$", PUBLIC),
    (".*", r"^/v1/experiments.*$", EXPERIMENTER),
    (".*", r"^/v1/policies.*$", POLICY_AUTHOR),
    (".*", r"^/v1/(logs|evaluations|policy-searches|diagnostics).*$", ANALYST),
    (".*", r"^/v1/keys.*$", ADMIN),
    ("GET", r"^/dashboards/experiments.*$", EXPERIMENTER),
    ("GET", r"^/dashboards/(analysis|analyst|evaluations).*$", ANALYST),
]

# Pages outside the OpenAPI document that still need a principal.
PAGES = [
    "/dashboards/experiments",
    "/dashboards/experiments/some-experiment",
    "/dashboards/analysis",
]


def rule_for(method: str, path: str) -> Rule | None:
    for method_pattern, path_pattern, rule in RULES:
        if re.match(method_pattern, method) and re.match(path_pattern, path):
            return rule
    return None


@pytest.fixture
def guarded(make_client: Callable[..., TestClient]) -> TestClient:
    client = make_client()
    client.app.state.services.auth = HeaderAuthenticator()  # type: ignore[attr-defined]
    return client


def operations(client: TestClient) -> list[tuple[str, str]]:
    spec: dict[str, Any] = client.get("/openapi.json").json()
    found = [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    return found + [("GET", page) for page in PAGES]


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "probe-id", path)


def send(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    body = None if method in {"GET", "DELETE"} else {}
    return client.request(method, concrete(path), headers=headers, json=body)


def call(client: TestClient, method: str, path: str, who: str | None, rule: Rule) -> Any:
    headers = {} if who is None else {KEY_HEADER if rule.by_key else WHO: who}
    return send(client, method, path, headers)


def test_every_operation_has_a_rule(guarded: TestClient) -> None:
    unclassified = [f"{m} {p}" for m, p in operations(guarded) if rule_for(m, p) is None]
    assert unclassified == [], "classify these routes in RULES"


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_each_endpoint_refuses_the_wrong_principal(guarded: TestClient) -> None:
    checked = 0
    for method, path in operations(guarded):
        rule = rule_for(method, path)
        assert rule is not None
        if rule is PUBLIC:
            continue
        anonymous = call(guarded, method, path, None, rule)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        for who in [*PRINCIPALS, *KEYS]:
            reply = call(guarded, method, path, who, rule)
            if rule.admits(who):
                assert reply.status_code not in (401, 403), (method, path, who, reply.text)
            else:
                expected = 401 if rule.by_key and who not in KEYS else 403
                assert reply.status_code == expected, (method, path, who, reply.text)
            checked += 1
    assert checked > 100


def test_a_person_sees_and_reacts_only_to_their_own_decisions(guarded: TestClient) -> None:
    tip = guarded.post("/v1/recommend", headers={WHO: "ada"}, json={"defer_activation": True})
    assert tip.status_code == 200, tip.text
    event_id = tip.json()["event_id"]
    for reply in (
        guarded.post(
            "/v1/feedback", headers={WHO: "bob"}, json={"event_id": event_id, "reaction": "done"}
        ),
        guarded.post(f"/v1/decisions/{event_id}/activate", headers={WHO: "bob"}),
    ):
        # Exactly the answer for an event id that does not exist: nothing leaks.
        assert_error(reply, 404, "ResourceNotFound", target="event_id", match="no decision")
    own = guarded.post(
        "/v1/feedback", headers={WHO: "ada"}, json={"event_id": event_id, "reaction": "done"}
    )
    assert own.status_code == 200, own.text
    assert own.json()["reward"] == 1.0


def test_an_api_key_is_not_a_person(guarded: TestClient) -> None:
    reply = guarded.post("/v1/recommend", headers={WHO: "admin-key"})
    assert_error(reply, 403, "Forbidden", match="for people")


# --- real API keys in sign-in mode ----------------------------------------------------------


@pytest.fixture
def signin_client(make_client: Callable[..., TestClient]) -> TestClient:
    # Rate limits off: the matrix sends hundreds of requests per key.
    off = {"rate_limit_default": "off", "rate_limit_signals": "off"}
    return make_client(**SIGN_IN, **off, rate_limit_personalizer="off")


def issued_keys(client: TestClient) -> dict[str, str]:
    """A real key per role (`oo_<id>_<secret>`), as `oo keys create --role …` issues them."""
    auth = services(client).auth
    assert isinstance(auth, SignInAuthenticator)
    return {name: auth.store.create_key(name, roles).secret for name, roles in KEY_ROLES.items()}


@pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
def test_real_keys_per_role_get_exactly_their_routes(signin_client: TestClient) -> None:
    """Every operation, every key, through the real authenticator: `Authorization: Bearer oo_…`
    and the Personalizer key header both carry a key on /v1; person-only routes refuse keys."""
    client = signin_client
    keys = issued_keys(client)
    checked = 0
    for method, path in operations(client):
        rule = rule_for(method, path)
        assert rule is not None
        if rule is PUBLIC:
            continue
        assert send(client, method, path, {}).status_code == 401, (method, path)
        for name, secret in keys.items():
            forms = [{KEY_HEADER: secret}]
            if not rule.by_key:
                forms.append({"Authorization": f"Bearer {secret}"})
            for headers in forms:
                reply = send(client, method, path, headers)
                where = (method, path, name, next(iter(headers)), reply.text)
                if rule.admits(name):
                    assert reply.status_code not in (401, 403), where
                else:
                    assert reply.status_code == 403, where
                    message = reply.json()["error"]["message"]
                    if rule is PERSON:
                        assert "is for people" in message, where
                    elif not rule.by_key:
                        assert "which this API key does not carry" in message, where
                checked += 1
    assert checked > 500
