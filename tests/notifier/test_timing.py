"""The timing surface on both backends: decision points decided once, send or wait logged with
their pmf, the dose and quiet hours respected, opens and visits rewarded, PATCH /v1/me."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from experiments.assignment import assign
from integrations.timing import SEND, TIMING, WAIT
from notifier.timing import Timing
from notifier.timing_points import TimingPoints
from tests.notifier.push_service import PushService
from tests.notifier.test_push_api import client, make_push_client  # noqa: F401 - fixtures

MORNING = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _services(client: TestClient) -> Any:  # noqa: F811
    return client.app.state.services  # type: ignore[attr-defined]


def _subscribed(client: TestClient, push_service: PushService) -> None:  # noqa: F811
    device = push_service.device("phone")
    assert client.post("/v1/push/subscriptions", json=device.subscription()).status_code == 201


def _day(timing: Timing, start: datetime = MORNING, slots: int = 28) -> list[Any]:
    """Every slot of a day, 30 minutes apart, decided by `timing`."""
    outcomes = []
    for i in range(slots):
        outcomes += timing.run_once(start + timedelta(minutes=30 * i))
    return outcomes


def test_each_point_is_decided_once_and_logged_with_its_pmf(
    client: TestClient,  # noqa: F811
    push_service: PushService,
) -> None:
    _subscribed(client, push_service)
    services = _services(client)
    outcomes = _day(services.timing)
    actions = [o.action for o in outcomes]
    sends = actions.count(SEND)
    assert sends == 3  # the daily dose: after the third push, no more decision points
    assert WAIT in actions
    for outcome in outcomes:
        logged = services.store.get(outcome.event_id).decision
        assert logged.surface == TIMING
        assert [a.id for a in logged.actions] == [SEND, WAIT]
        assert abs(sum(logged.pmf) - 1.0) < 1e-9
        assert logged.chosen.id == outcome.action
        assert logged.propensity == logged.pmf[logged.chosen_index]
    # A second notifier (another replica) over the same database decides nothing again.
    twin = _twin(services)
    assert _day(twin) == []
    # Each send pushed a tip whose decision waits for the open to be activated.
    pushed = [o for o in outcomes if o.action == SEND]
    for outcome in pushed:
        tip = services.store.get(outcome.tip_event_id).decision
        assert tip.surface == "tips"
        assert tip.activated_at is None
        assert services.push.outbox.timing_event_id("local", outcome.tip_event_id) == (
            outcome.event_id
        )


def _twin(services: Any) -> Timing:
    timing = services.timing
    return Timing(
        store=timing.store,
        people=timing.people,
        integrations=timing.integrations,
        history=timing.history,
        decider=timing.decider,
        serving=timing.serving,
        tips=timing.tips,
        push=timing.push,
        points=TimingPoints(timing.store.engine),
        reward_window=timing.reward_window,
        exploration=timing.exploration,
        publish=timing.publish,
        push_cost=timing.push_cost,
    )


def test_no_point_without_a_device_in_quiet_hours_or_with_a_dose_of_zero(
    client: TestClient,  # noqa: F811
    push_service: PushService,
) -> None:
    services = _services(client)
    assert services.timing.run_once(MORNING) == []  # no device yet
    _subscribed(client, push_service)
    # No quiet hours set: the default night (22:00-08:00) holds no decision point.
    assert services.timing.run_once(MORNING - timedelta(hours=1)) == []
    reply = client.patch("/v1/me", json={"quiet_hours": {"start": "20:00", "end": "09:00"}})
    assert reply.status_code == 200, reply.text
    assert services.timing.run_once(MORNING + timedelta(minutes=30)) == []
    assert client.patch("/v1/me", json={"timing": {"pushes_per_day": 0}}).status_code == 200
    assert services.timing.run_once(MORNING + timedelta(hours=2)) == []


def test_an_opened_push_and_a_visit_reward_their_decisions(
    client: TestClient,  # noqa: F811
    push_service: PushService,
) -> None:
    _subscribed(client, push_service)
    services = _services(client)
    outcomes = _day(services.timing, slots=12)
    send = next(o for o in outcomes if o.action == SEND)
    # The push's cost is recorded as it is sent; the open adds 1 (summed over the window).
    assert services.store.get(send.event_id).reward == pytest.approx(-0.1)
    assert client.post("/v1/push/opened", json={"event_id": send.tip_event_id}).status_code == 204
    assert services.store.get(send.event_id).reward == pytest.approx(0.9)
    # A second open changes nothing.
    assert client.post("/v1/push/opened", json={"event_id": send.tip_event_id}).status_code == 204
    assert services.store.get(send.event_id).reward == pytest.approx(0.9)

    # A wait is rewarded when the person comes on their own within its window, once.
    wait_at = MORNING + timedelta(
        minutes=30 * outcomes.index(next(o for o in outcomes if o.action == WAIT))
    )
    wait = next(o for o in outcomes if o.action == WAIT)
    assert services.timing.visited("local", wait_at + timedelta(minutes=10)) >= 1
    assert services.store.get(wait.event_id).reward == 1.0
    assert services.timing.visited("local", wait_at + timedelta(minutes=11)) == 0


def test_a_recommend_within_a_wait_s_window_rewards_it_once(
    client: TestClient,  # noqa: F811
    push_service: PushService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _subscribed(client, push_service)
    services = _services(client)
    outcomes = _day(services.timing, slots=12)
    index, wait = next((i, o) for i, o in enumerate(outcomes) if o.action == WAIT)
    visit = MORNING + timedelta(minutes=30 * index + 10)
    assert services.timing.waiting("local", visit)
    # The person opens the page on their own 10 minutes after the wait was decided.
    monkeypatch.setattr("api.routers.tips.utcnow", lambda: visit)
    reply = client.post("/v1/recommend")
    assert reply.status_code == 200, reply.text
    assert services.store.get(wait.event_id).reward == 1.0
    assert not services.timing.waiting("local", visit)
    # Coming back a minute later earns the wait nothing more.
    monkeypatch.setattr("api.routers.tips.utcnow", lambda: visit + timedelta(minutes=1))
    assert client.post("/v1/recommend").status_code == 200
    assert services.store.get(wait.event_id).reward == 1.0


def salt_assigning(person: str, arms: list[dict[str, Any]], arm: str) -> str:
    """A salt under which `person` falls in `arm` (assignment is a pure function of the unit,
    the salt and the arms): an experiment's own salt is random, so a test that needs one arm
    names a salt that gives it."""
    pairs = [(a["name"], a["weight"]) for a in arms]
    return next(s for i in range(200) if assign(person, s := f"salt-{i}", pairs) == arm)


def test_a_random_time_arm_sends_with_probability_pushes_left_over_points_left(
    client: TestClient,  # noqa: F811
    push_service: PushService,
) -> None:
    _subscribed(client, push_service)
    # Learned vs random time; the person (the unit) falls in the random-time arm here.
    arms = [
        {"name": "random-time", "policy": "random-time", "weight": 1},
        {"name": "learned", "policy": "vw-timing", "weight": 1},
    ]
    salt = salt_assigning("local", arms, "random-time")
    body = {"name": "when", "surface": TIMING, "arms": arms, "salt": salt}
    created = client.post("/v1/experiments", json=body)
    assert created.status_code == 201, created.text
    assert client.post("/v1/experiments/when/start").status_code == 200
    services = _services(client)
    pushes_left = 3
    for i, outcome in enumerate(_day(services.timing)):
        logged = services.store.get(outcome.event_id).decision
        assert (logged.experiment, logged.arm, logged.policy) == (
            "when",
            "random-time",
            "random-time",
        )
        points_left = 28 - i  # the points of the day from this one on, 08:00 to 21:30
        p_send = min(max(pushes_left / points_left, 0.01), 0.99)
        assert logged.pmf == pytest.approx([p_send, 1.0 - p_send])
        pushes_left -= outcome.action == SEND
    assert pushes_left < 3  # it pushed, and never past the dose


def test_timing_settings_are_read_and_changed_through_me(client: TestClient) -> None:  # noqa: F811
    assert client.get("/v1/me").json()["timing"] == {"every_minutes": 30, "pushes_per_day": 3}
    reply = client.patch("/v1/me", json={"timing": {"every_minutes": 60}})
    assert reply.json()["timing"] == {"every_minutes": 60, "pushes_per_day": 3}
    assert client.get("/v1/me").json()["timing"]["every_minutes"] == 60
    for body, target in (
        ({"every_minutes": 7}, "timing.every_minutes"),
        ({"pushes_per_day": 13}, "timing.pushes_per_day"),
    ):
        reply = client.patch("/v1/me", json={"timing": body})
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["target"] == target
