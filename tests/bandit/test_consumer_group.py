"""The consumer-group reader both Redis streams use, and the decision bus on it, on a real Redis.

What the learner does with the messages is tests/bandit/test_learner.py's; here, what the
group does when Redis loses it and when entries vanish while pending.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bandit.bus import GROUP, STREAM, RedisStreamBus
from bandit.consumer_group import ConsumerGroup
from tests.conftest import Backend, wait_until

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.fixture
def redis_url(backend: Backend) -> str:
    assert backend.redis_url is not None
    return backend.redis_url


@pytest.fixture
def bus(redis_url: str) -> Iterator[RedisStreamBus]:
    made = RedisStreamBus(redis_url)
    yield made
    made.close()


def test_the_group_is_made_with_the_stream_at_the_first_read(redis_url: str) -> None:
    bus = RedisStreamBus(redis_url)
    try:
        assert bus.read("learner-1", 10, 1) == []
        (group,) = bus.client.xinfo_groups(STREAM)
        assert group["name"] == GROUP.encode()
    finally:
        bus.close()


@pytest.mark.parametrize("claim_idle_ms", [60_000, 0], ids=["reading-new", "claiming"])
def test_the_decision_bus_recreates_a_group_redis_lost(redis_url: str, claim_idle_ms: int) -> None:
    """Redis restarted without persistence: the read that meets `NOGROUP` returns nothing, the
    next reads what was published since. `claiming` meets it in `XAUTOCLAIM`, which then runs
    at every read; `reading-new` in the read of new messages."""
    bus = RedisStreamBus(redis_url, claim_idle_ms=claim_idle_ms)
    try:
        bus.publish("reward", "before")
        bus.ack(wait_until(lambda: bus.read("learner-1", 10, 10)))
        bus.client.delete(STREAM)  # the stream and its group are gone
        bus.publish("reward", "after")
        assert bus.read("learner-1", 10, 10) == []
        after = wait_until(lambda: bus.read("learner-1", 10, 10))
        assert [m.event_id for m in after] == ["after"]
    finally:
        bus.close()


def test_a_group_deleted_from_a_stream_that_remains_is_recreated(bus: RedisStreamBus) -> None:
    bus.publish("activate", "e1")
    assert bus.read("learner-1", 10, 10)[0].event_id == "e1"  # never acknowledged
    bus.client.xgroup_destroy(STREAM, GROUP)
    assert bus.read("learner-1", 10, 10) == []
    # The new group starts at the stream's first entry: what the lost group had delivered but
    # not seen acknowledged is delivered again (the decision log makes learning it idempotent).
    again = wait_until(lambda: bus.read("learner-1", 10, 10))
    assert [(m.kind, m.event_id) for m in again] == [("activate", "e1")]


def test_messages_trimmed_while_pending_are_acknowledged_not_returned(
    redis_url: str, bus: RedisStreamBus
) -> None:
    for event_id in ("t1", "t2"):
        bus.publish("reward", event_id)
    delivered = wait_until(lambda: bus.read("learner-1", 10, 10))
    assert [m.event_id for m in delivered] == ["t1", "t2"]
    bus.client.xdel(STREAM, *[m.id for m in delivered])
    restarted = RedisStreamBus(redis_url)  # the same consumer, restarted
    try:
        # Its own pending list holds two ids without entries: handed back, acknowledged, gone.
        assert restarted.read("learner-1", 10, 10) == []
        assert restarted.client.xpending(STREAM, GROUP)["pending"] == 0
        restarted.publish("reward", "t3")
        fresh = wait_until(lambda: restarted.read("learner-1", 10, 10))
        assert [m.event_id for m in fresh] == ["t3"]
    finally:
        restarted.close()


def test_a_negative_idle_time_is_refused(bus: RedisStreamBus) -> None:
    with pytest.raises(ValueError, match=r"`claim_idle_ms` must be at least 0 \(got -1\)"):
        ConsumerGroup(bus.client, STREAM, GROUP, claim_idle_ms=-1)


def test_messages_published_together_arrive_in_order(bus: RedisStreamBus) -> None:
    bus.publish_many([("reward", "e1"), ("activate", "e2"), ("reward", "e3")])
    bus.publish("reward", "e4")
    read = wait_until(lambda: bus.read("learner-1", 10, 10))
    assert [(m.kind, m.event_id) for m in read] == [
        ("reward", "e1"),
        ("activate", "e2"),
        ("reward", "e3"),
        ("reward", "e4"),
    ]
