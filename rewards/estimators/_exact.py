"""Exactly rounded, mergeable running sums (Shewchuk 1997).

A plain float accumulator depends on the order of additions, so two shards merged with ``+`` would
differ in the last bits from one pass over the union. Keeping the running total as a list of
non-overlapping partials makes the represented sum exact; it is rounded once, when read.

Reference: J. R. Shewchuk (1997), "Adaptive precision floating-point arithmetic and fast robust
geometric predicates", Discrete & Computational Geometry 18(3).
"""

from __future__ import annotations

import math
from typing import Self


class ExactSum:
    """A sum of finite floats with no rounding error until :meth:`value` is read.

    ``float(a.merged(b))`` equals the correctly rounded sum of every value added to ``a`` and ``b``,
    whatever the order and the split.
    """

    __slots__ = ("_partials",)

    def __init__(self) -> None:
        self._partials: list[float] = []

    def add(self, x: float) -> None:
        """Add one finite float."""
        partials = self._partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def merged(self, other: ExactSum) -> Self:
        """A new sum holding the values of both operands."""
        result = type(self)()
        result._partials = list(self._partials)
        for y in other._partials:
            result.add(y)
        return result

    def value(self) -> float:
        """The correctly rounded total."""
        return math.fsum(self._partials)

    def __float__(self) -> float:
        return self.value()
