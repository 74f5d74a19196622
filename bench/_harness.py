"""Shared benchmark plumbing: start oO or the minimal reference as a process, drive HTTP load,
print tables."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import sqlalchemy as sa

from integrations.catalog import load_catalog
from integrations.context import TipSource, build_context
from integrations.profiles import Profile

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    url = os.environ.get("OO_TEST_DATABASE_URL")
    if not url:
        sys.exit("run through `make bench` (it starts PostgreSQL and Redis)")
    return url


def fresh_schema(url: str) -> str:
    """A new schema at head (`oo db upgrade`), so every benchmark starts from an empty log."""
    from api import db

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    separator = "&" if "?" in url else "?"
    fresh = f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
    db.upgrade(fresh)
    return fresh


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(
    command: list[str], env: dict[str, str], port: int, *, stdout: Any = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`oo <command>` on `port`; `stdout` redirects its banner (e.g. to keep JSON output clean)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", *command],
        env={**os.environ, **env, "OO_PORT": str(port), "OO_LOG_LEVEL": "WARNING"},
        cwd=ROOT,
        stdout=stdout,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not become healthy")
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def reference(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The minimal reference (`bench/reference/app.py`) under one uvicorn worker on `port`."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.reference.app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not _accepts(port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the reference did not start")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)


def tip_payload() -> dict[str, Any]:
    """The recommend path's context and tip candidates, as a Personalizer rank body."""
    profile = Profile("bench")
    now = datetime.now(UTC)
    context, local = build_context(profile, {}, now)
    candidates = TipSource(load_catalog()).candidates(profile, local, {}, "bench")
    return {
        "contextFeatures": context,
        "actions": [{"id": a.id, "features": a.features} for a in candidates.actions],
    }


@dataclass
class LoadResult:
    name: str
    requests: int
    seconds: float
    latencies: np.ndarray
    errors: int

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if len(self.latencies) else 0.0


async def _load(
    url: str,
    name: str,
    make_request: Callable[[int], tuple[str, str, Any]],
    *,
    seconds: float,
    concurrency: int,
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors, counter
            while time.perf_counter() < stop_at:
                counter += 1
                method, path, body = make_request(counter)
                started = time.perf_counter()
                response = await client.request(method, path, json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 400:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(name, len(latencies), elapsed, np.array(latencies), errors)


def load(
    url: str,
    name: str,
    make_request: Callable[[int], tuple[str, str, Any]],
    *,
    seconds: float = 10.0,
    concurrency: int = 16,
) -> LoadResult:
    return asyncio.run(_load(url, name, make_request, seconds=seconds, concurrency=concurrency))


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for entry in handle:
            if entry.startswith("VmRSS:"):
                return int(entry.split()[1]) / 1024
    return 0.0
