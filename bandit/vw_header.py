"""The options a VW model file would add to the command line when it is loaded.

A VW binary model starts with a header (`save_load_header` in VW's `parse_regressor.cc`), and
loading it with `-i` appends options from that header to the command line *before* VW sets
itself up: an options string (every `keep` option the model was trained with) and a few fields
VW turns into options (`--id`, `--bit_precision`, `--ngram`, `--skips`). A model whose header
gained ` --readable_model /tmp/x` (checksum recomputed) writes that file on load; so the
header is read here, before VW sees the bytes, and its options go through the same gate as any
other VW arguments (`bandit.vw_args`).

The layout read, for files of VW 8.0.3 and later (the versions with a model id in the header):

====================  =========================================================
field                 bytes (little-endian)
====================  =========================================================
version               u32 length (<= 512), then that many bytes, NUL-terminated
id                    u32 length (<= 512), then that many bytes, NUL-terminated
model marker          1 byte, ``m``
min / max label       2 x f32
bits                  u32
lda                   u32
ngrams                u32 count, then 3 bytes each
skips                 u32 count, then 3 bytes each
options               u32 length (<= 100 MiB), then that many bytes, NUL-terminated
checksum              u32 length (4), then the u32 (VW verifies it)
====================  =========================================================

Anything this reader does not understand exactly — an older or malformed file, a string
without its terminating NUL (VW would read on into its buffer's previous contents) — is refused,
so what is gated is what VW would apply.
"""

from __future__ import annotations

import re
import struct

from bandit.errors import DomainError

MAX_STRING = 512
"""VW's header buffer: version and id strings longer than this are refused by VW too."""
MAX_OPTIONS = 100 * 1024 * 1024
OLDEST = (8, 0, 3)
"""The first file version with a model id; older layouts carry legacy fields we do not read."""
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


class HeaderError(DomainError, ValueError):
    """Bytes that are not a VW model header this reader can account for exactly."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > len(self.data):
            raise HeaderError(f"the header ends inside its {what}")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self.take(4, what))[0]
        return value

    def string(self, what: str, limit: int) -> str:
        """A length-prefixed, NUL-terminated string; the text before the first NUL."""
        length = self.u32(what)
        if length > limit:
            raise HeaderError(f"the header's {what} is {length} bytes long (at most {limit})")
        raw = self.take(length, what)
        text, nul, _ = raw.partition(b"\x00")
        if not nul:
            raise HeaderError(f"the header's {what} is not NUL-terminated")
        return text.decode("latin-1")

    def fixed_string(self, what: str) -> str:
        """A 3-byte field VW reads into a zeroed 4-byte buffer (ngram and skip definitions)."""
        return self.take(3, what).partition(b"\x00")[0].decode("latin-1")


def header_options(data: bytes) -> str:
    """The option text VW appends to the command line when loading `data` with `-i`.

    Raises
    ------
    HeaderError
        When `data` does not start with a VW model header of version 8.0.3 or later that this
        reader accounts for byte by byte.
    """
    reader = _Reader(data)
    version = reader.string("version", MAX_STRING)
    match = _VERSION.match(version)
    if match is None:
        raise HeaderError(f"the header's version {version!r} is not a VW version")
    numbers = tuple(int(part) for part in match.groups())
    if numbers < OLDEST:
        raise HeaderError(f"VW {version} models are older than oO reads (8.0.3 and later)")
    model_id = reader.string("id", MAX_STRING)
    if reader.take(1, "model marker") != b"m":
        raise HeaderError("the header has no model marker ('m')")
    reader.take(8, "label range")
    bits = reader.u32("bits")
    reader.u32("lda")
    options = f" --id {model_id}" if model_id else ""
    # The command line oO loads with never sets --bit_precision, so VW takes the header's.
    options += f" --bit_precision {bits}"
    for _ in range(reader.u32("ngram count")):
        options += f" --ngram {reader.fixed_string('ngram')}"
    for _ in range(reader.u32("skip count")):
        options += f" --skips {reader.fixed_string('skip')}"
    saved = reader.string("options", MAX_OPTIONS)
    if saved:
        options += f" {saved}"
    if reader.u32("checksum") != 4:
        raise HeaderError("the header's checksum is not 4 bytes long")
    reader.take(4, "checksum")
    return options
