"""Event ids: random version-4 UUIDs in hex, drawn from a pool of random bytes."""

from __future__ import annotations

import os
import uuid

from bandit.events import _EventIds, new_event_id


def test_event_ids_are_distinct_version_4_uuids_in_hex() -> None:
    ids = [new_event_id() for _ in range(1000)]  # several refills of the pool
    assert len(set(ids)) == len(ids)
    for event_id in ids:
        parsed = uuid.UUID(hex=event_id)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, event_id)


def test_event_ids_set_the_bits_as_uuid4_does() -> None:
    ids = _EventIds()
    draw = bytes(range(200, 216))
    ids._pool, ids._at = draw, 0
    assert ids() == uuid.UUID(bytes=draw, version=4).hex


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
