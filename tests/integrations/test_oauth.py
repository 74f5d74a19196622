"""OAuth states and provider calls: single-use states shared by processes, token errors."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bandit.store import make_engine
from integrations.oauth import OAuthFailed, OAuthProvider, StateRejected, StateStore
from integrations.providers import ProviderUnavailable, TokenRevoked
from integrations.vault import ProviderToken
from tests.integrations.conftest import Reply
from tests.integrations.providers import (  # noqa: F401 - the fixture
    CLIENT_ID,
    CLIENT_SECRET,
    FakeProviders,
    providers_fixture,
    s256,
)
from tests.schema import migrated


def test_a_state_is_single_use_across_processes(tmp_path: Path) -> None:
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'states.sqlite3'}"))
    one, other = StateStore(engine), StateStore(engine)  # two api processes, one database
    state = one.issue("alice", "todoist")
    with pytest.raises(StateRejected, match="another flow"):
        other.consume(state, "bob", "todoist")
    state = one.issue("alice", "todoist")
    with pytest.raises(StateRejected, match="another flow"):
        other.consume(state, "alice", "google-calendar")
    state = one.issue("alice", "todoist")
    other.consume(state, "alice", "todoist")
    with pytest.raises(StateRejected, match="unknown or already used"):
        one.consume(state, "alice", "todoist")
    expired = StateStore(engine, ttl=timedelta(seconds=-1)).issue("alice", "todoist")
    with pytest.raises(StateRejected, match="expired"):
        one.consume(expired, "alice", "todoist")
    with pytest.raises(StateRejected, match="missing or malformed"):
        one.consume("", "alice", "todoist")
    engine.dispose()


def google(providers: FakeProviders) -> OAuthProvider:
    return OAuthProvider(
        name="google-calendar",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        authorize_url=f"{providers.url}/google/auth",
        token_url=f"{providers.url}/google/token",
        revoke_url=f"{providers.url}/google/revoke",
        scope="https://www.googleapis.com/auth/calendar.freebusy",
        redirect_uri="http://127.0.0.1:8000/v1/integrations/google-calendar/callback",
    )


def test_repr_hides_the_client_secret(providers: FakeProviders) -> None:
    assert CLIENT_SECRET not in repr(google(providers))


def test_exchange_and_refresh(providers: FakeProviders) -> None:
    provider = google(providers)
    token = provider.exchange(providers.code())
    assert token.refresh_token and token.expires_at is not None
    fresh = provider.refresh(token, timeout=2)
    assert fresh.access_token != token.access_token
    assert fresh.refresh_token == token.refresh_token  # Google keeps the refresh token
    with pytest.raises(OAuthFailed, match=r"refused the authorization \(invalid_grant\)") as no:
        provider.exchange("code-never-issued")
    assert "code-never-issued" not in str(no.value)


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (Reply(400, {"error": "invalid_grant"}), TokenRevoked, "invalid_grant"),
        (Reply(503, {}), ProviderUnavailable, "answered 503"),
        (Reply(200, {}, delay_s=1.0), ProviderUnavailable, "within 0.2s"),
    ],
    ids=["revoked", "5xx", "timeout"],
)
def test_refresh_errors(
    providers: FakeProviders, reply: Reply, error: type[Exception], match: str
) -> None:
    providers.script("/google/token", reply)
    token = ProviderToken("access", refresh_token="refresh-secret")
    with pytest.raises(error, match=match) as caught:
        google(providers).refresh(token, timeout=0.2)
    assert "refresh-secret" not in str(caught.value)


def test_revoke_is_best_effort(providers: FakeProviders) -> None:
    provider = google(providers)
    token = ProviderToken("access", refresh_token="refresh-1")
    assert provider.revoke(token) is True
    assert providers.revoked == ["refresh-1"]
    providers.script("/google/revoke", Reply(503, {}))
    assert provider.revoke(token) is False


def test_pkce_verifier_is_kept_server_side_and_sent_with_the_code(
    providers: FakeProviders, tmp_path: Path
) -> None:
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'states.sqlite3'}"))
    states = StateStore(engine)
    provider = replace(google(providers), pkce=True)
    verifier = provider.new_code_verifier()
    assert verifier is not None and 43 <= len(verifier) <= 128
    state = states.issue("alice", "google-calendar", code_verifier=verifier)
    query = parse_qs(urlsplit(provider.authorization_url(state, verifier)).query)
    assert query["code_challenge"] == [s256(verifier)]
    assert verifier not in provider.authorization_url(state, verifier)
    code = providers.code(query["code_challenge"][0])
    kept = states.consume(state, "alice", "google-calendar")
    assert provider.exchange(code, code_verifier=kept).access_token
    stolen = providers.code(query["code_challenge"][0])
    with pytest.raises(OAuthFailed, match="invalid_grant"):
        provider.exchange(stolen)  # an intercepted code is useless without the verifier
    engine.dispose()
