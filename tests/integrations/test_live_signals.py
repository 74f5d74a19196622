"""Integrations emit normalized signals: completed Todoist tasks and calendar changes.

End to end through `POST /v1/recommend`, with Todoist and Google as local HTTP servers
(tests/integrations/providers.py); the signals land in the signal store and on the signals
stream (the in-process queue, or Redis Streams on the postgres backend).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from bandit.store import Store
from integrations.calendar import Busy, FreeBusy
from integrations.live_signals import (
    BUSY_NEXT_2H,
    MEETINGS_TODAY,
    TASK_COMPLETED,
    LiveSignals,
)
from integrations.signal_stream import SIGNAL_STREAM, InProcessSignalBus, SignalIngest
from integrations.signals import SignalStore
from tests.api.test_integrations import connect, start
from tests.conftest import Backend, wait_until
from tests.integrations.conftest import Reply, todoist_task
from tests.integrations.providers import (  # noqa: F401 - the fixture
    FakeProviders,
    providers_fixture,
)

TASKS = "/todoist/api/v1/tasks"
MakeClient = Callable[..., TestClient]


def _emitted(services: Any, kind: str) -> list[tuple[float, str]]:
    assert services.integrations.signals.flush()
    return [
        (stored.signal.value, stored.signal.source)
        for stored in services.people.signals.of_person("local")
        if stored.signal.type == kind
    ]


def _on_the_stream(services: Any, backend: Backend, count: int) -> list[dict[str, str]]:
    """What the signals stream carried: read back from Redis, or counted by the worker."""
    worker = services.signal_worker
    wait_until(lambda: worker.consumed >= count)
    assert worker.consumed == count
    if backend.redis_url is None:
        return []
    entries = redis.Redis.from_url(backend.redis_url).xrange(SIGNAL_STREAM)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def test_completed_todoist_tasks_become_signals_once(
    make_client: MakeClient, providers: FakeProviders, backend: Backend
) -> None:
    client = start(make_client, providers)
    services = client.app.state.services  # type: ignore[attr-defined]
    services.integrations.todoist.cache_ttl_s = 0  # every recommend asks Todoist
    connect(client, providers)

    assert client.post("/v1/recommend").json()["missing_sources"] == []
    assert _emitted(services, TASK_COMPLETED) == []  # the first fetch is the baseline

    done = providers.tasks.pop(0)
    providers.tasks.append(todoist_task("819999", "A task added meanwhile"))
    for _ in range(3):  # repeated fetches of the same open list do not repeat the completion
        assert client.post("/v1/recommend").json()["missing_sources"] == []
    assert len(providers.calls_to(TASKS)) == 4
    assert _emitted(services, TASK_COMPLETED) == [(1.0, "todoist")]

    # A fetch that fails says nothing: the task list is not read as empty.
    providers.script(TASKS, Reply(503, {"error": "Service Unavailable"}))
    assert client.post("/v1/recommend").json()["missing_sources"] == ["todoist"]
    assert _emitted(services, TASK_COMPLETED) == [(1.0, "todoist")]

    providers.tasks.clear()  # the other three are done
    client.post("/v1/recommend")
    assert _emitted(services, TASK_COMPLETED) == [(1.0, "todoist")] * 4

    entries = _on_the_stream(services, backend, 4)
    if entries:
        assert [e["type"] for e in entries] == [TASK_COMPLETED] * 4
        assert {e["principal"] for e in entries} == {"local"}
    # Titles and task ids never reach the signals, the stream or the store.
    stored = json.dumps([s.signal.model_dump(mode="json") for s in _all(services)] + entries)
    assert done["content"] not in stored and done["id"] not in stored


def test_reconnecting_sets_a_new_baseline(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    client = start(make_client, providers)
    services = client.app.state.services  # type: ignore[attr-defined]
    services.integrations.todoist.cache_ttl_s = 0
    connect(client, providers)
    client.post("/v1/recommend")
    assert client.delete("/v1/integrations/todoist").status_code == 204
    providers.tasks.pop()
    connect(client, providers)
    client.post("/v1/recommend")
    # Whatever happened while disconnected is not known to have happened: no signal.
    assert _emitted(services, TASK_COMPLETED) == []


def test_calendar_signals_only_when_the_values_change(
    make_client: MakeClient, providers: FakeProviders, backend: Backend
) -> None:
    now = datetime.now(UTC)

    def busy(start_min: int, end_min: int) -> dict[str, str]:
        return {
            "start": (now + timedelta(minutes=start_min)).isoformat(),
            "end": (now + timedelta(minutes=end_min)).isoformat(),
        }

    providers.busy = [busy(-10, 20)]
    client = start(make_client, providers)
    client.patch("/v1/me", json={"kinds": ["advice"], "timezone": "UTC"})
    services = client.app.state.services  # type: ignore[attr-defined]
    services.integrations.calendar.cache_ttl_s = 0
    connect(client, providers, "google-calendar")

    for _ in range(3):
        assert client.post("/v1/recommend").json()["missing_sources"] == []
    assert _emitted(services, BUSY_NEXT_2H) == [(1.0, "google-calendar")]
    assert _emitted(services, MEETINGS_TODAY) == [(1.0, "google-calendar")]

    providers.busy = []  # the meeting was cancelled
    client.post("/v1/recommend")
    client.post("/v1/recommend")
    assert [v for v, _ in _emitted(services, BUSY_NEXT_2H)] == [1.0, 0.0]
    assert [v for v, _ in _emitted(services, MEETINGS_TODAY)] == [1.0, 0.0]
    entries = _on_the_stream(services, backend, 4)
    if entries:
        assert sorted(e["type"] for e in entries) == sorted([BUSY_NEXT_2H, MEETINGS_TODAY] * 2)


@pytest.fixture
def store(backend: Backend) -> Iterator[SignalStore]:
    db = Store.connect(backend.database_url, pool_size=2)
    yield SignalStore(db.engine)
    db.engine.dispose()


def test_a_restarted_process_does_not_repeat_calendar_values(store: SignalStore) -> None:
    ingest = SignalIngest(store, InProcessSignalBus(), retention=timedelta(days=30))
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    if now > datetime.now(UTC):
        now -= timedelta(days=1)
    free_busy = FreeBusy(
        now - timedelta(hours=12),
        now + timedelta(hours=12),
        (Busy(now + timedelta(minutes=30), now + timedelta(minutes=60)),),
    )
    first = LiveSignals(ingest)
    first.observe_calendar("ada", now, UTC, free_busy)
    assert first.flush()
    first.close()
    again = LiveSignals(ingest)
    again.observe_calendar("ada", now + timedelta(minutes=1), UTC, free_busy)
    assert again.flush()
    again.close()
    kinds = [(s.signal.type, s.signal.value) for s in store.of_person("ada")]
    assert sorted(kinds) == [(BUSY_NEXT_2H, 1.0), (MEETINGS_TODAY, 1.0)]


def test_a_project_vanishing_is_capped_and_a_full_queue_drops(store: SignalStore) -> None:
    ingest = SignalIngest(store, InProcessSignalBus(), retention=timedelta(days=30))
    live = LiveSignals(ingest, max_completions=5)
    now = datetime.now(UTC) - timedelta(minutes=1)
    live.observe_tasks("ada", now, [str(i) for i in range(50)])
    live.observe_tasks("ada", now + timedelta(seconds=1), [])
    # An older fetch that finished late does not bring the tasks back (and then away again).
    live.observe_tasks("ada", now, [str(i) for i in range(50)])
    live.observe_tasks("ada", now + timedelta(seconds=2), [])
    assert live.flush()
    assert [s.signal.type for s in store.of_person("ada")] == [TASK_COMPLETED] * 5
    live.close()

    tiny = LiveSignals(ingest, queue_size=1)
    tiny.close()  # its worker is gone: the queue fills and stays full
    before = _dropped()
    tiny.observe_tasks("bob", now, ["1"])
    tiny.observe_tasks("bob", now, ["2"])  # dropped at once, never blocking the caller
    assert _dropped() == before + 1


def _dropped() -> float:
    labels = {"provider": "todoist", "outcome": "dropped"}
    return REGISTRY.get_sample_value("oo_integration_observations_total", labels) or 0.0


def _all(services: Any) -> list[Any]:
    return list(services.people.signals.of_person("local"))
