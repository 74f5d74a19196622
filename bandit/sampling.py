"""Drawing one action from a pmf with randomness derived from the event id.

Seeding by event id makes every decision reproducible: the same event id and the same pmf
always draw the same action, which is what lets a client retry a rank call or an analyst
replay a log. The uniform variate comes from BLAKE2b rather than Python's `hash`, which is
salted per process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_SALT = b"oo-sampling-v1"


def uniform_for(event_id: str) -> float:
    """A uniform variate in [0, 1) that is a pure function of `event_id`."""
    digest = hashlib.blake2b(event_id.encode("utf-8"), digest_size=8, key=_SALT).digest()
    # 53 bits fill a double's mantissa exactly, so every value is representable.
    return (int.from_bytes(digest, "big") >> 11) / float(1 << 53)


def sample_index(pmf: Sequence[float], event_id: str) -> int:
    """Draw an index from `pmf` by inverting its CDF at `uniform_for(event_id)`.

    Indices with zero probability are never drawn, even when floating-point rounding leaves
    the cumulative sum slightly below 1.
    """
    u = uniform_for(event_id)
    cumulative = 0.0
    last_positive = -1
    for i, p in enumerate(pmf):
        if p <= 0.0:
            continue
        last_positive = i
        cumulative += p
        if u < cumulative:
            return i
    if last_positive < 0:
        raise ValueError("`pmf` has no action with positive probability")
    return last_positive
