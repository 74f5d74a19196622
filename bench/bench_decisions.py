"""Decision throughput and latency through HTTP with PostgreSQL logging, beside a bare
endpoint in the same server that only runs the VW predict on the same candidates.

    make bench   # or: infra/scripts/with-services .venv/bin/python bench/bench_decisions.py

Prints throughput and p50/p99 for the bare predict, /v1/recommend and Personalizer rank, and
each one's ratio to the bare endpoint measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import database_url, free_port, fresh_schema, load, server, table, tip_payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    port = free_port()
    env = {
        "OO_DATABASE_URL": fresh_schema(database_url()),
        "OO_BENCH_ENDPOINTS": "1",
        "OO_TIP_COOLDOWN_HOURS": "0",
    }
    tips = tip_payload()
    rank_actions = tips["actions"]
    url = f"http://127.0.0.1:{port}"
    with server(["api"], env, port):
        run = lambda name, make: load(  # noqa: E731
            url, name, make, seconds=args.seconds, concurrency=args.concurrency
        )
        run("warm-up", lambda i: ("POST", "/internal/bench/predict", tips))
        bare = run(
            "bare VW predict (tips candidates)", lambda i: ("POST", "/internal/bench/predict", tips)
        )
        recommend = run("POST /v1/recommend", lambda i: ("POST", "/v1/recommend", None))
        rank = run(
            "POST /personalizer/v1.0/rank",
            lambda i: (
                "POST",
                "/personalizer/v1.0/rank",
                {"contextFeatures": tips["contextFeatures"], "actions": rank_actions},
            ),
        )
    rows = []
    for result in (bare, recommend, rank):
        rows.append(
            [
                result.name,
                f"{result.throughput:,.0f}",
                f"{result.percentile(50):.2f}",
                f"{result.percentile(99):.2f}",
                f"{result.throughput / bare.throughput:.0%}",
                str(result.errors),
            ]
        )
    print(
        f"\n{len(rank_actions)} candidates, concurrency {args.concurrency}, "
        f"{args.seconds:.0f}s per endpoint, PostgreSQL logging (fsync on)\n"
    )
    print(table(rows, ["endpoint", "req/s", "p50 ms", "p99 ms", "vs bare", "errors"]))


if __name__ == "__main__":
    main()
