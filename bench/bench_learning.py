"""The learning suite: how much of what is learnable each exploration captures, world by world.

    .venv/bin/python bench/bench_learning.py [--worlds tips6,sparse] [--candidates 0,3]
        [--decisions 5000] [--seed 0] [--seeds 3] [--jobs 2] [--path routes|asgi|model]
        [--tuning] [--sdk] [--sdk-world sparse] [--json]

Every candidate (`api.simulate.suite.CANDIDATES`, plus the untouched defaults of a new surface)
runs on every world of `api.simulate.worlds.SUITE`, each pair on a fresh all-in-one app (SQLite,
in-process learner), configured through Personalizer's administration calls and driven through
its rank and reward calls. Per pair: the share of the oracle's lift over random captured in the
first 200 and first 1,000 decisions and in the last 1,000, and the log's importance-weight bound
(1 / the smallest logged propensity); then per candidate the median over worlds.

`--seeds N` runs seeds `seed` … `seed + N - 1`: each draws every world's hidden preferences and
traffic afresh, so the tables show each figure's mean over seeds ± the half-width of its 95%
Student-t interval, per world and for the median world (each seed's median over worlds, then
their mean). `--jobs` runs pairs in that many processes.

`--path asgi` sends every call through the ASGI test client instead of the route functions (the
figures are identical; it takes several times longer); `--path model` runs only the decision and
learning steps without an app (identical figures again, fifty times faster: for pilots).
`--tuning` runs the grid the default was tuned on (`api.simulate.suite.TUNING`, written up in
docs/learning-suite.md) instead of the exploration candidates. `--sdk`
also runs the acceptance check the issue describes: Personalizer's Python SDK against an
`oo serve` process, the new default against the old one on `--sdk-world`, learning
asynchronously as in production. `--references` adds the independent learners of
`bench/reference/bayes.py` (Bayesian regression with Thompson sampling, outside VW, under the
default floor) on the same worlds, traffic and seeds: how much a learner of another family
captures. Figures only; nothing is asserted, and no figure depends on
timing except the `--sdk` run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from rich.progress import TaskID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.cli_common import counting_progress
from api.simulate import SdkLoop, World, run
from api.simulate.suite import (
    CANDIDATES,
    MEDIAN,
    OLD_DEFAULT,
    TUNING,
    CallPath,
    Candidate,
    Result,
    Spread,
    Summary,
    medians,
    run_pair,
    summarize,
)
from api.simulate.worlds import SUITE, WORLDS, WorldSpec
from bandit.surface_config import DEFAULT_EXPLORATION
from bench._harness import free_port, server, table
from bench.reference.bayes import REFERENCES, Reference, ReferenceLoop

Job = tuple[WorldSpec, Candidate | Reference | None, int, int | None, CallPath]


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.0f}%"


def _spread(value: Spread) -> str:
    if math.isnan(value.half_width):
        return _pct(value.mean)
    return f"{_pct(value.mean)} ± {100 * value.half_width:.0f}"


def _bound(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:,.0f}"


def _line(r: Result) -> str:
    return (
        f"{r.world} / {r.candidate} / seed {r.seed}: first 200 {_pct(r.cold)}, "
        f"first 1k {_pct(r.early)}, last 1k {_pct(r.late)}, IW bound {_bound(r.weight_bound)} "
        f"({r.seconds:.0f}s)"
    )


def choose(names: str | None, specs: tuple[WorldSpec, ...]) -> list[WorldSpec]:
    if not names:
        return list(specs)
    known = {s.name: s for s in specs}
    unknown = [n for n in names.split(",") if n not in known]
    if unknown:
        sys.exit(f"--worlds: unknown {unknown} (known: {', '.join(known)})")
    return [known[n] for n in names.split(",")]


def candidates(indices: str | None, tuning: bool = False) -> list[Candidate | None]:
    every: list[Candidate | None] = [None, *(TUNING if tuning else CANDIDATES)]
    if not indices:
        return every
    try:
        return [every[int(i)] for i in indices.split(",")]
    except (ValueError, IndexError):
        sys.exit(f"--candidates: indices in 0..{len(every) - 1} (0 is the new default)")


def _pair(job: Job, on_event: Callable[[int], None] | None = None) -> Result:
    spec, candidate, seed, decisions, path = job
    if isinstance(candidate, Reference):
        return reference_pair(spec, candidate, seed, decisions, on_event)
    return run_pair(spec, candidate, seed=seed, decisions=decisions, path=path, on_event=on_event)


def reference_pair(
    spec: WorldSpec,
    reference: Reference,
    seed: int,
    decisions: int | None,
    on_event: Callable[[int], None] | None = None,
) -> Result:
    """An independent learner on `spec`'s world for `seed`, floored as a new surface is: the
    contexts and reactions come from `World(spec, seed)`, so they are the candidates'."""
    loop = ReferenceLoop(reference, DEFAULT_EXPLORATION, seed, spec.name)
    report = run(
        loop,
        World(spec, seed),
        decisions=decisions,
        run_id=f"{spec.name}-{seed}",
        on_event=on_event,
    )
    return Result.of(spec.name, reference.name, seed, report.trace, report.seconds)


