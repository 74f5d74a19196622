"""Personal history as context: the tips policy with and without it, on people with stable tastes.

    .venv/bin/python bench/bench_history.py [--people 60] [--decisions 2400] [--seed 7] [--json]

Runs `api.simulate.history` twice on the same seeded world (each person likes a few categories
whatever the moment; nothing in the context tells people apart): the tips surface's pieces with
its default policy, without and then with the `history` features. Prints, over the second half of
each run, the exact expected done rate of the served policy, of uniform random and of the
oracle, and the share of the oracle's lift over random each run captured; then the same in
windows of the run, to show when history starts to pay. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from rich.progress import TaskID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.cli_common import counting_progress
from api.simulate.history import Run, TasteWorld, run
from bench._harness import table


def _windows(result: Run, size: int) -> list[float]:
    policy = np.array(result.policy)
    return [float(policy[i : i + size].mean()) for i in range(0, len(policy), size)]


def main() -> None:
    defaults = TasteWorld()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=defaults.people)
    parser.add_argument("--decisions", type=int, default=defaults.decisions)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--window", type=int, default=400)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args()
    world = TasteWorld(people=args.people, decisions=args.decisions, seed=args.seed)
    runs: list[Run] = []
    with counting_progress(disable=args.json) as progress:
        for history in (False, True):
            label = "with history" if history else "without history"
            task = progress.add_task(label, total=world.decisions)

            def advance(done: int, task: TaskID = task) -> None:
                progress.update(task, completed=done)

            runs.append(run(world, history=history, on_decision=advance))
    summary = {("with" if r.history else "without"): r.share() for r in runs}
    if args.json:
        windows = {("with" if r.history else "without"): _windows(r, args.window) for r in runs}
        json.dump({"world": repr(world), "second_half": summary, "windows": windows}, sys.stdout)
        sys.stdout.write("\n")
        return
    print(
        f"\n{world.people} people, {world.liked_categories} liked categories each "
        f"(done {world.liked:.0%} vs {world.other:.0%}), {world.decisions:,} decisions, "
        f"seed {world.seed}; second half of each run:\n"
    )
    rows = [
        [
            name,
            f"{s['policy']:.3f}",
            f"{s['random']:.3f}",
            f"{s['oracle']:.3f}",
            f"{100 * s['captured']:.0f}%",
        ]
        for name, s in summary.items()
    ]
    print(table(rows, ["features", "policy", "random", "oracle", "lift captured"]))
    print(f"\nexpected done rate of the served policy per {args.window} decisions:\n")
    size = args.window
    without, with_ = (_windows(r, size) for r in runs)
    window_rows = [
        [f"{i * size + 1}-{min((i + 1) * size, world.decisions)}", f"{a:.3f}", f"{b:.3f}"]
        for i, (a, b) in enumerate(zip(without, with_, strict=True))
    ]
    print(table(window_rows, ["decisions", "without history", "with history"]))


if __name__ == "__main__":
    main()
