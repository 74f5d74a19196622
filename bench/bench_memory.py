"""API process memory (RSS) while it logs 100k decisions on PostgreSQL: flat, not growing.

    make bench            # or: infra/scripts/with-services .venv/bin/python bench/bench_memory.py

Beside the api process, the same table reports the RSS of an idle `oo api` started in the same
run, as the baseline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._harness import (
    database_url,
    free_port,
    fresh_schema,
    load,
    rss_mb,
    server,
    table,
)

ACTIONS = [
    {"id": f"item-{i}", "features": [{"item": {"kind": f"k{i % 4}", "price": i * 1.5}}]}
    for i in range(10)
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--checkpoints", type=int, default=5)
    args = parser.parse_args()

    idle_port, port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    rows = []
    with (
        server(["api"], {"OO_DATABASE_URL": fresh_schema(database_url())}, idle_port) as idle,
        server(["api"], {"OO_DATABASE_URL": fresh_schema(database_url())}, port) as busy,
    ):
        baseline = rss_mb(idle.pid)
        rows.append(["0", f"{baseline:.0f}", f"{rss_mb(busy.pid):.0f}"])
        step = args.decisions // args.checkpoints
        logged = 0
        for _ in range(args.checkpoints):
            target = logged + step
            while logged < target:
                result = load(
                    url,
                    "rank",
                    lambda i: (
                        "POST",
                        "/personalizer/v1.0/rank",
                        {
                            "contextFeatures": [{"user": {"segment": f"s{i % 50}"}}],
                            "actions": ACTIONS,
                        },
                    ),
                    seconds=5,
                    concurrency=16,
                )
                logged += result.requests - result.errors
                print(f"  {logged:,} decisions logged", file=sys.stderr)
            rows.append([f"{logged:,}", f"{rss_mb(idle.pid):.0f}", f"{rss_mb(busy.pid):.0f}"])
        count = httpx.get(f"{url}/health").json()
    print(f"\nRSS in MB, api process on PostgreSQL (models: {count['models']})\n")
    print(table(rows, ["decisions", "idle api (baseline)", "busy api"]))


if __name__ == "__main__":
    main()
