"""Draw oO's icons: a small ring and a large one, off-white on black. Standard library only.

    python web/icons/draw.py        # rewrites the PNGs beside this file

The output is deterministic; tests/web/test_assets.py redraws the icons and compares them byte
for byte with the committed files, so this script and the PNGs cannot drift apart.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

INK = 236  # the page's text colour, as grey

# name -> (size in pixels, share of the width the mark spans)
ICONS = {
    "icon-32.png": (32, 0.86),
    "apple-touch-icon.png": (180, 0.66),
    "icon-192.png": (192, 0.66),
    "icon-512.png": (512, 0.66),
    # Maskable icons are cropped to a circle of 80% of their width: keep the mark well inside.
    "icon-maskable-512.png": (512, 0.5),
}


def rings(size: int, span: float) -> list[tuple[float, float, float, float]]:
    """(centre x, centre y, radius to the middle of the stroke, stroke width) of "o" and "O"."""
    big = 1.0  # the large ring's outer radius, in units
    small = 0.56
    gap = 0.2
    stroke = 0.24
    width = 2 * small + gap + 2 * big
    unit = size * span / width
    left = (size - width * unit) / 2
    base = size / 2 + big * unit  # both rings sit on one baseline, like letters
    return [
        (left + small * unit, base - small * unit, (small - stroke / 2) * unit, stroke * unit),
        (
            left + (2 * small + gap + big) * unit,
            base - big * unit,
            (big - stroke / 2) * unit,
            stroke * unit,
        ),
    ]


def pixels(size: int, span: float) -> bytes:
    """Grey levels, one row after another, antialiased by the distance to each stroke."""
    shapes = rings(size, span)
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # PNG filter type: none
        for x in range(size):
            cover = 0.0
            for cx, cy, radius, stroke in shapes:
                distance = abs(math.hypot(x + 0.5 - cx, y + 0.5 - cy) - radius)
                cover = max(cover, min(1.0, max(0.0, stroke / 2 - distance + 0.5)))
            rows.append(round(INK * cover))
    return bytes(rows)


def png(size: int, data: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(data, 9))
        + chunk(b"IEND", b"")
    )


def draw() -> dict[str, bytes]:
    return {name: png(size, pixels(size, span)) for name, (size, span) in ICONS.items()}


if __name__ == "__main__":
    here = Path(__file__).parent
    for name, data in draw().items():
        (here / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")
