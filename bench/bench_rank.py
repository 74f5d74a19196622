"""The decision path against the least a rank service must do, in one run, alternating.

    make bench   # or: infra/scripts/with-services .venv/bin/python bench/bench_rank.py

Starts the minimal external reference (`bench/reference/app.py`: FastAPI + VW, no validation,
no logging, one uvicorn worker) and oO as real processes on loopback: the embedded default
(`oo serve`, SQLite) and, when PostgreSQL is given (`OO_TEST_DATABASE_URL`, as `make bench`
sets it, or `OO_DATABASE_URL`), `oo api` logging to it. Each endpoint is driven with the same
load, the reference and oO taking turns for `--rounds` rounds; the medians are printed with
oO's ratio to the reference, then each one's p99 when paced at half its own peak. The CPU
time each server process spent per request is printed too ("cpu ratio": the reference's over
oO's), since on a shared machine it moves less than throughput does; and how many decisions
shared each commit of oO's decision log in the peak runs ("per commit", group commit: ADR 0013).

Endpoints: Personalizer rank with `--actions` actions, and `/v1/recommend` (the reference
gets the same context and tip candidates as a rank body). Peak load is `wrk -t1` where
installed, else an asyncio client (see `bench/_load.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from statistics import median
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import free_port, fresh_schema, reference, server, table, tip_payload
from bench._load import Run, Target, drive, has_wrk, peak

RANK = "/personalizer/v1.0/rank"
RECOMMEND = "/v1/recommend"

# Limits a benchmark must not hit: it measures the decision path, not the rate limiter.
OO_ENV = {
    "OO_RATE_LIMIT_PERSONALIZER": "off",
    "OO_RATE_LIMIT_DEFAULT": "off",
    "OO_TIP_COOLDOWN_HOURS": "0",
    "OO_MAX_IN_FLIGHT": "256",
}


def rank_payload(actions: int) -> dict[str, Any]:
    """A Personalizer rank body: two context namespaces, `actions` actions with two each."""
    return {
        "contextFeatures": [
            {"user": {"tier": "gold", "age": 31, "country": "ch"}},
            {"time": {"hour": "h09", "weekday": "tue"}},
        ],
        "actions": [
            {
                "id": f"article-{i}",
                "features": [
                    {"item": {"kind": f"k{i % 5}", "price": 1.5 * i}},
                    {"tags": {"topic": f"t{i % 7}", "fresh": i % 2 == 0}},
                ],
            }
            for i in range(actions)
        ],
    }


def postgres_env() -> dict[str, str] | None:
    """`oo api` on a fresh schema of the given PostgreSQL, or None when none is given."""
    url = os.environ.get("OO_TEST_DATABASE_URL") or os.environ.get("OO_DATABASE_URL")
    if not url:
        return None
    env = {"OO_DATABASE_URL": fresh_schema(url)}
    redis = os.environ.get("OO_TEST_REDIS_URL") or os.environ.get("OO_REDIS_URL")
    if redis:
        env["OO_REDIS_URL"] = redis
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def commits(target: Target) -> tuple[float, float]:
    """(decisions, commits) the decision log has group-committed so far, from oO's metrics."""
    text = httpx.get(f"http://{target.host}:{target.port}/metrics", timeout=10).text
    found = {}
    for kind in ("sum", "count"):
        match = re.search(rf'^oo_group_commit_rows_{kind}{{log="decision-log"}} (\S+)$', text, re.M)
        found[kind] = float(match.group(1)) if match else 0.0
    return found["sum"], found["count"]


