"""Event ids: time-ordered UUIDs (version 7, RFC 9562) in hex, their random bits drawn from a
pool of random bytes."""

from __future__ import annotations

import os
import uuid

from bandit.events import _EventIds, new_event_id


def test_event_ids_are_distinct_version_7_uuids_in_hex() -> None:
    ids = [new_event_id() for _ in range(1000)]  # several refills of the pool
    assert len(set(ids)) == len(ids)
    for event_id in ids:
        parsed = uuid.UUID(hex=event_id)
        assert (parsed.version, parsed.variant, parsed.hex) == (7, uuid.RFC_4122, event_id)


def test_the_bits_are_the_milliseconds_then_the_draw() -> None:
    """Hand-laid: 48 bits of Unix milliseconds, version 7, 12 random bits, the RFC variant,
    62 random bits (the draw's top 12 bits and its low 62; its 6 bits between are unused)."""
    ids = _EventIds(clock_ns=lambda: 1_733_300_000_123_456_789)
    ids._pool, ids._at = bytes.fromhex("abcdef0123456789abcd"), 0
    millis = 1_733_300_000_123
    draw = 0xABCDEF0123456789ABCD
    expected = (
        (millis << 80) | (7 << 76) | ((draw >> 68) << 64) | (0b10 << 62) | (draw & ((1 << 62) - 1))
    )
    event_id = ids()
    assert event_id == f"{expected:032x}"
    assert event_id.startswith(f"{millis:012x}7abc")
    assert uuid.UUID(hex=event_id).variant == uuid.RFC_4122


def test_ids_made_later_sort_later() -> None:
    """What the decision log's index gains: ids of later milliseconds sort after earlier ones,
    whatever their random bits."""
    now = [1_000_000_000_000_000_000]
    ids = _EventIds(clock_ns=lambda: now[0])
    made = []
    for _ in range(200):
        made.append(ids())
        now[0] += 1_000_000  # one millisecond
    assert made == sorted(made)


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    new_event_id()  # the pool is filled before the fork
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    childs = os.read(read, 64).decode()
    os.close(read)
    assert len(childs) == 32
    assert childs != new_event_id()
