"""`POST /v1/feedback`: a reaction becomes a reward (the README's table, or the configured
mapping), the first reaction counts, foreign and unknown decisions are refused, and a reaction
after the reward window is kept but never learned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from bandit.bus import Message, RedisStreamBus
from tests.api.decision_helpers import (
    FORMS,
    assert_error,
    event_url,
    learned,
    logged,
    rank,
    recommend,
    row_counts,
    services,
)
from tests.conftest import Backend, fast_learner, free_port, wait_until


def _react(client: TestClient, event_id: str, reaction: str) -> dict[str, Any]:
    reply = client.post("/v1/feedback", json={"event_id": event_id, "reaction": reaction})
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


@pytest.mark.parametrize(
    ("setting", "rewards"),
    [
        pytest.param(
            None, {"done": 1.0, "useful": 1.0, "later": 0.25, "dismiss": -0.5}, id="readme"
        ),
        pytest.param(
            '{"done": 1, "useful": 0.5, "later": 0, "dismiss": -1}',
            {"done": 1.0, "useful": 0.5, "later": 0.0, "dismiss": -1.0},
            id="configured",
        ),
    ],
)
def test_each_reaction_is_learned_as_its_reward(
    make_client: Callable[..., TestClient], setting: str | None, rewards: dict[str, float]
) -> None:
    client = make_client(**({"reaction_rewards": setting} if setting else {}))
    events = {}
    for reaction, reward in rewards.items():
        event_id = recommend(client)["event_id"]
        assert _react(client, event_id, reaction) == {
            "event_id": event_id,
            "reaction": reaction,
            "reward": reward,
            "duplicate": False,
            "late": False,
        }
        events[event_id] = (reaction, reward)
    for event_id, (reaction, reward) in events.items():
        done = wait_until(lambda event_id=event_id: learned(client, event_id))
        assert (done.reaction, done.reward, done.learned_reward) == (reaction, reward, reward)


def test_the_first_reaction_counts(client: TestClient) -> None:
    event_id = recommend(client)["event_id"]
    first = _react(client, event_id, "done")
    before = row_counts(client)
    for reaction in ("dismiss", "done"):
        assert _react(client, event_id, reaction) == {**first, "duplicate": True}
    assert first == {
        "event_id": event_id,
        "reaction": "done",
        "reward": 1.0,
        "duplicate": False,
        "late": False,
    }
    assert row_counts(client) == before
    assert (logged(client, event_id).reaction, logged(client, event_id).reward) == ("done", 1.0)


def test_unknown_and_foreign_decisions_are_refused(client: TestClient) -> None:
    tip_event = recommend(client)["event_id"]
    personalizer_event = rank(client, {"actions": [{"id": "a"}, {"id": "b"}]})["eventId"]
    before = row_counts(client)

    assert_error(
        client.post("/v1/feedback", json={"event_id": "no-such-event", "reaction": "done"}),
        404,
        "ResourceNotFound",
        target="event_id",
        match="^no decision has event id 'no-such-event'$",
    )
    # A Personalizer decision is not a tip, and a tip is not the integrator's to reward.
    assert_error(
        client.post("/v1/feedback", json={"event_id": personalizer_event, "reaction": "done"}),
        404,
        "ResourceNotFound",
        target="event_id",
        match=f"^no decision has event id '{personalizer_event}'$",
    )
    for form in FORMS:
        for reply in (
            client.post(event_url(tip_event, "reward", form), json={"value": 1.0}),
            client.post(event_url(tip_event, "activate", form)),
        ):
            assert_error(reply, 404, "ResourceNotFound", target="event_id", match="no decision")
    assert row_counts(client) == before


def test_a_reaction_after_the_window_is_kept_but_not_learned(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(learner=fast_learner(reward_wait_seconds=1))
    event_id = recommend(client)["event_id"]
    # No reaction within the window: the learner closes it with the default reward (0).
    expired = wait_until(lambda: learned(client, event_id))
    assert (expired.reward, expired.learned_reward) == (None, 0.0)

    late = _react(client, event_id, "done")
    assert late == {
        "event_id": event_id,
        "reaction": "done",
        "reward": 1.0,
        "duplicate": False,
        "late": True,
    }
    after = logged(client, event_id)
    assert (after.reaction, after.reward, after.reward_late) == ("done", 1.0, True)
    assert (after.learn_seq, after.learned_reward) == (expired.learn_seq, 0.0)
    assert _react(client, event_id, "useful") == {**late, "duplicate": True}


def test_a_reward_is_told_to_the_learner_and_redis_failing_delays_only_learning(
    make_client: Callable[..., TestClient], backend: Backend
) -> None:
    """On the Redis bus a reward is published from the bus thread, after the answer (the
    request never waits on Redis). With Redis gone the reaction is still recorded and
    answered; the failure is counted and the learner's sweep finds the reward later."""
    if backend.redis_url is None:
        pytest.skip("the Redis stream is production's bus; the embedded default's is a queue")
    api = make_client(role="api")  # publishes only: nothing here consumes the stream
    publishers: list[str] = []
    publish_many = services(api).bus.publish_many

    def recorded(messages: Sequence[Message]) -> None:
        publishers.append(threading.current_thread().name)
        publish_many(messages)

    services(api).bus.publish_many = recorded  # type: ignore[method-assign]
    event_id = recommend(api)["event_id"]
    _react(api, event_id, "done")
    bus = RedisStreamBus(backend.redis_url)
    try:
        read = wait_until(lambda: bus.read("test-reader", 10, 10))
    finally:
        bus.close()
    assert [(m.kind, m.event_id) for m in read] == [("reward", event_id)]
    assert publishers == ["bus-publish"]

    failures = REGISTRY.get_sample_value("oo_bus_errors_total") or 0.0
    services(api).bus = RedisStreamBus(f"redis://127.0.0.1:{free_port()}")  # nobody listens
    unheard = recommend(api)["event_id"]
    assert _react(api, unheard, "useful")["duplicate"] is False
    wait_until(lambda: (REGISTRY.get_sample_value("oo_bus_errors_total") or 0.0) > failures)
    assert logged(api, unheard).reaction == "useful"
