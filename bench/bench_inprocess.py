"""The decision path's CPU without HTTP: oO and the minimal reference driven through ASGI in
one process, alternating, for A/B runs of a change to oO's own code.

    .venv/bin/python bench/bench_inprocess.py            # rank and recommend, embedded default
    .venv/bin/python bench/bench_inprocess.py --json

`bench/bench_rank.py` measures what the goal is set on: real servers over loopback under
`wrk`. Its figures move by several percent from run to run on a shared machine, which hides a
change worth 2%. Here each app is called as ASGI directly (`--concurrency` requests at a time
on one event loop, the lifespan started as a server would), so uvicorn, the sockets and the load
generator are left out, and what is left is the code being changed. oO is the embedded default
on a fresh SQLite file (its decision log's writer thread included: the figure is the process's
CPU time per request); the reference is `bench/reference/app.py`, which gets the recommend
path's context and candidates as a rank body, as in `bench_rank.py`.

The ratio here is not the goal's, which includes what each server pays uvicorn per request;
measured on the same day they agreed (rank 0.45 here against 0.44 over HTTP, recommend 0.37
against 0.35–0.38), and here a round moves by about 4% for oO rather than several.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import table, tip_payload
from bench.bench_rank import OO_ENV, RANK, RECOMMEND, rank_payload

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def call(app: App, path: str, body: bytes) -> int:
    """One POST through `app`; its status."""
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


async def cpu_per_request(
    app: App, path: str, body: bytes, *, requests: int, concurrency: int
) -> tuple[float, set[int]]:
    """Process CPU milliseconds per request over `requests` calls, `concurrency` at a time."""
    statuses: set[int] = set()
    started = time.process_time()
    for _ in range(requests // concurrency):
        statuses.update(await asyncio.gather(*[call(app, path, body) for _ in range(concurrency)]))
    spent = time.process_time() - started
    return 1000 * spent / (requests // concurrency * concurrency), statuses


async def measure(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    os.environ.update({**OO_ENV, "OO_DATA_DIR": str(data_dir), "OO_LOG_LEVEL": "WARNING"})
    from api.app import create_app
    from bench.reference.app import app as reference

    oo = create_app(settle_heap=True)  # as `oo serve` runs it
    rank_body = json.dumps(rank_payload(args.actions)).encode()
    tips_body = json.dumps(tip_payload()).encode()
    sides: dict[str, dict[str, tuple[App, str, bytes]]] = {
        "rank": {"oo": (oo, RANK, rank_body), "reference": (reference, RANK, rank_body)},
        "recommend": {"oo": (oo, RECOMMEND, b""), "reference": (reference, RANK, tips_body)},
    }
    out: dict[str, Any] = {}
    async with oo.router.lifespan_context(oo):
        for endpoint in args.endpoint or ["rank", "recommend"]:
            figures: dict[str, list[float]] = {"oo": [], "reference": []}
            statuses: dict[str, set[int]] = {"oo": set(), "reference": set()}
            for app, path, body in sides[endpoint].values():  # warm-up
                await cpu_per_request(app, path, body, requests=320, concurrency=16)
            for i in range(args.rounds):
                order = list(sides[endpoint].items())
                for name, (app, path, body) in order if i % 2 else order[::-1]:
                    ms, seen = await cpu_per_request(
                        app, path, body, requests=args.requests, concurrency=args.concurrency
                    )
                    figures[name].append(ms)
                    statuses[name] |= seen
            ours, theirs = median(figures["oo"]), median(figures["reference"])
            out[endpoint] = {
                "oo_cpu_ms": ours,
                "reference_cpu_ms": theirs,
                "cpu_ratio": theirs / ours,
                "rounds": figures,
                "statuses": {name: sorted(seen) for name, seen in statuses.items()},
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--actions", type=int, default=20, help="actions per rank request")
    parser.add_argument("--endpoint", choices=["rank", "recommend"], action="append")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(measure(args, Path(tmp) / "data"))
    if args.json:
        print(json.dumps(results))
        return
    rows = [
        [
            endpoint,
            " / ".join(f"{ms:.3f}" for ms in r["rounds"]["oo"]),
            " / ".join(f"{ms:.3f}" for ms in r["rounds"]["reference"]),
            f"{r['cpu_ratio']:.2f}",
            ", ".join(f"{name} {codes}" for name, codes in r["statuses"].items()),
        ]
        for endpoint, r in results.items()
    ]
    print(
        f"\nin process, {args.concurrency} at a time, {args.rounds} rounds x {args.requests} "
        "requests per side, alternating; CPU ms per request\n"
    )
    print(table(rows, ["endpoint", "oO", "reference", "cpu ratio", "statuses"]))


if __name__ == "__main__":
    main()
