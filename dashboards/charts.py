"""Small, pure SVG charts for the server-rendered dashboards: strings in, strings out.

No JavaScript and no inline styles (the pages' Content-Security-Policy forbids both): shapes carry
classes (``series s0``, ``band``, ``line``…) that ``dashboards/dashboard.css`` colours, and
geometry as attributes. Every piece of text goes through :func:`html.escape`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

Z95 = 1.96
DODGE = 28.0
"""Distance between arms when all points fall in one time bucket."""
HALF_BAR = 6.0
"""Half the width of a lone point's band."""


@dataclass(frozen=True, slots=True)
class Point:
    """One time bucket of one arm: the mean reward of its decisions and a 95% normal interval."""

    start: datetime
    n: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: tuple[Point, ...]


def point(start: datetime, n: int, total: float, squares: float) -> Point:
    """A bucket's mean and ``mean ± 1.96·sd/√n`` from its count, sum and sum of squares.

    ``sd`` is the sample standard deviation (``n - 1`` in the denominator); with one
    observation the interval collapses to the mean.
    """
    if n < 1:
        raise ValueError(f"`n` must be at least 1 (got {n})")
    mean = total / n
    if n < 2:
        return Point(start, n, mean, mean, mean)
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = Z95 * math.sqrt(variance) / math.sqrt(n)
    return Point(start, n, mean, mean - half, mean + half)


@dataclass(frozen=True, slots=True)
class Frame:
    """The plotting area of a chart, in SVG user units."""

    width: float = 720.0
    height: float = 260.0
    left: float = 48.0
    right: float = 16.0
    top: float = 16.0
    bottom: float = 32.0

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        return self.top


