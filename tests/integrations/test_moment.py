"""`People.moment` reads a person's integration statuses with the profile, on both backends, and
`Integrations.gather` then asks the database nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.integration_setup import make_integrations
from bandit.store import Store
from integrations.profiles import People, integration_tokens
from tests.conftest import Backend

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    db = Store.connect(backend.database_url, pool_size=2)
    yield db
    db.engine.dispose()


def _token(store: Store, principal: str, provider: str, status: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            integration_tokens.insert().values(
                principal=principal,
                provider=provider,
                ciphertext=b"sealed",
                key_id="k1",
                status=status,
                updated_at=NOW,
            )
        )


def _moment(people: People, principal: str) -> dict[str, str]:
    since = NOW - timedelta(hours=1)
    *_, statuses = people.moment(principal, "tips", signals_since=since, recent_since=since)
    return statuses


def test_moment_carries_each_providers_token_status(store: Store) -> None:
    _token(store, "ada", "todoist", "connected")
    _token(store, "ada", "google-calendar", "needs_reconnect")
    _token(store, "bob", "todoist", "connected")
    people = People(store)

    assert _moment(people, "ada") == {"todoist": "connected", "google-calendar": "needs_reconnect"}
    assert _moment(people, "bob") == {"todoist": "connected"}
    assert _moment(people, "cy") == {}
    assert people.connections("ada") == _moment(people, "ada")


def test_gather_with_statuses_does_not_read_them_again(
    store: Store, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    integrations = make_integrations(backend.settings(), store.engine)
    try:

        def no_read(person: str) -> list[object]:
            raise AssertionError("gather read the statuses although it was given them")

        monkeypatch.setattr(integrations, "_rows", no_read)
        gathered = integrations.gather("cy", NOW, ZoneInfo("UTC"), statuses={})
        assert gathered.tasks == () and gathered.missing == ()
        # A provider that needs reconnecting is reported missing, without asking it anything.
        gathered = integrations.gather(
            "ada", NOW, ZoneInfo("UTC"), statuses={"todoist": "needs_reconnect"}
        )
        assert gathered.missing == ("todoist",)
    finally:
        integrations.close()
