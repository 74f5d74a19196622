"""`Store.owner`: who a logged decision belongs to, on both backends, without reading it whole
(what rewards and activations check before they act)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from bandit.store import Store
from tests.bandit.test_group_commit import decision
from tests.conftest import Backend


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    db = Store.connect(backend.database_url, pool_size=2)
    yield db
    db.engine.dispose()


def test_the_owner_is_the_decisions_principal_and_surface(store: Store) -> None:
    store.insert_decision(replace(decision("e1"), principal="ann", surface="tips"))
    store.insert_decision(replace(decision("e2"), principal="key:1", surface="personalizer"))

    assert store.owner("e1") == ("ann", "tips")
    assert store.owner("e2") == ("key:1", "personalizer")
    assert store.owner("e3") is None
    for event_id in ("e1", "e2"):
        logged = store.get(event_id)
        assert logged is not None
        assert store.owner(event_id) == (logged.decision.principal, logged.decision.surface)