def _num(value: float) -> str:
    """Coordinates with at most two decimals and no trailing zeros: ``12``, ``12.5``."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _classes(base: str, variant: str) -> str:
    return escape(f"{base} {variant}".strip())


def band_path(xs: Sequence[float], lows: Sequence[float], highs: Sequence[float]) -> str:
    """A closed path along the upper bounds left to right, then the lower bounds back.

    Parameters
    ----------
    xs, lows, highs : sequences of float, length k >= 1
        Screen coordinates: x of every point, y of its lower and of its upper bound.
    """
    if not (len(xs) == len(lows) == len(highs)) or not xs:
        raise ValueError(
            f"`xs`, `lows` and `highs` must be non-empty and of one length "
            f"(got {len(xs)}, {len(lows)}, {len(highs)})"
        )
    upper = [f"{_num(x)},{_num(y)}" for x, y in zip(xs, highs, strict=True)]
    lower = [f"{_num(x)},{_num(y)}" for x, y in zip(xs[::-1], lows[::-1], strict=True)]
    return "M" + " L".join(upper + lower) + " Z"


def line_path(xs: Sequence[float], ys: Sequence[float]) -> str:
    if len(xs) != len(ys) or not xs:
        raise ValueError(
            f"`xs` and `ys` must be non-empty and of one length ({len(xs)}, {len(ys)})"
        )
    return "M" + " L".join(f"{_num(x)},{_num(y)}" for x, y in zip(xs, ys, strict=True))


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values covering ``[low, high]`` (1, 2 or 5 times a power of ten apart)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise ValueError(f"`low` and `high` must be finite with low <= high (got {low}, {high})")
    if high == low:  # a flat series: give it a little room rather than a zero-height axis
        pad = max(0.1, abs(low) * 0.1)
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.floor(low / step + 1e-9) * step  # 1e-9: 0.19999… is 0.2
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def empty_chart(
    title: str, message: str = "no data yet", frame: Frame | None = None, variant: str = ""
) -> str:
    """The calm state before any learned decision: a baseline and one quiet line of text."""
    frame = frame or Frame()
    return (
        f'<svg class="{_classes("chart empty", variant)}" '
        f'viewBox="0 0 {_num(frame.width)} {_num(frame.height)}" '
        f'role="img" aria-label="{escape(title)}: {escape(message)}">'
        f"<title>{escape(title)}</title>"
        f'<line class="axis" x1="{_num(frame.x0)}" y1="{_num(frame.y0)}" '
        f'x2="{_num(frame.x1)}" y2="{_num(frame.y0)}"/>'
        f'<text class="quiet" x="{_num(frame.width / 2)}" y="{_num(frame.height / 2)}" '
        f'text-anchor="middle">{escape(message)}</text>'
        "</svg>"
    )


def svg_band_chart(
    series: Sequence[Series],
    *,
    title: str = "reward over time",
    time_format: str = "%b %d %H:%M",
    frame: Frame | None = None,
    variant: str = "",
) -> str:
    """Mean reward over time per arm, each with its 95% band, as one inline ``<svg>``.

    ``variant`` adds a class to the ``<svg>`` (``wide``, ``narrow``). Series are coloured by
    position (``s0`` is the control). Buckets are placed on a shared time axis. While every point
    falls in one bucket (the first hour) there is no time axis to draw: each arm gets a short band
    and a dot, side by side, control first.
    """
    frame = frame or Frame()
    drawn = [s for s in series if s.points]
    if not drawn:
        return empty_chart(title, frame=frame, variant=variant)
    starts = sorted({p.start for s in drawn for p in s.points})
    t0, t1 = starts[0].timestamp(), starts[-1].timestamp()
    lows = [p.low for s in drawn for p in s.points]
    highs = [p.high for s in drawn for p in s.points]
    ticks = nice_ticks(min(lows), max(highs))
    v0, v1 = ticks[0], ticks[-1]

    def x_of(moment: datetime) -> float:
        if t1 == t0:
            return (frame.x0 + frame.x1) / 2
        return frame.x0 + (moment.timestamp() - t0) / (t1 - t0) * (frame.x1 - frame.x0)

    def y_of(value: float) -> float:
        return frame.y0 - (value - v0) / (v1 - v0) * (frame.y0 - frame.y1)

    parts = [
        f'<svg class="{_classes("chart", variant)}" '
        f'viewBox="0 0 {_num(frame.width)} {_num(frame.height)}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        '<g class="grid">',
    ]
    for tick in ticks:
        at = _num(y_of(tick))
        parts.append(
            f'<line x1="{_num(frame.x0)}" y1="{at}" x2="{_num(frame.x1)}" y2="{at}"/>'
            f'<text class="tick" x="{_num(frame.x0 - 8)}" y="{at}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(f"{tick:g}")}</text>'
        )
    parts.append("</g>")
    if len(starts) == 1:
        labels = [(starts[0], "middle")]
    else:
        labels = [(starts[0], "start"), (starts[-1], "end")]
    for moment, anchor in labels:
        parts.append(
            f'<text class="tick" x="{_num(x_of(moment))}" y="{_num(frame.height - 8)}" '
            f'text-anchor="{anchor}">{escape(moment.strftime(time_format))}</text>'
        )
    single = t1 == t0
    for index, one in enumerate(series):
        if not one.points:
            continue
        dodge = (index - (len(series) - 1) / 2) * DODGE if single else 0.0
        xs = [x_of(p.start) + dodge for p in one.points]
        ys = [y_of(p.mean) for p in one.points]
        band_xs = xs if len(xs) > 1 else [xs[0] - HALF_BAR, xs[0] + HALF_BAR]
        band_lows = [y_of(p.low) for p in one.points]
        band_highs = [y_of(p.high) for p in one.points]
        if len(xs) == 1:
            band_lows, band_highs = band_lows * 2, band_highs * 2
        parts.append(f'<g class="series s{index % 6}" data-arm="{escape(one.name)}">')
        parts.append(f"<title>{escape(one.name)}</title>")
        parts.append(f'<path class="band" d="{band_path(band_xs, band_lows, band_highs)}"/>')
        if len(xs) > 1:
            parts.append(f'<path class="line" d="{line_path(xs, ys)}"/>')
        for x, y, p in zip(xs, ys, one.points, strict=True):
            parts.append(
                f'<circle class="dot" cx="{_num(x)}" cy="{_num(y)}" r="2.5">'
                f"<title>{escape(f'{one.name}: {p.mean:.3f} [{p.low:.3f}, {p.high:.3f}], n={p.n}')}"
                "</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def svg_interval_row(
    low: float, mean: float, high: float, *, lo: float, hi: float, index: int = 0
) -> str:
    """A one-row forest plot: ``[low, high]`` and the mean, on the scale ``[lo, hi]``."""
    if not hi > lo:
        raise ValueError(f"`hi` must exceed `lo` (got {lo}, {hi})")
    width, height, pad = 160.0, 16.0, 4.0

    def x_of(value: float) -> float:
        clipped = min(hi, max(lo, value))
        return pad + (clipped - lo) / (hi - lo) * (width - 2 * pad)

    return (
        f'<svg class="interval series s{index % 6}" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'aria-hidden="true">'
        f'<line class="axis" x1="{_num(pad)}" y1="{_num(height / 2)}" '
        f'x2="{_num(width - pad)}" y2="{_num(height / 2)}"/>'
        f'<line class="line" x1="{_num(x_of(low))}" y1="{_num(height / 2)}" '
        f'x2="{_num(x_of(high))}" y2="{_num(height / 2)}"/>'
        f'<circle class="dot" cx="{_num(x_of(mean))}" cy="{_num(height / 2)}" r="3"/>'
        "</svg>"
    )
