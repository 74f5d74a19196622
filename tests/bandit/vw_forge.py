"""Forge VW model headers the way an attacker would: change a field, recompute the checksum.

VW checks a header against a chained MurmurHash3 (x86, 32-bit) of every chunk it reads after
the version string, each chunk's hash seeding the next (`io_buf::hash` in VW's sources). Only
tests use this: it proves the header gate holds against headers VW itself would accept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


def murmur3_32(data: bytes, seed: int) -> int:
    """MurmurHash3_x86_32 (Appleby), as VW's `uniform_hash`."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    h = seed & mask
    blocks = len(data) // 4
    for i in range(blocks):
        (k,) = struct.unpack_from("<I", data, i * 4)
        k = rotl((k * c1) & mask, 15) * c2 & mask
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & mask
    tail = data[blocks * 4 :]
    k = 0
    for i, byte in enumerate(tail):
        k |= byte << (8 * i)
    if tail:
        k = rotl((k * c1) & mask, 15) * c2 & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


@dataclass
class Header:
    """A VW 8.0.3+ model header split into its fields, and the model bytes after it."""

    version: bytes
    model_id: bytes
    labels: bytes
    bits: int
    lda: int
    ngrams: list[bytes]
    skips: list[bytes]
    options: bytes
    rest: bytes

    @classmethod
    def read(cls, data: bytes) -> Header:
        at = 0

        def take(n: int) -> bytes:
            nonlocal at
            chunk = data[at : at + n]
            at += n
            return chunk

        def u32() -> int:
            value: int = struct.unpack("<I", take(4))[0]
            return value

        version = take(u32())
        model_id = take(u32())
        assert take(1) == b"m"
        labels = take(8)
        bits, lda = u32(), u32()
        ngrams = [take(3) for _ in range(u32())]
        skips = [take(3) for _ in range(u32())]
        options = take(u32())
        assert u32() == 4
        take(4)  # the checksum
        return cls(version, model_id, labels, bits, lda, ngrams, skips, options, data[at:])

    def write(self) -> bytes:
        """The bytes, with the checksum VW computes over the chunks it reads one by one."""
        chunks: list[bytes] = [struct.pack("<I", len(self.model_id)), self.model_id, b"m"]
        chunks += [self.labels[:4], self.labels[4:]]
        chunks += [struct.pack("<I", self.bits), struct.pack("<I", self.lda)]
        chunks += [struct.pack("<I", len(self.ngrams)), *self.ngrams]
        chunks += [struct.pack("<I", len(self.skips)), *self.skips]
        chunks += [struct.pack("<I", len(self.options)), self.options]
        checksum = 0
        for chunk in chunks:
            if chunk:
                checksum = murmur3_32(chunk, checksum)
        head = struct.pack("<I", len(self.version)) + self.version
        return head + b"".join(chunks) + struct.pack("<II", 4, checksum) + self.rest