def suite(args: argparse.Namespace) -> list[Result]:
    worlds = choose(args.worlds, SUITE)
    chosen: list[Candidate | Reference | None] = [*candidates(args.candidates, args.tuning)]
    if args.references:
        chosen += REFERENCES
    seeds = range(args.seed, args.seed + args.seeds)
    jobs: list[Job] = [
        (spec, candidate, seed, args.decisions, args.path)
        for seed in seeds
        for spec in worlds
        for candidate in chosen
    ]
    results: list[Result] = []
    with counting_progress(disable=args.quiet) as progress:
        pairs = progress.add_task("pairs", total=len(jobs))

        def done(result: Result) -> None:
            progress.advance(pairs)
            results.append(result)
            progress.console.print(_line(result))

        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                for result in pool.map(_pair, jobs):
                    done(result)
            return results
        for job in jobs:
            spec, candidate, seed, decisions, _ = job
            name = candidate.name if candidate else "default"
            total = decisions or spec.decisions
            task = progress.add_task(f"{spec.name} / {name} / seed {seed}", total=total)

            def step(n: int, task: TaskID = task) -> None:
                progress.update(task, completed=n)

            done(_pair(job, step))
            progress.remove_task(task)
    return results


def sdk_run(candidate: Candidate | None, spec: WorldSpec, decisions: int, seed: int) -> Result:
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
            report = run(SdkLoop(client), World(spec, seed), decisions=decisions)
    name = candidate.name if candidate is not None else "default"
    return Result.of(spec.name, f"{name} (SDK)", seed, report.trace, report.seconds)


def _summary_rows(summaries: list[Summary]) -> list[list[str]]:
    return [
        [
            s.world,
            s.candidate,
            _spread(s.cold),
            _spread(s.early),
            _spread(s.late),
            _bound(s.weight_bound),
        ]
        for s in summaries
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", help="comma-separated world names (default: all)")
    parser.add_argument(
        "--candidates", help="comma-separated indices; 0 is the new default (default: all)"
    )
    parser.add_argument("--decisions", type=int, help="per world (default: the world's own)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds, from --seed on")
    parser.add_argument("--jobs", type=int, default=1, help="pairs run in this many processes")
    parser.add_argument("--path", choices=("routes", "asgi", "model"), default="routes")
    parser.add_argument(
        "--tuning", action="store_true", help="the default's tuning grid instead of the candidates"
    )
    parser.add_argument(
        "--references",
        action="store_true",
        help="also the independent learners of bench/reference/bayes.py",
    )
    parser.add_argument("--sdk", action="store_true", help="also the SDK acceptance run")
    parser.add_argument("--sdk-world", choices=tuple(WORLDS), default="tips6")
    parser.add_argument("--sdk-decisions", type=int, help="default: the world's own")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    if args.seeds < 1 or args.jobs < 1:
        sys.exit("--seeds and --jobs must be at least 1")

    results = suite(args)
    if args.sdk:
        spec = WORLDS[args.sdk_world]
        for seed in range(args.seed, args.seed + args.seeds):
            for candidate in (None, OLD_DEFAULT):
                decisions = args.sdk_decisions or spec.decisions
                results.append(sdk_run(candidate, spec, decisions, seed))
                print(_line(results[-1]), file=sys.stderr)
    served = [r for r in results if not r.candidate.endswith("(SDK)")]
    per_world = summarize(results)
    median = medians(served)
    if args.json:
        out: dict[str, Any] = {
            "results": [r.as_json() for r in results],
            "summaries": [s.as_json() for s in per_world],
            "medians": [s.as_json() for s in median],
        }
        json.dump(out, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    seeds = f"{args.seeds} seed{'s' if args.seeds > 1 else ''} from {args.seed}"
    header = ["world", "candidate", "first 200", "first 1k", "last 1k", "IW bound"]
    print(f"share of the oracle's lift over random captured ({seeds}; mean ± 95% interval)")
    print(table(_summary_rows(per_world), header))
    print()
    print(f"the median world ({MEDIAN} over worlds per seed; IW bound: the worst world)")
    print(table(_summary_rows(median), header))
    if os.environ.get("OO_BENCH_LEARNING_TIMES"):
        print({f"{r.world}/{r.candidate}/{r.seed}": round(r.seconds, 1) for r in results})


if __name__ == "__main__":
    main()
