"""The collector tuned for serving (`bandit.heap`, ADR 0019): what it freezes, what it still
frees, and that a served app applies it while a plain one leaves the process alone."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from bandit import heap
from tests.conftest import Backend, fast_learner


class Node:
    """A container the collector tracks, which can refer to itself."""

    other: object = None


@pytest.fixture
def collector() -> Iterator[None]:
    """The process's collector as it was, after the test: thresholds restored, nothing frozen."""
    thresholds = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    assert frozen_before == 0, "another test left objects frozen"


def _in_generations(obj: object) -> bool:
    """Whether the collector's generations hold `obj` (frozen objects are in none)."""
    return any(o is obj for o in gc.get_objects())


def test_settle_takes_what_is_alive_out_of_every_collection(collector: None) -> None:
    kept = Node()
    assert _in_generations(kept)
    walked_before = len(gc.get_objects())

    heap.settle()

    assert not _in_generations(kept)
    assert gc.get_freeze_count() >= walked_before // 2
    # A full collection now walks only what was created since: a small part of the heap.
    assert len(gc.get_objects()) < walked_before // 10


def _unreachable_cycle() -> weakref.ref[Node]:
    """A node that refers to itself and nothing else does: garbage only the collector frees."""
    cycle = Node()
    cycle.other = cycle
    return weakref.ref(cycle)


def test_settle_collects_the_garbage_it_finds_instead_of_freezing_it(collector: None) -> None:
    gone = _unreachable_cycle()

    heap.settle()

    assert gone() is None


def test_a_frozen_object_is_still_freed_when_its_last_reference_goes(collector: None) -> None:
    kept = Node()
    freed = weakref.ref(kept)
    heap.settle()

    del kept

    assert freed() is None


def test_settle_raises_only_the_young_generations_threshold(collector: None) -> None:
    _, older, oldest = gc.get_threshold()

    heap.settle()

    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, older, oldest)
    assert heap.YOUNG_THRESHOLD > 700  # CPython's default, which the ADR measured against


def test_objects_created_after_settle_are_collected_as_before(collector: None) -> None:
    heap.settle()
    gone = _unreachable_cycle()

    gc.collect()

    assert gone() is None


@pytest.mark.parametrize("served", [True, False])
def test_only_a_served_app_settles_the_heap(
    backend: Backend, collector: None, served: bool
) -> None:
    before = gc.get_threshold()
    app = create_app(backend.settings(), fast_learner(), settle_heap=served)

    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        if served:
            assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
            assert gc.get_freeze_count() > 0
        else:
            assert gc.get_threshold() == before
            assert gc.get_freeze_count() == 0
