r"""How many distinct values a stream holds, in bounded memory: the k-minimum-values sketch.

Each value is hashed to a uniform 64-bit integer; the sketch keeps the ``k`` smallest distinct
hashes. While it holds fewer than ``k`` the count is exact (up to hash collisions, about
``n² / 2⁶⁵``). Once full, with ``U_(k)`` the k-th smallest hash scaled to (0, 1],

    D̂ = (k - 1) / U_(k),

an unbiased estimate of the number of distinct values with relative standard error about
``1 / sqrt(k - 2)`` (3 % at the default ``k = 1024``), whatever the stream's length.

Reference: Z. Bar-Yossef, T. S. Jayram, R. Kumar, D. Sivakumar & L. Trevisan (2002),
"Counting distinct elements in a data stream", RANDOM; K. Beyer, P. J. Haas, B. Reinwald,
Y. Sismanis & R. Gemulla (2007), "On synopses for distinct-value estimation under multiset
operations", SIGMOD.
"""

from __future__ import annotations

import hashlib
import heapq

SPACE = 2**64


def stable_hash(text: str) -> int:
    """A 64-bit hash of `text`, the same in every process (Python's `hash` is salted)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class Distinct:
    """Distinct values seen, exact up to `k`, estimated beyond (see the module docstring).

    Parameters
    ----------
    k : int
        Hashes kept, at least 3; memory is O(k) however many values are added.

    Examples
    --------
    >>> d = Distinct(k=16)
    >>> for h in (5, 9, 5, 12):
    ...     d.add(h)
    >>> d.count()
    3.0
    """

    __slots__ = ("_heap", "_k", "_kept", "_overflow")

    def __init__(self, k: int = 1024) -> None:
        if k < 3:
            raise ValueError(f"`k` must be at least 3 (got {k})")
        self._k = k
        self._heap: list[int] = []  # the kept hashes, negated: heap[0] is minus the largest
        self._kept: set[int] = set()
        self._overflow = False  # a (k+1)-th distinct value arrived: counts are estimates

    def add(self, value_hash: int) -> None:
        """Add a value by its hash, an integer in [0, 2**64) (`stable_hash`)."""
        if value_hash in self._kept:
            return
        if len(self._heap) < self._k:
            heapq.heappush(self._heap, -value_hash)
            self._kept.add(value_hash)
            return
        self._overflow = True
        if value_hash < -self._heap[0]:
            dropped = -heapq.heappushpop(self._heap, -value_hash)
            self._kept.discard(dropped)
            self._kept.add(value_hash)

    def count(self) -> float:
        """The number of distinct values added: exact up to `k`, estimated beyond."""
        if not self._overflow:
            return float(len(self._heap))
        kth = (-self._heap[0] + 1) / SPACE
        return (self._k - 1) / kth
