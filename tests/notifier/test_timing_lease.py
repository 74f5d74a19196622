"""A decision point claimed by a notifier that died (or failed) is taken over after its lease,
while its slot is current, by one notifier, and nothing it had done is done twice (both
backends; every pass is given its `now`)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from integrations.timing import SEND
from integrations.tip_decisions import TipGone
from notifier.schedule import Slot, slot
from notifier.timing import Timing
from notifier.timing_points import POINT_LEASE, point_event_id
from tests.notifier.push_service import PushService
from tests.notifier.test_push_api import client, make_push_client  # noqa: F401 - fixtures
from tests.notifier.test_timing import MORNING, _services, _subscribed, _twin

PERSON = "local"
SECOND = timedelta(seconds=1)


def _point(services: Any, at: datetime) -> tuple[Slot, str]:
    point = slot(services.timing.people.profile(PERSON), at, 30)
    return point, point_event_id(PERSON, point.at)


def _claimed_and_died(services: Any, at: datetime) -> tuple[Slot, str]:
    """A notifier claims the point `at` falls in and dies before deciding anything."""
    point, event_id = _point(services, at)
    assert services.timing.points.claim(PERSON, point, event_id, at)
    return point, event_id


def _action(services: Any, point: Slot) -> str | None:
    rows = services.timing.points.export(PERSON)["decision_points"]
    (row,) = [r for r in rows if r["slot_at"] == point.at]
    action: str | None = row["action"]
    return action


def _pushed(services: Any, tip_event_id: str) -> list[tuple[datetime, str]]:
    """The pushes of a tip: when each was enqueued, to which device (the loop may be sending
    them meanwhile)."""
    return [
        (message["created_at"], delivery["device"])
        for message in services.push.outbox.export(PERSON)
        if message["event_id"] == tip_event_id
        for delivery in message["deliveries"]
    ]


def _first_send(services: Any, dead: Timing) -> tuple[datetime, Slot, str]:
    """Run the day's points on `dead` (set up to die at some step of a send) until one logs
    a send: when, the point and its event id."""
    for half_hours in range(28):
        at = MORNING + timedelta(minutes=30 * half_hours)
        dead.run_once(at)
        point, event_id = _point(services, at)
        logged = services.store.get(event_id)
        if logged is not None and logged.decision.chosen.id == SEND:
            return at, point, event_id
    pytest.fail("no point chose to send")  # pragma: no cover - the day's points send


def test_a_point_left_undecided_is_taken_over_after_the_lease_and_not_before(
    client: TestClient,  # noqa: F811
    push_service: PushService,
) -> None:
    _subscribed(client, push_service)
    services = _services(client)
    point, event_id = _claimed_and_died(services, MORNING)
    twin = _twin(services)  # another replica, or the dead one restarted
    assert twin.run_once(MORNING + POINT_LEASE - SECOND) == []
    assert services.store.get(event_id) is None
    assert _action(services, point) is None

    (outcome,) = twin.run_once(MORNING + POINT_LEASE)
    assert outcome.event_id == event_id
    assert services.store.get(event_id).decision.chosen.id == outcome.action
    assert _action(services, point) == outcome.action
    # Decided now: nobody decides it again, however late in the slot.
    assert _twin(services).run_once(MORNING + 3 * POINT_LEASE) == []
    assert twin.run_once(MORNING + 3 * POINT_LEASE) == []


def test_a_live_notifier_decides_a_point_it_failed_again_after_the_lease(
    client: TestClient,  # noqa: F811
    push_service: PushService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _subscribed(client, push_service)
    timing: Timing = _services(client).timing

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(timing, "choose", unreachable)
        assert timing.run_once(MORNING) == []
    assert timing.run_once(MORNING + POINT_LEASE - SECOND) == []
    (outcome,) = timing.run_once(MORNING + POINT_LEASE)
    assert outcome.event_id == _point(_services(client), MORNING)[1]


def test_of_two_notifiers_taking_a_point_over_at_once_one_decides_it(
    client: TestClient,  # noqa: F811
    push_service: PushService,
) -> None:
    _subscribed(client, push_service)
    services = _services(client)
    point, event_id = _claimed_and_died(services, MORNING)
    takeover = MORNING + POINT_LEASE
    # The claim itself, raced: one statement each, exactly one wins.
    racers = [_twin(services).points for _ in range(6)]
    start = threading.Barrier(len(racers))

    def claim(points: Any) -> bool:
        start.wait()
        return bool(points.claim(PERSON, point, event_id, takeover))

    with ThreadPoolExecutor(len(racers)) as pool:
        assert sorted(pool.map(claim, racers)) == [False] * (len(racers) - 1) + [True]

    # Whole passes, raced after the winner above died too: one decides.
    later = takeover + POINT_LEASE
    twins = [_twin(services), _twin(services)]
    start = threading.Barrier(len(twins))

    def run(timing: Timing) -> list[Any]:
        start.wait()
        return timing.run_once(later)

    with ThreadPoolExecutor(len(twins)) as pool:
        outcomes = [o for found in pool.map(run, twins) for o in found]
    assert [o.event_id for o in outcomes] == [event_id]
    assert _action(services, point) == outcomes[0].action


@pytest.mark.parametrize("died", ["before the push", "after the push"])
def test_a_takeover_logs_charges_and_pushes_nothing_twice(
    client: TestClient,  # noqa: F811
    push_service: PushService,
    monkeypatch: pytest.MonkeyPatch,
    died: str,
) -> None:
    _subscribed(client, push_service)
    services = _services(client)
    dead: Timing = services.timing
    twin = _twin(services)

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise SystemError("kill -9")

    class Unreachable:
        enqueue = staticmethod(dies)

    # The dead notifier gets through every step of a send but the one named, then dies.
    if died == "before the push":
        monkeypatch.setattr(dead, "push", Unreachable())
    else:
        monkeypatch.setattr(dead.points, "decided", dies)
    at, point, event_id = _first_send(services, dead)
    logged = services.store.get(event_id)
    tip_event_id = f"{event_id}-tip"
    tip = services.store.get(tip_event_id)
    assert tip is not None
    assert logged.reward == pytest.approx(-0.1)
    before = _pushed(services, tip_event_id)
    assert len(before) == (0 if died == "before the push" else 1)
    assert _action(services, point) is None

    (outcome,) = twin.run_once(at + POINT_LEASE)
    assert (outcome.event_id, outcome.action, outcome.tip_event_id) == (
        event_id,
        SEND,
        tip_event_id,
    )
    # The decisions the dead notifier logged are the ones answered (not logged again).
    again = services.store.get(event_id)
    assert again.decision.created_at == logged.decision.created_at
    assert services.store.get(tip_event_id).decision.created_at == tip.decision.created_at
    assert again.reward == pytest.approx(-0.1)  # charged once
    after = _pushed(services, tip_event_id)
    assert len(after) == 1  # one push to the one device
    if before:
        assert after == before  # the dead notifier's, not enqueued again
    assert _action(services, point) == SEND


def test_a_point_whose_slot_has_passed_is_not_taken_over(
    client: TestClient,  # noqa: F811
    push_service: PushService,
) -> None:
    _subscribed(client, push_service)
    services = _services(client)
    point, event_id = _claimed_and_died(services, MORNING)
    next_slot = MORNING + timedelta(minutes=30)
    outcomes = _twin(services).run_once(next_slot + POINT_LEASE)
    assert [o.event_id for o in outcomes] == [_point(services, next_slot)[1]]
    assert _action(services, point) is None
    assert services.store.get(event_id) is None


def test_a_takeover_whose_tip_can_no_longer_be_shown_pushes_nothing_and_stops(
    client: TestClient,  # noqa: F811
    push_service: PushService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dead notifier logged the send and its tip, then died before the push; by the
    takeover the tip is gone (in life a Todoist task done meanwhile; here the catalog loses
    it): the point is decided, nothing is pushed, the dose is untouched, and it is not
    retried until the slot ends."""
    _subscribed(client, push_service)
    services = _services(client)
    dead: Timing = services.timing
    twin = _twin(services)  # with a push that works

    class Unreachable:
        @staticmethod
        def enqueue(*args: Any, **kwargs: Any) -> Any:
            raise SystemError("kill -9")

    monkeypatch.setattr(dead, "push", Unreachable())
    at, point, event_id = _first_send(services, dead)
    tip_event_id = f"{event_id}-tip"
    chosen = services.store.get(tip_event_id).decision.chosen.id
    catalog = services.tip_decisions.tips
    showable = catalog.tip
    monkeypatch.setattr(
        catalog, "tip", lambda tip_id: None if tip_id == chosen else showable(tip_id)
    )

    (outcome,) = twin.run_once(at + POINT_LEASE)
    assert (outcome.event_id, outcome.action, outcome.tip_event_id) == (event_id, SEND, None)
    assert _pushed(services, tip_event_id) == []
    assert _action(services, point) == SEND
    assert services.store.get(event_id).reward == pytest.approx(-0.1)  # the dead one's charge
    assert twin.points.pushed(PERSON, point.local_day)[0] == 0
    assert twin.run_once(at + 3 * POINT_LEASE) == []
    assert _twin(services).run_once(at + 3 * POINT_LEASE) == []


def test_a_todo_whose_task_is_gone_cannot_be_shown(client: TestClient) -> None:  # noqa: F811
    services = _services(client)
    with pytest.raises(TipGone, match="todoist:7"):
        services.tip_decisions.shown("todoist:7", {}, MORNING, UTC)
