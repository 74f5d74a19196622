"""A light HTTP/1.1 load generator for the rank benchmark: `wrk` when installed, else asyncio.

The server and the load share the machine's two cores, so the generator must cost as little
as it can: `wrk` (C) for the closed loop at peak, and a raw-socket asyncio client (keep-alive,
one pre-encoded request, no HTTP library) for paced load and where `wrk` is missing.

Paced load measures each latency from the request's *scheduled* start, so a server that falls
behind is charged for the queue it builds (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Run:
    """One load run against one target."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    body: bytes | None
    """JSON body of a POST; None sends an empty POST."""

    def request(self) -> bytes:
        body = self.body or b""
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


def has_wrk() -> bool:
    return shutil.which("wrk") is not None


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests": %d, "seconds": %f, "p50": %f, "p99": %f, "errors": %d}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def wrk(target: Target, *, seconds: float, connections: int) -> Run:
    """Closed loop at peak: `connections` keep-alive connections on one wrk thread."""
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        body.write_bytes(target.body or b"")
        script = Path(tmp) / "post.lua"
        script.write_text(_WRK_SCRIPT.format(body=body))
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                f"http://{target.host}:{target.port}{target.path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    return Run(
        figures["requests"],
        figures["seconds"],
        figures["p50"],
        figures["p99"],
        figures["errors"],
        "wrk",
    )


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request and read its response; returns the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for header in head.split(b"\r\n")[1:]:
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _drive(
    target: Target, *, seconds: float, connections: int, rate: float | None
) -> tuple[list[float], int, float]:
    request = target.request()
    latencies: list[float] = []
    errors = 0
    issued = 0
    started = time.perf_counter()
    stop_at = started + seconds

    async def worker() -> None:
        nonlocal errors, issued
        reader, writer = await asyncio.open_connection(target.host, target.port)
        try:
            while True:
                if rate is None:
                    scheduled = time.perf_counter()
                else:
                    scheduled = started + issued / rate
                    issued += 1
                    delay = scheduled - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if scheduled >= stop_at:
                    return
                status = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - scheduled)
                if status >= 400:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, errors, time.perf_counter() - started


def drive(target: Target, *, seconds: float, connections: int, rate: float | None = None) -> Run:
    """Closed loop (`rate` None) or paced at `rate` requests a second, in asyncio."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    latencies, errors, elapsed = runner(
        _drive(target, seconds=seconds, connections=connections, rate=rate)
    )
    values = np.array(latencies) * 1000
    return Run(
        len(latencies),
        elapsed,
        float(np.percentile(values, 50)) if len(values) else 0.0,
        float(np.percentile(values, 99)) if len(values) else 0.0,
        errors,
        "asyncio" if rate is None else f"asyncio@{rate:.0f}/s",
    )


def peak(target: Target, *, seconds: float, connections: int) -> Run:
    """The closed-loop peak, with wrk where installed."""
    if has_wrk():
        return wrk(target, seconds=seconds, connections=connections)
    return drive(target, seconds=seconds, connections=connections)
