"""The learning suite: how much of what is learnable each exploration captures, world by world.

    .venv/bin/python bench/bench_learning.py [--worlds tips6,sparse] [--candidates 0,3]
        [--decisions 5000] [--seed 0] [--path routes|asgi] [--sdk] [--json]

Every candidate (`api.simulate.suite.CANDIDATES`, plus the untouched defaults of a new surface)
runs on every world of `api.simulate.worlds.SUITE`, each pair on a fresh all-in-one app (SQLite,
in-process learner), configured through Personalizer's administration calls and driven through
its rank and reward calls. Per pair: the share of the oracle's lift over random captured in the
first 200 and first 1,000 decisions and in the last 1,000, and the log's importance-weight bound
(1 / the smallest logged propensity); then per candidate the median over worlds.

`--path asgi` sends every call through the ASGI test client instead of the route functions (the
figures are identical; it takes several times longer). `--sdk` also runs the acceptance check
the issue describes: Personalizer's Python SDK against an `oo serve` process, the new default
against the old one on the `tips6` world, learning asynchronously as in production.
Figures only; nothing is asserted, and no figure depends on timing except the `--sdk` run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.cli_common import counting_progress
from api.simulate import SdkLoop, World, run
from api.simulate.suite import CANDIDATES, OLD_DEFAULT, Candidate, Result, medians, run_pair
from api.simulate.worlds import SUITE, TIPS6, WorldSpec
from bench._harness import free_port, server, table


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.0f}%"


def _bound(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:,.0f}"


def _line(r: Result) -> str:
    return (
        f"{r.world} / {r.candidate}: first 200 {_pct(r.cold)}, first 1k {_pct(r.early)}, "
        f"last 1k {_pct(r.late)}, IW bound {_bound(r.weight_bound)} ({r.seconds:.0f}s)"
    )


def choose(names: str | None, specs: tuple[WorldSpec, ...]) -> list[WorldSpec]:
    if not names:
        return list(specs)
    known = {s.name: s for s in specs}
    unknown = [n for n in names.split(",") if n not in known]
    if unknown:
        sys.exit(f"--worlds: unknown {unknown} (known: {', '.join(known)})")
    return [known[n] for n in names.split(",")]


def candidates(indices: str | None) -> list[Candidate | None]:
    every: list[Candidate | None] = [None, *CANDIDATES]
    if not indices:
        return every
    try:
        return [every[int(i)] for i in indices.split(",")]
    except (ValueError, IndexError):
        sys.exit(f"--candidates: indices in 0..{len(every) - 1} (0 is the new default)")


def suite(args: argparse.Namespace) -> list[Result]:
    worlds = choose(args.worlds, SUITE)
    chosen = candidates(args.candidates)
    results: list[Result] = []
    with counting_progress(disable=args.quiet) as progress:
        pairs = progress.add_task("pairs", total=len(worlds) * len(chosen))
        for spec in worlds:
            for candidate in chosen:
                total = args.decisions or spec.decisions
                name = candidate.name if candidate else "default"
                task = progress.add_task(f"{spec.name} / {name}", total=total)
                result = run_pair(
                    spec,
                    candidate,
                    seed=args.seed,
                    decisions=args.decisions,
                    path=args.path,
                    on_event=lambda done, task=task: progress.update(task, completed=done),
                )
                progress.remove_task(task)
                progress.advance(pairs)
                results.append(result)
                progress.console.print(_line(result))
    return results


def sdk_run(candidate: Candidate | None, decisions: int, seed: int) -> Result:
    """Personalizer's SDK against a fresh `oo serve` process, configured with its admin client."""
    from azure.ai.personalizer import PersonalizerAdministrationClient, PersonalizerClient
    from azure.core.credentials import AzureKeyCredential

    with tempfile.TemporaryDirectory(prefix="oo-sdk-") as tmp:
        port = free_port()
        env = {
            "OO_DATABASE_URL": f"sqlite:///{tmp}/oo.sqlite3",
            "OO_DATA_DIR": tmp,
            "OO_RATE_LIMIT_PERSONALIZER": "off",
            "OO_RATE_LIMIT_DEFAULT": "off",
        }
        with server(["serve"], env, port, stdout=sys.stderr):
            url = f"http://127.0.0.1:{port}"
            credential = AzureKeyCredential("simulation")
            if candidate is not None:
                admin = PersonalizerAdministrationClient(url, credential, retry_total=0)
                admin.update_policy({"name": "candidate", "arguments": candidate.arguments})
                if candidate.exploration is not None:
                    config = dict(admin.get_service_configuration())
                    config.pop("latestApprenticeModeMetrics", None)
                    config["explorationPercentage"] = candidate.exploration
                    admin.update_service_configuration(config)
            client = PersonalizerClient(url, credential, retry_total=0)
            report = run(SdkLoop(client), World(TIPS6, seed), decisions=decisions)
    name = candidate.name if candidate is not None else "default"
    return Result.of(TIPS6.name, f"{name} (SDK)", report.trace, report.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", help="comma-separated world names (default: all)")
    parser.add_argument(
        "--candidates", help="comma-separated indices; 0 is the new default (default: all)"
    )
    parser.add_argument("--decisions", type=int, help="per world (default: the world's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", choices=("routes", "asgi"), default="routes")
    parser.add_argument("--sdk", action="store_true", help="also the SDK acceptance run")
    parser.add_argument("--sdk-decisions", type=int, default=TIPS6.decisions)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()

    results = suite(args)
    if args.sdk:
        for candidate in (None, OLD_DEFAULT):
            results.append(sdk_run(candidate, args.sdk_decisions, args.seed))
            print(_line(results[-1]), file=sys.stderr)
    summary = medians([r for r in results if not r.candidate.endswith("(SDK)")])
    if args.json:
        out: dict[str, Any] = {
            "results": [r.as_json() for r in results],
            "medians": summary,
        }
        json.dump(out, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    header = ["world", "candidate", "first 200", "first 1k", "last 1k", "min p", "IW bound"]
    rows = [
        [
            r.world,
            r.candidate,
            _pct(r.cold),
            _pct(r.early),
            _pct(r.late),
            f"{r.min_propensity:.4f}",
            _bound(r.weight_bound),
        ]
        for r in results
    ]
    print("share of the oracle's lift over random captured")
    print(table(rows, header))
    print()
    print("median over worlds (IW bound: the worst world)")
    print(
        table(
            [
                [
                    name,
                    _pct(m["cold"]),
                    _pct(m["early"]),
                    _pct(m["late"]),
                    _bound(m["weight_bound"]),
                ]
                for name, m in summary.items()
            ],
            ["candidate", "first 200", "first 1k", "last 1k", "IW bound"],
        )
    )
    if os.environ.get("OO_BENCH_LEARNING_TIMES"):
        print({r.world + "/" + r.candidate: round(r.seconds, 1) for r in results})


if __name__ == "__main__":
    main()