def compare(
    ours: tuple[Target, int],
    theirs: tuple[Target, int],
    *,
    rounds: int,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """Alternate peak runs of oO and the reference, then pace each at half its peak.

    Besides req/s, each side's CPU time per request (its server process's user + system time
    over the runs): on a machine other work shares, it moves less than throughput does.
    """
    for target, _ in (theirs, ours):  # warm-up: models loaded, caches and pools filled
        peak(target, seconds=2, connections=connections)
    runs: dict[str, list[Run]] = {"oo": [], "reference": []}
    cpu: dict[str, float] = {"oo": 0.0, "reference": 0.0}
    logged, committed = commits(ours[0])
    for i in range(rounds):
        order = [("oo", ours), ("reference", theirs)]
        for name, (target, pid) in order if i % 2 else order[::-1]:
            before = cpu_seconds(pid)
            runs[name].append(peak(target, seconds=seconds, connections=connections))
            cpu[name] += cpu_seconds(pid) - before
    rows, transactions = (a - b for a, b in zip(commits(ours[0]), (logged, committed), strict=True))
    out: dict[str, Any] = {}
    for name, (target, _) in (("oo", ours), ("reference", theirs)):
        rps = median(r.throughput for r in runs[name])
        paced = drive(target, seconds=seconds, connections=connections, rate=rps / 2)
        out[name] = {
            "req_s": rps,
            "p50_ms": median(r.p50_ms for r in runs[name]),
            "p99_ms": median(r.p99_ms for r in runs[name]),
            "cpu_ms_per_req": 1000 * cpu[name] / max(1, sum(r.requests for r in runs[name])),
            "errors": sum(r.errors for r in runs[name]),
            "p99_ms_at_half_peak": paced.p99_ms,
            "rounds_req_s": [r.throughput for r in runs[name]],
        }
    out["oo"]["decisions_per_commit"] = rows / transactions if transactions else None
    out["ratio"] = out["oo"]["req_s"] / out["reference"]["req_s"]
    out["cpu_ratio"] = out["reference"]["cpu_ms_per_req"] / out["oo"]["cpu_ms_per_req"]
    return out


def _one_place(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per run")
    parser.add_argument("--rounds", type=int, default=3, help="peak runs per side")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--actions", type=int, default=20, help="actions per rank request")
    parser.add_argument(
        "--backend", choices=["embedded", "postgresql"], action="append", help="default: both"
    )
    parser.add_argument("--endpoint", choices=["rank", "recommend"], action="append")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    rank_body = json.dumps(rank_payload(args.actions)).encode()
    tips_body = json.dumps(tip_payload()).encode()
    endpoints = args.endpoint or ["rank", "recommend"]
    backends = args.backend or ["embedded", "postgresql"]
    quiet = subprocess.DEVNULL if args.json else None
    results: dict[str, dict[str, Any]] = {}
    ref_port = free_port()
    with reference(ref_port) as ref, tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            if backend == "embedded":
                env, command = {"OO_DATA_DIR": str(Path(tmp) / "data")}, ["serve"]
            else:
                pg = postgres_env()
                if pg is None:
                    print("postgresql: skipped (no OO_TEST_DATABASE_URL)", file=sys.stderr)
                    continue
                env, command = pg, ["api"]
            port = free_port()
            with ExitStack() as stack:
                oo = stack.enter_context(server(command, {**OO_ENV, **env}, port, stdout=quiet))
                for endpoint in endpoints:
                    if endpoint == "rank":
                        ours = Target("127.0.0.1", port, RANK, rank_body)
                        theirs = Target("127.0.0.1", ref_port, RANK, rank_body)
                    else:
                        ours = Target("127.0.0.1", port, RECOMMEND, None)
                        theirs = Target("127.0.0.1", ref_port, RANK, tips_body)
                    results.setdefault(backend, {})[endpoint] = compare(
                        (ours, oo.pid),
                        (theirs, ref.pid),
                        rounds=args.rounds,
                        seconds=args.seconds,
                        connections=args.connections,
                    )
    if args.json:
        print(json.dumps({"load": "wrk" if has_wrk() else "asyncio", "results": results}))
        return
    rows = []
    for backend, by_endpoint in results.items():
        for endpoint, r in by_endpoint.items():
            oo, ref = r["oo"], r["reference"]
            rows.append(
                [
                    f"{endpoint} ({backend})",
                    f"{oo['req_s']:,.0f}",
                    f"{oo['p50_ms']:.1f}",
                    f"{oo['p99_ms']:.1f}",
                    f"{oo['p99_ms_at_half_peak']:.1f}",
                    f"{oo['cpu_ms_per_req']:.2f}",
                    f"{ref['req_s']:,.0f}",
                    f"{ref['p50_ms']:.1f}",
                    f"{ref['p99_ms']:.1f}",
                    f"{ref['p99_ms_at_half_peak']:.1f}",
                    f"{ref['cpu_ms_per_req']:.2f}",
                    f"{r['ratio']:.2f}",
                    f"{r['cpu_ratio']:.2f}",
                    _one_place(oo["decisions_per_commit"]),
                    str(oo["errors"]),
                ]
            )
    print(
        f"\n{args.actions} actions per rank, {args.connections} connections, "
        f"{args.rounds}x{args.seconds:.0f}s per side, peak by "
        f"{'wrk -t1' if has_wrk() else 'asyncio'}; p99 @50% paced at half each side's peak\n"
    )
    header = ["endpoint", "oO req/s", "p50", "p99", "p99@50%", "cpu ms"]
    header += ["ref req/s", "p50", "p99", "p99@50%", "cpu ms", "ratio", "cpu ratio"]
    header += ["per commit", "errors"]
    print(table(rows, header))


if __name__ == "__main__":
    main()
